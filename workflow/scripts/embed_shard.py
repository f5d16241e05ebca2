"""Rule embed_shard: describe and embed one variant shard (vcf_agent.embedding.embed)."""

from vcf_agent.embedding.embed import embed_shard
from vcf_agent.files import write_json
from vcf_agent.logs import log, run_job


def main(smk):
    stats = embed_shard(
        smk.input.variants,
        smk.output.vectors,
        cache_dir=smk.params.cache,
        mem_mb=smk.resources.mem_mb,
        threads=smk.threads,
        model=smk.params.model,
        device=smk.params.device,
        runtime=smk.params.runtime,
        models_dir=smk.params.models_dir,
        template=smk.params.template,
        progress=True,
    )
    write_json(stats.to_dict(), smk.output.stats)
    log.info("%s", stats.to_dict())


run_job(snakemake, main)
