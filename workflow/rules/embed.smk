rule export_onnx_model:
    output:
        export="resources/models/onnx_export.json",
    log:
        "results/logs/export_onnx_model/export.log",
    benchmark:
        "results/benchmarks/export_onnx_model/export.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("export_onnx_model", "threads")
    resources:
        mem_mb=mem_mb_for("export_onnx_model"),
        runtime=rule_resource("export_onnx_model", "runtime"),
    params:
        model=embedding_setting("model"),
        # the export's folder sits beside its manifest
        models_dir=lambda wildcards, output: str(Path(output.export).parent),
    script:
        "../scripts/export_onnx_model.py"


rule embed_shard:
    input:
        variants="results/parquet/variants/{vcf}/{shard}.parquet",
        onnx=onnx_export_if_used,
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
        runtime=embedding_setting("runtime"),
        models_dir=MODELS_DIR,
        template=embedding_setting("template"),
    script:
        "../scripts/embed_shard.py"
