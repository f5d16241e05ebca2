"""Rule load_kuzu: the Kuzu graph of samples, variants, genes and files (vcf_agent.stores.kuzu)."""

from vcf_agent.logs import run_job
from vcf_agent.stores.kuzu import input_paths, load_kuzu, samples_from_headers


def main(smk):
    load_kuzu(
        smk.input.variants,
        smk.input.genotypes,
        smk.input.annotations,
        smk.params.store,
        smk.output.manifest,
        samples=samples_from_headers(smk.input.bcfs),
        files=input_paths(smk.input.inputs),
        threads=smk.threads,
        mem_mb=smk.resources.mem_mb,
    )


run_job(snakemake, main)
