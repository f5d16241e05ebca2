"""What each job may use: memory (MB), runtime (minutes), threads, and how a job sizes itself.

The one definition of the memory model. workflow/rules/common.smk loads this file by its path
(with ``--sdm conda`` the Snakefile runs where the package may not be installed), so it imports
the standard library only. The package reads its overheads and batch sizes from here, so what a
rule declares and what its job plans to use are computed from the same numbers
(tests/test_resources.py checks that the first always covers the second).

Retry policy (every rule, one function: `retried`): attempt n gets n times the first attempt's
memory and runtime. A job killed for memory needs more by an amount nobody measured, so the
budget doubles on the first retry (a +50 % step, as the embed jobs once had, can need two
retries for a job that was only 60 % short) and grows linearly after that, which is Snakemake's
own idiom (``mem_mb=lambda wc, attempt: base * attempt``) and what a user reading a cluster
accounting log expects.
"""

from __future__ import annotations

import math

#: Memory of a job outside its tools' own budgets (DuckDB's memory_limit, Kuzu's buffer pool):
#: this interpreter with pyarrow, pysam, DuckDB, LanceDB or Kuzu loaded (~150-200 MB) and, in a
#: cluster job, the Snakemake process that runs it (~160 MB measured under SLURM).
PROCESS_OVERHEAD_MB = 400
#: The Snakemake process inside a cluster job (``--mode remote``), which the job's limit covers.
IN_JOB_SNAKEMAKE_MB = 160
#: DuckDB's memory_limit in convert_shard at least. Its CSV reader once took a buffer of 16 lines
#: of MAX_LINE_BYTES (256 MiB; a limit of 250 MB failed on a shard of 222 records); it now takes
#: one line's (16 MiB), and 128 MB converts a 10,000-record shard of 2,504 samples. The floor
#: stays as headroom for shards of such long lines (DuckDB 2.0).
MIN_DUCKDB_MB = 300
MIN_CONVERT_MEM_MB = PROCESS_OVERHEAD_MB + MIN_DUCKDB_MB
#: DuckDB's memory_limit never goes below this (a helper query of a store load).
MIN_HELPER_DUCKDB_MB = 128

# mem_mb is what the whole job may use. On a cluster that includes the Snakemake process running
# inside the job (~160 MB measured under SLURM), hence no rule asks for less than 400 MB even when
# its own tool needs a few MB. export_onnx_model: torch, sentence-transformers and ONNX once, to
# make the light runtime's model file. embed_shard: the onnx runtime's model takes ~170 MB (a job
# peaks at 290-360 MB; sentence-transformers: ~690 MB, TORCH_EMBED_MEM_MB), the batch size is
# derived from what is left (embed_batch_rows); CUDA adds 1-3 GB of host memory (GPU_EMBED_MEM_MB).
# The stores' jobs are bounded (lancedb_mem_mb: flat from a million rows; kuzu_partition_mem_mb:
# one job per graph partition, bounded by kuzu.partition_edges; load_kuzu only links the partitions);
# the example's graph peaks at ~350 MB, and ~540 MB with the Snakemake inside a SLURM job (killed
# there when it declared 460).
DEFAULT_RESOURCES = {
    rule: {"mem_mb": mem_mb, "runtime": runtime, "threads": threads}
    for rule, (mem_mb, runtime, threads) in {
        "check_vcf": (400, 10, 1),
        "normalize_vcf": (800, 30, 2),
        "index_bcf": (400, 10, 1),
        "plan_shards": (400, 10, 1),
        # one core: its bcftools | DuckDB pipe used 0.8-0.9 of a core (cpu_time over wall at full
        # scale), so two shards convert side by side on two cores
        "convert_shard": (1200, 10, 1),
        "summarize_run": (400, 5, 1),
        "simulate_example": (800, 10, 1),
        "plot_resources": (400, 5, 1),
        "export_onnx_model": (2000, 15, 2),
        "embed_shard": (640, 10, 2),
        "load_lancedb": (1024, 10, 2),
        "plan_kuzu_partitions": (400, 5, 1),
        "load_kuzu_partition": (640, 10, 2),
        "load_kuzu": (400, 10, 1),
    }.items()
}


