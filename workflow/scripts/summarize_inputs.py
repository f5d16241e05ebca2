"""Rule summarize_inputs: the barrier that every input passed normalisation."""

from vcf_agent.files import read_json, write_json
from vcf_agent.logs import run_job


def main(smk):
    write_json([read_json(path) for path in smk.input.stats], smk.output.summary)


run_job(snakemake, main)
