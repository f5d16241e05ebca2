"""Checkpoint plan_shards: cut one normalised BCF into regions (vcf_agent.ingest.shards)."""

from vcf_agent.files import read_json
from vcf_agent.ingest.shards import ShardSize, plan_shards, write_plan
from vcf_agent.logs import log, run_job


def main(smk):
    samples = read_json(smk.input.stats)["samples"]
    shards = plan_shards(smk.input.bcf, ShardSize.from_config(smk.params.shard), samples)
    write_plan(shards, smk.output.plan)
    log.info("%s: %d shards", smk.wildcards.vcf, len(shards))


run_job(snakemake, main)
