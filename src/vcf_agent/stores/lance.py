"""The LanceDB store: one table of every variant with its description and embedding.

Contract (what rule load_lancedb writes and the query layer reads)
------------------------------------------------------------------
* ``results/lancedb`` is a symlink to the current build; open it with
  ``lancedb.connect("results/lancedb")`` (or `open_table`). Table ``variants``
  (schema.LANCE_TABLE): every column of the variant Parquet (schema.VARIANT_COLUMNS,
  then the typed ``info_*`` columns of all VCFs: the union, null where a VCF does
  not declare the field), then ``text`` (the embedded description) and ``vector``
  (fixed-size list of float32, L2-normalised, width from the embedding files:
  384 for the default model). An INFO field typed differently by two VCFs gets a
  type that holds both (`common_type`: int32 and int64 give int64, a number and a
  list of numbers give a list, anything else text).
* One row per variant_id: a variant found in several VCFs is kept once, from the
  first VCF of the config (its ``source`` and INFO values); the Kuzu graph has
  one VARIANT_IN_FILE edge per VCF holding it. Row count = Kuzu Variant nodes.
* Indexes (schema.LANCE_SCALAR_INDEXES): BTREE on variant_id, pos and gene,
  BITMAP on chrom, consequence, filter and variant_class, each where the column holds any value.
  An ANN index once the table has ANN_MIN_ROWS rows (below that an exact scan of
  the vectors takes a few tens of milliseconds and is exact): IVF_PQ, cosine,
  ``num_partitions = min(rows // TARGET_PARTITION_ROWS, distinct texts //
  MIN_DISTINCT_PER_PARTITION)`` (at least 1; Lance's k-means cannot form more
  partitions than there are distinct vectors, and identical descriptions give
  identical vectors), ``num_sub_vectors = dim / 8`` with ``num_bits = 4``
  (24 bytes per 384-d vector; 4-bit codes train three times faster than 8-bit
  ones on two cores, measured 6-10 s against 20-30 s for 1,000,000 rows).
  Queries should use a ``refine_factor`` to re-rank with the full vectors.
* ``results/lancedb.json`` (the manifest, written last): rows, columns, VCFs and
  shards, shadowed duplicates, the summary's count of genotypes shared across files,
  model, vector dim, indexes with their parameters, build time (UTC) and seconds per
  phase (``rows`` from the start to the last row written, of which ``rows_writer`` the
  writing itself).

How it loads
------------
The schema is declared before any row is read (Parquet footers only). Each
variant shard is read in record batches beside its embedding file (same shard,
same row order: the variant_ids of every batch are compared and a mismatch
stops the load naming both files); batches are assembled column by column into
the declared schema (no cast unless two VCFs type an INFO field differently) and
streamed to LanceDB, one `add` per ROWS_PER_WRITE rows, so memory depends on
the batch and write sizes, not on the table. From CHILD_PROCESS_MIN_ROWS rows the
writing runs in child processes, one after another, each appending at most
ROWS_PER_CHILD rows (whole shards), so that what Lance's writer keeps is gone
with each child and the ANN index build that follows has the memory to itself;
then the indexes are built, reading the vectors in small batches
(INDEX_SCAN_BATCH_ROWS) on few I/O threads (LOAD_IO_THREADS) with few malloc
arenas (vcf_agent.runtime.setup_process). The
store is built in a new folder and swapped in atomically (vcf_agent.stores.build.StoreBuild).

How it grows
------------
Each build holds a record of its inputs (BUILD_RECORD, ``vcf_agent_build.json``: the VCFs in
config order, each shard's digest, the model, the schema, the row counts and the state of the
indexes). The next load compares it with its inputs (`plan_update`):

* the same inputs: ``unchanged``, nothing written (the manifest names the live build again);
* VCFs added at the end, or VCFs left out, the others' shards unchanged: the new build is
  derived from the live one (`vcf_agent.stores.build.derive_build`: its data and index files
  hard-linked, its version manifests copied), then the rows of the removed VCFs are deleted
  (by ``source``: deletion files, no data file rewritten) and the rows of kept VCFs they had
  shadowed are added, and the added VCFs' rows whose variant_id no earlier VCF holds are
  appended (the duplicate rule as in a full build: `shadowed_rows` over the shard files of
  the new config, whose earlier part is exactly what the table holds). Mode ``appended``,
  ``removed`` or ``changed`` (both);
* anything else (a changed shard, another model or schema, reordered VCFs): ``rebuilt``.

The manifest says which, with ``bytes_written`` (files new to the build) and ``bytes_linked``.
After an update the indexes stay as they are while the rows added or deleted since they were
trained are fewer than RETRAIN_SHARE of the rows they were trained on and RETRAIN_ROWS:
LanceDB searches the rows an index does not cover exhaustively beside it (its documented
behaviour for appended rows). Past that, or when the table reaches ANN_MIN_ROWS, the indexes
are trained again on the whole table (`create_index(replace=True)`): that writes index files
only. LanceDB's `optimize()`, the documented way to fold new rows into an index, compacts every
fragment under a million rows first, which would rewrite the table (see RETRAIN_SHARE).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vcf_agent.errors import VcfAgentError, fail
from vcf_agent.files import read_json, write_json
from vcf_agent.ingest.parquet import duckdb_connect
from vcf_agent.logs import log
from vcf_agent.resources import duckdb_limit_mb
from vcf_agent.runtime import run_in_child
from vcf_agent.schema import (
    LANCE_METRIC,
    LANCE_SCALAR_INDEXES,
    LANCE_TABLE,
    LANCE_TEXT_COLUMN,
    LANCE_VECTOR_COLUMN,
    VARIANT_COLUMNS,
)
from vcf_agent.stores.build import (
    Shard,
    StoreBuild,
    bytes_not_shared,
    derive_build,
    live_build,
    paired_shards,
    parquet_file,
    shadowed_rows,
    shards_digest,
    sources_in_order,
    sql_list,
    sql_string,
    unreadable,
    utc_now,
)

# lancedb is imported where it is used: it reads LANCEDB_LOG once, when imported, and the entry
# points set it (vcf_agent.runtime.setup_process) after their own imports.

#: Rows below which no ANN index is built (exact search is fast and exact there).
ANN_MIN_ROWS = 100_000
#: Rows per IVF partition aimed at (Lance's default is 8,192; fewer partitions build faster).
TARGET_PARTITION_ROWS = 16_384
#: At least this many distinct vectors (texts) per partition, or k-means leaves partitions empty.
MIN_DISTINCT_PER_PARTITION = 16
PQ_BITS = 4
#: Rows per record batch read from the shards.
BATCH_ROWS = 4096
#: Rows per LanceDB `add` (one data file each). Lance's writer holds a file's pages until
#: it is finished: peak RSS of a 1,000,000-row load was 480 MB with one add per
#: 100,000 rows and 750 MB with one add for all.
ROWS_PER_WRITE = 131_072
#: Rows per batch of Lance's scans (LANCE_DEFAULT_BATCH_SIZE, default 8,192) during the load
#: (set for the load only, as it was afterwards), beside the two malloc arenas every entry point
#: gives its process (vcf_agent.runtime.ALLOCATOR_ARENAS). The IVF_PQ build reads every
#: vector in such batches on Lance's worker threads: building the index of 1,000,000 rows in
#: a fresh process peaked at 822-932 MiB as Lance sets it up, 780-811 MiB with two arenas and
#: 622-702 MiB with two arenas and 1,024-row batches, in about the same time (one-off runs).
INDEX_SCAN_BATCH_ROWS = 1024
#: Lance's I/O threads during the load (LANCE_IO_THREADS; its default is 8 on local disks): each
#: keeps reads of its own in flight, and the IVF_PQ build of the full-size benchmark table
#: (1,088,544 rows, 66 partitions, a fresh process) peaked at 671-675 MiB with the default and at
#: 446-462 MiB with 2, in 11.4 and 12.1 s (benchmarks/bench_lance_index.py --table ...).
LOAD_IO_THREADS = 2
LOAD_SETTINGS = {"LANCE_DEFAULT_BATCH_SIZE": str(INDEX_SCAN_BATCH_ROWS), "LANCE_IO_THREADS": str(LOAD_IO_THREADS)}

PROMOTIONS = {
    (pa.int8(), pa.int16()), (pa.int8(), pa.int32()), (pa.int8(), pa.int64()), (pa.int16(), pa.int32()),
    (pa.int16(), pa.int64()), (pa.int32(), pa.int64()), (pa.int32(), pa.float64()), (pa.int64(), pa.float64()),
    (pa.float32(), pa.float64()),
}  # fmt: skip


# ---------------------------------------------------------------- reading


def open_table(path: Path | str = "results/lancedb", table: str = LANCE_TABLE):
    """The variants table of a store written by `load_lancedb`."""
    import lancedb

    return lancedb.connect(str(path)).open_table(table)


@dataclass
class TableSchema:
    """The declared schema, and for each shard file the columns that need the wider type."""

    schema: pa.Schema
    dim: int
    widen: dict[Path, list[str]] = field(default_factory=dict)


def table_schema(shards: Sequence[Shard]) -> TableSchema:
    """Core columns, the union of the INFO columns (first seen first), text and vector: from the footers only."""
    core = {c.name: c.field() for c in VARIANT_COLUMNS}
    info: dict[str, pa.DataType] = {}
    for shard in shards:
        for f in parquet_file(shard.variants).schema_arrow:
            if f.name not in core:
                info[f.name] = common_type(info[f.name], f.type) if f.name in info else f.type
    text, vector = _embedding_fields(shards)
    schema = pa.schema([*core.values(), *(pa.field(n, t) for n, t in info.items()), text, vector])
    result = TableSchema(schema, vector.type.list_size)
    for shard in shards:
        file_schema = parquet_file(shard.variants).schema_arrow
        narrow = [f.name for f in file_schema if f.name in info and f.type != info[f.name]]
        if narrow:
            result.widen[shard.variants] = narrow
    return result


def common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """A type that holds the values of both (an INFO field declared differently by two VCFs).

    Numbers widen (int32 -> int64 -> double); a single value and a list of values give a
    list (SVLEN is Number=1 in one VCF and Number=. in another); anything else becomes
    text, lists written as in the VCF ("1,2").
    """
    if a == b:
        return a
    if (a, b) in PROMOTIONS:
        return b
    if (b, a) in PROMOTIONS:
        return a
    list_a, list_b = pa.types.is_list(a), pa.types.is_list(b)
    if list_a or list_b:
        inner = common_type(a.value_type if list_a else a, b.value_type if list_b else b)
        return pa.list_(inner) if not pa.types.is_string(inner) else pa.string()
    return pa.string()


def convert(column: pa.Array, target: pa.DataType) -> pa.Array:
    """`column` as `target`, a type that common_type chose for it."""
    if pa.types.is_string(target):
        if pa.types.is_list(column.type):
            return pc.binary_join(pc.cast(column, pa.list_(pa.string())), ",")
        return pc.cast(column, pa.string())
    if pa.types.is_list(target) and not pa.types.is_list(column.type):
        offsets = pa.array(range(len(column) + 1), pa.int32())
        return pa.ListArray.from_arrays(offsets, pc.cast(column, target.value_type), mask=column.is_null())
    return pc.cast(column, target)


def _embedding_fields(shards: Sequence[Shard]) -> tuple[pa.Field, pa.Field]:
    vector_type = None
    for shard in shards:
        file_schema = parquet_file(shard.other).schema_arrow
        if LANCE_VECTOR_COLUMN not in file_schema.names or LANCE_TEXT_COLUMN not in file_schema.names:
            raise fail(shard.other, "not an embedding file (no text or vector column)")
        kind = file_schema.field(LANCE_VECTOR_COLUMN).type
        if not pa.types.is_fixed_size_list(kind) or kind.value_type != pa.float32():
            raise fail(shard.other, f"vector column is {kind}, not a fixed-size list of float32")
        if vector_type is not None and kind.list_size != vector_type.list_size:
            raise fail(shard.other, f"vectors of width {kind.list_size}, other shards have {vector_type.list_size}")
        vector_type = kind
    if vector_type is None:
        vector_type = pa.list_(pa.float32(), 384)
    return pa.field(LANCE_TEXT_COLUMN, pa.string(), nullable=False), pa.field(
        LANCE_VECTOR_COLUMN, vector_type, nullable=False
    )


@dataclass
class Counts:
    rows: int = 0
    shadowed: int = 0
    non_null: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANCE_SCALAR_INDEXES, 0))
    #: Seconds WriteJob.run took to write the rows: without the child process's start and imports.
    write_seconds: float = 0.0

    def merge(self, other: Counts) -> None:
        self.rows += other.rows
        self.shadowed += other.shadowed
        self.write_seconds += other.write_seconds
        for name, value in other.non_null.items():
            self.non_null[name] += value

    def add(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        for name in self.non_null:
            if name not in batch.schema.names:
                continue  # the AF column of VCFs without INFO/AF
            column = batch.column(name)
            self.non_null[name] += len(column) - column.null_count


def shard_batches(
    shard: Shard, layout: TableSchema, drop: np.ndarray | None, counts: Counts, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The rows of one shard joined to its embeddings, as batches of the declared schema."""
    variants, vectors = parquet_file(shard.variants), parquet_file(shard.other)
    rows = variants.metadata.num_rows
    if vectors.metadata.num_rows != rows:
        raise fail(shard.other, f"{vectors.metadata.num_rows} embeddings for the {rows} variants of {shard.variants}")
    widen = set(layout.widen.get(shard.variants, ()))
    names = set(variants.schema_arrow.names)
    pairs = _aligned(
        _decoded(variants.iter_batches(batch_size=batch_rows, use_threads=False), shard.variants),
        _decoded(
            vectors.iter_batches(batch_size=batch_rows, columns=["variant_id", "text", "vector"], use_threads=False),
            shard.other,
        ),
    )
    start = 0
    for left, right in pairs:
        if not left.column("variant_id").equals(right.column("variant_id")):
            raise fail(shard.other, _mismatch(left, right, start, shard))
        arrays = []
        for f in layout.schema:
            if f.name in (LANCE_TEXT_COLUMN, LANCE_VECTOR_COLUMN):
                arrays.append(right.column(f.name))
            elif f.name not in names:
                arrays.append(pa.nulls(left.num_rows, f.type))
            elif f.name in widen:
                arrays.append(convert(left.column(f.name), f.type))
            else:
                arrays.append(left.column(f.name))
        batch = pa.RecordBatch.from_arrays(arrays, schema=layout.schema)
        if drop is not None:
            batch = _without(batch, drop, start, counts)
        start += left.num_rows
        if batch.num_rows:
            counts.add(batch)
            yield batch


