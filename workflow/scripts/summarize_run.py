"""Rule summarize_run: records in and out of every stage, checked for losses (vcf_agent.report.summary)."""

from vcf_agent.files import write_json
from vcf_agent.logs import run_job
from vcf_agent.report.summary import summarize_run


def main(smk):
    summary = summarize_run(
        smk.input.stats,
        smk.input.shards,
        smk.input.embeddings,
        partitions=smk.input.partitions,
    )
    write_json(summary, smk.output.summary)


run_job(snakemake, main)
