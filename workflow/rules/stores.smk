# The two stores users query: LanceDB loaded from every shard of every VCF, the graph
# published from every VCF's layer. Each publishing rule's only output is the store's
# manifest: Snakemake deletes a job's outputs before running it,
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


# The graph is built in layers, one per VCF (vcf_agent.stores.kuzu): each VCF's plan groups
# its own shards into partitions of at most kuzu.partition_edges genotypes, each partition
# loads as its own job (side by side), reading of the earlier VCFs only their shards that
# meet its ranges, and load_kuzu publishes all layers as one store. No job of a layer takes
# a file that adding a later VCF rewrites, so adding a VCF loads only its own layer.


checkpoint plan_kuzu_partitions:
    input:
        bcf="results/normalized/{vcf}.bcf",
        plan="results/shards/{vcf}.tsv",
        stats=layer_shards("shard_stats"),
        genotypes=layer_shards("genotypes"),
    output:
        plan="results/kuzu_partitions/{vcf}.json",
    log:
        "results/logs/plan_kuzu_partitions/{vcf}.log",
    benchmark:
        "results/benchmarks/plan_kuzu_partitions/{vcf}.tsv"
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
        plan="results/kuzu_partitions/{vcf}.json",
        earlier_bcfs=earlier_overlapping("bcfs"),
        bcf="results/normalized/{vcf}.bcf",
        variants=partition_shards("results/parquet/variants/{vcf}/{shard}.parquet"),
        genotypes=partition_shards("results/parquet/genotypes/{vcf}/{shard}.parquet"),
        annotations=partition_shards(
            "results/parquet/annotations/{vcf}/{shard}.parquet"
        ),
        earlier_variants=earlier_overlapping("variants"),
        earlier_genotypes=earlier_overlapping("genotypes"),
    output:
        graph="results/kuzu_parts/{vcf}/{part}.kuzu",
        # its sample index (vcf_agent.stores.sample_index), named after the graph
        sample_index="results/kuzu_parts/{vcf}/{part}.samples",
        # and its variant index (vcf_agent.stores.variant_index): hits' carriers without Kuzu
        variant_index="results/kuzu_parts/{vcf}/{part}.variants",
        record="results/kuzu_parts/{vcf}/{part}.json",
    log:
        "results/logs/load_kuzu_partition/{vcf}/{part}.log",
    benchmark:
        "results/benchmarks/load_kuzu_partition/{vcf}/{part}.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("load_kuzu_partition", "threads")
    resources:
        mem_mb=kuzu_partition_mem_mb,
        runtime=kuzu_partition_runtime,
    params:
        # the File node's path: a param, not inputs.json, which every added VCF rewrites
        path=vcf_path,
    script:
        "../scripts/load_kuzu_partition.py"


rule load_kuzu:
    input:
        summary="results/summary.json",
        plans=expand("results/kuzu_partitions/{vcf}.json", vcf=VCFS),
        graphs=kuzu_partition_outputs("graph"),
        sample_indexes=kuzu_partition_outputs("sample_index"),
        variant_indexes=kuzu_partition_outputs("variant_index"),
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
