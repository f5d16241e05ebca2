rule plot_resources:
    input:
        summary="results/summary.json",
        # the stores come last: their jobs must be in the report too
        lancedb="results/lancedb.json",
        kuzu="results/kuzu.json",
    output:
        memory=report(
            "results/report/memory.svg",
            caption="../report/memory.rst",
            category="Resources",
        ),
        runtime=report(
            "results/report/runtime.svg",
            caption="../report/runtime.rst",
            category="Resources",
        ),
        jobs=report(
            "results/report/jobs.tsv",
            caption="../report/jobs.rst",
            category="Resources",
        ),
        summary=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Run summary",
        ),
    log:
        "results/logs/plot_resources/report.log",
    benchmark:
        "results/benchmarks/plot_resources/report.tsv"
    conda:
        "../../envs/vcf-agent.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for("plot_resources"),
        runtime=rule_resource("plot_resources", "runtime"),
    script:
        "../scripts/plot_resources.py"
