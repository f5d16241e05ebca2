"""A partition's per-variant index: each variant's carriers with their genotypes, files and annotations.

Why: a variant's page (`variant`: its carriers' genotypes, its files, its annotations), search's
and similar's hits (carrier count, first carriers, genes) and a region's carrier counts all
ask one variant at a time. Asked of Kuzu, the variant's partition must be open: ~30 MiB of
resident memory and 20-40 ms to open, per partition, so a server either holds every
partition of the store open (the full-size benchmark chromosome's 28: ~1.2 GB; the genome's
~1,750 cannot be) or reopens them for nearly every request. This file beside each
partition's database (rule load_kuzu_partition writes it from the database it has just
loaded, with the sample index, vcf_agent.stores.sample_index) answers them with a few file
reads, without opening Kuzu: only the walks of the sample and shared pages and filtered
graph queries still open partitions.

Layout: MAGIC, a uint64 length, a table of contents in JSON (counts, gene symbols, file
names, genotype kinds, and where each section lies: offset from the end of the table,
elements, numpy dtype), then the sections, for a partition of `variants` Variant nodes:

    keys[variants]             uint64  KEY of each variant id, ascending
    key_nodes[variants]        uint32  the Variant node offset of each key
    id_starts[variants + 1]    uint64  where each node's variant id begins in `ids`
    ids                        bytes   the variant ids (UTF-8), by node offset
    starts[variants + 1]       uint64  where each node's carriers begin in `carriers`
    carriers[edges]            uint32  each node's carriers (Sample node offsets), ascending
    kinds[edges]               uint8/16  each carrier's genotype kind (gt, phased, alt_count, ploidy)
    dp[edges], gq[edges]       int32   each carrier's DP and GQ (NULL_INT: none); only where
                                       the layer holds them (1000 Genomes releases hold GT only)
    gene_starts, gene_links    uint64, uint32  each node's distinct genes (symbol numbers)
    file_starts, file_links    uint64, uint32  each node's files (file name numbers)
    annotation_starts          uint64  where each node's annotations begin in `annotations`
    annotations                bytes   each node's annotations, a JSON list (empty: none)

A genotype kind costs 1 byte per carrier where a partition has at most 256 kinds (a
diploid cohort has a few dozen): the full-size benchmark chromosome's 28 indexes hold 6.6
bytes per carrier genotype with the variants' ids, files and annotations (682 MB).

A look-up hashes the id (KEY), finds it among the keys through a sparse copy of every
FENCE-th key held in memory (a few KB per partition) and one read of the keys between two
fences, and compares the stored id, so a hash collision can never answer for another
variant. Reads use plain file reads, as the sample index does (mapped pages would stay in
the server's resident memory).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcf_agent.errors import fail

MAGIC = b"VCFAVIX2"
#: the first layout (carriers and genes only): read as no index, so its build asks Kuzu
OLDER_MAGICS = (b"VCFAVIX1",)
SUFFIX = ".variants"
#: Keys per fence: a look-up reads at most this many keys (8 bytes each) between two fences.
FENCE = 512
#: DP or GQ absent from a genotype.
NULL_INT = np.iinfo(np.int32).min
#: The per-carrier integer properties the index keeps where its layer holds them.
CARRIER_INTS = ("dp", "gq")
_PREFIX = len(MAGIC) + 8


def variant_index_path(graph: Path | str) -> Path:
    """The variant index of the partition database `graph` (pNNNNN.kuzu -> pNNNNN.variants)."""
    return Path(graph).with_suffix(SUFFIX)


def key(variant_id: str) -> int:
    """The 64-bit key of a variant id (stable across processes and machines, unlike hash())."""
    return int.from_bytes(hashlib.blake2b(variant_id.encode(), digest_size=8).digest(), "little")


#: What decides a genotype's zygosity and how it is shown: (gt, phased, alt_count, ploidy).
Kind = tuple[str, bool, int, int]


class GenotypeKinds:
    """Numbers for the distinct (gt, phased, alt_count, ploidy) of a partition's carriers."""

    def __init__(self) -> None:
        self.kinds: list[Kind] = []
        self._number: dict[Kind, int] = {}

    def codes(self, gt, phased, alt_count, ploidy) -> np.ndarray:
        """The kind number of each genotype of these (pyarrow or numpy) columns."""
        import pyarrow as pa
        import pyarrow.compute as pc

        # pa.array() of a ChunkedArray (what Kuzu returns) goes through Python objects: 4 s a chunk
        encoded = pc.dictionary_encode(gt.combine_chunks() if isinstance(gt, pa.ChunkedArray) else pa.array(gt))
        if encoded.null_count:
            raise ValueError("a carrier genotype without GT")
        texts = encoded.dictionary.to_pylist()
        columns = [np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)]
        for values in (phased, alt_count, ploidy):
            array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else pa.array(values)
            columns.append(np.asarray(array.to_numpy(zero_copy_only=False), np.int64))
        if not len(columns[0]):
            return np.zeros(0, np.uint16)
        if min(int(c.min()) for c in columns) < 0:
            raise ValueError("a carrier genotype with a negative alt_count or ploidy")
        # one integer per genotype (mixed radix): np.unique over rows (axis=0) took 5 s a chunk
        radixes = [int(c.max()) + 1 for c in columns]
        combined = np.zeros(len(columns[0]), np.int64)
        for column, radix in zip(columns, radixes, strict=True):
            combined = combined * radix + column
        distinct, inverse = np.unique(combined, return_inverse=True)
        numbers = np.zeros(len(distinct), np.int64)
        for i, value in enumerate(distinct.tolist()):
            digits = []
            for radix in reversed(radixes):
                value, digit = divmod(value, radix)
                digits.append(digit)
            g, p, a, k = reversed(digits)
            numbers[i] = self._number_of((texts[g], bool(p), a, k))
        return numbers[np.asarray(inverse).reshape(-1)].astype(np.uint16)

    def _number_of(self, kind: Kind) -> int:
        number = self._number.get(kind)
        if number is None:
            if len(self.kinds) > np.iinfo(np.uint16).max:
                raise ValueError("more than 65,536 genotype kinds in one partition")
            number = self._number[kind] = len(self.kinds)
            self.kinds.append(kind)
        return number


