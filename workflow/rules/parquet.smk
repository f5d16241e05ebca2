checkpoint plan_shards:
    input:
        bcf="results/normalized/{vcf}.bcf",
        csi="results/normalized/{vcf}.bcf.csi",
        stats="results/normalized/{vcf}.stats.json",
    output:
        plan="results/shards/{vcf}.tsv",
    log:
        "results/logs/plan_shards/{vcf}.log",
    benchmark:
        "results/benchmarks/plan_shards/{vcf}.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("plan_shards", "threads")
    resources:
        mem_mb=mem_mb_for("plan_shards"),
        runtime=rule_resource("plan_shards", "runtime"),
    params:
        shard=config["shard"],
    script:
        "../scripts/plan_shards.py"


rule convert_shard:
    input:
        bcf="results/normalized/{vcf}.bcf",
        csi="results/normalized/{vcf}.bcf.csi",
        plan="results/shards/{vcf}.tsv",
        # the user's file this BCF came from, which errors about its values name
        normalized="results/normalized/{vcf}.stats.json",
    output:
        variants="results/parquet/variants/{vcf}/{shard}.parquet",
        genotypes="results/parquet/genotypes/{vcf}/{shard}.parquet",
        annotations="results/parquet/annotations/{vcf}/{shard}.parquet",
        stats="results/shard_stats/{vcf}/{shard}.json",
    log:
        "results/logs/convert_shard/{vcf}/{shard}.log",
    benchmark:
        "results/benchmarks/convert_shard/{vcf}/{shard}.tsv"
    # Before the embedding jobs when both are ready: a bad record in any shard stops
    # the run before hours of embedding, and the Parquet is there first.
    priority: 10
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("convert_shard", "threads")
    resources:
        mem_mb=convert_mem_mb,
        runtime=convert_runtime,
    params:
        info_fields=config.get("info_fields"),
    script:
        "../scripts/convert_shard.py"


rule summarize_run:
    input:
        inputs="results/normalized/inputs.json",
        stats=expand("results/normalized/{vcf}.stats.json", vcf=VCFS),
        shards=shard_stats_of_all,
        embeddings=embedding_stats_of_all,
        # what the VCFs share, as the graph's partitions found it (none with one VCF)
        partitions=compared_across_vcfs,
    output:
        summary="results/summary.json",
    log:
        "results/logs/summarize_run/summary.log",
    benchmark:
        "results/benchmarks/summarize_run/summary.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("summarize_run"),
        runtime=rule_resource("summarize_run", "runtime"),
    script:
        "../scripts/summarize_run.py"
