"""Rule plot_resources: the report's pages on resources and the run summary (vcf_agent.report.resource_report)."""

from pathlib import Path

from vcf_agent.logs import log, run_job
from vcf_agent.report.jobs import job_usage
from vcf_agent.report.resource_report import write_report_pages


def main(smk):
    jobs = job_usage(Path.cwd())
    log.info("%d jobs with a declaration and a benchmark file", len(jobs))
    out = smk.output
    write_report_pages(jobs, smk.input.summary, Path(out.memory), Path(out.runtime), Path(out.jobs), Path(out.summary))


run_job(snakemake, main)
