rule embed_shard:
    input:
        variants="results/parquet/variants/{vcf}/{shard}.parquet",
    output:
        vectors="results/embeddings/{vcf}/{shard}.parquet",
        stats="results/embedding_stats/{vcf}/{shard}.json",
    log:
        "results/logs/embed_shard/{vcf}/{shard}.log",
    benchmark:
        "results/benchmarks/embed_shard/{vcf}/{shard}.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("embed_shard", "threads")
    resources:
        mem_mb=embed_mem_mb,
        runtime=embed_runtime,
        gpu=embed_gpus(),
    params:
        cache=embedding_setting("cache"),
        model=embedding_setting("model"),
        device=embedding_setting("device"),
        template=embedding_setting("template"),
    script:
        "../scripts/embed_shard.py"
