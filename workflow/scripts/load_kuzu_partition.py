"""Rule load_kuzu_partition: one partition of a VCF's layer of the graph, its own database (vcf_agent.stores.kuzu)."""

import json
from pathlib import Path

from vcf_agent.logs import run_job
from vcf_agent.stores.kuzu import load_partition, samples_from_headers


def main(smk):
    load_partition(
        smk.wildcards.part,
        smk.input.variants,
        smk.input.genotypes,
        smk.input.annotations,
        smk.output.graph,
        smk.output.record,
        # the earlier VCFs' (config order), then the layer's
        samples=samples_from_headers([*smk.input.earlier_bcfs, smk.input.bcf]),
        plan=json.loads(Path(smk.input.plan).read_text()),
        earlier_variants=smk.input.earlier_variants,
        earlier_genotypes=smk.input.earlier_genotypes,
        files={smk.wildcards.vcf: smk.params.path},
        threads=smk.threads,
        mem_mb=smk.resources.mem_mb,
    )


run_job(snakemake, main)
