"""Input checks: is this file a complete VCF/BCF that htslib can read, and is the reference usable?

These checks read only the start and the end of a file. Problems inside the
body (a broken record, a cut BGZF block) are caught while the file streams
through `bcftools view` in the normalize step, which fails on them.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from vcf_agent.errors import fail
from vcf_agent.ingest.header import VcfHeader, read_header

#: Every BGZF file written by htslib/bgzip ends with this empty block.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")

_IUPAC = set(b"ACGTUNRYSWKMBDHVacgtunryswkmbdhv-*.")


@dataclass(frozen=True)
class InputReport:
    source: str
    path: str
    container: str  # vcf, gzip-vcf, bgzf-vcf, bcf
    samples: int
    declared_contigs: int
    info_fields: int
    annotation: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def check_vcf(path: Path | str, source: str | None = None) -> tuple[InputReport, VcfHeader]:
    """Check that `path` is a readable, complete VCF/BCF with a valid header."""
    path = Path(path)
    _check_readable(path)
    container = _container(path)
    if container in ("bgzf-vcf", "bcf") and not _has_bgzf_eof(path):
        raise fail(path, "truncated file: the BGZF end-of-file marker is missing (was the copy cut short?)")
    header = read_header(path)
    report = InputReport(
        source=source or path.name,
        path=str(path),
        container=container,
        samples=len(header.samples),
        declared_contigs=len(header.contigs),
        info_fields=len(header.info),
        annotation=header.annotation.tag if header.annotation else None,
    )
    return report, header


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise fail(path, _broken_link(path) or "no such file")
    if not path.is_file():
        raise fail(path, "not a regular file")
    if not os.access(path, os.R_OK):
        raise fail(path, "permission denied")
    if path.stat().st_size == 0:
        raise fail(path, "the file is empty")


def _broken_link(path: Path | str) -> str | None:
    """Why a symbolic link leads nowhere ('a loop of symbolic links: a -> b -> a'), or None."""
    path, hops = Path(path), []
    while path.is_symlink() and path not in hops and len(hops) < 40:
        hops.append(path)
        path = path.parent / os.readlink(path)
    if not hops or path.exists():
        return None
    chain = " -> ".join(str(p) for p in [*hops, path])
    return f"a loop of symbolic links: {chain}" if path in hops else f"a broken symbolic link: {chain} does not exist"


def _container(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(18)
    if head[:2] != b"\x1f\x8b":
        return "bcf" if head[:3] == b"BCF" else "vcf"
    is_bgzf = len(head) >= 16 and head[3] & 4 and head[12:14] == b"BC"
    with gzip.open(path, "rb") as stream:
        try:
            magic = stream.read(5)
            inner = _inner_magic(stream) if magic[:2] == b"\x1f\x8b" else b""
        except (OSError, EOFError) as error:
            raise fail(path, f"corrupt compressed data ({error})") from error
    if magic[:2] == b"\x1f\x8b":
        # htslib undoes one layer only (and then fails with "Exec format error").
        what = {b"BCF": "a BCF", b"##f": "a VCF"}.get(inner, "a file")
        raise fail(path, f"compressed twice: {what} inside another layer of gzip, which htslib cannot read; gunzip it")
    if magic[:3] == b"BCF":
        if not is_bgzf:
            raise fail(path, "a BCF compressed with plain gzip, which htslib cannot read; gunzip it")
        return "bcf"
    return "bgzf-vcf" if is_bgzf else "gzip-vcf"


def _inner_magic(stream: gzip.GzipFile) -> bytes:
    """The first bytes under a second layer of gzip."""
    stream.seek(0)
    return gzip.GzipFile(fileobj=stream, mode="rb").read(3)


def _has_bgzf_eof(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
        return handle.read() == BGZF_EOF


def check_reference(fasta: Path | str) -> None:
    """Check the reference FASTA can be used by `bcftools norm -f` and holds real bases.

    htslib indexes a FASTA with spaces inside its sequence lines without a word
    and then returns wrong bases, so the start of the first sequence is checked
    for characters that are not IUPAC codes.
    """
    fasta = Path(fasta)
    _check_readable(fasta)
    if fasta.suffix in (".gz", ".bgz"):
        if not Path(f"{fasta}.gzi").exists() or not Path(f"{fasta}.fai").exists():
            raise fail(
                fasta, "a compressed reference must be bgzip-compressed with .fai and .gzi indexes (samtools faidx)"
            )
        return
    _check_sequence_characters(fasta)


def _check_sequence_characters(fasta: Path, sample_bytes: int = 1 << 20) -> None:
    with fasta.open("rb") as handle:
        sample = handle.read(sample_bytes)
    lines = sample.split(b"\n")
    if not lines or not lines[0].startswith(b">"):
        raise fail(fasta, "not a FASTA file (the first line does not start with '>')")
    complete = lines[:-1] if len(sample) == sample_bytes else lines
    for number, line in enumerate(complete, start=1):
        line = line.rstrip(b"\r")
        if line.startswith(b">") or not line:
            continue
        bad = set(line) - _IUPAC
        if bad:
            shown = bytes(sorted(bad))[:1].decode(errors="replace")
            raise fail(fasta, f"line {number}: {shown!r} is not a base; the sequence lines must hold bases only")


def fai_lengths(fasta: Path | str) -> dict[str, int]:
    """Contig lengths from the FASTA index (empty when there is none)."""
    fai = Path(f"{fasta}.fai")
    if not fai.exists():
        return {}
    lengths = {}
    for line in fai.read_text().splitlines():
        name, length, *_ = line.split("\t")
        lengths[name] = int(length)
    return lengths