class CarrierLists:
    """Each Variant node's carriers, with per-carrier values (`columns`: name -> dtype), filled
    from (sample, variant) pairs that come in ascending, non-overlapping sample ranges (the
    sample index's order), so that no second pass over the edges is needed: `per_variant`
    (carrier genotypes per node offset) fixes where each list starts. Holds 4 bytes per edge
    and each column's (~35 MiB for a 4 M-edge partition with kinds, DP and GQ)."""

    def __init__(self, per_variant: np.ndarray, columns: Mapping[str, np.dtype | type] | None = None) -> None:
        self.per_variant = np.asarray(per_variant, np.uint64)
        self.starts = np.zeros(len(self.per_variant) + 1, np.uint64)
        np.cumsum(self.per_variant, out=self.starts[1:])
        edges = int(self.starts[-1])
        self.carriers = np.zeros(edges, np.uint32)
        self.values = {name: np.zeros(edges, dtype) for name, dtype in (columns or {}).items()}
        self.filled = np.zeros(len(self.per_variant), np.uint64)
        self._next_sample = 0

    def tee(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray, Mapping[str, np.ndarray]]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The chunks' (sample, variant) pairs, each chunk also added here with its values."""
        for sample_at, variant_at, values in chunks:
            self.add(sample_at, variant_at, values)
            yield sample_at, variant_at

    def add(
        self, sample_at: np.ndarray, variant_at: np.ndarray, values: Mapping[str, np.ndarray] | None = None
    ) -> None:
        if not len(sample_at):
            return
        values = values or {}
        if set(values) != set(self.values):
            raise ValueError(f"carrier values {sorted(values)}, expected {sorted(self.values)}")
        order = np.lexsort((sample_at, variant_at))
        samples, variants = np.asarray(sample_at)[order], np.asarray(variant_at)[order]
        if samples.min() < self._next_sample:
            raise ValueError("carrier chunks out of sample order")
        if variants[0] < 0 or variants[-1] >= len(self.per_variant):
            raise ValueError(f"a genotype of variant offset {int(variants[-1])} of {len(self.per_variant)}")
        self._next_sample = int(samples.max()) + 1
        # each pair's rank among the chunk's pairs of its variant, after those filled before
        first_of_run = np.flatnonzero(np.r_[True, variants[1:] != variants[:-1]])
        run_lengths = np.diff(np.r_[first_of_run, len(variants)])
        rank = np.arange(len(variants)) - np.repeat(first_of_run, run_lengths)
        at = self.starts[variants] + self.filled[variants] + rank.astype(np.uint64)
        if np.any(at >= self.starts[variants + 1]):
            raise ValueError("more carrier genotypes than counted for a variant")
        self.carriers[at] = samples
        for name, column in values.items():
            self.values[name][at] = np.asarray(column)[order]
        np.add.at(self.filled, variants[first_of_run], run_lengths.astype(np.uint64))

    def complete(self) -> bool:
        return bool(np.array_equal(self.filled, self.per_variant))


