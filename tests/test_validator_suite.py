"""Every file of EBI's vcf-validator suite through the whole chain (check -> normalise -> Parquet).

`passed/` files are valid: each is accepted with the records and carriers bcftools
counts, unless bcftools 1.16 itself cannot read it or cannot split its records
(`_limit`, found by running bcftools on the file; blank lines, records at POS 0 and
unsorted records are no excuse). `failed/` files are invalid: each is refused with one
line naming the file, or accepted with every stored value as bcftools reads it and
no value that htslib would have misread (found from the file's text, not from us).
The files run on a pool of two processes, bcftools' view of each included.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.ingest.pipeline import convert_vcf

from helpers import data_file, query

pytestmark = pytest.mark.slow  # every file of the validator suite through the whole chain

SUITE = data_file("invalid/vcf-validator")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$", re.IGNORECASE)


def test_valid_files_are_accepted_with_bcftools_counts():
    problems = _run_suite(sorted(SUITE.glob("v4.*/passed/*.vcf")))
    assert not problems, "\n".join(problems)


def test_invalid_files_are_refused_in_one_line_or_kept_unchanged():
    problems = _run_suite(sorted(SUITE.glob("v4.*/failed/*.vcf")))
    assert not problems, "\n".join(problems)


def _run_suite(files: list[Path]) -> list[str]:
    assert len(files) > 100
    with ProcessPoolExecutor(2) as pool:
        return [problem for problems in pool.map(_check_file, files, chunksize=8) for problem in problems]


def _check_file(vcf: Path) -> list[str]:
    """What is wrong with how the chain treated `vcf` (nothing when it did right)."""
    name = str(vcf.relative_to(SUITE))
    valid = vcf.parent.name == "passed"
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        try:
            converted = convert_vcf(vcf, work / "chain", source=vcf.stem)
        except VcfAgentError as error:
            message = str(error)
            if "\n" in message or not message.startswith(f"{vcf}: "):
                return [f"{name}: the refusal is not one line naming the file: {message!r}"]
            limit = _limit(vcf)
            if valid and limit is None:
                return [f"{name}: valid file refused: {message}"]
            return []
        except Exception as error:  # any other exception is the failure reported
            return [f"{name}: {type(error).__name__} instead of a one-line refusal: {error}"]
        if valid and _bcftools_fails(vcf):
            return [f"{name}: accepted although bcftools cannot read it"]
        try:
            return _compare(name, vcf, converted.parquet, work) + ([] if valid else _misread_values(name, vcf))
        except AssertionError as error:
            return [str(error)]


def _limit(vcf: Path) -> str | None:
    """Why a valid file may be refused, from bcftools alone."""
    if _bcftools_fails(vcf):
        return "bcftools cannot read it"
    with tempfile.TemporaryDirectory() as work:
        declared = Path(work) / "declared.vcf"
        declared.write_text(_declared_text(vcf))
        norm = subprocess.run(
            ["bcftools", "norm", "-m", "-any", "-Ov", "-o", "/dev/null", declared], capture_output=True
        )
    if norm.returncode != 0:
        return "bcftools norm 1.16 cannot split its records"
    return None


def _bcftools_fails(vcf: Path) -> bool:
    """Whether bcftools cannot read the file, its blank lines left out (htslib reads one as a broken record)."""
    text = b"".join(line + b"\n" for line in vcf.read_bytes().split(b"\n") if line.rstrip(b"\r"))
    view = subprocess.run(["bcftools", "view", "-Ov", "-o", "/dev/null", "-"], input=text, capture_output=True)
    return view.returncode != 0


def _records(vcf: Path) -> list[tuple[int, list[str]]]:
    lines = vcf.read_text(errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    numbered = enumerate(lines, 1)
    return [(n, line.rstrip("\r").split("\t")) for n, line in numbered if line.rstrip("\r") and line[0] != "#"]


def _compare(name: str, vcf: Path, parquet: dict[str, list[Path]], work: Path) -> list[str]:
    """Stored sites and carriers against bcftools' own reading of the split records."""
    split = _bcftools_split(vcf, work)
    sites = _bcftools_rows(split, [], "%CHROM\t%POS\t%REF\t%ALT\t%QUAL\t%END\n")
    expected_sites = Counter(_typed_site(*row) for row in sites)
    ours = Counter(
        _typed_site(*row) for row in _stored('SELECT chrom, pos, ref, alt, qual, "end" FROM {variants}', parquet)
    )
    problems = []
    if ours != expected_sites:
        problems.append(f"{name}: stored sites differ from bcftools': {_difference(ours, expected_sites)}")
    has_gt = "##FORMAT=<ID=GT," in split.read_text()
    carriers = _bcftools_rows(split, ["-i", 'GT="alt"'], "[%CHROM\t%POS\t%REF\t%ALT\t%SAMPLE\t%GT\n]") if has_gt else []
    # bcftools 1.16 does not count half-missing calls (./1) as alt; we keep them: compare the others.
    expected = Counter(tuple(row) for row in carriers if "." not in row[5])
    ours = _stored(
        "SELECT v.chrom, v.pos, v.ref, v.alt, g.sample, g.gt FROM {genotypes} AS g"
        " JOIN {variants} AS v USING (variant_id) WHERE NOT contains(g.gt, '.')",
        parquet,
    )
    ours = Counter(tuple(str(value) for value in row) for row in ours)
    if ours != expected:
        problems.append(f"{name}: stored carriers differ from bcftools': {_difference(ours, expected)}")
    return problems


