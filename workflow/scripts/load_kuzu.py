"""Rule load_kuzu: every VCF's layer of the Kuzu graph published as one store (vcf_agent.stores.kuzu)."""

from vcf_agent.logs import run_job
from vcf_agent.stores.kuzu import publish_kuzu


def main(smk):
    publish_kuzu(
        smk.input.graphs,
        smk.input.records,
        smk.input.plans,
        smk.input.variants,
        smk.params.store,
        smk.output.manifest,
    )


run_job(snakemake, main)