@dataclass(frozen=True)
class Found:
    """One variant of a partition: its carriers (Sample node offsets, ascending; the first ones
    when asked for) and how many it has in all, and its annotated genes."""

    carriers: int
    first: np.ndarray
    genes: list[str]


@dataclass(frozen=True)
class Record:
    """One variant of a partition whole: its carriers (the first ones when asked for) with their
    genotype kinds, DP and GQ (None where the layer holds none), every carrier's kind counted,
    its files and its annotations."""

    carriers: int
    first: np.ndarray
    kinds: list[Kind]
    dp: list[int | None] | None
    gq: list[int | None] | None
    kind_counts: list[tuple[Kind, int]]
    files: list[str]
    annotations: list[dict]


def write_variant_index(
    path: Path | str,
    variant_ids: Sequence[str],
    carriers: CarrierLists,
    genes: Iterable[tuple[int, str]] = (),
    *,
    kinds: Sequence[Kind] = (),
    files: Iterable[tuple[int, str]] = (),
    annotations: Mapping[int, list[dict]] | None = None,
) -> None:
    """Write the index: `variant_ids` by node offset, every node's `carriers` (complete; their
    "kind" values number `kinds`, and "dp"/"gq" where held), the (node offset, gene symbol)
    pairs of its annotations, the (node offset, file name) pairs of its files and its
    annotations by node offset. Written to a temporary name, then renamed."""
    path = Path(path)
    count = len(variant_ids)
    if len(carriers.per_variant) != count:
        raise fail(path, f"carriers of {len(carriers.per_variant)} variants for {count} variant ids")
    if not carriers.complete():
        at = int(np.flatnonzero(carriers.filled != carriers.per_variant)[0])
        raise fail(path, f"variant offset {at}: {int(carriers.filled[at])} carriers of {int(carriers.per_variant[at])}")
    keys = np.fromiter((key(vid) for vid in variant_ids), np.uint64, count)
    key_order = np.argsort(keys, kind="stable")
    gene_starts, gene_links, symbols = _links(genes, count)
    file_starts, file_links, file_names = _links(files, count)
    sections: dict[str, np.ndarray | bytes] = {
        "keys": keys[key_order],
        "key_nodes": key_order.astype(np.uint32),
        **_strings("id", [vid.encode() for vid in variant_ids]),
        "starts": carriers.starts,
        "carriers": carriers.carriers,
    }
    if "kind" in carriers.values:
        held = carriers.values["kind"]
        sections["kinds"] = held.astype(np.uint8) if len(kinds) <= 256 else held.astype(np.uint16)
    for name in CARRIER_INTS:
        if name in carriers.values:
            sections[name] = carriers.values[name].astype(np.int32)
    sections |= {"gene_starts": gene_starts, "gene_links": gene_links}
    sections |= {"file_starts": file_starts, "file_links": file_links}
    annotated = annotations or {}
    encoded = [_json(annotated[v]) if v in annotated else b"" for v in range(count)]
    sections |= _strings("annotation", encoded, plural="annotations")
    contents = {
        "variants": count,
        "edges": len(carriers.carriers),
        "symbols": symbols,
        "files": file_names,
        "kinds": [list(kind) for kind in kinds],
        "sections": {},
    }
    offset = 0
    for name, data in sections.items():
        dtype = "u1" if isinstance(data, bytes) else data.dtype.str
        elements = len(data)
        contents["sections"][name] = [offset, elements, dtype]
        offset += elements * np.dtype(dtype).itemsize
    table = _json(contents)
    scratch = path.with_name(f".{path.name}-{os.getpid()}")
    try:
        with open(scratch, "wb") as out:
            out.write(MAGIC)
            out.write(len(table).to_bytes(8, "little"))
            out.write(table)
            for data in sections.values():
                if isinstance(data, bytes):
                    out.write(data)
                else:
                    np.ascontiguousarray(data).tofile(out)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _strings(name: str, encoded: list[bytes], plural: str | None = None) -> dict[str, np.ndarray | bytes]:
    """`<name>_starts` (where each begins) and the joined bytes (`<name>s`, or `plural`)."""
    starts = np.zeros(len(encoded) + 1, np.uint64)
    np.cumsum([len(b) for b in encoded], out=starts[1:])
    return {f"{name}_starts": starts, plural or f"{name}s": b"".join(encoded)}


