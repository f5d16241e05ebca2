"""Rule simulate_example: the bundled example, made by our own simulation (vcf_agent.example.simulate)."""

from vcf_agent.example.simulate import simulate_example
from vcf_agent.logs import log, run_job


def main(smk):
    summary = simulate_example(smk.output.vcf, smk.output.fasta, seed=smk.params.seed, samples=smk.params.samples)
    log.info("simulated example: %s", summary)


run_job(snakemake, main)