def _decoded(batches: Iterator[pa.RecordBatch], path: Path) -> Iterator[pa.RecordBatch]:
    """`batches`, with a decoding failure (a damaged page) turned into a one-line error."""
    try:
        yield from batches
    except (OSError, pa.ArrowException) as error:
        raise unreadable(path, error) from error


def _aligned(left: Iterator[pa.RecordBatch], right: Iterator[pa.RecordBatch]):
    """Pairs of equally long slices of two batch streams (their row groups need not line up)."""
    a = b = None
    while True:
        if a is None or a.num_rows == 0:
            a = next(left, None)
        if b is None or b.num_rows == 0:
            b = next(right, None)
        if a is None or b is None:
            return
        n = min(a.num_rows, b.num_rows)
        yield a.slice(0, n), b.slice(0, n)
        a, b = a.slice(n), b.slice(n)


def _mismatch(left: pa.RecordBatch, right: pa.RecordBatch, start: int, shard: Shard) -> str:
    differs = pc.not_equal(left.column("variant_id"), right.column("variant_id"))
    index = pc.index(differs, True).as_py()
    return (
        f"row {start + index + 1}: variant_id {right.column('variant_id')[index].as_py()!r} does not match"
        f" {left.column('variant_id')[index].as_py()!r} of {shard.variants} (re-run the embedding of this shard)"
    )


