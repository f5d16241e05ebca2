"""Checkpoint plan_kuzu_partitions: the shards grouped into graph partitions (vcf_agent.stores.kuzu)."""

import csv
import json
from pathlib import Path

from vcf_agent.files import write_json
from vcf_agent.logs import run_job
from vcf_agent.stores.build import ShardExtent
from vcf_agent.stores.kuzu import plan_graph, samples_from_headers


def extents(plans, stats):
    """Each shard's contig and positions (its plan) with what convert_shard wrote (its stats)."""
    counts = {(Path(p).parent.name, Path(p).stem): json.loads(Path(p).read_text()) for p in stats}
    found = []
    for plan in plans:
        vcf = Path(plan).stem
        with open(plan, newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                shard = counts[(vcf, row["shard"])]
                found.append(
                    ShardExtent(
                        vcf, row["shard"], row["chrom"], int(row["start"]), int(row["end"]),
                        int(shard.get("variants", 0)), int(shard.get("genotypes", 0)),
                    )
                )  # fmt: skip
    return found, counts


def main(smk):
    shards, counts = extents(smk.input.plans, smk.input.stats)
    plan = plan_graph(shards, smk.input.genotypes, samples_from_headers(smk.input.bcfs), smk.params.partition_edges)
    for partition in plan["partitions"]:  # for the partition job's declared memory
        labels = [tuple(label.split("/")) for label in partition["shards"]]
        partition["annotations"] = sum(int(counts[label].get("annotations", 0)) for label in labels)
    write_json(plan, smk.output.plan)


run_job(snakemake, main)
