"""What the LanceDB and Kuzu loaders share: their inputs, duplicate variants, and the atomic swap.

Inputs are the shard files of the workflow, in the order of the config's VCFs
(`results/parquet/<kind>/<vcf>/<shard>.parquet`, `results/embeddings/<vcf>/<shard>.parquet`).
The VCF of a shard is the name of its folder; an earlier VCF wins when two hold
the same variant_id (`shadowed_rows`).

A store is never changed in place (`StoreBuild`): it is built in a fresh sibling
folder `results/.<name>-<UTC time>-<pid>` and published by atomically replacing
the symlink `results/<name>` with one pointing at it. A failed or killed load
leaves the symlink, and so the previous store, untouched; the next load removes
the half-built folder.

Builds are immutable and a reader opens the build folder, not the symlink
(`hold_build`): it holds a shared lock (flock) on the build's `.readers.lock`
for as long as it has the build open. A load removes the builds no longer
published only when it can take that lock exclusively, so a server keeps
answering from the build it opened while a new one is swapped in; the build it
leaves is removed by the next load. A load in progress holds its own build's
lock exclusively, so a second load does not remove it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vcf_agent.errors import fail
from vcf_agent.logs import log

if TYPE_CHECKING:  # every CLI call holds its build (hold_build): no DuckDB import for that
    import duckdb


@dataclass(frozen=True)
class Shard:
    """The files of one shard: its VCF (source), id, and the Parquet file of each kind it has."""

    source: str
    shard: str
    variants: Path
    other: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.source}/{self.shard}"


def source_of(path: Path | str) -> str:
    """The VCF a shard file belongs to: the name of its folder."""
    return Path(path).parent.name


def paired_shards(variants: Sequence[Path | str], other: Sequence[Path | str] | None, kind: str) -> list[Shard]:
    """Variant shards, each with its file of `kind` (embeddings, genotypes...) for the same VCF and shard."""
    variants = [Path(p) for p in variants]
    if other is None:
        return [Shard(source_of(p), p.stem, p) for p in variants]
    other = [Path(p) for p in other]
    if len(other) != len(variants):
        raise fail(kind, f"{len(other)} {kind} files for {len(variants)} variant shards")
    shards = []
    for v, o in zip(variants, other, strict=True):
        if (source_of(v), v.stem) != (source_of(o), o.stem):
            raise fail(o, f"does not belong to variant shard {v} (the lists of shard files must match)")
        shards.append(Shard(source_of(v), v.stem, v, o))
    return shards


def sources_in_order(paths: Sequence[Path | str]) -> list[str]:
    """The VCF names of shard files in their first-appearance (config) order."""
    return list(dict.fromkeys(source_of(p) for p in paths))


def parquet_file(path: Path | str) -> pq.ParquetFile:
    """Open a shard file; a missing, cut or foreign file is a one-line error naming it."""
    try:
        return pq.ParquetFile(path, buffer_size=1 << 20)
    except (OSError, pa.ArrowException) as error:
        raise fail(path, f"cannot be read as Parquet ({_first_line(error)}); delete it and re-run") from error


def unreadable(path: Path | str, error: Exception):
    """The one-line error for a shard whose contents cannot be decoded."""
    return fail(path, f"cannot be read ({_first_line(error)}); delete it and re-run")


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- DuckDB


def sql_string(text: str | Path) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def sql_list(paths: Sequence[Path | str]) -> str:
    return "[" + ", ".join(sql_string(p) for p in paths) + "]"


def shadowed_rows(con: duckdb.DuckDBPyConnection, variants: Sequence[Path]) -> dict[Path, np.ndarray]:
    """Rows (file -> row numbers) whose variant_id an earlier file of another VCF already holds.

    Files are ranked by their position in `variants` (config order, then shard order),
    so each variant is kept once, from the first VCF that has it.
    """
    if len(sources_in_order(variants)) < 2:
        return {}
    con.execute("CREATE OR REPLACE TEMP TABLE shard_rank (filename VARCHAR, rank INTEGER)")
    con.executemany("INSERT INTO shard_rank VALUES (?, ?)", [(str(p), i) for i, p in enumerate(variants)])
    rows = con.execute(
        f"""WITH ids AS (
              SELECT variant_id, filename, file_row_number
              FROM read_parquet({sql_list(variants)}, filename = true, file_row_number = true, union_by_name = true)
            ), repeated AS (SELECT variant_id FROM ids GROUP BY variant_id HAVING count(*) > 1)
            SELECT filename, file_row_number FROM ids JOIN shard_rank USING (filename)
            WHERE variant_id IN (SELECT variant_id FROM repeated)
            QUALIFY row_number() OVER (PARTITION BY variant_id ORDER BY rank, file_row_number) > 1
            ORDER BY filename, file_row_number"""
    ).fetchall()
    shadowed: dict[Path, list[int]] = {}
    for filename, row in rows:
        shadowed.setdefault(Path(filename), []).append(row)
    return {path: np.asarray(numbers, dtype=np.int64) for path, numbers in shadowed.items()}


#: The rule for a genotype found in several VCFs, as the summary and the manifests state it.
GENOTYPE_RULE = (
    "a (sample, variant) genotype comes from the first VCF of the config that holds both the sample"
    " and the variant; the same call in a later VCF is a duplicate, a different one a conflict"
)
#: Conflicts listed by name in the summary and the manifests.
CONFLICT_EXAMPLES = 5


def genotype_overlap(
    con: duckdb.DuckDBPyConnection,
    variants: Sequence[Path],
    genotypes: Sequence[Path],
    samples: Mapping[str, Sequence[str]],
) -> dict:
    """What the VCFs share, and which carrier rows the stores leave out (`GENOTYPE_RULE`).

    `samples` maps each VCF name, in config order, to its samples. A VCF holds a (sample,
    variant) when the sample is in its header and the variant among its records; the genotype
    files list carriers only, so a holder without a row called no ALT copy (0/0, ./. ...),
    shown as gt null. Leaves the rows of later VCFs that the rule sets aside in the temporary
    table `later_genotypes (sample, variant_id, source)`; returns the counts and examples.
    """
    con.execute("CREATE OR REPLACE TEMP TABLE later_genotypes (sample VARCHAR, variant_id VARCHAR, source VARCHAR)")
    result = {"rule": GENOTYPE_RULE, "variants_in_several_files": 0, "duplicate_variant_rows": 0,
              "duplicate_genotypes": 0, "conflicting_genotypes": 0, "conflict_examples": []}  # fmt: skip
    if len(samples) < 2 or not variants:
        return result
    sources = list(samples)
    con.register("file_rank_rows", pa.table({"source": sources, "rank": list(range(len(sources)))}))
    members = [(rank, sample) for rank, source in enumerate(sources) for sample in samples[source]]
    con.register("file_sample_rows", pa.table({"rank": [m[0] for m in members], "sample": [m[1] for m in members]}))
    con.execute("CREATE OR REPLACE TEMP TABLE file_rank AS SELECT * FROM file_rank_rows")
    con.execute("CREATE OR REPLACE TEMP TABLE file_sample AS SELECT * FROM file_sample_rows")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE shared_holders AS
            WITH holders AS (
              SELECT DISTINCT variant_id, rank
              FROM read_parquet({sql_list(variants)}, union_by_name = true) JOIN file_rank USING (source)
            )
            SELECT * FROM holders
            WHERE variant_id IN (SELECT variant_id FROM holders GROUP BY variant_id HAVING count(*) > 1)"""
    )
    shared, rows = con.execute("SELECT count(DISTINCT variant_id), count(*) FROM shared_holders").fetchone()
    result["variants_in_several_files"], result["duplicate_variant_rows"] = shared, rows - shared
    if not shared or not genotypes:
        return result
    # Every holder of each shared (sample, variant) that some VCF calls a carrier, beside the first holder.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE compared AS
            WITH calls AS (
              SELECT sample, variant_id, rank, gt
              FROM read_parquet({sql_list(genotypes)}) JOIN file_rank USING (source)
              WHERE variant_id IN (SELECT variant_id FROM shared_holders)
            ), held AS (
              SELECT p.sample, p.variant_id, h.rank
              FROM (SELECT DISTINCT sample, variant_id FROM calls) AS p
              JOIN shared_holders AS h USING (variant_id)
              JOIN file_sample AS f ON f.rank = h.rank AND f.sample = p.sample
            ), ordered AS (
              SELECT held.*, c.gt,
                     first_value(held.rank) OVER pair AS first_rank, first_value(c.gt) OVER pair AS first_gt
              FROM held LEFT JOIN calls AS c USING (sample, variant_id, rank)
              WINDOW pair AS (PARTITION BY held.sample, held.variant_id ORDER BY held.rank)
            )
            SELECT sample, variant_id, first_rank, first_gt, rank, gt FROM ordered
            WHERE rank > first_rank AND (gt IS NOT NULL OR first_gt IS NOT NULL)"""
    )
    con.execute(
        """INSERT INTO later_genotypes
           SELECT sample, variant_id, source FROM compared JOIN file_rank USING (rank) WHERE gt IS NOT NULL"""
    )
    duplicates, conflicts = con.execute(
        "SELECT count(*) FILTER (gt = first_gt), count(*) FILTER (gt IS DISTINCT FROM first_gt) FROM compared"
    ).fetchone()
    examples = con.execute(
        f"""SELECT sample, variant_id, k.source, first_gt, o.source, gt FROM compared
            JOIN file_rank AS k ON k.rank = first_rank JOIN file_rank AS o ON o.rank = compared.rank
            WHERE gt IS DISTINCT FROM first_gt ORDER BY first_rank, compared.rank, variant_id, sample
            LIMIT {CONFLICT_EXAMPLES}"""
    ).fetchall()
    result["duplicate_genotypes"], result["conflicting_genotypes"] = duplicates, conflicts
    result["conflict_examples"] = [
        {"sample": s, "variant_id": v, "kept": {"file": kf, "gt": kg}, "other": {"file": of, "gt": og}}
        for s, v, kf, kg, of, og in examples
    ]
    return result


#: The figures genotype_overlap counts, which add up over layers and partitions.
OVERLAP_COUNTS = ("variants_in_several_files", "duplicate_variant_rows", "duplicate_genotypes", "conflicting_genotypes")


def merged_overlaps(overlaps: Sequence[dict], sources: Sequence[str]) -> dict:
    """genotype_overlap's figures of each layer or partition, added up: each counts what its VCF
    shares with the earlier ones, so each shared variant, duplicate and conflict is counted once;
    the conflicts named are the first in config order."""
    merged: dict = {"rule": GENOTYPE_RULE}
    for key in OVERLAP_COUNTS:
        merged[key] = sum(o.get(key, 0) for o in overlaps)
    rank = {s: i for i, s in enumerate(sources)}
    examples = [e for o in overlaps for e in o.get("conflict_examples", [])]
    examples.sort(key=lambda e: (rank[e["kept"]["file"]], rank[e["other"]["file"]], e["variant_id"], e["sample"]))
    merged["conflict_examples"] = examples[:CONFLICT_EXAMPLES]
    return merged


def later_genotype_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Carrier rows that `genotype_overlap` set aside (a later VCF's call of a genotype)."""
    return con.execute("SELECT count(*) FROM later_genotypes").fetchone()[0]


