import csv
import errno
import importlib.util
import json
import os
import re
from pathlib import Path

# Input functions, resource functions and names shared by every rule.
# Kept free of vcf_agent imports: with --sdm conda the Snakefile runs in
# Snakemake's own environment, where the package may not be installed (the
# resource model, standard library only, is loaded from its file).

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


# Files made per shard, by what they hold.
SHARD_FILES = {
    "variants": "results/parquet/variants/{vcf}/{shard}.parquet",
    "genotypes": "results/parquet/genotypes/{vcf}/{shard}.parquet",
    "annotations": "results/parquet/annotations/{vcf}/{shard}.parquet",
    "shard_stats": "results/shard_stats/{vcf}/{shard}.json",
    "embeddings": "results/embeddings/{vcf}/{shard}.parquet",
    "embedding_stats": "results/embedding_stats/{vcf}/{shard}.json",
}


def shard_outputs(*patterns):
    """Expand per-shard path patterns over every shard of every configured VCF (each
    plan read once).

    Waits for checkpoint summarize_inputs first: no shard job exists before every
    input has passed normalisation.
    """
    checkpoints.summarize_inputs.get()
    shards = [(vcf, shard) for vcf in VCFS for shard in shard_ids(vcf)]
    return [
        pattern.format(vcf=vcf, shard=shard)
        for pattern in patterns
        for vcf, shard in shards
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
    per_shard = shard_outputs(*SHARD_FILES.values())
    return ["results/normalized/inputs.json", *per_vcf, *per_shard, *per_partition]


def shard_stats_of_all(wildcards):
    return shard_outputs(SHARD_FILES["shard_stats"])


def compared_across_vcfs(wildcards):
    """The graph partitions' records, which summarize_run adds up into what the VCFs share; none
    with a single VCF. Each partition compared its own shards with the earlier VCFs' as it loaded,
    so the summary reads small files, not every shard of every VCF again.
    """
    if len(VCFS) < 2:
        return []
    return kuzu_partition_outputs("record")()


# ---------------------------------------------------------------- resources
# mem_mb and runtime (minutes) follow the data and grow with each attempt, so a
# job killed for memory or time is retried with more. Every job hands its own
# budget to its tool (DuckDB memory_limit, pysam/bcftools threads). The defaults,
# the formulas and the retry policy are vcf_agent/resources.py (standard library
# only), loaded from its file: the package need not be installed here.


def load_resource_model():
    path = Path(workflow.basedir, "src", "vcf_agent", "resources.py")
    spec = importlib.util.spec_from_file_location("vcf_agent_resources", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


RESOURCES = load_resource_model()
DEFAULT_RESOURCES = RESOURCES.DEFAULT_RESOURCES


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
    """First attempt: the rule's budget; then resources.retried."""

    def mem_mb(wildcards, attempt):
        return RESOURCES.retried(rule_resource(rule, "mem_mb"), attempt)

    return mem_mb


def input_size_mb(wildcards):
    path = Path(VCFS[wildcards.vcf])
    return path.stat().st_size / 1e6 if path.exists() else 0


def normalize_runtime(wildcards, attempt):
    base = rule_resource("normalize_vcf", "runtime")
    return RESOURCES.normalize_runtime(base, input_size_mb(wildcards), attempt)


def genotype_cells(wildcards):
    row = shard_row(wildcards)
    return int(row["records"]) * max(1, int(row["samples"]))


def convert_mem_mb(wildcards, attempt):
    base = rule_resource("convert_shard", "mem_mb")
    return RESOURCES.convert_mem_mb(base, genotype_cells(wildcards), attempt)


def convert_runtime(wildcards, attempt):
    base = rule_resource("convert_shard", "runtime")
    return RESOURCES.convert_runtime(base, genotype_cells(wildcards), attempt)


def embed_mem_mb(wildcards, attempt):
    return RESOURCES.embed_mem_mb(
        attempt,
        "onnx" if onnx_export_if_used(wildcards) else "sentence-transformers",
        gpu=bool(embed_gpus()),
        configured=config.get("resources", {}).get("embed_shard", {}).get("mem_mb"),
    )


def embed_runtime(wildcards, attempt):
    base = rule_resource("embed_shard", "runtime")
    records = int(shard_row(wildcards)["records"])
    return RESOURCES.embed_runtime(base, records, attempt)


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
    return shard_outputs(SHARD_FILES["embedding_stats"])


# ---------------------------------------------------------------- stores (load_lancedb, load_kuzu)
# Inputs and resources of the rules in stores.smk. Memory was measured with
# benchmarks/bench_stores.py (1,000,000 variants, 10,000,000 genotypes, 2 cores).


def variant_shards_of_all(wildcards):
    return shard_outputs(SHARD_FILES["variants"])


def genotype_shards_of_all(wildcards):
    return shard_outputs(SHARD_FILES["genotypes"])


def annotation_shards_of_all(wildcards):
    return shard_outputs(SHARD_FILES["annotations"])


def embedding_shards_of_all(wildcards):
    return shard_outputs(SHARD_FILES["embeddings"])


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
    base = rule_resource("load_lancedb", "mem_mb")
    return RESOURCES.lancedb_mem_mb(
        base, stored_counts(input.stats)["variants"], attempt
    )


def lancedb_runtime(wildcards, input, attempt):
    base = rule_resource("load_lancedb", "runtime")
    return RESOURCES.lancedb_runtime(
        base, stored_counts(input.stats)["variants"], attempt
    )


# ---------------------------------------------------------------- the graph's partitions

KUZU_DEFAULTS = {
    # genotypes (CARRIES edges) per partition: a load job peaks at ~105 MB + 130 B per edge
    "partition_edges": 4_000_000,
}


def kuzu_setting(key):
    return config.get("kuzu", {}).get(key, KUZU_DEFAULTS[key])


def kuzu_layer_plan(vcf):
    """The plan of one VCF's layer, from checkpoint plan_kuzu_partitions (waits for it)."""
    with open(checkpoints.plan_kuzu_partitions.get(vcf=vcf).output.plan) as handle:
        return json.load(handle)


def kuzu_partition(wildcards):
    for partition in kuzu_layer_plan(wildcards.vcf)["partitions"]:
        if partition["name"] == wildcards.part:
            return partition
    raise WorkflowError(
        f"graph partition {wildcards.part} is not in the plan of {wildcards.vcf}"
    )


def vcf_shard_outputs(vcf, pattern):
    """A per-shard path pattern expanded over the shards of one VCF (after checkpoint
    summarize_inputs, as shard_outputs)."""
    checkpoints.summarize_inputs.get()
    return [pattern.format(vcf=vcf, shard=shard) for shard in shard_ids(vcf)]


def layer_shards(kind):
    """Files of one VCF's shards (kind: a SHARD_FILES key), for its layer's plan."""

    def inputs(wildcards):
        return vcf_shard_outputs(wildcards.vcf, SHARD_FILES[kind])

    return inputs


def partition_shards(pattern):
    """The shard files of one partition, in the plan's order (shard order)."""

    def inputs(wildcards):
        # labels are "<vcf>/<shard>" (a VCF name holds no slash)
        labels = kuzu_partition(wildcards)["shards"]
        return [pattern.replace("{vcf}/{shard}", label) for label in labels]

    return inputs


def earlier_vcfs(vcf):
    """The VCFs before `vcf` in the config: the layers whose variants and genotypes come first."""
    names = list(VCFS)
    return names[: names.index(vcf)]


def meets(row, ranges):
    """Whether a shard of the shard plan lies in one of a partition's ranges ([chrom, first, last])."""
    start, end = int(row["start"]), int(row["end"])
    return any(
        chrom == row["chrom"] and start <= last and end >= first
        for chrom, first, last in ranges
    )


def earlier_overlapping(kind):
    """What a partition's load reads of the earlier VCFs (config order): their variant shards
    that meet the partition's ranges (kind variants), the genotype shards of those among them
    that share a sample with the partition's VCF (kind genotypes), and the normalized BCFs of
    the VCFs of those shards (kind bcfs, for their samples). Nothing of a later VCF, nor of an
    earlier one lying elsewhere: adding a VCF, or removing one that the partition does not
    meet, leaves the job's inputs as they were, so Snakemake does not run it again.
    """

    def inputs(wildcards):
        ranges = kuzu_partition(wildcards)["ranges"]
        samples = set(kuzu_layer_plan(wildcards.vcf)["samples"])
        files = []
        for vcf in earlier_vcfs(wildcards.vcf):
            shards = [row["shard"] for row in shard_plan(vcf) if meets(row, ranges)]
            if not shards:
                continue
            if kind == "bcfs":
                files.append(f"results/normalized/{vcf}.bcf")
            elif kind == "variants" or samples & set(kuzu_layer_plan(vcf)["samples"]):
                pattern = SHARD_FILES[kind]
                files += [pattern.format(vcf=vcf, shard=shard) for shard in shards]
        return files

    return inputs


def kuzu_partition_outputs(kind):
    """Every partition's database (kind graph), sample index (sample_index), variant index
    (variant_index) or record (record), layer by layer."""
    suffix = {
        "graph": "kuzu",
        "sample_index": "samples",
        "variant_index": "variants",
        "record": "json",
    }[kind]

    def inputs(wildcards=None):
        checkpoints.summarize_inputs.get()
        return [
            f"results/kuzu_parts/{vcf}/{p['name']}.{suffix}"
            for vcf in VCFS
            for p in kuzu_layer_plan(vcf)["partitions"]
        ]

    return inputs


def kuzu_partition_mem_mb(wildcards, attempt):
    base = rule_resource("load_kuzu_partition", "mem_mb")
    return RESOURCES.kuzu_partition_mem_mb(base, kuzu_partition(wildcards), attempt)


def kuzu_partition_runtime(wildcards, attempt):
    base = rule_resource("load_kuzu_partition", "runtime")
    return RESOURCES.kuzu_partition_runtime(base, kuzu_partition(wildcards), attempt)