def _links(pairs: Iterable[tuple[int, str]], count: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Each node's distinct names (by name), as starts per node and name numbers, and the names."""
    distinct = sorted(set(pairs))
    names = sorted({name for _, name in distinct})
    number = {name: i for i, name in enumerate(names)}
    nodes = np.array([node for node, _ in distinct], np.int64)
    if len(nodes) and (nodes.min() < 0 or nodes.max() >= count):
        raise ValueError(f"a name of variant offset {int(nodes.max())} of {count}")
    links = np.array([number[name] for _, name in distinct], np.uint32)
    order = np.lexsort((links, nodes))  # by node, then name
    starts = np.zeros(count + 1, np.uint64)
    np.cumsum(np.bincount(nodes, minlength=count), out=starts[1:])
    return starts, links[order], names


def is_current(path: Path | str) -> bool:
    """False for a variant index of an older layout (its build reads Kuzu instead)."""
    with open(path, "rb") as file:
        return file.read(len(MAGIC)) not in OLDER_MAGICS


class VariantIndex:
    """One partition's variant index, read on demand (the file is opened for each call); holds
    its table of contents and every FENCE-th key."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as file:
            head = file.read(_PREFIX)
            if len(head) != _PREFIX or head[: len(MAGIC)] != MAGIC:
                raise fail(self.path, "not a variant index (bad header); rebuild the graph")
            try:
                contents = json.loads(file.read(int.from_bytes(head[len(MAGIC) :], "little")))
                self.variants, self.edges = int(contents["variants"]), int(contents["edges"])
                self.symbols, self.file_names = list(contents["symbols"]), list(contents["files"])
                self.kinds: list[Kind] = [tuple(kind) for kind in contents["kinds"]]
                self._sections = {name: tuple(where) for name, where in contents["sections"].items()}
            except (ValueError, KeyError, TypeError) as error:
                raise fail(self.path, f"truncated or damaged variant index ({error}); rebuild the graph") from None
            self._data_at = _PREFIX + int.from_bytes(head[len(MAGIC) :], "little")
            end = max((at + n * np.dtype(dtype).itemsize for at, n, dtype in self._sections.values()), default=0)
            if os.fstat(file.fileno()).st_size < self._data_at + end:
                raise fail(self.path, "truncated variant index; rebuild the graph")
            self.fences = np.concatenate(
                [self._read(file, "keys", i, i + 1) for i in range(0, self.variants, FENCE)] or [np.zeros(0, np.uint64)]
            )
        #: the carrier values held (of "kinds", "dp", "gq")
        self.holds = {name for name in ("kinds", *CARRIER_INTS) if name in self._sections}

    def _read(self, file, section: str, begin: int, end: int) -> np.ndarray:
        """Elements [begin, end) of a section."""
        at, _, dtype = self._sections[section]
        size = np.dtype(dtype).itemsize
        file.seek(self._data_at + at + size * begin)
        return np.frombuffer(file.read(size * (end - begin)), dtype)

    def _span(self, file, starts: str, node: int) -> tuple[int, int]:
        begin, end = (int(x) for x in self._read(file, starts, node, node + 2))
        return begin, end

    def find(self, variant_ids: Sequence[str], first: int | None = None) -> dict[str, Found]:
        """The variants of these ids that the partition holds (others are left out), each with its
        first `first` carriers (all with None)."""
        found = {}
        with open(self.path, "rb") as file:
            for vid in variant_ids:
                node = self._node_of(file, vid)
                if node is not None:
                    begin, end = self._span(file, "starts", node)
                    take = end - begin if first is None else min(first, end - begin)
                    carriers = self._read(file, "carriers", begin, begin + take).astype(np.int64)
                    found[vid] = Found(carriers=end - begin, first=carriers, genes=self._genes(file, node))
        return found

    def record(self, variant_id: str, first: int | None = None) -> Record | None:
        """The variant whole (its first `first` carriers' genotypes, all with None), or None
        where the partition does not hold it. Needs the genotype kinds (`"kinds" in holds`)."""
        with open(self.path, "rb") as file:
            node = self._node_of(file, variant_id)
            if node is None:
                return None
            begin, end = self._span(file, "starts", node)
            take = end - begin if first is None else min(first, end - begin)
            kinds = self._read(file, "kinds", begin, end)
            counted = np.bincount(kinds, minlength=len(self.kinds))
            ints = {
                name: [None if v == NULL_INT else int(v) for v in self._read(file, name, begin, begin + take).tolist()]
                for name in CARRIER_INTS
                if name in self.holds
            }
            file_begin, file_end = self._span(file, "file_starts", node)
            note_begin, note_end = self._span(file, "annotation_starts", node)
            notes = self._read(file, "annotations", note_begin, note_end).tobytes()
            return Record(
                carriers=end - begin,
                first=self._read(file, "carriers", begin, begin + take).astype(np.int64),
                kinds=[self.kinds[k] for k in kinds[:take].tolist()],
                dp=ints.get("dp"),
                gq=ints.get("gq"),
                kind_counts=[(self.kinds[k], int(n)) for k, n in enumerate(counted.tolist()) if n],
                files=[self.file_names[i] for i in self._read(file, "file_links", file_begin, file_end).tolist()],
                annotations=json.loads(notes) if notes else [],
            )

    def _genes(self, file, node: int) -> list[str]:
        begin, end = self._span(file, "gene_starts", node)
        return [self.symbols[i] for i in self._read(file, "gene_links", begin, end).tolist()]

    def _node_of(self, file, variant_id: str) -> int | None:
        if not self.variants:
            return None
        wanted = key(variant_id)
        block = max(int(np.searchsorted(self.fences, np.uint64(wanted), side="right")) - 1, 0)
        # equal keys may straddle a fence: read from the fence before too
        start = max(block - 1, 0) * FENCE
        stop = min((block + 1) * FENCE, self.variants)
        keys = self._read(file, "keys", start, stop)
        at = start + int(np.searchsorted(keys, np.uint64(wanted)))
        encoded = variant_id.encode()
        while at < stop and int(keys[at - start]) == wanted:
            node = int(self._read(file, "key_nodes", at, at + 1)[0])
            begin, end = self._span(file, "id_starts", node)
            if self._read(file, "ids", begin, end).tobytes() == encoded:
                return node
            at += 1
        return None