# ---------------------------------------------------------------- atomic swap

#: The lock file of a build: readers hold it shared, the load that removes the build exclusively.
READERS_LOCK = ".readers.lock"


class StoreBuild:
    """Build a store beside the live one and swap it in atomically (see the module docstring).

    with StoreBuild(Path("results/lancedb")) as build:
        ... write into build.path ...
        build.commit()          # results/lancedb -> .lancedb-<time>-<pid>; unused old builds deleted
    """

    def __init__(self, link: Path | str) -> None:
        self.link = Path(link)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.path = self.link.with_name(f".{self.link.name}-{stamp}-{os.getpid()}")
        self.committed = False
        self._lock: int | None = None

    def __enter__(self) -> StoreBuild:
        self.link.parent.mkdir(parents=True, exist_ok=True)
        remove_unused_builds(self.link)
        self.path.mkdir()
        self._lock = _lock_file(self.path / READERS_LOCK, fcntl.LOCK_EX)  # not removable while building
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._unlock()
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)

    def scratch(self) -> contextlib.AbstractContextManager[str]:
        """A temporary folder on the store's file system (removed when done)."""
        return tempfile.TemporaryDirectory(prefix=f".{self.link.name}-scratch-", dir=self.link.parent)

    def commit(self) -> None:
        """Point the link at the new build (one rename), then delete the old builds no reader holds."""
        if self.link.exists() and not self.link.is_symlink():
            # A store from before symlinks: move it aside, as rename cannot replace a folder.
            self.link.rename(self.link.with_name(f".{self.link.name}-replaced-{os.getpid()}"))
        tmp_link = self.link.with_name(f".{self.link.name}.link-{os.getpid()}")
        tmp_link.unlink(missing_ok=True)
        os.symlink(self.path.name, tmp_link)
        os.replace(tmp_link, self.link)
        _fsync_dir(self.link.parent)
        self.committed = True
        self._unlock()
        log.info("%s now points at %s", self.link, self.path.name)
        remove_unused_builds(self.link, scratch=False)  # this load's scratch folder is still in use

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


