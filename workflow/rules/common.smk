import csv
import errno
import json
import os
import re
from pathlib import Path

# Input functions, resource functions and names shared by every rule.
# Kept free of vcf_agent imports: with --sdm conda the Snakefile runs in
# Snakemake's own environment, where the package may not be installed.

VCF_SUFFIXES = (".vcf.gz", ".vcf.bgz", ".vcf", ".bcf", ".gz")


def vcf_name(path):
    """Name of a VCF given as a plain path: its file name without the VCF suffixes."""
    name = Path(path).name
    for suffix in VCF_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def configured_vcfs():
    """Mapping name -> path of the configured VCFs (a list is named after its files)."""
    vcfs = config["vcfs"]
    if isinstance(vcfs, dict):
        return dict(vcfs)
    named = {}
    for path in vcfs:
        name = vcf_name(path)
        if name in named:
            raise WorkflowError(
                f"config vcfs: {named[name]} and {path} would both be named {name!r};"
                " give them names with a mapping (name: path)"
            )
        named[name] = path
    return named


def refuse_link_loop(path, key):
    """A loop of symbolic links: Snakemake alone would call it a missing input."""
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise WorkflowError(
                f"config {key}: {path}: a loop of symbolic links ({error.strerror})"
            )
    return path


VCFS = {
    name: refuse_link_loop(path, f"vcfs: {name}")
    for name, path in configured_vcfs().items()
}
if config.get("reference"):
    refuse_link_loop(config["reference"], "reference")


wildcard_constraints:
    vcf="|".join(re.escape(name) for name in VCFS),
    shard=r"\d{5}",
    part=r"p\d{5}",


def vcf_path(wildcards):
    return VCFS[wildcards.vcf]


def reference_files(wildcards=None):
    """The reference and its index(es), or nothing when no reference is configured."""
    reference = config.get("reference")
    if not reference:
        return []
    files = [reference, f"{reference}.fai"]
    if reference.endswith((".gz", ".bgz")):
        files.append(f"{reference}.gzi")
    return files


def reference_arg():
    return config.get("reference") or None


# ---------------------------------------------------------------- shards


