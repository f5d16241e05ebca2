# The two stores users query, built from every shard of every VCF. Each rule's only
# output is the store's manifest: Snakemake deletes a job's outputs before running it,
# and the live store (a symlink swapped in atomically by the package) must stay
# readable until the new one is complete.


rule load_lancedb:
    input:
        summary="results/summary.json",
        variants=variant_shards_of_all,
        embeddings=embedding_shards_of_all,
        stats=shard_stats_of_all,
    output:
        manifest="results/lancedb.json",
    log:
        "results/logs/load_lancedb/lancedb.log",
    benchmark:
        "results/benchmarks/load_lancedb/lancedb.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("load_lancedb", "threads")
    resources:
        mem_mb=lancedb_mem_mb,
        runtime=lancedb_runtime,
    params:
        # results/lancedb: the symlink to the live store, beside its manifest
        store=lambda wildcards, output: output.manifest.removesuffix(".json"),
    script:
        "../scripts/load_lancedb.py"


rule load_kuzu:
    input:
        summary="results/summary.json",
        inputs="results/normalized/inputs.json",
        bcfs=expand("results/normalized/{vcf}.bcf", vcf=VCFS),
        variants=variant_shards_of_all,
        genotypes=genotype_shards_of_all,
        annotations=annotation_shards_of_all,
        stats=shard_stats_of_all,
    output:
        manifest="results/kuzu.json",
    log:
        "results/logs/load_kuzu/kuzu.log",
    benchmark:
        "results/benchmarks/load_kuzu/kuzu.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("load_kuzu", "threads")
    resources:
        mem_mb=kuzu_mem_mb,
        runtime=kuzu_runtime,
    params:
        store=lambda wildcards, output: output.manifest.removesuffix(".json"),
    script:
        "../scripts/load_kuzu.py"
