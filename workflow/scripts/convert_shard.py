"""Rule convert_shard: one shard to Parquet through DuckDB (vcf_agent.ingest.parquet)."""

from vcf_agent.files import read_json
from vcf_agent.ingest.parquet import convert_shard, write_stats
from vcf_agent.ingest.shards import find_shard, read_plan
from vcf_agent.logs import log, run_job


def main(smk):
    shard = find_shard(read_plan(smk.input.plan), smk.wildcards.shard)
    stats = convert_shard(
        smk.input.bcf,
        shard,
        source=smk.wildcards.vcf,
        variants_out=smk.output.variants,
        genotypes_out=smk.output.genotypes,
        annotations_out=smk.output.annotations,
        info_fields=smk.params.info_fields,
        threads=smk.threads,
        mem_mb=smk.resources.mem_mb,
        input_path=read_json(smk.input.normalized)["input"],
    )
    write_stats(stats, smk.output.stats)
    log.info("%s", stats.to_dict())


run_job(snakemake, main)