def shard_plan(vcf):
    """Rows of the shard plan written by checkpoint plan_shards (waits for it)."""
    plan = checkpoints.plan_shards.get(vcf=vcf).output.plan
    with open(plan, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def shard_ids(vcf):
    return [row["shard"] for row in shard_plan(vcf)]


def shard_row(wildcards):
    for row in shard_plan(wildcards.vcf):
        if row["shard"] == wildcards.shard:
            return row
    raise WorkflowError(
        f"shard {wildcards.shard} is not in the plan of {wildcards.vcf}"
    )


def shard_outputs(pattern):
    """Expand a per-shard path pattern over every shard of every configured VCF.

    Waits for checkpoint summarize_inputs first: no shard job exists before every
    input has passed normalisation.
    """
    checkpoints.summarize_inputs.get()
    return [
        pattern.format(vcf=vcf, shard=shard) for vcf in VCFS for shard in shard_ids(vcf)
    ]


def kept_outputs(wildcards):
    """Every file the rules keep on disk: targets of rule all, so that one missing (a
    killed forced re-run deletes a job's outputs before it runs) is made again along
    with all that depends on it. Snakemake remakes a missing intermediate file only
    for a job that runs anyway.
    """
    per_vcf = expand(
        [
            "results/checks/{vcf}.json",
            "results/normalized/{vcf}.bcf",
            "results/normalized/{vcf}.bcf.csi",
            "results/normalized/{vcf}.stats.json",
            "results/shards/{vcf}.tsv",
        ],
        vcf=VCFS,
    )
    per_partition = [
        path for kind in ("graph", "record") for path in kuzu_partition_outputs(kind)()
    ]
    per_shard = [
        path
        for pattern in (
            "results/parquet/variants/{vcf}/{shard}.parquet",
            "results/parquet/genotypes/{vcf}/{shard}.parquet",
            "results/parquet/annotations/{vcf}/{shard}.parquet",
            "results/shard_stats/{vcf}/{shard}.json",
            "results/embeddings/{vcf}/{shard}.parquet",
            "results/embedding_stats/{vcf}/{shard}.json",
        )
        for path in shard_outputs(pattern)
    ]
    return ["results/normalized/inputs.json", *per_vcf, *per_shard, *per_partition]


def shard_stats_of_all(wildcards):
    return shard_outputs("results/shard_stats/{vcf}/{shard}.json")


def compared_across_vcfs(pattern):
    """Files of every VCF (every shard) that summarize_run compares; none with a single VCF."""

    def inputs(wildcards):
        if len(VCFS) < 2:
            return []
        if "{shard}" in pattern:
            return shard_outputs(pattern)
        return [pattern.format(vcf=vcf) for vcf in VCFS]

    return inputs


# ---------------------------------------------------------------- resources
# mem_mb and runtime (minutes) follow the data and grow with each attempt, so a
# job killed for memory or time is retried with more. Every job hands its own
# budget to its tool (DuckDB memory_limit, pysam/bcftools threads).

# mem_mb is what the whole job may use. On a cluster that includes the Snakemake
# process running inside the job (~160 MB measured under SLURM), hence no rule
# asks for less than 400 MB even when its own tool needs a few MB.
DEFAULT_RESOURCES = {
    "check_vcf": {"mem_mb": 400, "runtime": 10, "threads": 1},
    "normalize_vcf": {"mem_mb": 800, "runtime": 30, "threads": 2},
    "index_bcf": {"mem_mb": 400, "runtime": 10, "threads": 1},
    "plan_shards": {"mem_mb": 400, "runtime": 10, "threads": 1},
    "convert_shard": {"mem_mb": 1200, "runtime": 10, "threads": 2},
    "summarize_run": {"mem_mb": 400, "runtime": 5, "threads": 1},
    "simulate_example": {"mem_mb": 800, "runtime": 10, "threads": 1},
    "plot_resources": {"mem_mb": 400, "runtime": 5, "threads": 1},
    # torch, sentence-transformers and ONNX once, to make the light runtime's model file
    "export_onnx_model": {"mem_mb": 2000, "runtime": 15, "threads": 2},
    # the onnx runtime's model takes ~170 MB (a job peaks at 290-360 MB; sentence-transformers:
    # ~690 MB, TORCH_EMBED_MEM_MB); the batch size is derived from what is left. CUDA adds
    # 1-3 GB of host memory: see embed_mem_mb.
    "embed_shard": {"mem_mb": 640, "runtime": 10, "threads": 2},
    # the stores grow with the data: see lancedb_mem_mb and kuzu_mem_mb at the end.
    "load_lancedb": {"mem_mb": 1024, "runtime": 10, "threads": 2},
    # the graph: a plan, a job per partition, and load_kuzu, which links and indexes them
    "plan_kuzu_partitions": {"mem_mb": 400, "runtime": 5, "threads": 1},
    # the example's graph peaks at ~350 MB, and ~540 MB with the Snakemake inside a
    # SLURM job (killed there when it declared 460); see kuzu_partition_mem_mb.
    "load_kuzu_partition": {"mem_mb": 640, "runtime": 10, "threads": 2},
    "load_kuzu": {"mem_mb": 400, "runtime": 10, "threads": 1},
}


def check_resource_rules():
    """A misspelled name under `resources:` would be ignored: stop instead."""
    unknown = sorted(set(config.get("resources", {})) - set(DEFAULT_RESOURCES))
    if unknown:
        raise WorkflowError(
            f"config resources: unknown rule {unknown[0]!r};"
            f" valid rules: {', '.join(sorted(DEFAULT_RESOURCES))}"
        )


check_resource_rules()


def rule_resource(rule, key):
    configured = config.get("resources", {}).get(rule, {})
    return configured.get(key, DEFAULT_RESOURCES[rule][key])


def mem_mb_for(rule):
    """First attempt: the rule's budget; each retry adds the same again."""

    def mem_mb(wildcards, attempt):
        return rule_resource(rule, "mem_mb") * attempt

    return mem_mb


def input_size_mb(wildcards):
    path = Path(VCFS[wildcards.vcf])
    return path.stat().st_size / 1e6 if path.exists() else 0


def normalize_runtime(wildcards, attempt):
    # bcftools view + norm stream about 50 MB of compressed VCF a minute on one core.
    return (
        int(rule_resource("normalize_vcf", "runtime") + input_size_mb(wildcards) / 50)
        * attempt
    )


def genotype_cells(wildcards):
    row = shard_row(wildcards)
    return int(row["records"]) * max(1, int(row["samples"]))


def convert_mem_mb(wildcards, attempt):
    # DuckDB spills beyond its memory_limit, so memory grows only gently with the
    # shard: about 50 MB more per 10 million genotype cells for its buffers.
    base = rule_resource("convert_shard", "mem_mb")
    return int(base + genotype_cells(wildcards) / 1e7 * 50) * attempt


def convert_runtime(wildcards, attempt):
    # bcftools query + DuckDB read about 50 million genotype cells a minute.
    base = rule_resource("convert_shard", "runtime")
    return int(base + genotype_cells(wildcards) / 5e7) * attempt


# An embed job on the sentence-transformers runtime (torch) on CPU: vcf_agent.embedding.embed.TORCH_EMBED_MEM_MB.
TORCH_EMBED_MEM_MB = 1280


def embed_mem_mb(wildcards, attempt):
    configured = config.get("resources", {}).get("embed_shard", {}).get("mem_mb")
    if configured:
        base = configured
    elif embed_gpus():
        base = 4096
    elif onnx_export_if_used(wildcards):
        base = rule_resource("embed_shard", "mem_mb")
    else:
        base = TORCH_EMBED_MEM_MB
    return base * attempt


def embed_runtime(wildcards, attempt):
    # Worst case every description is new: ~100 per second per job on two CPU cores.
    records = int(shard_row(wildcards)["records"])
    return int(rule_resource("embed_shard", "runtime") + records / 100 / 60) * attempt


# ---------------------------------------------------------------- embedding settings

EMBEDDING_DEFAULTS = {
    "model": None,
    "device": "auto",
    "runtime": "auto",
    "template": None,
    "cache": "resources/embedding_cache",
}


def embedding_setting(key):
    return config.get("embedding", {}).get(key, EMBEDDING_DEFAULTS[key])


# The light runtime's exported model (vcf_agent.embedding.onnx_model), one folder per model identity.
MODELS_DIR = "resources/models"


def onnx_export_if_used(wildcards):
    """The ONNX export when embed jobs may use it (vcf_agent.embedding.embed.resolve_runtime): runtime onnx,
    or auto with the bundled model and no CUDA device asked for."""
    runtime = embedding_setting("runtime")
    on_cpu = not str(embedding_setting("device")).startswith("cuda")
    bundled = embedding_setting("model") is None
    if runtime == "onnx" or (runtime == "auto" and bundled and on_cpu):
        return rules.export_onnx_model.output.export
    return []


def embed_gpus():
    """A GPU for each embedding job only when the config asks for CUDA explicitly."""
    return 1 if str(embedding_setting("device")).startswith("cuda") else 0


def embedding_stats_of_all(wildcards):
    return shard_outputs("results/embedding_stats/{vcf}/{shard}.json")


# ---------------------------------------------------------------- stores (load_lancedb, load_kuzu)
# Inputs and resources of the rules in stores.smk. Memory was measured with
# benchmarks/bench_stores.py (1,000,000 variants, 10,000,000 genotypes, 2 cores).


def variant_shards_of_all(wildcards):
    return shard_outputs("results/parquet/variants/{vcf}/{shard}.parquet")


def genotype_shards_of_all(wildcards):
    return shard_outputs("results/parquet/genotypes/{vcf}/{shard}.parquet")


def annotation_shards_of_all(wildcards):
    return shard_outputs("results/parquet/annotations/{vcf}/{shard}.parquet")


def embedding_shards_of_all(wildcards):
    return shard_outputs("results/embeddings/{vcf}/{shard}.parquet")


def stored_counts(stats_files):
    """Variants, genotypes and annotations written by convert_shard (its shard_stats files).

    Before the shards exist this raises FileNotFoundError for one of the rule's inputs,
    and Snakemake evaluates the resource again once the job is ready to run.
    """
    totals = {"variants": 0, "genotypes": 0, "annotations": 0}
    # Snakemake hands a one-file input as a str.
    paths = [stats_files] if isinstance(stats_files, str) else stats_files
    if not all(str(path).startswith("results/shard_stats/") for path in paths):
        # Until the checkpoints have run (a dry run), inputs.json or a plan stands in
        # for the shards: count nothing yet; the job is re-planned before it runs.
        return totals
    for path in paths:
        with open(path) as handle:
            stats = json.load(handle)
        for key in totals:
            totals[key] += int(stats.get(key, 0))
    return totals


def lancedb_mem_mb(wildcards, input, attempt):
    # Batches and writes are bounded (~500 MB for any size); the IVF_PQ training
    # and partition shuffle of the ANN index add about 400 MB per million rows.
    base = rule_resource("load_lancedb", "mem_mb")
    return int(base + stored_counts(input.stats)["variants"] / 1e6 * 400) * attempt


def lancedb_runtime(wildcards, input, attempt):
    # ~150,000 rows/s written, ~10 s per million rows for the ANN index.
    base = rule_resource("load_lancedb", "runtime")
    return int(base + stored_counts(input.stats)["variants"] / 1e6 * 2) * attempt


# ---------------------------------------------------------------- the graph's partitions

KUZU_DEFAULTS = {
    # genotypes (CARRIES edges) per partition: a load job peaks at ~105 MB + 130 B per edge
    "partition_edges": 4_000_000,
}


def kuzu_setting(key):
    return config.get("kuzu", {}).get(key, KUZU_DEFAULTS[key])


def kuzu_plan():
    """The partitions of checkpoint plan_kuzu_partitions (waits for it)."""
    with open(checkpoints.plan_kuzu_partitions.get().output.plan) as handle:
        return json.load(handle)["partitions"]


def kuzu_partition(wildcards):
    for partition in kuzu_plan():
        if partition["name"] == wildcards.part:
            return partition
    raise WorkflowError(f"graph partition {wildcards.part} is not in the plan")


def partition_shards(pattern):
    """The shard files of one partition, in the plan's order (config order, then shard order)."""

    def inputs(wildcards):
        # labels are "<vcf>/<shard>" (a VCF name holds no slash)
        labels = kuzu_partition(wildcards)["shards"]
        return [pattern.replace("{vcf}/{shard}", label) for label in labels]

    return inputs


def kuzu_partition_outputs(kind):
    """Every partition's database (kind graph) or record (kind record)."""
    suffix = {"graph": "kuzu", "record": "json"}[kind]

    def inputs(wildcards=None):
        checkpoints.summarize_inputs.get()
        return [f"results/kuzu_parts/{p['name']}.{suffix}" for p in kuzu_plan()]

    return inputs


def kuzu_partition_mem_mb(wildcards, attempt):
    # Kuzu's COPY holds a whole rel table of the partition in its buffer pool (mem_mb minus
    # 400 MB for the processes): ~60 bytes per CARRIES edge and direction, both stored (30
    # more each with a source property, i.e. several VCFs), ~100 per Variant node, ~600 per
    # IN_GENE edge (both ways, 7 strings). Bounded by kuzu.partition_edges whatever the
    # cohort; benchmarks/bench_stores.py --partitions measures the peaks.
    partition = kuzu_partition(wildcards)
    per_edge = 2 * (60 + (30 if len(VCFS) > 1 else 0))
    data = (
        partition["genotypes"] * per_edge
        + partition["variants"] * 100
        + partition.get("annotations", 0) * 600
    )
    return int(rule_resource("load_kuzu_partition", "mem_mb") + data / 1e6) * attempt


def kuzu_partition_runtime(wildcards, attempt):
    # ~1,000,000 genotype edges per second, with the DuckDB preparation.
    partition = kuzu_partition(wildcards)
    base = rule_resource("load_kuzu_partition", "runtime")
    return (
        int(base + partition["genotypes"] / 1e6 / 60 + partition["variants"] / 1e6)
        * attempt
    )
