"""A partition's per-sample index: each sample's zygosity counts and the variants it carries.

Why: a sample's counts and the variants two samples share need every partition of their
layers, and asking each partition's Kuzu database costs an open (~35 ms and ~30 MiB of
resident memory each) and a query (the zygosity aggregate 2-4 ms, the shared join 1-3 ms):
on the full-size benchmark chromosome (28 partitions) 100 ms for a sample's counts and
~200 ms for a shared count, with every database held open; on the genome's ~1,750
partitions seconds, with no bound on the server's memory but closing databases again.
This file beside each partition's database (rule load_kuzu_partition writes it from the
database it has just loaded) answers both with a few reads of the bytes a sample owns
(~6 KB per sample and partition of 1.4 k carried variants), without opening Kuzu.

Layout (little-endian), for a partition whose Sample nodes are its layer's samples in order:

    8 bytes   MAGIC
    3 uint64  samples, count fields (len(COUNT_FIELDS)), carrier genotypes (edges)
    uint32    counts[samples][count fields]   Counts of the sample's genotypes (COUNT_FIELDS order)
    uint64    starts[samples + 1]             where each sample's variants begin in `variants`
    uint32    variants[edges]                 each sample's variants (Variant node offsets), ascending

Reads use plain file reads, not a memory map: mapped pages would stay in the server's
resident memory, and a server asked about every sample would come to hold the whole file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vcf_agent.errors import fail

MAGIC = b"VCFASIX1"
#: The Counts fields stored per sample (vcf_agent.query.results.Counts), in this order.
COUNT_FIELDS = ("carriers", "het", "hom_alt", "hemizygous", "partial", "phased")
SUFFIX = ".samples"
_HEADER = len(MAGIC) + 3 * 8


def index_path(graph: Path | str) -> Path:
    """The sample index of the partition database `graph` (pNNNNN.kuzu -> pNNNNN.samples)."""
    return Path(graph).with_suffix(SUFFIX)


def write_index(path: Path | str, counts: np.ndarray, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the index: `counts` (samples x COUNT_FIELDS), then the (sample offset, variant offset)
    pairs of every carrier genotype, in chunks of ascending, non-overlapping sample ranges.

    The pairs must number counts' carriers per sample (each genotype once): a mismatch fails
    here rather than give wrong answers later. Written to a temporary name, then renamed.
    """
    path = Path(path)
    counts = np.ascontiguousarray(counts, dtype=np.uint32)
    samples, fields = counts.shape
    if fields != len(COUNT_FIELDS):
        raise fail(path, f"{fields} count fields, expected {len(COUNT_FIELDS)}")
    per_sample = counts[:, 0].astype(np.uint64)
    starts = np.zeros(samples + 1, np.uint64)
    np.cumsum(per_sample, out=starts[1:])
    scratch = path.with_name(f".{path.name}-{os.getpid()}")
    try:
        with open(scratch, "wb") as out:
            out.write(MAGIC)
            np.array([samples, fields, int(starts[-1])], np.uint64).tofile(out)
            counts.tofile(out)
            starts.tofile(out)
            written = np.zeros(samples, np.uint64)
            for sample_at, variant_at in chunks:
                order = np.lexsort((variant_at, sample_at))
                sample_at, variant_at = sample_at[order], variant_at[order]
                if len(sample_at) and (sample_at[0] < 0 or sample_at[-1] >= samples):
                    raise fail(path, f"a genotype of sample offset {int(sample_at[-1])} of {samples} samples")
                if len(sample_at) and written[int(sample_at[0]) :].any():
                    raise fail(path, "genotype chunks out of sample order")
                written += np.bincount(sample_at, minlength=samples).astype(np.uint64)
                variant_at.astype(np.uint32).tofile(out)
            if not np.array_equal(written, per_sample):
                at = int(np.flatnonzero(written != per_sample)[0])
                raise fail(path, f"sample offset {at}: {int(written[at])} genotypes, counted {int(per_sample[at])}")
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


class SampleIndex:
    """One partition's index, read on demand (the file is opened for each call)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as file:
            head = file.read(_HEADER)
        if len(head) != _HEADER or head[: len(MAGIC)] != MAGIC:
            raise fail(self.path, "not a sample index (bad header); rebuild the graph")
        self.samples, fields, self.edges = (int(x) for x in np.frombuffer(head[len(MAGIC) :], np.uint64))
        if fields != len(COUNT_FIELDS):
            raise fail(self.path, f"{fields} count fields, expected {len(COUNT_FIELDS)}; rebuild the graph")
        self._counts_at = _HEADER
        self._starts_at = self._counts_at + 4 * self.samples * fields
        self._variants_at = self._starts_at + 8 * (self.samples + 1)

    def counts(self, samples: Sequence[int]) -> np.ndarray:
        """The count fields (COUNT_FIELDS order) of these sample offsets, added up."""
        total = np.zeros(len(COUNT_FIELDS), np.int64)
        fields = len(COUNT_FIELDS)
        with open(self.path, "rb") as file:
            for sample in samples:
                file.seek(self._counts_at + 4 * fields * self._check(sample))
                total += np.frombuffer(file.read(4 * fields), np.uint32)
        return total

    def all_counts(self) -> np.ndarray:
        """The count fields of every sample (samples x COUNT_FIELDS), in offset order."""
        with open(self.path, "rb") as file:
            file.seek(self._counts_at)
            block = file.read(4 * self.samples * len(COUNT_FIELDS))
        return np.frombuffer(block, np.uint32).reshape(self.samples, len(COUNT_FIELDS)).astype(np.int64)

    def carried(self, sample: int) -> np.ndarray:
        """The Variant node offsets the sample at this offset carries, ascending."""
        with open(self.path, "rb") as file:
            return self._carried(file, self._check(sample))

    def shared(self, samples: Sequence[int]) -> np.ndarray:
        """The Variant node offsets every one of these samples carries, ascending."""
        with open(self.path, "rb") as file:
            lists = sorted((self._carried(file, self._check(s)) for s in samples), key=len)
        common = lists[0]
        for other in lists[1:]:
            if not len(common):
                break
            common = np.intersect1d(common, other, assume_unique=True)
        return common

    def _carried(self, file, sample: int) -> np.ndarray:
        file.seek(self._starts_at + 8 * sample)
        start, end = (int(x) for x in np.frombuffer(file.read(16), np.uint64))
        file.seek(self._variants_at + 4 * start)
        return np.frombuffer(file.read(4 * (end - start)), np.uint32)

    def _check(self, sample: int) -> int:
        if not 0 <= sample < self.samples:
            raise fail(self.path, f"sample offset {sample} outside its {self.samples} samples")
        return int(sample)
