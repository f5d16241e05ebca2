"""Split a normalised BCF into regions ("shards") that later jobs convert independently.

A shard never crosses a contig and never splits one position, so every record
belongs to exactly one shard when shards are read with
`--regions-overlap pos` (records whose POS lies in the region).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vcf_agent.errors import fail
from vcf_agent.files import atomic_file
from vcf_agent.ingest.bcftools import bcftools, pipeline


@dataclass(frozen=True)
class Shard:
    shard: str
    chrom: str
    start: int
    end: int
    records: int
    samples: int

    def regions_line(self) -> str:
        """The shard as a line of a bcftools regions file (1-based, inclusive)."""
        return f"{self.chrom}\t{self.start}\t{self.end}\n"

    def region_options(self, regions_file: Path | str) -> list[str]:
        """bcftools options selecting the records whose POS lies in the shard (`regions_line` in the file).

        htslib's index cannot reach a record at POS 0 (a telomere, VCF 4.1-4.4): a shard
        holding one (start 0) streams the whole BCF through a targets filter instead.
        """
        if self.start < 1:
            return ["-T", str(regions_file), "--targets-overlap", "pos"]
        return ["-R", str(regions_file), "--regions-overlap", "pos"]


@dataclass(frozen=True)
class ShardSize:
    """How big a shard is: at most `records` records, or windows of `bp` base pairs."""

    records: int | None = None
    bp: int | None = None

    def __post_init__(self) -> None:
        if (self.records is None) == (self.bp is None):
            raise fail("config", "shard must set exactly one of 'records' or 'bp'")
        if (self.records or self.bp) < 1:
            raise fail("config", "shard size must be a positive number")

    @classmethod
    def from_config(cls, config: dict) -> ShardSize:
        return cls(records=config.get("records"), bp=config.get("bp"))


def plan_shards(bcf: Path | str, size: ShardSize, samples: int) -> list[Shard]:
    """Walk the positions of `bcf` once (sites only, fast on BCF) and cut it into shards."""
    cutter = _RecordCutter(size.records) if size.records else _WindowCutter(size.bp)
    shards = []
    for chrom, start, end, records in cutter.cut(_positions(bcf)):
        shards.append(Shard(f"{len(shards) + 1:05d}", chrom, start, end, records, samples))
    return shards


def _positions(bcf: Path | str) -> Iterator[tuple[str, int]]:
    with pipeline([bcftools("query", "-f", "%CHROM\\t%POS\\n", bcf)], subject=bcf) as pipe:
        for line in pipe.stdout:
            chrom, pos = line.rstrip(b"\n").split(b"\t")
            yield chrom.decode(), int(pos)


class _RecordCutter:
    """Close a shard once it holds `limit` records and the position changes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def cut(self, positions: Iterator[tuple[str, int]]) -> Iterator[tuple[str, int, int, int]]:
        chrom, start, last, count = None, 0, 0, 0
        for contig, pos in positions:
            if contig != chrom or (count >= self.limit and pos != last):
                if chrom is not None:
                    yield chrom, start, last, count
                chrom, start, count = contig, pos, 0
            last = pos
            count += 1
        if chrom is not None:
            yield chrom, start, last, count


class _WindowCutter:
    """Fixed windows of `bp` base pairs per contig; empty windows make no shard."""

    def __init__(self, bp: int) -> None:
        self.bp = bp

    def cut(self, positions: Iterator[tuple[str, int]]) -> Iterator[tuple[str, int, int, int]]:
        current, count, telomere = None, 0, False
        for contig, pos in positions:
            window = (contig, max(pos - 1, 0) // self.bp)  # POS 0 (a telomere) joins the first window
            if window != current:
                if current is not None:
                    yield self._region(current, count, telomere)
                current, count, telomere = window, 0, False
            count += 1
            telomere = telomere or pos == 0
        if current is not None:
            yield self._region(current, count, telomere)

    def _region(self, window: tuple[str, int], count: int, telomere: bool) -> tuple[str, int, int, int]:
        contig, index = window
        return contig, 0 if telomere else index * self.bp + 1, (index + 1) * self.bp, count


_COLUMNS = [f.name for f in fields(Shard)]


def write_plan(shards: list[Shard], path: Path | str) -> None:
    with atomic_file(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(asdict(s) for s in shards)


def read_plan(path: Path | str) -> list[Shard]:
    with Path(path).open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [
            Shard(r["shard"], r["chrom"], int(r["start"]), int(r["end"]), int(r["records"]), int(r["samples"]))
            for r in rows
        ]


def find_shard(plan: list[Shard], shard_id: str) -> Shard:
    for shard in plan:
        if shard.shard == shard_id:
            return shard
    raise fail("shard plan", f"no shard {shard_id!r}")
