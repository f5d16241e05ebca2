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


# The graph is one Kuzu database per partition (vcf_agent.stores.kuzu): the plan groups
# the shards into partitions of at most kuzu.partition_edges genotypes, each partition
# loads as its own job (side by side), and load_kuzu publishes them as one store.


checkpoint plan_kuzu_partitions:
    input:
        inputs="results/normalized/inputs.json",
        bcfs=expand("results/normalized/{vcf}.bcf", vcf=VCFS),
        plans=expand("results/shards/{vcf}.tsv", vcf=VCFS),
        stats=shard_stats_of_all,
        genotypes=genotype_shards_of_all,
    output:
        plan="results/kuzu_partitions.json",
    log:
        "results/logs/plan_kuzu_partitions/plan.log",
    benchmark:
        "results/benchmarks/plan_kuzu_partitions/plan.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("plan_kuzu_partitions", "threads")
    resources:
        mem_mb=mem_mb_for("plan_kuzu_partitions"),
        runtime=rule_resource("plan_kuzu_partitions", "runtime"),
    params:
        partition_edges=kuzu_setting("partition_edges"),
    script:
        "../scripts/plan_kuzu_partitions.py"


rule load_kuzu_partition:
    input:
        plan="results/kuzu_partitions.json",
        inputs="results/normalized/inputs.json",
        bcfs=expand("results/normalized/{vcf}.bcf", vcf=VCFS),
        variants=partition_shards("results/parquet/variants/{vcf}/{shard}.parquet"),
        genotypes=partition_shards("results/parquet/genotypes/{vcf}/{shard}.parquet"),
        annotations=partition_shards(
            "results/parquet/annotations/{vcf}/{shard}.parquet"
        ),
    output:
        graph="results/kuzu_parts/{part}.kuzu",
        record="results/kuzu_parts/{part}.json",
    log:
        "results/logs/load_kuzu_partition/{part}.log",
    benchmark:
        "results/benchmarks/load_kuzu_partition/{part}.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("load_kuzu_partition", "threads")
    resources:
        mem_mb=kuzu_partition_mem_mb,
        runtime=kuzu_partition_runtime,
    script:
        "../scripts/load_kuzu_partition.py"


rule load_kuzu:
    input:
        summary="results/summary.json",
        inputs="results/normalized/inputs.json",
        bcfs=expand("results/normalized/{vcf}.bcf", vcf=VCFS),
        plan="results/kuzu_partitions.json",
        graphs=kuzu_partition_outputs("graph"),
        records=kuzu_partition_outputs("record"),
        variants=variant_shards_of_all,
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
        mem_mb=mem_mb_for("load_kuzu"),
        runtime=rule_resource("load_kuzu", "runtime"),
    params:
        store=lambda wildcards, output: output.manifest.removesuffix(".json"),
    script:
        "../scripts/load_kuzu.py"
