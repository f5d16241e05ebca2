"""Rule check_vcf: header-level checks of one input (vcf_agent.ingest.inputs)."""

from vcf_agent.files import write_json
from vcf_agent.ingest.inputs import check_vcf
from vcf_agent.logs import run_job


def main(smk):
    report, _ = check_vcf(smk.input.vcf, smk.wildcards.vcf)
    write_json(report.to_dict(), smk.output.report)


run_job(snakemake, main)
