"""Rule normalize_vcf: split, left-align and tag one input (vcf_agent.ingest.normalize)."""

from vcf_agent.ingest.normalize import normalize_vcf
from vcf_agent.logs import log, run_job


def main(smk):
    stats = normalize_vcf(
        smk.input.vcf,
        smk.output.bcf,
        source=smk.wildcards.vcf,
        reference=smk.params.reference,
        ref_check=smk.params.ref_check,
        threads=smk.threads,
    )
    stats.write(smk.output.stats)
    log.info("%s: %d records in, %d after normalisation", stats.source, stats.records_in, stats.records_out)


run_job(snakemake, main)
