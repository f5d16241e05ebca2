"""A persistent, content-addressed cache of embedding vectors, shared by concurrent jobs.

Layout (one folder per model, so vectors of different models never mix)::

    <cache_dir>/<model_id>/model.json          what the model is (for people)
    <cache_dir>/<model_id>/<b>/<uuid>.parquet   immutable segments, b = first hex digit of the key

A key is the 16-byte BLAKE2b digest of the description text. A segment holds
``key`` (fixed_size_binary(16)), ``text`` and ``vector`` (fixed-size float32
list), sorted by key and cut into small row groups, so a lookup reads only the
row groups whose key range (Parquet min/max statistics) can hold a wanted key.

Why it is safe with many writers, on one machine or on several SLURM nodes over
NFS: nothing is ever modified in place and nothing needs a lock.

* A job writes a segment to a hidden temporary name in the bucket folder,
  fsyncs it and renames it into place. Readers only open ``*.parquet`` names,
  so they see a whole segment or none; a job killed while writing leaves only a
  hidden ``.*.tmp`` file, which compaction removes once it is a day old.
* Two jobs that embed the same text both write it: duplicates are harmless (the
  vector is the same) and compaction drops them.
* Compaction (a bucket with more than MAX_SEGMENTS segments) writes the merged
  segment first and only then deletes its inputs, so every entry is always in
  at least one visible segment. A reader that finds a listed segment gone
  (ENOENT, or ESTALE on NFS) lists the bucket again and retries. Two jobs
  compacting the same bucket at once at worst leave two merged copies.

Cost: a lookup reads, per segment of the key's bucket, one row group's keys
(8 KiB) and, on a hit, its vectors. Compaction merges the smallest segments
(size-tiered, at most MERGE_MAX_BYTES at once), so a bucket keeps about
MAX_SEGMENTS segments and an entry is rewritten a few times over the cache's
life, not once per job.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import uuid
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vcf_agent.errors import fail
from vcf_agent.files import atomic_file

KEY_BYTES = 16
#: Segments in one bucket that trigger a compaction.
MAX_SEGMENTS = 8
#: A compaction merges the smallest segments up to this many bytes (bounds its memory).
MERGE_MAX_BYTES = 64 << 20
#: Rows per row group: a lookup reads whole row groups (512 vectors of 384 floats = 768 KiB).
ROW_GROUP_ROWS = 512
#: Hidden temporary files older than this are left-overs of killed jobs.
STALE_TMP_SECONDS = 24 * 3600
_RETRIES = 5


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


def segment_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("key", pa.binary(KEY_BYTES), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
        ]
    )


@dataclass(frozen=True)
class _SegmentIndex:
    """Key range of every row group of one (immutable) segment."""

    metadata: pq.FileMetaData
    mins: list[bytes]
    maxs: list[bytes]


class _Vanished(Exception):
    """A listed segment was removed by a compaction before it could be read."""


class EmbeddingCache:
    """Vectors by text for one model; `lookup`, `add`, then `flush` (or use as a context manager)."""

    def __init__(self, cache_dir: Path | str, model_id: str, dim: int, *, flush_rows: int = 4096) -> None:
        self.root = Path(cache_dir) / model_id
        self.dim = dim
        self.flush_rows = max(1, flush_rows)
        self.schema = segment_schema(dim)
        self._pending: dict[bytes, tuple[str, np.ndarray]] = {}
        self._indexes: dict[Path, _SegmentIndex] = {}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise fail(self.root, f"cannot create the embedding cache folder ({error.strerror})") from None

    def describe_model(self, info: dict) -> None:
        """Write model.json once (for people browsing the cache)."""
        target = self.root / "model.json"
        if not target.exists():
            _write_atomically(target, lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))

    # ------------------------------------------------------------ reading

    def lookup(self, keys: Iterable[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors of those keys that are cached (pending ones included)."""
        found: dict[bytes, np.ndarray] = {}
        by_bucket: dict[str, set[bytes]] = defaultdict(set)
        for key in keys:
            pending = self._pending.get(key)
            if pending is not None:
                found[key] = pending[1]
            else:
                by_bucket[_bucket(key)].add(key)
        for bucket, wanted in by_bucket.items():
            found.update(self._lookup_bucket(bucket, wanted))
        return found

    def _lookup_bucket(self, bucket: str, wanted: set[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for _ in range(_RETRIES):
            try:
                for path in self._segments(bucket):
                    if len(found) == len(wanted):
                        return found
                    found.update(self._lookup_segment(path, wanted - found.keys()))
                return found
            except _Vanished:
                continue  # a compaction replaced segments: list the bucket again
        raise fail(self.root / bucket, "cache segments kept vanishing while being read")

    def _lookup_segment(self, path: Path, wanted: set[bytes]) -> dict[bytes, np.ndarray]:
        index = self._index(path)
        groups = sorted({g for key in wanted if (g := _row_group_of(index, key)) is not None})
        if not groups:
            return {}
        found: dict[bytes, np.ndarray] = {}
        with _reading(path):
            segment = pq.ParquetFile(path, metadata=index.metadata)
            for group in groups:
                keys = segment.read_row_group(group, columns=["key"]).column(0).to_pylist()
                rows = [row for row, key in enumerate(keys) if key in wanted]
                if rows:
                    vectors = _vectors(segment.read_row_group(group, columns=["vector"]).column(0), self.dim)
                    # a copy of the rows found: a view would keep the row group's 512 vectors alive
                    # (embed_shard's peak grew with the cache, ~0.75 MB per hit in another row group)
                    picked = vectors[rows]
                    found.update(zip((keys[row] for row in rows), picked, strict=True))
        return found

    def _index(self, path: Path) -> _SegmentIndex:
        index = self._indexes.get(path)
        if index is None:
            with _reading(path):
                metadata = pq.read_metadata(path)
            mins, maxs = [], []
            for group in range(metadata.num_row_groups):
                stats = metadata.row_group(group).column(0).statistics
                has = stats is not None and stats.has_min_max
                mins.append(stats.min if has else b"")
                maxs.append(stats.max if has else b"\xff" * KEY_BYTES)
            index = self._indexes[path] = _SegmentIndex(metadata, mins, maxs)
        return index

    def _segments(self, bucket: str) -> list[Path]:
        folder = self.root / bucket
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(folder / n for n in names if n.endswith(".parquet") and not n.startswith("."))

    # ------------------------------------------------------------ writing

    def add(self, key: bytes, text: str, vector: np.ndarray) -> None:
        self._pending[key] = (text, vector)
        if len(self._pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        """Write the pending entries as one new segment per bucket, then compact those buckets."""
        by_bucket: dict[str, list[bytes]] = defaultdict(list)
        for key in self._pending:
            by_bucket[_bucket(key)].append(key)
        for bucket, keys in sorted(by_bucket.items()):
            keys.sort()
            table = pa.table(
                {
                    "key": pa.array(keys, pa.binary(KEY_BYTES)),
                    "text": pa.array([self._pending[k][0] for k in keys], pa.string()),
                    "vector": _vector_array(np.stack([self._pending[k][1] for k in keys]), self.dim),
                },
                schema=self.schema,
            )
            self._write_segment(bucket, table)
        self._pending.clear()
        for bucket in by_bucket:
            self.compact(bucket)

    def _write_segment(self, bucket: str, table: pa.Table) -> Path:
        folder = self.root / bucket
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{uuid.uuid4().hex}.parquet"

        def write(tmp: Path) -> None:
            pq.write_table(
                table,
                tmp,
                row_group_size=ROW_GROUP_ROWS,
                compression="zstd",
                use_dictionary=False,
                write_statistics=["key"],
            )

        _write_atomically(target, write)
        return target

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc) -> None:
        self.flush()

    # ------------------------------------------------------------ compaction

    def compact(self, bucket: str) -> None:
        """Merge the smallest segments of a bucket that holds too many (see module docstring)."""
        folder = self.root / bucket
        _remove_stale_tmp(folder)
        sizes = []
        for path in self._segments(bucket):
            try:
                sizes.append((path.stat().st_size, path))
            except FileNotFoundError:
                continue
        if len(sizes) <= MAX_SEGMENTS:
            return
        chosen, total = [], 0
        for size, path in sorted(sizes):
            if total + size > MERGE_MAX_BYTES:
                break
            chosen.append(path)
            total += size
        if len(chosen) < 2:
            return  # only big segments left: more files to read beats a merge beyond the memory budget
        try:
            with _reading(folder):
                merged = pa.concat_tables(pq.read_table(p, schema=self.schema) for p in chosen)
        except _Vanished:
            return  # another job is compacting this bucket right now
        self._write_segment(bucket, _unique_sorted(merged))
        for path in chosen:
            path.unlink(missing_ok=True)
            self._indexes.pop(path, None)

    def entries(self) -> int:
        """Rows in all segments (duplicates not yet compacted away counted twice)."""
        total = 0
        for bucket in (f"{i:x}" for i in range(16)):
            for path in self._segments(bucket):
                try:
                    total += self._index(path).metadata.num_rows
                except _Vanished:
                    continue
        return total


# ---------------------------------------------------------------- helpers


def _bucket(key: bytes) -> str:
    return f"{key[0] >> 4:x}"


def _row_group_of(index: _SegmentIndex, key: bytes) -> int | None:
    """The one row group whose [min, max] can hold `key` (segments are sorted), or None."""
    group = bisect_left(index.maxs, key)
    if group < len(index.maxs) and index.mins[group] <= key:
        return group
    return None


def _vectors(column, dim: int) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


def _vector_array(vectors: np.ndarray, dim: int) -> pa.FixedSizeListArray:
    flat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)


def _unique_sorted(table: pa.Table) -> pa.Table:
    table = table.sort_by("key")
    keys = table.column("key").to_pylist()
    keep = [row for row, key in enumerate(keys) if row == 0 or key != keys[row - 1]]
    return table.take(pa.array(keep, pa.int64())) if len(keep) < len(keys) else table


def _write_atomically(target: Path, write) -> None:
    # synced: the rename must never publish a half-written file to the other jobs reading it
    with atomic_file(target, sync=True) as tmp:
        write(tmp)


def _remove_stale_tmp(folder: Path) -> None:
    cutoff = time.time() - STALE_TMP_SECONDS
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            try:
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue


class _reading:
    """Turns 'the file is gone' (ENOENT, NFS ESTALE) into _Vanished; other read errors name the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            return False
        if isinstance(error, FileNotFoundError) or getattr(error, "errno", None) in (errno.ENOENT, errno.ESTALE):
            raise _Vanished(str(self.path)) from error
        if isinstance(error, pa.ArrowInvalid | OSError) and not isinstance(error, _Vanished):
            raise fail(self.path, f"unreadable embedding cache segment ({error}); delete it") from error
        return False