#: Parts of a Lance table that a later commit may replace under the same name (the version
#: manifests and `_latest.manifest` of the older naming scheme, the transaction files): a derived
#: build gets its own copy of them. Lance never rewrites the rest (`data/*.lance` files,
#: `_indices/<uuid>/`, `_deletions/`): every write adds new files under new names, so those are
#: hard-linked, and a derived build costs the bytes of what it changes.
COPIED_PARTS = frozenset({"_versions", "_latest.manifest", "_transactions"})


@dataclass
class DerivedFiles:
    """What `derive_build` put into a new build: files and bytes linked and copied."""

    linked_files: int = 0
    linked_bytes: int = 0
    copied_files: int = 0
    copied_bytes: int = 0


def derive_build(live: Path, build: Path, copied: frozenset[str] = COPIED_PARTS) -> DerivedFiles:
    """Fill the new build folder `build` with the files of the live build `live`: hard links to the
    immutable ones, copies of those named in `copied` (any part of their path) and of our own
    records (top-level files); the readers' lock stays the new build's own."""
    done = DerivedFiles()
    for source in sorted(live.rglob("*")):
        relative = source.relative_to(live)
        target = build / relative
        if source.is_dir():
            target.mkdir(exist_ok=True)
            continue
        if relative.name == READERS_LOCK:
            continue
        size = source.stat().st_size
        if len(relative.parts) == 1 or copied.intersection(relative.parts):
            shutil.copy2(source, target)
            done.copied_files, done.copied_bytes = done.copied_files + 1, done.copied_bytes + size
        else:
            os.link(source, target)
            done.linked_files, done.linked_bytes = done.linked_files + 1, done.linked_bytes + size
    return done