def retried(first: float, attempt: int) -> int:
    """The budget of attempt `attempt` (1, 2, ...) of a job whose first attempt gets `first`."""
    return int(first) * max(1, int(attempt))


# ---------------------------------------------------------------- ingest


def normalize_runtime(base: float, input_mb: float, attempt: int) -> int:
    # bcftools view + norm stream about 50 MB of compressed VCF a minute on one core.
    return retried(base + input_mb / 50, attempt)


def convert_mem_mb(base: float, genotype_cells: int, attempt: int) -> int:
    # DuckDB spills beyond its memory_limit, so memory grows only gently with the shard:
    # about 50 MB more per 10 million genotype cells for its buffers. Measured: ~190-200 MiB
    # (the job's process tree) for 10,000 records x 2,504 samples, at 1/100 and 1/10 scale alike.
    return retried(base + genotype_cells / 1e7 * 50, attempt)


def convert_runtime(base: float, genotype_cells: int, attempt: int) -> int:
    # bcftools query + DuckDB read about 50 million genotype cells a minute.
    return retried(base + genotype_cells / 5e7, attempt)


def duckdb_limit_mb(mem_mb: int, share: int = 1) -> int:
    """DuckDB's memory_limit in a job of `mem_mb`: what the process leaves, or a `share` of it."""
    return max(MIN_HELPER_DUCKDB_MB, (int(mem_mb) - PROCESS_OVERHEAD_MB) // share)


# ---------------------------------------------------------------- embedding
# peak RSS = baseline + EMBED_HEADROOM_MB + rows per batch x EMBED_BYTES_PER_ROW (measured and
# explained in vcf_agent.embedding.embed's docstring).

#: Peak RSS of a process that has loaded the default model and encoded once (MB, measured 690).
MODEL_BASELINE_MB = 690
#: The same on the onnx runtime (MB, measured 166).
MODEL_BASELINE_MB_ONNX = 170
#: Peak RSS added per row of a record batch (bytes; measured 2.8-5.8 kB).
EMBED_BYTES_PER_ROW = 8_192
#: Fixed allowance on top of baseline + batches (MB; measured 64-120 + a cache compaction).
EMBED_HEADROOM_MB = 250
MIN_BATCH_ROWS = 256
MAX_BATCH_ROWS = 16_384

#: Declared memory of an embed job at its first attempt: the default model on the onnx runtime.
DEFAULT_EMBED_MEM_MB = DEFAULT_RESOURCES["embed_shard"]["mem_mb"]
#: The same on the sentence-transformers runtime (torch), on CPU (observed peaks 720-934 MB).
TORCH_EMBED_MEM_MB = 1280
#: The same on a GPU: the CUDA runtime adds 1-3 GB of host memory to the baseline.
GPU_EMBED_MEM_MB = 4096


def embed_mem_mb(attempt: int = 1, runtime: str = "onnx", *, gpu: bool = False, configured: int | None = None) -> int:
    """mem_mb of an embed job: the configured value, else the runtime's (GPU, onnx or torch) default."""
    if configured:
        first = configured
    elif gpu:
        first = GPU_EMBED_MEM_MB
    else:
        first = DEFAULT_EMBED_MEM_MB if runtime == "onnx" else TORCH_EMBED_MEM_MB
    return retried(first, attempt)


def embed_runtime(base: float, records: int, attempt: int) -> int:
    # Worst case every description is new: ~100 per second per job on two CPU cores.
    return retried(base + records / 100 / 60, attempt)


def embed_batch_rows(mem_mb: float, baseline_mb: float = MODEL_BASELINE_MB_ONNX) -> int:
    """Rows per record batch that fit in `mem_mb` beside a loaded model of `baseline_mb`, at most
    MAX_BATCH_ROWS; below MIN_BATCH_ROWS the job cannot run (see embed_min_mem_mb)."""
    spare = (mem_mb - baseline_mb - EMBED_HEADROOM_MB) * (1 << 20)
    return max(0, min(int(spare // EMBED_BYTES_PER_ROW), MAX_BATCH_ROWS))


def embed_peak_mb(batch_rows: int, baseline_mb: float = MODEL_BASELINE_MB_ONNX) -> float:
    """The memory model's peak RSS of an embed job with batches of `batch_rows` rows."""
    return baseline_mb + EMBED_HEADROOM_MB + batch_rows * EMBED_BYTES_PER_ROW / (1 << 20)


def embed_min_mem_mb(baseline_mb: float = MODEL_BASELINE_MB_ONNX) -> int:
    """The least mem_mb that holds the model and the smallest batch."""
    return math.ceil(embed_peak_mb(MIN_BATCH_ROWS, baseline_mb))


# ---------------------------------------------------------------- stores
# Measured with benchmarks/bench_stores.py (1,000,000 variants, 10,000,000 genotypes, 2 cores).


#: Rows past which load_lancedb's memory stops growing: its rows are written by child processes
#: of at most 262,144 rows each (vcf_agent.stores.lance.ROWS_PER_CHILD), and the IVF_PQ build's
#: peak was the same at 1.1 M and 3.3 M rows (1,029 and 1,007 MiB on synthetic vectors with the
#: load's 2 I/O threads; 1,287 MiB with 1,024 partitions and 8; benchmarks/bench_lance_index.py).
LANCEDB_FLAT_FROM_ROWS = 1_000_000


def lancedb_mem_mb(base: float, variants: int, attempt: int) -> int:
    # Below LANCEDB_FLAT_FROM_ROWS the ANN index's training sample and partitions grow with the rows
    # (~400 MB per million rows, measured from 100,000 rows); past it nothing does.
    return retried(base + min(variants, LANCEDB_FLAT_FROM_ROWS) / 1e6 * 400, attempt)


def lancedb_runtime(base: float, variants: int, attempt: int) -> int:
    # ~150,000 rows/s written, ~10 s per million rows for the ANN index.
    return retried(base + variants / 1e6 * 2, attempt)


def kuzu_data_mb(genotypes: int, variants: int, annotations: int, *, several_sources: bool = False) -> float:
    """What Kuzu's COPY holds in its buffer pool: a whole rel table. ~60 bytes per CARRIES edge
    and direction, both stored (30 more each with a source property: graphs before the layered
    layout, whose CARRIES named its VCF; a layer's edges have none), ~100 per Variant node, ~600
    per IN_GENE edge (both ways, 7 strings). A larger pool only caches more."""
    per_edge = 2 * (60 + (30 if several_sources else 0))
    return (genotypes * per_edge + variants * 100 + annotations * 600) / 1e6


def kuzu_partition_mem_mb(base: float, counts: dict, attempt: int, *, several_sources: bool = False) -> int:
    """One graph partition's load (its own genotypes, variants, annotations: the earlier VCFs'
    shards it reads are joined in DuckDB, under its memory_limit, and add no node or edge beyond
    the layer's own); the buffer pool is mem_mb minus PROCESS_OVERHEAD_MB for the processes."""
    annotations = counts.get("annotations", 0)
    data = kuzu_data_mb(counts["genotypes"], counts["variants"], annotations, several_sources=several_sources)
    return retried(base + data, attempt)


def kuzu_partition_runtime(base: float, counts: dict, attempt: int) -> int:
    # ~1,000,000 genotype edges per second, with the DuckDB preparation.
    return retried(base + counts["genotypes"] / 1e6 / 60 + counts["variants"] / 1e6, attempt)
