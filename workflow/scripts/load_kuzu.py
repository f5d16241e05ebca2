"""Rule load_kuzu: the partitions of the Kuzu graph published as one store (vcf_agent.stores.kuzu)."""

from vcf_agent.logs import run_job
from vcf_agent.stores.kuzu import publish_kuzu, samples_from_headers


def main(smk):
    publish_kuzu(
        smk.input.graphs,
        smk.input.records,
        smk.input.plan,
        smk.input.variants,
        smk.params.store,
        smk.output.manifest,
        samples=samples_from_headers(smk.input.bcfs),
    )


run_job(snakemake, main)
