"""The resource model (vcf_agent.resources): what every rule declares covers what its job plans.

Pure arithmetic, no workflow run: each check takes a rule's declared mem_mb (first attempt and
retries, small and large inputs) and the sizing its job does with that budget (DuckDB's
memory_limit, the embed batch, Kuzu's buffer pool), both from the package's own functions.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from vcf_agent import resources
from vcf_agent.embedding.embed import batch_size_for
from vcf_agent.ingest.parquet import MIN_CONVERT_MEM_MB
from vcf_agent.resources import (
    DEFAULT_RESOURCES,
    IN_JOB_SNAKEMAKE_MB,
    MAX_BATCH_ROWS,
    MODEL_BASELINE_MB,
    MODEL_BASELINE_MB_ONNX,
    PROCESS_OVERHEAD_MB,
    duckdb_limit_mb,
    embed_mem_mb,
    embed_peak_mb,
)

ATTEMPTS = (1, 2, 3)
#: Shards and stores from the bundled example to a 2,504-sample cohort of a million records.
GENOTYPE_CELLS = (0, 1_000, 10**7, 2_504 * 10**6)
STORE_COUNTS = (
    {"variants": 0, "genotypes": 0, "annotations": 0},
    {"variants": 10_000, "genotypes": 50_000, "annotations": 8_000},
    {"variants": 10**6, "genotypes": 10**7, "annotations": 10**6},
)


def base(rule: str, key: str = "mem_mb") -> int:
    return DEFAULT_RESOURCES[rule][key]


def test_resource_model_imports_the_standard_library_only():
    # common.smk loads the file by path in Snakemake's own environment: no site-packages there.
    code = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('r', sys.argv[1]);"
        " m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.retried(640, 2))"
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, resources.__file__], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1280"


def test_every_rule_declares_at_least_the_process_overhead():
    for rule, declared in DEFAULT_RESOURCES.items():
        assert declared["mem_mb"] >= PROCESS_OVERHEAD_MB, rule


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_one_retry_policy_for_every_formula(attempt):
    """Attempt n gets n times the first attempt's memory and runtime, in every rule."""
    counts = STORE_COUNTS[2]
    cells, records = GENOTYPE_CELLS[2], 10**6
    formulas = [
        lambda a: resources.normalize_runtime(base("normalize_vcf", "runtime"), 500.0, a),
        lambda a: resources.convert_mem_mb(base("convert_shard"), cells, a),
        lambda a: resources.convert_runtime(base("convert_shard", "runtime"), cells, a),
        lambda a: resources.embed_mem_mb(a),
        lambda a: resources.embed_mem_mb(a, "sentence-transformers"),
        lambda a: resources.embed_mem_mb(a, gpu=True),
        lambda a: resources.embed_runtime(base("embed_shard", "runtime"), records, a),
        lambda a: resources.lancedb_mem_mb(base("load_lancedb"), counts["variants"], a),
        lambda a: resources.lancedb_runtime(base("load_lancedb", "runtime"), counts["variants"], a),
        lambda a: resources.kuzu_partition_mem_mb(base("load_kuzu_partition"), counts, a, several_sources=True),
        lambda a: resources.kuzu_partition_runtime(base("load_kuzu_partition", "runtime"), counts, a),
    ]
    for formula in formulas:
        assert formula(attempt) == attempt * formula(1)


@pytest.mark.parametrize("cells", GENOTYPE_CELLS)
@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_convert_jobs_leave_duckdb_its_least_memory(cells, attempt):
    declared = resources.convert_mem_mb(base("convert_shard"), cells, attempt)
    assert declared >= MIN_CONVERT_MEM_MB  # convert_shard refuses less
    assert duckdb_limit_mb(declared) + PROCESS_OVERHEAD_MB <= declared


@pytest.mark.parametrize(
    ("runtime", "baseline_mb"), [("onnx", MODEL_BASELINE_MB_ONNX), ("sentence-transformers", MODEL_BASELINE_MB)]
)
@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_embed_jobs_plan_batches_within_their_declared_memory(runtime, baseline_mb, attempt):
    declared = embed_mem_mb(attempt, runtime)
    # A cluster job counts the Snakemake inside it as part of its baseline (embed.job_launcher_rss_mb).
    for in_job in (0, IN_JOB_SNAKEMAKE_MB):
        rows = batch_size_for(declared, baseline_mb=baseline_mb + in_job)  # raises if too little
        assert embed_peak_mb(rows, baseline_mb + in_job) <= declared
    # Run locally, the first attempt's default already holds the largest batch.
    assert batch_size_for(declared, baseline_mb=baseline_mb) == MAX_BATCH_ROWS


@pytest.mark.parametrize("counts", STORE_COUNTS)
@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_store_loads_fit_their_declared_memory(counts, attempt):
    lance = resources.lancedb_mem_mb(base("load_lancedb"), counts["variants"], attempt)
    # its helper DuckDB queries take a quarter of what the process leaves, the writes ~500 MB
    assert duckdb_limit_mb(lance, 4) + PROCESS_OVERHEAD_MB <= lance
    assert lance >= PROCESS_OVERHEAD_MB + 500
    for several in (False, True):
        kuzu = resources.kuzu_partition_mem_mb(base("load_kuzu_partition"), counts, attempt, several_sources=several)
        data = resources.kuzu_data_mb(counts["genotypes"], counts["variants"], counts["annotations"],
                                      several_sources=several)  # fmt: skip
        assert kuzu - PROCESS_OVERHEAD_MB >= data  # the buffer pool holds the largest rel table


def test_the_lancedb_load_declares_the_same_memory_for_a_chromosome_and_the_genome():
    # bounded by its children and a flat index build (resources.LANCEDB_FLAT_FROM_ROWS)
    chromosome, genome = (resources.lancedb_mem_mb(base("load_lancedb"), n, 1) for n in (1_100_000, 84_800_000))
    assert chromosome == genome < 1536