def _without(batch: pa.RecordBatch, drop: np.ndarray, start: int, counts: Counts) -> pa.RecordBatch:
    lo, hi = np.searchsorted(drop, [start, start + batch.num_rows])
    if lo == hi:
        return batch
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[drop[lo:hi] - start] = False
    counts.shadowed += int(hi - lo)
    return batch.filter(pa.array(keep))


# ---------------------------------------------------------------- loading


def load_lancedb(
    variants: Sequence[Path | str],
    embeddings: Sequence[Path | str],
    out: Path | str = "results/lancedb",
    manifest: Path | str = "results/lancedb.json",
    *,
    summary: Path | str | None = None,
    threads: int = 2,
    mem_mb: int = 2048,
    ann_min_rows: int = ANN_MIN_ROWS,
    rows_per_write: int = ROWS_PER_WRITE,
    progress: bool = False,
    incremental: bool = True,
) -> dict:
    """Build the LanceDB store from the variant shards and their embeddings; return the manifest.

    With `incremental`, a live build whose record (BUILD_RECORD) shows it holds a prefix of these
    inputs grows into a new build (see `plan_update`) instead of a full rebuild.
    """
    started = time.perf_counter()
    shards = paired_shards(variants, embeddings, "embeddings")
    layout = table_schema(shards)
    wanted = build_record(shards, layout, _model_name(summary))
    live = live_build(out)
    plan = plan_update(read_build_record(live) if incremental else None, wanted)
    job = LoadJob(Path(out), shards, layout, wanted, threads, mem_mb, ann_min_rows, rows_per_write, progress, started)
    if plan.mode == "unchanged":
        result = job.unchanged(live, plan)
    elif plan.mode == "rebuilt":
        result = job.rebuild()
    else:
        result = job.update(live, plan)
    result["across_files"] = _summary_part(summary, "across_files")
    write_json(result, manifest)
    log.info("LanceDB %s (%s): %d rows in %.1f s", out, plan.mode, result["rows"], result["seconds"]["total"])
    return result