def _bcftools_split(vcf: Path, work: Path) -> Path:
    """`bcftools norm -m -any` of `vcf`, the names its records use undeclared declared first (norm needs them)."""
    source, split = work / "declared.vcf", work / "split.vcf"
    source.write_text(_declared_text(vcf))
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ov", "-o", split, source], capture_output=True)
    assert norm.returncode == 0, f"{vcf}: accepted, but bcftools norm cannot read it: {norm.stderr[-300:]!r}"
    return split


def _declared_text(vcf: Path) -> str:
    """The file's records under its header with a line for each contig, FILTER, INFO and FORMAT they use undeclared.

    Undeclared names are read as htslib assumes them (String; GT and END keep their meaning).
    """
    # The header as htslib reads it: it drops lines it cannot parse (##contig=<ID=1,A,...>).
    header = subprocess.run(["bcftools", "view", "-h", "--no-version", vcf], capture_output=True, check=True)
    text = header.stdout.decode(errors="replace")
    text += "".join(line + "\n" for line in vcf.read_text(errors="replace").split("\n") if line and line[0] != "#")
    declared = set(re.findall(r"^##(contig|FILTER|INFO|FORMAT)=<ID=([^,>]+)", text, re.MULTILINE))
    used: dict[tuple[str, str], None] = {}
    for _, fields in _records(vcf):
        if len(fields) < 8:
            continue
        used[("contig", fields[0])] = None
        used.update(dict.fromkeys(("FILTER", f) for f in fields[6].split(";") if f not in (".", "PASS")))
        used.update(dict.fromkeys(("INFO", e.split("=")[0]) for e in fields[7].split(";") if e != "."))
        if len(fields) > 8:
            used.update(dict.fromkeys(("FORMAT", f) for f in fields[8].split(":")))
    lines = [_declaration(kind, name) for kind, name in used if (kind, name) not in declared]
    return text.replace("\n#CHROM", "".join(f"\n{line}" for line in lines) + "\n#CHROM", 1)


def _declaration(kind: str, name: str) -> str:
    if kind == "contig":
        return f"##contig=<ID={name}>"
    if kind == "FILTER":
        return f'##FILTER=<ID={name},Description="undeclared">'
    number, kind_of = ("1", "Integer") if (kind, name) == ("INFO", "END") else ("1" if name == "GT" else ".", "String")
    return f'##{kind}=<ID={name},Number={number},Type={kind_of},Description="undeclared">'


def _bcftools_rows(split: Path, options: list[str], fmt: str) -> list[list[str]]:
    listed = subprocess.run(["bcftools", "query", *options, "-f", fmt, split], capture_output=True)
    assert listed.returncode == 0, f"{split}: bcftools query failed: {listed.stderr.decode()[-300:]}"
    return [line.split("\t") for line in listed.stdout.decode().splitlines()]


def _typed_site(chrom, pos, ref, alt, qual, end) -> tuple:
    """A site as bcftools prints it or as stored, typed alike ('.' is missing, NaN equals NaN).

    The end of a symbolic allele is left out: pysam 0.24 (htslib 1.21) derives it from a
    VCF 4.4 SVLEN (<DEL> SVLEN=1 at 700 ends at 701), bcftools 1.16 does not (700).
    """
    qual = None if qual in (".", None) else float(qual)
    end = None if str(alt).startswith("<") else int(end)
    return chrom, int(pos), ref, alt, "nan" if qual is not None and math.isnan(qual) else qual, end


def _stored(sql: str, paths: dict[str, list[Path]]) -> list[tuple]:
    """Rows of `sql` over the Parquet files ({variants}, {genotypes}); none when no shard was written."""
    if not paths["variants"]:
        return []
    return query(sql.format(**{kind: f"read_parquet({[str(p) for p in files]!r})" for kind, files in paths.items()}))


def _difference(ours: Counter, expected: Counter) -> str:
    only_ours, only_bcftools = sorted((ours - expected).elements()), sorted((expected - ours).elements())
    return f"only ours {only_ours[:3]}, only bcftools {only_bcftools[:3]}"


def _misread_values(name: str, vcf: Path) -> list[str]:
    """Values of an accepted file that htslib reads as something else (it does so without a word)."""
    problems = []
    for number, fields in _records(vcf):
        where = f"{name}: accepted, but line {number}"
        if len(fields) < 8:
            continue
        if not fields[1].isdigit():
            problems.append(f"{where} has POS {fields[1]!r}")
        if fields[5] != "." and not _FLOAT.match(fields[5]):
            problems.append(f"{where} has QUAL {fields[5]!r}")
        ends = [e[4:] for e in fields[7].split(";") if e.startswith("END=")]
        if any(not re.fullmatch(r"-?\d+|\.", end) for end in ends):
            problems.append(f"{where} has INFO/END {ends}")
        problems += _genotypes_beyond_alts(where, fields)
    return problems


def _genotypes_beyond_alts(where: str, fields: list[str]) -> list[str]:
    if len(fields) < 10 or "GT" not in fields[8].split(":"):
        return []
    alts = len(fields[4].split(",")) if fields[4] != "." else 0
    position = fields[8].split(":").index("GT")
    for sample in fields[9:]:
        parts = sample.split(":")
        alleles = re.split(r"[/|]", parts[position]) if position < len(parts) else []
        if any(a.isdigit() and int(a) > alts for a in alleles):
            return [f"{where} has genotype {parts[position]!r} with {alts} ALT alleles"]
    return []