def bytes_not_shared(build: Path, live: Path) -> int:
    """Bytes of the files in `build` that are not hard links to files of `live` (what a derived
    build wrote: its copies and the files its changes added)."""
    shared = {(f.stat().st_dev, f.stat().st_ino) for f in live.rglob("*") if f.is_file()}
    total = 0
    for path in build.rglob("*"):
        if path.is_file() and path.name != READERS_LOCK:
            info = path.stat()
            if (info.st_dev, info.st_ino) not in shared:
                total += info.st_size
    return total


def live_build(link: Path | str) -> Path | None:
    """The build folder the symlink `link` points at (None when it is not a symlink)."""
    link = Path(link)
    if not link.is_symlink():
        return None
    return link.parent / os.readlink(link)


def remove_unused_builds(link: Path | str, *, scratch: bool = True) -> None:
    """Remove the builds of `link` that are neither live, nor open in a reader, nor still being
    built (and, with `scratch`, the scratch folders of loads, which only one load runs at a time)."""
    link = Path(link)
    live = live_build(link)
    for path in _siblings(link):
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)  # a temporary link of a killed swap
            continue
        if live is not None and path.resolve() == live.resolve():
            continue
        if path.name.startswith(f".{link.name}-scratch-"):
            if scratch:
                shutil.rmtree(path, ignore_errors=True)
            continue
        lock = _try_lock_file(path / READERS_LOCK)
        if lock is None:
            log.info("keeping the previous build %s: a reader still has it open", path.name)
            continue
        try:
            log.info("removing the unused build %s", path)
            (path / READERS_LOCK).unlink(missing_ok=True)  # readers that open it now see it is gone
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(lock)


