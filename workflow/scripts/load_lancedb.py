"""Rule load_lancedb: the LanceDB table of all variants with their embeddings (vcf_agent.stores.lance)."""

from vcf_agent.logs import run_job
from vcf_agent.stores.lance import load_lancedb


def main(smk):
    load_lancedb(
        smk.input.variants,
        smk.input.embeddings,
        smk.params.store,
        smk.output.manifest,
        summary=smk.input.summary,
        threads=smk.threads,
        mem_mb=smk.resources.mem_mb,
    )


run_job(snakemake, main)
