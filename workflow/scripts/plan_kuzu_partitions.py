"""Checkpoint plan_kuzu_partitions: one VCF's shards grouped into its layer's partitions (vcf_agent.stores.kuzu)."""

import csv
import json
from pathlib import Path

from vcf_agent.files import write_json
from vcf_agent.logs import run_job
from vcf_agent.stores.build import ShardExtent
from vcf_agent.stores.kuzu import plan_graph, samples_from_headers


def extents(vcf, plan, stats):
    """Each shard's contig and positions (its plan) with what convert_shard wrote (its stats)."""
    counts = {Path(p).stem: json.loads(Path(p).read_text()) for p in stats}
    found = []
    with open(plan, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            shard = counts[row["shard"]]
            found.append(
                ShardExtent(
                    vcf, row["shard"], row["chrom"], int(row["start"]), int(row["end"]),
                    int(shard.get("variants", 0)), int(shard.get("genotypes", 0)),
                )
            )  # fmt: skip
    return found, counts


def main(smk):
    vcf = smk.wildcards.vcf
    shards, counts = extents(vcf, smk.input.plan, smk.input.stats)
    plan = plan_graph(shards, smk.input.genotypes, samples_from_headers([smk.input.bcf]), smk.params.partition_edges)
    for partition in plan["partitions"]:  # for the partition job's declared memory
        labels = [label.split("/")[1] for label in partition["shards"]]
        partition["annotations"] = sum(int(counts[label].get("annotations", 0)) for label in labels)
    write_json(plan, smk.output.plan)


run_job(snakemake, main)