def load_in_progress(link: Path | str) -> bool:
    """True while a load of `link` is building (it holds its new build's lock exclusively)."""
    link = Path(link)
    for path in link.parent.glob(f".{link.name}-*"):
        try:
            fd = os.open(path / READERS_LOCK, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def _siblings(link: Path) -> Iterator[Path]:
    yield from link.parent.glob(f".{link.name}-*")
    yield from link.parent.glob(f".{link.name}.link-*")


class BuildHold:
    """A reader's shared lock on one build folder: loads do not remove the build while it is held."""

    def __init__(self, path: Path, lock: int | None) -> None:
        self.path = path
        self._lock = lock

    @property
    def name(self) -> str:
        return self.path.name

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def hold_build(link: Path | str, attempts: int = 5) -> BuildHold:
    """Resolve the symlink `link` to its build and hold that build open (see BuildHold).

    A load may swap the link and remove the build between the two steps; then the
    lock file is gone (or replaced) once our lock is granted, and we resolve again.
    A build without a lock file (from an older version, or a folder we may not write
    in) is returned unlocked.
    """
    link = Path(link)
    for _ in range(attempts):
        path = Path(os.path.realpath(link))
        lock_path = path / READERS_LOCK
        try:
            fd = os.open(lock_path, os.O_RDONLY)
        except FileNotFoundError:
            if not path.is_dir():
                continue  # removed since we resolved the link
            try:
                fd = os.open(lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
            except OSError:
                return BuildHold(path, None)
        except OSError:
            return BuildHold(path, None)
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits only while a load removes this build
        if _same_file(fd, lock_path):
            return BuildHold(path, fd)
        os.close(fd)
    raise fail(link, f"the store kept changing while it was opened ({attempts} tries)")


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _lock_file(path: Path, mode: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, mode)
    return fd


def _try_lock_file(path: Path) -> int | None:
    """An exclusive lock on `path` (created if missing), or None when someone holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def shards_digest(paths: Sequence[Path | str]) -> str:
    """A digest of the variant shards (their VCF, name and bytes, in order): the two stores
    were built from the same variants exactly when their manifests carry the same digest."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{source_of(path)}/{Path(path).name}\0".encode())
        with open(path, "rb") as file:
            digest.update(hashlib.file_digest(file, "sha256").digest())
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- graph partitions


@dataclass(frozen=True)
class ShardExtent:
    """Where one shard lies (its contig and the positions it may hold) and what it holds."""

    source: str
    shard: str
    chrom: str
    start: int
    end: int
    variants: int
    genotypes: int

    @property
    def label(self) -> str:
        return f"{self.source}/{self.shard}"


def plan_partitions(extents: Sequence[ShardExtent], partition_edges: int) -> list[dict]:
    """Group shards into graph partitions of at most about `partition_edges` genotypes each.

    A partition is a range of positions, per contig, covering whole shards; contigs follow
    their first appearance among `extents` (config order, then shard order). A partition is
    closed before a shard that would take it past `partition_edges`, but only where no
    shard already in it reaches that shard's start: a position then lies in exactly one
    partition, so the shards of several VCFs that hold the same variant (and so the
    duplicate rule of `genotype_overlap`) always meet in one partition. A single shard
    larger than `partition_edges` is a partition of its own.
    """
    if partition_edges < 1:
        raise fail("kuzu.partition_edges", f"must be a positive number, not {partition_edges}")
    rank = {chrom: i for i, chrom in enumerate(dict.fromkeys(e.chrom for e in extents))}
    ordered = sorted(extents, key=lambda e: (rank[e.chrom], e.start, e.end))
    partitions: list[dict] = []
    current: dict | None = None
    reach: tuple[str, int] | None = None  # the contig and last position the open partition's shards cover
    for extent in ordered:
        inside = reach is not None and reach[0] == extent.chrom and extent.start <= reach[1]
        full = current is not None and current["genotypes"] + extent.genotypes > partition_edges
        if current is None or (full and not inside):
            current = {"name": f"p{len(partitions) + 1:05d}", "ranges": [], "shards": [], "variants": 0, "genotypes": 0}
            partitions.append(current)
            reach = None
        ranges = current["ranges"]
        if ranges and ranges[-1][0] == extent.chrom:
            ranges[-1][2] = max(ranges[-1][2], extent.end)
        else:
            ranges.append([extent.chrom, extent.start, extent.end])
        current["shards"].append(extent.label)
        current["variants"] += extent.variants
        current["genotypes"] += extent.genotypes
        reach = (extent.chrom, max(extent.end, reach[1] if reach and reach[0] == extent.chrom else extent.end))
    return partitions


def present_columns(paths: Sequence[Path | str], names: Sequence[str]) -> set[str]:
    """The columns among `names` that hold a value somewhere in the Parquet files (from their
    row-group statistics, without reading the data; a file without statistics is read)."""
    present: set[str] = set()
    for path in paths:
        metadata = parquet_file(path).metadata
        schema = metadata.schema.to_arrow_schema().names
        for name in set(names) - present:
            if name not in schema:
                continue
            column = schema.index(name)
            for group in range(metadata.num_row_groups):
                chunk = metadata.row_group(group).column(column)
                stats = chunk.statistics
                if stats is None or not stats.has_null_count:
                    if pq.read_table(path, columns=[name]).column(name).null_count < metadata.num_rows:
                        present.add(name)
                    break
                if stats.null_count < metadata.row_group(group).num_rows:
                    present.add(name)
                    break
    return present
