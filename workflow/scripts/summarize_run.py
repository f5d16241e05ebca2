"""Rule summarize_run: records in and out of every stage, checked for losses (vcf_agent.summary)."""

from vcf_agent.files import write_json
from vcf_agent.logs import run_job
from vcf_agent.summary import summarize_run


def main(smk):
    write_json(summarize_run(smk.input.stats, smk.input.shards, smk.input.embeddings), smk.output.summary)


run_job(snakemake, main)
