# vcf-agent: VCF call sets -> normalized Parquet shards -> embeddings -> LanceDB + Kuzu.
# The rules live in workflow/rules; logic worth testing lives in the vcf_agent package.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


# `snakemake --report results/report.html` after a run: see workflow/report/.
report: "workflow/report/workflow.rst"


# Tiny bookkeeping rules run on the submit host instead of as cluster jobs.
localrules:
    all,
    summarize_inputs,
    summarize_run,
    plot_resources,


include: "workflow/rules/common.smk"
include: "workflow/rules/example.smk"
include: "workflow/rules/normalize.smk"
include: "workflow/rules/parquet.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/stores.smk"


rule all:
    default_target: True
    input:
        "results/summary.json",
        "results/report/memory.svg",
        "results/lancedb.json",
        "results/kuzu.json",