# ---------------------------------------------------------------- growing a build

#: The record of what a build holds, inside the build folder (read by the next load).
BUILD_RECORD = "vcf_agent_build.json"
BUILD_RECORD_FORMAT = 1
#: The indexes are trained again on the whole table once the rows added or deleted since they
#: were built pass this share of the rows they were built on, or RETRAIN_ROWS; below that the
#: rows they do not cover are searched exhaustively beside them (LanceDB does it by itself).
#: LanceDB's `optimize()`, which folds new rows into an index, first compacts every fragment under
#: a million rows into one: it would rewrite the whole table (measured on 4 x 30,000 rows + 5,000
#: added: one new data file of all 125,000 rows), so appends do not call it.
RETRAIN_SHARE = 0.2
RETRAIN_ROWS = 100_000
#: At most this many vectors train the IVF k-means (sample_rate x partitions, Lance's default
#: sample_rate 256): 131,072 x 384 float32 = 192 MiB, whatever the table's size.
MAX_TRAINING_VECTORS = 131_072
MIN_SAMPLE_RATE = 32


def file_digest(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def build_record(shards: Sequence[Shard], layout: TableSchema, model) -> dict:
    """What a build of these inputs holds: sources in config order, each shard's digest (variant and
    embedding file), the model and the table schema (`plan_update` compares two of these)."""
    sources: dict[str, list[dict]] = {}
    for shard in shards:
        digest = hashlib.sha256(f"{file_digest(shard.variants)}:{file_digest(shard.other)}".encode()).hexdigest()
        sources.setdefault(shard.source, []).append(
            {"shard": shard.shard, "variants": str(shard.variants), "embeddings": str(shard.other), "digest": digest}
        )
    return {
        "format": BUILD_RECORD_FORMAT,
        "model": model,
        "schema": layout.schema.to_string(show_schema_metadata=False),
        # a build made before an index was added to the list is built again, with it
        "scalar_indexes": dict(LANCE_SCALAR_INDEXES),
        "sources": [{"source": name, "shards": listed} for name, listed in sources.items()],
    }


def read_build_record(build: Path | None) -> dict | None:
    if build is None or not (build / BUILD_RECORD).is_file():
        return None
    try:
        record = read_json(build / BUILD_RECORD)
    except (OSError, ValueError):
        return None
    return record if record.get("format") == BUILD_RECORD_FORMAT else None


@dataclass
class UpdatePlan:
    """How the live build becomes one of the new inputs: rebuilt, unchanged, or kept VCFs with
    `removed` ones deleted and `appended` ones added at the end."""

    mode: str
    removed: list[str] = field(default_factory=list)
    appended: list[str] = field(default_factory=list)
    reason: str = ""


def plan_update(previous: dict | None, wanted: dict) -> UpdatePlan:
    """Compare the live build's record with the new inputs' (see `build_record`).

    The live build grows when the new VCF list is the live one with some VCFs left out and new
    ones added at its end, every kept VCF with the same shards (digests), under the same model,
    schema and scalar indexes; anything else (a changed shard, reordered VCFs, a VCF inserted
    before a kept one, another model, schema or set of indexes) is a full rebuild.
    """
    if previous is None:
        return UpdatePlan("rebuilt", reason="no record of the live build")
    for key in ("model", "schema", "scalar_indexes"):
        if previous.get(key) != wanted[key]:
            return UpdatePlan("rebuilt", reason=f"the {key} changed")
    before = {s["source"]: s["shards"] for s in previous.get("sources", [])}
    now = [s["source"] for s in wanted["sources"]]
    kept = [name for name in before if name in now]
    if now[: len(kept)] != kept:
        return UpdatePlan("rebuilt", reason="the VCFs kept are in another order, or a new one comes before them")
    for entry in wanted["sources"][: len(kept)]:
        if _shard_digests(before[entry["source"]]) != _shard_digests(entry["shards"]):
            return UpdatePlan("rebuilt", reason=f"the shards of {entry['source']} changed")
    removed = [name for name in before if name not in now]
    appended = now[len(kept) :]
    if not kept:
        return UpdatePlan("rebuilt", reason="no VCF of the live build is kept")
    if not removed and not appended:
        return UpdatePlan("unchanged")
    return UpdatePlan("removed" if removed and not appended else "appended" if not removed else "changed",
                      removed, appended)  # fmt: skip


def _shard_digests(shards: Sequence[dict]) -> list[tuple[str, str]]:
    return [(s["shard"], s["digest"]) for s in shards]


@dataclass
class LoadJob:
    """One load: a full rebuild, an update of the live build into a new one, or nothing to do."""

    out: Path
    shards: list[Shard]
    layout: TableSchema
    wanted: dict
    threads: int
    mem_mb: int
    ann_min_rows: int
    rows_per_write: int
    progress: bool
    started: float
    seconds: dict = field(default_factory=dict)

    def lap(self, name: str) -> None:
        self.seconds[name] = round(time.perf_counter() - self.started - sum(self.seconds.values()), 3)

    def rebuild(self) -> dict:
        with _load_settings(), StoreBuild(self.out) as build, build.scratch() as scratch:
            counts = write_table(str(build.path), self.shards, self.layout, Path(scratch), self.threads, self.mem_mb,
                                 self.rows_per_write, self.progress)  # fmt: skip
            self.lap("rows")
            table = open_table(build.path)
            _check_rows(table, self.shards, counts)
            state = self.index_all(table, counts, Path(scratch))
            self.finish(build, counts, state)
        self.seconds["rows_writer"] = counts.write_seconds  # part of "rows" (the rest: the children's starts, imports)
        written = {"bytes_written": _folder_bytes(build.path), "bytes_linked": 0}
        return self.manifest(build.path.name, counts, state, "rebuilt", written)

    def unchanged(self, live: Path, plan: UpdatePlan) -> dict:
        record = read_build_record(live)
        counts = Counts(record["rows"], record["shadowed"], record["non_null"])
        self.seconds["total"] = round(time.perf_counter() - self.started, 3)
        return self.manifest(live.name, counts, record["index_state"], "unchanged",
                             {"bytes_written": 0, "bytes_linked": 0})  # fmt: skip

    def update(self, live: Path, plan: UpdatePlan) -> dict:
        previous = read_build_record(live)
        with _load_settings(), StoreBuild(self.out) as build, build.scratch() as scratch:
            derived = derive_build(live, build.path)
            self.lap("derive")
            table = open_table(build.path)
            counts = Counts(previous["rows"], previous["shadowed"], dict(previous["non_null"]))
            con = duckdb_connect(Path(scratch), self.threads, duckdb_limit_mb(self.mem_mb, 4))
            try:
                drops = shadowed_rows(con, [s.variants for s in self.shards])
                readded = self.remove(table, plan.removed, con, drops, counts)
            finally:
                con.close()
            self.lap("remove")
            work = [(s, _all_but(readded[s.variants], s)) for s in self.shards if s.variants in readded]
            work += [(s, drops.get(s.variants)) for s in self.shards if s.source in plan.appended]
            added = append_rows(str(build.path), work, self.layout, create=False, threads=self.threads,
                                rows_per_write=self.rows_per_write, progress=self.progress)  # fmt: skip
            table = open_table(build.path)  # at the version the appends made
            self.lap("rows")
            counts.rows += added.rows
            counts.shadowed = sum(len(d) for d in drops.values())
            for name, value in added.non_null.items():
                counts.non_null[name] += value
            _check_rows(table, self.shards, counts)
            changed = previous["rows"] - (counts.rows - added.rows) + added.rows
            state = self.index_changed(table, counts, previous["index_state"], changed, Path(scratch))
            # before the swap, which removes the live build once no reader holds it
            written = {"bytes_written": bytes_not_shared(build.path, live), "bytes_linked": derived.linked_bytes}
            self.finish(build, counts, state)
        return self.manifest(build.path.name, counts, state, plan.mode, written)

    def remove(self, table, removed: list[str], con, drops: dict, counts: Counts) -> dict[Path, np.ndarray]:
        """Delete the rows of the `removed` VCFs; return the rows of the kept VCFs they had shadowed
        (file -> row numbers), to be added again."""
        if not removed:
            return {}
        where = f"source IN ({', '.join(sql_string(name) for name in removed)})"
        ids = table.search().where(where).select(["variant_id"]).limit(None).to_arrow()
        for name in counts.non_null:
            if counts.non_null[name]:  # held by some row, so the table has the column
                counts.non_null[name] -= table.count_rows(f"({where}) AND {name} IS NOT NULL")
        table.delete(where)
        counts.rows -= ids.num_rows
        con.register("removed_ids", ids)
        readded = {}
        for shard in self.shards:
            rows = con.execute(
                f"""SELECT file_row_number FROM read_parquet({sql_string(shard.variants)}, file_row_number = true)
                    WHERE variant_id IN (SELECT variant_id FROM removed_ids) ORDER BY file_row_number"""
            ).fetchnumpy()["file_row_number"]
            rows = np.setdiff1d(rows.astype(np.int64), drops.get(shard.variants, np.empty(0, np.int64)))
            if len(rows):
                readded[shard.variants] = rows
        log.info("LanceDB: %d rows of %s deleted, %d rows they shadowed to add again",
                 ids.num_rows, ", ".join(removed), sum(len(r) for r in readded.values()))  # fmt: skip
        return readded

    def index_all(self, table, counts: Counts, scratch: Path) -> dict:
        indexes = []
        if counts.rows >= max(self.ann_min_rows, 256):
            distinct = _distinct_texts(self.shards, scratch, self.threads, self.mem_mb)
            indexes.append(_ann_index(table, counts.rows, distinct, self.layout.dim))
            self.lap("ann_index")
        indexes[:0] = _scalar_indexes(table, counts)
        self.lap("scalar_indexes")
        return {"indexes": indexes, "indexed_rows": counts.rows, "changed_rows": 0, "action": "built"}

    def index_changed(self, table, counts: Counts, previous: dict, changed: int, scratch: Path) -> dict:
        """Train the indexes again past the threshold (RETRAIN_SHARE, RETRAIN_ROWS) or where a new one is
        due (the ANN index from ANN_MIN_ROWS rows, a scalar index of a column that now holds values);
        else keep them, the rows they miss searched exhaustively beside them."""
        changed += previous["changed_rows"]
        has_ann = any(i["column"] == LANCE_VECTOR_COLUMN for i in previous["indexes"])
        wants_ann = counts.rows >= max(self.ann_min_rows, 256)
        indexed = {i["column"] for i in previous["indexes"]}
        wants_scalar = set(_indexable(table, counts))
        if changed > min(RETRAIN_SHARE * previous["indexed_rows"], RETRAIN_ROWS) or (wants_ann and not has_ann):
            if not wants_ann and has_ann:
                table.drop_index("vector_idx")
            state = self.index_all(table, counts, scratch)
            state["action"] = "retrained"
            return state
        if not wants_scalar <= indexed:
            _scalar_indexes(table, counts, only=wants_scalar - indexed)
        state = {**previous, "changed_rows": changed, "action": "kept"}
        state["indexes"] = [i for i in previous["indexes"] if i["column"] == LANCE_VECTOR_COLUMN]
        state["indexes"][:0] = [_scalar_entry(c) for c in LANCE_SCALAR_INDEXES if c in wants_scalar]
        return state

    def finish(self, build: StoreBuild, counts: Counts, state: dict) -> None:
        record = {**self.wanted, "rows": counts.rows, "shadowed": counts.shadowed, "non_null": counts.non_null,
                  "index_state": state}  # fmt: skip
        write_json(record, build.path / BUILD_RECORD)
        build.commit()
        self.seconds["total"] = round(time.perf_counter() - self.started, 3)

    def manifest(self, build_name: str, counts: Counts, state: dict, mode: str, written: dict) -> dict:
        result = _manifest(self.out, build_name, self.shards, self.layout, counts, state["indexes"], self.seconds)
        result.update(model=self.wanted["model"], mode=mode, **written)
        result["index_update"] = {k: state[k] for k in ("action", "indexed_rows", "changed_rows")}
        return result


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


#: Rows from which the rows are written by child processes: Arrow and Lance keep what they
#: freed for reuse (a child writing 110,000 / 400,000 / 1,090,000 rows peaked at 425 / 540 /
#: 643 MiB, measured), and the IVF_PQ build that follows needs its own.
CHILD_PROCESS_MIN_ROWS = 200_000
#: At most this many rows per child (whole shards; a shard larger than this is one child's): the
#: rows of a table of any size are written by a series of children, so the job's memory is one
#: child's, not the table's, for ~0.6 s of start and imports per child. The full-size benchmark
#: table (1,088,544 rows) peaked at 587 MiB with 524,288 rows a child, 561-580 MiB with 262,144
#: (rows 12.2 -> 13.1-14.0 s) and 551 MiB with 131,072 (20.8 s); its 1/10 (108,706 rows, written
#: in-process) at 503-522 MiB.
ROWS_PER_CHILD = 262_144


def write_table(path: str, shards: Sequence[Shard], layout: TableSchema, scratch: Path, threads: int, mem_mb: int,
                rows_per_write: int, progress: bool) -> Counts:  # fmt: skip
    """Every row of `shards` (each variant once, from its first VCF) into a new table at `path`."""
    shadowed = {}
    if len(sources_in_order([s.variants for s in shards])) > 1:
        arguments = ([s.variants for s in shards], scratch, threads, mem_mb)
        shadowed = run_in_child(_shadowed, *arguments, threads=threads) if _in_child(shards) else _shadowed(*arguments)
    work = [(s, shadowed.get(s.variants)) for s in shards]
    return append_rows(path, work, layout, create=True, threads=threads, rows_per_write=rows_per_write,
                       progress=progress)  # fmt: skip


def append_rows(path: str, work: Sequence[tuple[Shard, np.ndarray | None]], layout: TableSchema, *, create: bool,
                threads: int, rows_per_write: int, progress: bool) -> Counts:  # fmt: skip
    """The rows of each shard but the row numbers beside it, appended to the table at `path` (created
    first with `create`) in runs of ROWS_PER_CHILD rows, each by its own child process where they
    number CHILD_PROCESS_MIN_ROWS or more."""
    rows = [parquet_file(shard.variants).metadata.num_rows for shard, _ in work]
    in_child = sum(rows) >= CHILD_PROCESS_MIN_ROWS
    counts = Counts()
    bar = _progress(work, progress)
    runs = _runs(work, rows, ROWS_PER_CHILD) or ([[]] if create else [])  # a VCF without records: an empty table
    for number, run in enumerate(runs):
        job = WriteJob(path, run, layout, create=create and number == 0, rows_per_write=rows_per_write)
        counts.merge(run_in_child(job.run, threads=threads) if in_child else job.run())
        if bar is not None:
            bar.update(len(run))
    if bar is not None:
        bar.close()
    return counts


def _in_child(shards: Sequence[Shard]) -> bool:
    return sum(parquet_file(s.variants).metadata.num_rows for s in shards) >= CHILD_PROCESS_MIN_ROWS


def _runs(work: Sequence[tuple[Shard, np.ndarray | None]], rows: Sequence[int],
          most: int) -> list[list[tuple[Shard, np.ndarray | None]]]:  # fmt: skip
    """`work` in order (`rows`: each shard's), cut into runs of about `most` rows (a run holds at least one shard)."""
    runs: list[list[tuple[Shard, np.ndarray | None]]] = []
    held = 0
    for item, count in zip(work, rows, strict=True):
        if not runs or (runs[-1] and held + count > most):
            runs.append([])
            held = 0
        runs[-1].append(item)
        held += count
    return runs


def _shadowed(variants: list[Path], scratch: Path, threads: int, mem_mb: int) -> dict[Path, np.ndarray]:
    con = duckdb_connect(scratch, threads, duckdb_limit_mb(mem_mb, 4))
    try:
        return shadowed_rows(con, variants)
    finally:
        con.close()


@dataclass
class WriteJob:
    """Appending the rows of some shards (all but the row numbers beside each) to a table, or creating it."""

    path: str
    work: list[tuple[Shard, np.ndarray | None]]
    layout: TableSchema
    create: bool
    rows_per_write: int

    def run(self) -> Counts:
        started = time.perf_counter()
        import lancedb

        db = lancedb.connect(self.path)
        table = db.create_table(LANCE_TABLE, schema=self.layout.schema) if self.create else db.open_table(LANCE_TABLE)
        counts = Counts()
        _write_rows(table, self.work, self.layout, counts, self.rows_per_write)
        counts.write_seconds = round(time.perf_counter() - started, 3)
        return counts


@contextlib.contextmanager
def _load_settings() -> Iterator[None]:
    """LOAD_SETTINGS in the environment for the load (values the user set win; the children it
    starts inherit them), as it was afterwards. Lance reads LANCE_IO_THREADS when a process first
    reads or writes a table: a job's, not a long-lived process that already did."""
    unset = [name for name in LOAD_SETTINGS if name not in os.environ]
    for name in unset:
        os.environ[name] = LOAD_SETTINGS[name]
    try:
        yield
    finally:
        for name in unset:
            os.environ.pop(name, None)


def _distinct_texts(shards: Sequence[Shard], scratch: Path, threads: int, mem_mb: int) -> int:
    """About how many distinct descriptions (so distinct vectors) there are (HyperLogLog, ~2%)."""
    con = duckdb_connect(scratch, threads, duckdb_limit_mb(mem_mb, 4))
    try:
        embedding_files = sql_list([s.other for s in shards])
        return con.execute(f"SELECT approx_count_distinct(text) FROM read_parquet({embedding_files})").fetchone()[0]
    finally:
        con.close()


def _all_but(keep: np.ndarray, shard: Shard) -> np.ndarray:
    """The row numbers of `shard` not in `keep` (the rows to leave out when adding only `keep`)."""
    return np.setdiff1d(np.arange(parquet_file(shard.variants).metadata.num_rows, dtype=np.int64), keep)


def _write_rows(table, work: Sequence[tuple[Shard, np.ndarray | None]], layout, counts, rows_per_write: int) -> None:
    """The rows of each shard but the row numbers given beside it, one LanceDB add (one data file)
    per group of shards of about `rows_per_write` rows."""
    group: list[tuple[Shard, np.ndarray | None]] = []
    group_rows = 0
    for number, (shard, drop) in enumerate(work, start=1):
        group.append((shard, drop))
        group_rows += parquet_file(shard.variants).metadata.num_rows
        if group_rows >= rows_per_write or number == len(work):
            batches = (b for s, d in group for b in shard_batches(s, layout, d, counts))
            _add(table, layout.schema, batches)
            log.info("LanceDB: %d rows written (%s)", counts.rows, group[-1][0].label)
            group, group_rows = [], 0


def _add(table, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
    """table.add of the batches; our own error in a batch (a shard that does not match its
    embeddings) is raised as it is, not as the Arrow RuntimeError Lance wraps it in."""
    raised: list[VcfAgentError] = []

    def remembered() -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except VcfAgentError as error:
            raised.append(error)
            raise

    try:
        table.add(pa.RecordBatchReader.from_batches(schema, remembered()))
    except Exception:
        if raised:
            raise raised[0] from None
        raise


def _progress(shards, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=len(shards), unit="shard", desc="LanceDB")


def _check_rows(table, shards: Sequence[Shard], counts: Counts) -> None:
    stored = table.count_rows()
    expected = sum(pq.ParquetFile(s.variants).metadata.num_rows for s in shards) - counts.shadowed
    if stored != expected or stored != counts.rows:
        raise VcfAgentError(f"LanceDB table holds {stored} rows, the shards {expected} distinct variants")


def _indexable(table, counts: Counts) -> list[str]:
    """The columns of LANCE_SCALAR_INDEXES that hold a value (not gene and consequence of VCFs
    without ANN/CSQ annotations, nor INFO/AF of VCFs without it) of a type their index takes:
    not a list (INFO/AF of a VCF that declares it `Number=.`)."""
    schema = table.schema
    return [
        column
        for column in LANCE_SCALAR_INDEXES
        if counts.non_null.get(column, 0) and not pa.types.is_nested(schema.field(column).type)
    ]


def _scalar_indexes(table, counts: Counts, only: set[str] | None = None) -> list[dict]:
    from lancedb.index import Bitmap, BTree

    made = []
    for column in _indexable(table, counts):
        if only is not None and column not in only:
            continue
        kind = LANCE_SCALAR_INDEXES[column]
        table.create_index(column, config=BTree() if kind == "BTREE" else Bitmap(), name=f"{column}_idx")
        made.append(_scalar_entry(column))
    return made


def _scalar_entry(column: str) -> dict:
    return {"name": f"{column}_idx", "column": column, "type": LANCE_SCALAR_INDEXES[column]}


def ann_parameters(rows: int, distinct_vectors: int, dim: int) -> dict:
    """IVF_PQ parameters for `rows` vectors of width `dim` (see the module docstring)."""
    partitions = max(1, min(rows // TARGET_PARTITION_ROWS, distinct_vectors // MIN_DISTINCT_PER_PARTITION))
    sub_vectors = dim // 8 if dim % 8 == 0 else 1
    return {"num_partitions": partitions, "num_sub_vectors": sub_vectors, "num_bits": PQ_BITS}


_FEWER_PARTITIONS = re.compile(r"Reduce num_partitions to <= (\d+)")


def _ann_index(table, rows: int, distinct: int, dim: int) -> dict:
    from lancedb.index import IvfPq

    params = ann_parameters(rows, distinct, dim)
    for _ in range(4):
        # a bounded k-means sample (MAX_TRAINING_VECTORS), so the training's memory does not grow with the table
        sample_rate = max(MIN_SAMPLE_RATE, min(256, MAX_TRAINING_VECTORS // params["num_partitions"]))
        try:
            config = IvfPq(distance_type=LANCE_METRIC, sample_rate=sample_rate, **params)
            table.create_index(LANCE_VECTOR_COLUMN, config=config, name="vector_idx", replace=True)
            break
        except RuntimeError as error:
            # k-means found fewer distinct clusters than asked (repetitive descriptions): ask for fewer.
            fewer = _FEWER_PARTITIONS.search(str(error))
            if not fewer or params["num_partitions"] == 1:
                raise
            params["num_partitions"] = max(1, int(fewer.group(1)) // 2)
            log.info("ANN index: retrying with %d partitions", params["num_partitions"])
    return {"name": "vector_idx", "column": LANCE_VECTOR_COLUMN, "type": "IVF_PQ", "metric": LANCE_METRIC, **params,
            "sample_rate": sample_rate}  # fmt: skip


def _manifest(out, build_name: str, shards, layout: TableSchema, counts: Counts, indexes, seconds) -> dict:
    import lancedb

    sources: dict[str, dict] = {}
    for shard in shards:
        entry = sources.setdefault(shard.source, {"shards": 0, "variant_rows": 0})
        entry["shards"] += 1
        entry["variant_rows"] += pq.ParquetFile(shard.variants).metadata.num_rows
    return {
        "store": "lancedb",
        "path": str(out),
        "build": build_name,
        "table": LANCE_TABLE,
        "rows": counts.rows,
        "duplicates_dropped": counts.shadowed,
        "columns": layout.schema.names,
        "sources": sources,
        # the genotypes the VCFs share, as the run summary counted them (the graph holds the genotypes)
        "across_files": None,
        "files": [str(s.variants) for s in shards],
        "variants_digest": shards_digest([s.variants for s in shards]),
        "model": None,
        "vector_dim": layout.dim,
        "metric": LANCE_METRIC,
        "indexes": indexes,
        "built_at": utc_now(),
        "seconds": seconds,
        "lancedb_version": lancedb.__version__,
    }


def _summary_part(summary: Path | str | None, key: str):
    if summary is None or not Path(summary).exists():
        return None
    return read_json(summary).get(key)


def _model_name(summary: Path | str | None) -> str | list[str] | None:
    if summary is None or not Path(summary).exists():
        return None
    embeddings = [s.get("embedding") or {} for s in read_json(summary).get("sources", {}).values()]
    models = sorted({e["model"] for e in embeddings if e.get("model")})  # a VCF without records has none
    return models[0] if len(models) == 1 else models or None
