rule check_vcf:
    input:
        vcf=vcf_path,
    output:
        report="results/checks/{vcf}.json",
    log:
        "results/logs/check_vcf/{vcf}.log",
    benchmark:
        "results/benchmarks/check_vcf/{vcf}.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("check_vcf", "threads")
    resources:
        mem_mb=mem_mb_for("check_vcf"),
        runtime=rule_resource("check_vcf", "runtime"),
    script:
        "../scripts/check_vcf.py"


rule normalize_vcf:
    input:
        vcf=vcf_path,
        report="results/checks/{vcf}.json",
        reference=reference_files,
    output:
        bcf="results/normalized/{vcf}.bcf",
        stats="results/normalized/{vcf}.stats.json",
    log:
        "results/logs/normalize_vcf/{vcf}.log",
    benchmark:
        "results/benchmarks/normalize_vcf/{vcf}.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: rule_resource("normalize_vcf", "threads")
    resources:
        mem_mb=mem_mb_for("normalize_vcf"),
        runtime=normalize_runtime,
    params:
        reference=reference_arg(),
        ref_check=config["ref_check"],
    script:
        "../scripts/normalize_vcf.py"


rule index_bcf:
    input:
        bcf="results/normalized/{vcf}.bcf",
    output:
        csi="results/normalized/{vcf}.bcf.csi",
    log:
        "results/logs/index_bcf/{vcf}.log",
    benchmark:
        "results/benchmarks/index_bcf/{vcf}.tsv"
    conda:
        "../../envs/bcftools.yaml"
    threads: rule_resource("index_bcf", "threads")
    resources:
        mem_mb=mem_mb_for("index_bcf"),
        runtime=rule_resource("index_bcf", "runtime"),
    shell:
        "bcftools index --csi --threads {threads} --force --output {output.csi} {input.bcf} 2> {log}"


checkpoint summarize_inputs:
    # Every input must pass normalisation before any shard is converted, so a bad
    # file stops the run before anything is written under results/parquet. A
    # checkpoint rather than an input of convert_shard: the shard jobs enter the DAG
    # only once it is done (shard_outputs waits for it), and adding a VCF, which
    # rewrites inputs.json, leaves the existing shards alone.
    input:
        stats=expand("results/normalized/{vcf}.stats.json", vcf=VCFS),
    output:
        summary="results/normalized/inputs.json",
    log:
        "results/logs/summarize_inputs/inputs.log",
    benchmark:
        "results/benchmarks/summarize_inputs/inputs.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("summarize_run"),
        runtime=rule_resource("summarize_run", "runtime"),
    script:
        "../scripts/summarize_inputs.py"
