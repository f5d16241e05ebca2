"""Normalise one input: split multiallelics, left-align, tag duplicate records, write an indexed BCF.

The input streams once through

    bcftools view -Ou IN  |  bcftools norm -m -any [-f REF -c POLICY] -Ou -  |  pysam

`bcftools view` fails on a cut BGZF stream or a broken record (norm 1.16 alone
exits 0 and silently drops the rest), and the pysam stage tags the 2nd, 3rd,
... record carrying the same CHROM:POS:REF:ALT (so every record gets its own
variant_id), checks the order and counts records per contig. When the header
lacks ##contig lines the body is scanned for contig names first and the
header is completed, because bcftools cannot read back BCF it wrote otherwise.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import pysam

from vcf_agent.errors import fail
from vcf_agent.files import atomic_path, write_json
from vcf_agent.inputs import check_reference, check_vcf, fai_lengths
from vcf_agent.process import MissingContigsError, bcftools, pipeline, run
from vcf_agent.schema import DUPLICATE_TAG

REF_CHECK_POLICIES = {"error": "e", "warn": "w", "exclude": "x", "set": "s"}

_NORM_LINES = re.compile(r"Lines\s+total/split/realigned/skipped:\s*(\d+)/(\d+)/(\d+)/(\d+)")
_REF_MISMATCH = re.compile(r"^(REF_MISMATCH|Reference allele mismatch)", re.MULTILINE)


@dataclass
class NormalizeStats:
    source: str
    input: str
    samples: int
    records_in: int = 0
    records_out: int = 0
    split: int = 0
    realigned: int = 0
    skipped: int = 0
    ref_mismatches: int = 0
    duplicate_records: int = 0
    contigs_added: list[str] = field(default_factory=list)
    records_per_contig: dict[str, int] = field(default_factory=dict)

    def write(self, path: Path | str) -> None:
        write_json(asdict(self), path)


def normalize_vcf(
    input_path: Path | str,
    output_bcf: Path | str,
    *,
    source: str,
    reference: Path | str | None = None,
    ref_check: str = "error",
    threads: int = 1,
) -> NormalizeStats:
    """Write `output_bcf` from `input_path`; return what happened. Index it with `index_bcf`."""
    input_path, output_bcf = Path(input_path), Path(output_bcf)
    if ref_check not in REF_CHECK_POLICIES:
        raise fail("config", f"ref_check must be one of {', '.join(REF_CHECK_POLICIES)}, not {ref_check!r}")
    report, header = check_vcf(input_path, source)
    if reference:
        check_reference(reference)
    stats = NormalizeStats(source=source, input=str(input_path), samples=report.samples)
    missing = [] if header.contigs else _body_contigs(input_path)
    try:
        _normalize_once(input_path, output_bcf, stats, reference, ref_check, threads, missing)
    except MissingContigsError as error:
        if missing:
            raise
        _normalize_once(input_path, output_bcf, stats, reference, ref_check, threads, error.contigs)
    return stats


def _normalize_once(
    input_path: Path,
    output_bcf: Path,
    stats: NormalizeStats,
    reference: Path | str | None,
    ref_check: str,
    threads: int,
    missing_contigs: list[str],
) -> None:
    tmp_bcf = atomic_path(output_bcf)
    with tempfile.TemporaryDirectory(prefix="vcf-agent-norm-") as scratch:
        commands = _read_commands(input_path, missing_contigs, reference, Path(scratch), threads)
        commands.append(_norm_command(reference, ref_check))
        try:
            fixed_after = 1 if missing_contigs else 0
            with pipeline(commands, subject=input_path, header_fixed_after=fixed_after) as pipe:
                walker = _tag_and_write(pipe.stdout, tmp_bcf, threads, input_path)
            norm_stderr = pipe.stderr_of(len(commands) - 1)
        except BaseException:
            tmp_bcf.unlink(missing_ok=True)
            raise
    _fill_stats(stats, norm_stderr, walker, missing_contigs)
    tmp_bcf.replace(output_bcf)


def _read_commands(
    input_path: Path, missing_contigs: list[str], reference, scratch: Path, threads: int
) -> list[list[str]]:
    if not missing_contigs:
        return [bcftools("view", "--no-version", "--threads", threads, "-Ou", input_path)]
    header_file = scratch / "header.vcf"
    header_file.write_text(_header_with_contigs(input_path, missing_contigs, reference))
    return [bcftools("view", "--no-version", "-H", input_path), ["cat", str(header_file), "-"]]


def _norm_command(reference, ref_check: str) -> list[str]:
    args = ["norm", "--no-version", "-m", "-any"]
    if reference:
        args += ["-f", reference, "-c", REF_CHECK_POLICIES[ref_check]]
    return bcftools(*args, "-Ou", "-")


def _body_contigs(input_path: Path) -> list[str]:
    """Contig names in order of appearance (one streaming pass over CHROM only)."""
    seen: dict[str, None] = {}
    query = bcftools("query", "-f", "%CHROM\\n", input_path)
    with pipeline([query], subject=input_path, header_fixed_after=1) as pipe:
        previous = None
        for line in pipe.stdout:
            if line != previous:
                seen.setdefault(line.decode().rstrip("\n"))
                previous = line
    return list(seen)


def _header_with_contigs(input_path: Path, contigs: list[str], reference) -> str:
    lengths = fai_lengths(reference) if reference else {}
    text = run(bcftools("view", "--no-version", "-h", input_path), subject=input_path)
    lines = text.rstrip("\n").split("\n")
    contig_lines = [
        f"##contig=<ID={name},length={lengths[name]}>" if name in lengths else f"##contig=<ID={name}>"
        for name in contigs
    ]
    return "\n".join(lines[:-1] + contig_lines + lines[-1:]) + "\n"


class _RecordWalker:
    """Follows the record stream: sort order, records per contig, duplicate ordinals."""

    def __init__(self, input_path: Path) -> None:
        self.input_path = input_path
        self.counts: Counter[str] = Counter()
        self.duplicates = 0
        self._finished: set[int] = set()
        self._rid, self._pos = -1, -1
        self._alleles_here: Counter[tuple[str, str]] = Counter()

    def duplicate_ordinal(self, record) -> int:
        """1 for the first record with its CHROM:POS:REF:ALT, 2 for the next one, ..."""
        self._check_order(record)
        self.counts[record.chrom] += 1
        key = (record.ref, record.alts[0] if record.alts else ".")
        self._alleles_here[key] += 1
        ordinal = self._alleles_here[key]
        self.duplicates += ordinal > 1
        return ordinal

    def _check_order(self, record) -> None:
        if record.rid != self._rid:
            if record.rid in self._finished:
                self._unsorted(f"{record.chrom} appears again at {record.chrom}:{record.pos}")
            self._finished.add(self._rid)
            self._rid, self._pos = record.rid, -1
        if record.pos != self._pos:
            if record.pos < self._pos:
                self._unsorted(f"{record.chrom}:{record.pos} follows position {self._pos}")
            self._pos = record.pos
            self._alleles_here.clear()

    def _unsorted(self, where: str) -> None:
        raise fail(self.input_path, f"records are not sorted: {where} (sort with bcftools sort)")


def _tag_and_write(stream: IO[bytes], tmp_bcf: Path, threads: int, input_path: Path) -> _RecordWalker:
    """Copy records to BCF, tagging repeated alleles at one position; check the sort order."""
    reader = pysam.VariantFile(stream)
    header = reader.header.copy()
    header.add_line(
        f'##INFO=<ID={DUPLICATE_TAG},Number=1,Type=Integer,Description="vcf-agent: ordinal of '
        'this record among records with the same CHROM, POS, REF and ALT">'
    )
    walker = _RecordWalker(input_path)
    with pysam.VariantFile(str(tmp_bcf), "wb", header=header, threads=threads) as writer:
        for record in reader:
            ordinal = walker.duplicate_ordinal(record)
            if ordinal > 1:
                # Only records we modify need the extended header; the others share its prefix.
                record.translate(header)
                record.info[DUPLICATE_TAG] = ordinal
            writer.write(record)
    return walker


def _fill_stats(stats: NormalizeStats, norm_stderr: str, walker: _RecordWalker, added: list[str]) -> None:
    match = _NORM_LINES.search(norm_stderr)
    if match is None:
        raise fail(stats.input, "bcftools norm did not report its line counts; its output cannot be trusted")
    stats.records_in, stats.split, stats.realigned, stats.skipped = map(int, match.groups())
    stats.ref_mismatches = len(_REF_MISMATCH.findall(norm_stderr))
    stats.records_out = sum(walker.counts.values())
    stats.records_per_contig = dict(walker.counts)
    stats.duplicate_records = walker.duplicates
    stats.contigs_added = list(added)


def index_bcf(bcf: Path | str, threads: int = 1) -> Path:
    """Write the CSI index beside `bcf` (shards are read by region)."""
    index = Path(f"{bcf}.csi")
    tmp = atomic_path(index)
    try:
        run(bcftools("index", "--csi", "--threads", threads, "-f", "-o", tmp, bcf), subject=bcf)
        tmp.replace(index)
    finally:
        tmp.unlink(missing_ok=True)
    return index
