"""Rule simulate_example: the bundled example, made by our own simulation (vcf_agent.simulate)."""

from vcf_agent.logs import log, run_job
from vcf_agent.simulate import simulate_example


def main(smk):
    summary = simulate_example(smk.output.vcf, smk.output.fasta, seed=smk.params.seed, samples=smk.params.samples)
    log.info("simulated example: %s", summary)


run_job(snakemake, main)
