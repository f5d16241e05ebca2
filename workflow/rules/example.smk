rule simulate_example:
    output:
        vcf="resources/example/example.vcf.gz",
        tbi="resources/example/example.vcf.gz.tbi",
        fasta="resources/example/example.fa",
        fai="resources/example/example.fa.fai",
    log:
        "results/logs/simulate_example/example.log",
    benchmark:
        "results/benchmarks/simulate_example/example.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("simulate_example"),
        runtime=rule_resource("simulate_example", "runtime"),
    params:
        seed=config.get("example", {}).get("seed", 42),
        samples=config.get("example", {}).get("samples", 60),
    script:
        "../scripts/simulate_example.py"
