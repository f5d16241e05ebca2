"""Rule load_kuzu_partition: one partition of the Kuzu graph, its own database (vcf_agent.stores.kuzu)."""

import json
from pathlib import Path

from vcf_agent.logs import run_job
from vcf_agent.stores.kuzu import input_paths, load_partition, samples_from_headers


def main(smk):
    load_partition(
        smk.wildcards.part,
        smk.input.variants,
        smk.input.genotypes,
        smk.input.annotations,
        smk.output.graph,
        smk.output.record,
        samples=samples_from_headers(smk.input.bcfs),
        plan=json.loads(Path(smk.input.plan).read_text()),
        files=input_paths(smk.input.inputs),
        threads=smk.threads,
        mem_mb=smk.resources.mem_mb,
    )


run_job(snakemake, main)
