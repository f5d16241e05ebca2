"""A partition's per-variant index: each variant's carriers and annotated genes, by variant id.

Why: search and similar give each hit its carrier count, first carriers and genes, and a
region each variant's carrier count. Asked of Kuzu, a hit's partition must be open: ~30 MiB
of resident memory and 20-40 ms to open, per partition, so a server either holds every
partition of the store open (the full-size benchmark chromosome's 28: ~1.2 GB; the genome's
~1,750 cannot be) or reopens them for nearly every search (its hits lie in ~8 partitions).
This file beside each partition's database (rule load_kuzu_partition writes it from the
database it has just loaded, with the sample index, vcf_agent.stores.sample_index) answers
those questions with a few file reads, without opening Kuzu, so the server can keep few
partitions open: only `variant` (its genotypes, files, annotations) and the walks of the
sample and shared pages still need them.

Layout (little-endian), for a partition of `variants` Variant nodes:

    8 bytes   MAGIC
    5 uint64  variants, carrier genotypes (edges), gene symbols, gene links, id bytes
    uint64    keys[variants]                 KEY of each variant id, ascending
    uint32    key_nodes[variants]            the Variant node offset of each key
    uint64    id_starts[variants + 1]        where each node's variant id begins in `ids`
    bytes     ids[id bytes]                  the variant ids (UTF-8), by node offset
    uint64    starts[variants + 1]           where each node's carriers begin in `carriers`
    uint32    carriers[edges]                each node's carriers (Sample node offsets), ascending
    uint64    gene_starts[variants + 1]      where each node's genes begin in `gene_links`
    uint32    gene_links[gene links]         each node's distinct genes (symbol numbers), by symbol
    uint64    symbol_starts[gene symbols + 1]
    bytes     symbols                        the gene symbols (UTF-8), ascending

A look-up hashes the id (KEY), finds it among the keys through a sparse copy of every
FENCE-th key held in memory (a few KB per partition) and one read of the keys between two
fences, and compares the stored id, so a hash collision can never answer for another
variant. Reads use plain file reads, as the sample index does (mapped pages would stay in
the server's resident memory).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcf_agent.errors import fail

MAGIC = b"VCFAVIX1"
SUFFIX = ".variants"
#: Keys per fence: a look-up reads at most this many keys (8 bytes each) between two fences.
FENCE = 512
_HEADER = len(MAGIC) + 5 * 8


def variant_index_path(graph: Path | str) -> Path:
    """The variant index of the partition database `graph` (pNNNNN.kuzu -> pNNNNN.variants)."""
    return Path(graph).with_suffix(SUFFIX)


def key(variant_id: str) -> int:
    """The 64-bit key of a variant id (stable across processes and machines, unlike hash())."""
    return int.from_bytes(hashlib.blake2b(variant_id.encode(), digest_size=8).digest(), "little")


class CarrierLists:
    """Each Variant node's carriers, filled from (sample, variant) pairs that come in ascending,
    non-overlapping sample ranges (the sample index's order), so that no second pass over the
    edges is needed: `per_variant` (carrier genotypes per node offset) fixes where each list starts.
    Holds 4 bytes per edge (~15 MiB for a 4 M-edge partition)."""

    def __init__(self, per_variant: np.ndarray) -> None:
        self.per_variant = np.asarray(per_variant, np.uint64)
        self.starts = np.zeros(len(self.per_variant) + 1, np.uint64)
        np.cumsum(self.per_variant, out=self.starts[1:])
        self.carriers = np.zeros(int(self.starts[-1]), np.uint32)
        self.filled = np.zeros(len(self.per_variant), np.uint64)
        self._next_sample = 0

    def tee(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The chunks unchanged, each also added here."""
        for sample_at, variant_at in chunks:
            self.add(sample_at, variant_at)
            yield sample_at, variant_at

    def add(self, sample_at: np.ndarray, variant_at: np.ndarray) -> None:
        if not len(sample_at):
            return
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


def write_variant_index(
    path: Path | str,
    variant_ids: Sequence[str],
    carriers: CarrierLists,
    genes: Iterable[tuple[int, str]],
) -> None:
    """Write the index: `variant_ids` by node offset, every node's `carriers` (complete) and the
    (node offset, gene symbol) pairs of its annotations. Written to a temporary name, then renamed."""
    path = Path(path)
    count = len(variant_ids)
    if len(carriers.per_variant) != count:
        raise fail(path, f"carriers of {len(carriers.per_variant)} variants for {count} variant ids")
    if not carriers.complete():
        at = int(np.flatnonzero(carriers.filled != carriers.per_variant)[0])
        raise fail(path, f"variant offset {at}: {int(carriers.filled[at])} carriers of {int(carriers.per_variant[at])}")
    keys = np.fromiter((key(vid) for vid in variant_ids), np.uint64, count)
    key_order = np.argsort(keys, kind="stable")
    sorted_keys = keys[key_order]
    encoded = [vid.encode() for vid in variant_ids]
    id_starts = np.zeros(count + 1, np.uint64)
    np.cumsum([len(b) for b in encoded], out=id_starts[1:])
    gene_nodes, gene_links, symbols = _gene_links(genes, count)
    gene_starts = np.zeros(count + 1, np.uint64)
    np.cumsum(np.bincount(gene_nodes, minlength=count), out=gene_starts[1:])
    symbol_bytes = [s.encode() for s in symbols]
    symbol_starts = np.zeros(len(symbols) + 1, np.uint64)
    np.cumsum([len(b) for b in symbol_bytes], out=symbol_starts[1:])
    header = [count, len(carriers.carriers), len(symbols), len(gene_links), int(id_starts[-1])]
    scratch = path.with_name(f".{path.name}-{os.getpid()}")
    try:
        with open(scratch, "wb") as out:
            out.write(MAGIC)
            np.array(header, np.uint64).tofile(out)
            sorted_keys.tofile(out)
            key_order.astype(np.uint32).tofile(out)
            id_starts.tofile(out)
            out.write(b"".join(encoded))
            carriers.starts.tofile(out)
            carriers.carriers.tofile(out)
            gene_starts.tofile(out)
            gene_links.tofile(out)
            symbol_starts.tofile(out)
            out.write(b"".join(symbol_bytes))
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _gene_links(genes: Iterable[tuple[int, str]], count: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(node offsets, symbol numbers) of the distinct (node, gene) pairs, by node then symbol, and the symbols."""
    pairs = sorted(set(genes))
    symbols = sorted({gene for _, gene in pairs})
    number = {gene: i for i, gene in enumerate(symbols)}
    nodes = np.array([node for node, _ in pairs], np.int64)
    if len(nodes) and (nodes.min() < 0 or nodes.max() >= count):
        raise ValueError(f"a gene of variant offset {int(nodes.max())} of {count}")
    links = np.array([number[gene] for _, gene in pairs], np.uint32)
    order = np.lexsort((links, nodes))  # by node, then symbol
    return nodes[order], links[order], symbols


class VariantIndex:
    """One partition's variant index, read on demand (the file is opened for each call); holds
    its header, every FENCE-th key and the gene symbols."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as file:
            head = file.read(_HEADER)
            if len(head) != _HEADER or head[: len(MAGIC)] != MAGIC:
                raise fail(self.path, "not a variant index (bad header); rebuild the graph")
            self.variants, self.edges, symbols, links, id_bytes = (
                int(x) for x in np.frombuffer(head[len(MAGIC) :], np.uint64)
            )
            n = self.variants
            self._keys_at = _HEADER
            self._nodes_at = self._keys_at + 8 * n
            self._id_starts_at = self._nodes_at + 4 * n
            self._ids_at = self._id_starts_at + 8 * (n + 1)
            self._starts_at = self._ids_at + id_bytes
            self._carriers_at = self._starts_at + 8 * (n + 1)
            self._gene_starts_at = self._carriers_at + 4 * self.edges
            self._links_at = self._gene_starts_at + 8 * (n + 1)
            symbol_starts_at = self._links_at + 4 * links
            file.seek(symbol_starts_at)
            starts = np.frombuffer(file.read(8 * (symbols + 1)), np.uint64)
            block = file.read(int(starts[-1]) if len(starts) else 0)
            self.fences = self._fences(file)
        if len(starts) != symbols + 1 or len(block) != (int(starts[-1]) if len(starts) else 0):
            raise fail(self.path, "truncated variant index; rebuild the graph")
        self.symbols = [block[int(a) : int(b)].decode() for a, b in itertools.pairwise(starts)]

    def _fences(self, file) -> np.ndarray:
        fences = np.zeros((self.variants + FENCE - 1) // FENCE, np.uint64)
        for i in range(len(fences)):
            file.seek(self._keys_at + 8 * i * FENCE)
            fences[i] = np.frombuffer(file.read(8), np.uint64)[0]
        return fences

    def find(self, variant_ids: Sequence[str], first: int | None = None) -> dict[str, Found]:
        """The variants of these ids that the partition holds (others are left out), each with its
        first `first` carriers (all with None)."""
        found = {}
        with open(self.path, "rb") as file:
            for vid in variant_ids:
                node = self._node_of(file, vid)
                if node is not None:
                    found[vid] = self._read(file, node, first)
        return found

    def _node_of(self, file, variant_id: str) -> int | None:
        if not self.variants:
            return None
        wanted = key(variant_id)
        block = max(int(np.searchsorted(self.fences, np.uint64(wanted), side="right")) - 1, 0)
        # equal keys may straddle a fence: read from the fence before too
        start = max(block - 1, 0) * FENCE
        stop = min((block + 1) * FENCE, self.variants)
        file.seek(self._keys_at + 8 * start)
        keys = np.frombuffer(file.read(8 * (stop - start)), np.uint64)
        at = start + int(np.searchsorted(keys, np.uint64(wanted)))
        encoded = variant_id.encode()
        while at < stop and int(keys[at - start]) == wanted:
            file.seek(self._nodes_at + 4 * at)
            node = int(np.frombuffer(file.read(4), np.uint32)[0])
            file.seek(self._id_starts_at + 8 * node)
            begin, end = (int(x) for x in np.frombuffer(file.read(16), np.uint64))
            file.seek(self._ids_at + begin)
            if file.read(end - begin) == encoded:
                return node
            at += 1
        return None

    def _read(self, file, node: int, first: int | None) -> Found:
        file.seek(self._starts_at + 8 * node)
        begin, end = (int(x) for x in np.frombuffer(file.read(16), np.uint64))
        take = end - begin if first is None else min(first, end - begin)
        file.seek(self._carriers_at + 4 * begin)
        carriers = np.frombuffer(file.read(4 * take), np.uint32).astype(np.int64)
        file.seek(self._gene_starts_at + 8 * node)
        gene_begin, gene_end = (int(x) for x in np.frombuffer(file.read(16), np.uint64))
        file.seek(self._links_at + 4 * gene_begin)
        links = np.frombuffer(file.read(4 * (gene_end - gene_begin)), np.uint32)
        return Found(carriers=end - begin, first=carriers, genes=[self.symbols[i] for i in links])
