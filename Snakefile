# vcf-agent: VCF call sets -> normalized Parquet shards -> embeddings -> LanceDB + Kuzu.
# The rules live in workflow/rules; logic worth testing lives in the vcf_agent package.

from snakemake.utils import min_version, validate

min_version("9.0")


# config/config.yaml is the bundled example, read only when no `vcfs` are given (no
# --configfile or --config naming them): Snakemake would deep-merge it with a user's
# file, and the example's VCF, reference and shard size would leak into that run. A
# user's run gets the schema defaults for every key it leaves out (config/README.md).
if "vcfs" not in config:

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
        kept=kept_outputs,
