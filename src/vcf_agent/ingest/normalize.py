"""Normalise one input: split multiallelics, left-align, tag duplicate records, write an indexed BCF.

The input streams once through

    bcftools view -Ou IN  [| bcftools annotate -a ORIGINAL_ALLELES]
      |  bcftools norm -m -any [-f REF -c POLICY] -Ou -  |  pysam

`bcftools view` fails on a cut BGZF stream or a broken record (norm 1.16 alone
exits 0 and silently drops the rest), and the pysam stage tags the 2nd, 3rd,
... record carrying the same CHROM:POS:REF:ALT (so every record gets its own
variant_id), checks the order and counts records per contig. When the header
lacks ##contig lines the body is scanned for contig names first and the
header is completed, because bcftools cannot read back BCF it wrote otherwise.
When the header declares ANN or CSQ, a first pass lists the multiallelic
records, and `bcftools annotate` gives each its REF and ALTs as written
(schema.ORIGINAL_REF_TAG, ORIGINAL_ALT_TAG) before the split, so that the
annotations of an indel that norm trims still find their allele.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO

import pysam

from vcf_agent.errors import VcfAgentError, fail
from vcf_agent.files import atomic_file, write_json
from vcf_agent.ingest.bcftools import (
    Pipeline,
    Undeclared,
    UndeclaredError,
    bcftools,
    explain_stderr,
    has_htslib_error,
    pipeline,
    run,
)
from vcf_agent.ingest.inputs import check_reference, check_vcf, fai_lengths
from vcf_agent.ingest.raw_values import BlankLineFound, MisreadValueCheck, without_blank_lines
from vcf_agent.logs import log
from vcf_agent.schema import DUPLICATE_TAG, ORIGINAL_ALT_TAG, ORIGINAL_REF_TAG

REF_CHECK_POLICIES = {"error": "e", "warn": "w", "exclude": "x", "set": "s"}
#: What `bcftools sort` holds in memory before it spills to disk (the rule declares 800 MB).
SORT_MEMORY = "400M"
#: BGZF level of the normalised BCF, a working file that each shard reads once: level 1 writes
#: 2,504-sample records in 3.4 s of CPU where the default level 6 takes 8.5 (106,873 records),
#: for a file ~37 % larger (25.7 against 18.8 MB).
BCF_LEVEL = 1


class UnsortedRecords(VcfAgentError):
    """The records are out of order: normalize_vcf reads the input again through bcftools sort."""


#: Alleles made of bases (and '*'): the ones spelled in either case; symbolic alleles and
#: breakends name contigs, whose case matters.
_BASES = re.compile(r"^[ACGTNacgtn*]+$")
_NORM_LINES = re.compile(r"Lines\s+total/split/realigned/skipped:\s*(\d+)/(\d+)/(\d+)/(\d+)")
_REF_MISMATCH = re.compile(r"^(REF_MISMATCH|Reference allele mismatch)", re.MULTILINE)
#: `-c s` fixes REF without a line per record: it counts REFs swapped with an ALT, and REFs set.
_REF_FIXED = re.compile(r"REF/ALT\s+total/modified/added:\s*\d+/(\d+)/(\d+)")


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
    alleles_upper_cased: int = 0
    header_lines_added: str = ""
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
    options = _Options(
        reference,
        ref_check,
        threads,
        "END" in header.info,
        header.annotation is not None,
        header.samples,
        list(header.info),
        report.container,
    )
    while True:
        try:
            _normalize_checked(input_path, output_bcf, stats, options, bool(header.contigs))
            return stats
        except BlankLineFound:  # a valid file may end in a blank line: read it without them
            if options.reader:
                raise
            options = replace(options, reader=without_blank_lines(input_path, report.container))
        except UnsortedRecords:  # valid, though unindexable as it is: sort it on the way
            if options.sort:
                raise
            log.warning("%s: records are not sorted; sorting them with bcftools sort", input_path)
            options = replace(options, sort=True)
        stats = NormalizeStats(source=source, input=str(input_path), samples=report.samples)


def _normalize_checked(
    input_path: Path, output_bcf: Path, stats: NormalizeStats, options: _Options, declares_contigs: bool
) -> None:
    misread = MisreadValueCheck(input_path, options.container, blank_lines=not options.reader)
    try:
        _normalize_completing_header(input_path, output_bcf, stats, options, declares_contigs, misread)
    except VcfAgentError:
        misread.verify()  # a misread value explains a failure better than htslib does
        raise
    finally:
        misread.stop()


def _normalize_completing_header(
    input_path: Path,
    output_bcf: Path,
    stats: NormalizeStats,
    options: _Options,
    declares_contigs: bool,
    misread: MisreadValueCheck,
) -> None:
    # Without any ##contig line every record would fail: scan for what is missing at once.
    undeclared = Undeclared() if declares_contigs else _scan_undeclared(input_path, options)
    try:
        _normalize_once(input_path, output_bcf, stats, options, undeclared, misread)
    except UndeclaredError as error:
        if undeclared:
            raise
        undeclared = _scan_undeclared(input_path, options).merge(error.undeclared)
        _normalize_once(input_path, output_bcf, stats, options, undeclared, misread)


@dataclass(frozen=True)
class _Options:
    reference: Path | str | None
    ref_check: str
    threads: int
    declares_end: bool
    annotated: bool
    samples: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)
    container: str = "vcf"
    #: Commands printing the input's text for htslib to read from '-' (none: it reads the file).
    reader: list[list[str]] = field(default_factory=list)
    #: Sort the records after reading them (the input was found unsorted).
    sort: bool = False

    def source(self, input_path: Path) -> Path | str:
        return "-" if self.reader else input_path


def _normalize_once(
    input_path: Path,
    output_bcf: Path,
    stats: NormalizeStats,
    options: _Options,
    undeclared: Undeclared,
    misread: MisreadValueCheck,
) -> None:
    fixed_after = len(options.reader) + 1 if undeclared else 0
    with atomic_file(output_bcf) as tmp_bcf:
        with tempfile.TemporaryDirectory(prefix="vcf-agent-norm-") as scratch:
            commands = _read_commands(input_path, undeclared, options, Path(scratch))
            if options.annotated:
                listing = _multiallelic_listing(input_path, options, undeclared, commands)
                commands += _original_alleles(listing, Path(scratch), input_path, fixed_after)
            commands.append(_norm_command(options.reference, options.ref_check))
            commands.append(_declare_tags(Path(scratch), options.declares_end))
            with pipeline(commands, subject=input_path, header_fixed_after=fixed_after) as pipe:
                walker = _tag_and_write(pipe.stdout, tmp_bcf, options.threads, input_path)
            norm_stderr = pipe.stderr_of(len(commands) - 2)
        _fill_stats(stats, norm_stderr, walker, undeclared)
        misread.verify()


def _read_commands(input_path: Path, undeclared: Undeclared, options: _Options, scratch: Path) -> list[list[str]]:
    read = _unsorted_read_commands(input_path, undeclared, options, scratch)
    if not options.sort:
        return read
    return [*read, bcftools("sort", "-m", SORT_MEMORY, "-T", scratch / "sort", "-Ou", "-")]


def _unsorted_read_commands(
    input_path: Path, undeclared: Undeclared, options: _Options, scratch: Path
) -> list[list[str]]:
    check = _genotype_range_check(options, undeclared)
    source = options.source(input_path)
    if not undeclared:
        return [*options.reader, bcftools("view", "--no-version", "--threads", options.threads, *check, "-Ou", source)]
    header_file = scratch / "header.vcf"
    header_file.write_text(_completed_header(input_path, undeclared, options.reference))
    read = [*options.reader, bcftools("view", "--no-version", "-H", source), ["cat", str(header_file), "-"]]
    # GT is typed only once the header declares it: check the alleles after that.
    return [*read, bcftools("view", "--no-version", *check, "-Ou", "-")] if check else read


def _genotype_range_check(options: _Options, undeclared: Undeclared) -> list[str]:
    """`bcftools view` options that make it fail on a genotype allele beyond the record's ALTs.

    `norm -m -any` would turn such an allele (0/3 at a site with two ALTs) into 0 without
    a word. `--min-ac 0` keeps every record but counts the alleles of each genotype, and
    htslib fails on one out of range (`--no-update`: without it, view would add INFO/AC
    and AN). It counts from INFO/AC and AN instead where the header declares both, so
    such files go unchecked.
    """
    counted_from_info = {"AC", "AN"} <= set(options.info) | set(undeclared.info)
    return [] if not options.samples or counted_from_info else ["--min-ac", "0", "--no-update"]


#: The first five columns of a text record whose ALT lists several alleles (grep -o prints them).
_MULTIALLELIC_LINE = r"^[^#\t][^\t]*\t[^\t]*\t[^\t]*\t[^\t]*\t[^\t,]*,[^\t]*"
#: CHROM, POS, REF, ALT, REF, ALT: the table of `_original_alleles`, from those five columns.
_LISTING_COLUMNS = ["awk", "-F", "\t", "-v", "OFS=\t", "{print $1, $2, $4, $5, $4, $5}"]


def _multiallelic_listing(
    input_path: Path, options: _Options, undeclared: Undeclared, read: list[list[str]]
) -> list[list[str]]:
    """Commands printing CHROM, POS, REF, ALT, REF, ALT of every record with more than one ALT.

    A text VCF read as it is: grep over its text, as htslib would store the same alleles
    (3.6 s of CPU against 12.5 s for bcftools parsing every genotype of a 106,873-record,
    2,504-sample file). Otherwise (BCF, or text that reaches htslib completed, filtered or
    sorted) bcftools reads it as the normalisation does.
    """
    if options.container == "bcf" or options.reader or options.sort or undeclared:
        query = bcftools("query", "-i", "N_ALT>1", "-f", "%CHROM\t%POS\t%REF\t%ALT\t%REF\t%ALT\n", "-")
        return [*read, query]
    # grep exits 1 when nothing matched; in the C locale it matches bytes, not characters (and fast).
    grep = ["sh", "-c", 'LC_ALL=C grep -a -o -P "$0" "$@" || [ "$?" -eq 1 ]', _MULTIALLELIC_LINE]
    if options.container == "vcf":
        return [[*grep, str(input_path)], _LISTING_COLUMNS]
    return [["bgzip", "-dc", str(input_path)], grep, _LISTING_COLUMNS]


def _original_alleles(listing: list[list[str]], scratch: Path, input_path: Path, fixed_after: int) -> list[list[str]]:
    """A `bcftools annotate` stage giving each multiallelic record its REF and ALTs as written.

    bcftools 1.16 has no `norm --old-rec-tag`, so the alleles are listed in a first pass
    (`listing`, written into a tabix-indexed table) and written into Number=1 / Number=A INFO
    tags, which norm then splits with the record. No stage when the input has no multiallelic record.
    """
    table = scratch / "original_alleles.tsv"
    with (
        table.open("wb") as out,
        pipeline(listing, subject=input_path, stdout=out, header_fixed_after=fixed_after),
    ):
        pass  # bcftools writes the listing straight into the table file
    if table.stat().st_size == 0:
        return []
    try:
        indexed = pysam.tabix_index(str(table), seq_col=0, start_col=1, end_col=1, force=True)
    except (OSError, ValueError) as error:  # tabix wants each contig's records together, in order
        raise UnsortedRecords(f"{input_path}: records are not sorted ({error})") from error
    header_lines = scratch / "original_alleles.hdr"
    header_lines.write_text(
        f'##INFO=<ID={ORIGINAL_REF_TAG},Number=1,Type=String,Description="vcf-agent: REF of the'
        ' multiallelic record before bcftools norm split it">\n'
        f'##INFO=<ID={ORIGINAL_ALT_TAG},Number=A,Type=String,Description="vcf-agent: this ALT as the'
        ' multiallelic record wrote it, before bcftools norm split and trimmed it">\n'
    )
    columns = f"CHROM,POS,REF,ALT,INFO/{ORIGINAL_REF_TAG},INFO/{ORIGINAL_ALT_TAG}"
    return [
        bcftools("annotate", "--no-version", "-a", indexed, "-c", columns, "-h", header_lines,
                 "--pair-logic", "exact", "-Ou", "-")
    ]  # fmt: skip


def _norm_command(reference, ref_check: str) -> list[str]:
    args = ["norm", "--no-version", "-m", "-any"]
    if reference:
        args += ["-f", reference, "-c", REF_CHECK_POLICIES[ref_check]]
    return bcftools(*args, "-Ou", "-")


def _declare_tags(scratch: Path, declares_end: bool) -> list[str]:
    """Declare the tags the pysam stage may write, so it never needs to extend the header.

    pysam adds INFO/END to symbolic alleles when it writes them; an END it has
    to declare on the fly would be missing from the header already written.
    """
    lines = [
        f'##INFO=<ID={DUPLICATE_TAG},Number=1,Type=Integer,Description="vcf-agent: ordinal of '
        'this record among records with the same CHROM, POS, REF and ALT">'
    ]
    if not declares_end:
        lines.append('##INFO=<ID=END,Number=1,Type=Integer,Description="End position of the variant">')
    header_lines = scratch / "declared_tags.vcf"
    header_lines.write_text("\n".join(lines) + "\n")
    return bcftools("annotate", "--no-version", "--header-lines", header_lines, "-Ou", "-")


def _scan_undeclared(input_path: Path, options: _Options) -> Undeclared:
    """Read the whole input as text once; htslib warns about every undeclared name on the way."""
    scan = Pipeline(
        [*options.reader, bcftools("view", "--no-version", "-Ov", "-o", "/dev/null", options.source(input_path))]
    )
    scan.start(subprocess.DEVNULL)
    scan.finish()
    stderr = scan.stderr_texts[-1]
    if any(scan.returncodes) or has_htslib_error(stderr):
        raise fail(input_path, explain_stderr(stderr))
    return Undeclared.from_stderr(stderr)


_ADDED = 'Description="Not declared in the input header; added by vcf-agent"'


# Contig names a ##contig line can declare and htslib reads back, indexes and queries: VCF 4.1-4.4
# allow names in angle brackets (<1>) and htslib handles '0'; whitespace, commas and quotes break the line.
_VALID_CONTIG = re.compile(r'^(?:[^\s,"<>]+|<[^\s,"<>]+>)$')
# htslib is laxer than the specification for FILTER/INFO/FORMAT ids; refuse only what breaks a header line.
_VALID_ID = re.compile(r'^[^\s,;=<>"]+$')


def _check_declarable(input_path: Path, undeclared: Undeclared) -> None:
    for kind, names in (
        ("contig", undeclared.contigs),
        ("FILTER", undeclared.filters),
        ("INFO", undeclared.info),
        ("FORMAT", undeclared.formats),
    ):
        for name in names:
            pattern = _VALID_CONTIG if kind == "contig" else _VALID_ID
            if not pattern.match(name) or name == "." or (kind != "contig" and name == "0"):
                raise fail(input_path, f"invalid {kind} name {name!r} in the records (not declared and not declarable)")


def _without_length(line: str, contigs: list[str]) -> str:
    """Drop the length of a contig whose records lie beyond it (the index then sizes itself)."""
    for contig in contigs:
        if line.startswith(f"##contig=<ID={contig},"):
            return re.sub(r",length=\d+", "", line)
    return line


def _completed_header(input_path: Path, undeclared: Undeclared, reference) -> str:
    """The input's header with a definition for every name its records use undeclared."""
    _check_declarable(input_path, undeclared)
    if undeclared.bad_lengths:
        log.warning("%s: ignoring the declared length of %s", input_path, ", ".join(undeclared.bad_lengths))
    lengths = fai_lengths(reference) if reference else {}
    text = run(bcftools("view", "--no-version", "-h", input_path), subject=input_path)
    lines = [_without_length(line, undeclared.bad_lengths) for line in text.rstrip("\n").split("\n")]
    added = [
        f"##contig=<ID={c},length={lengths[c]}>" if c in lengths else f"##contig=<ID={c}>" for c in undeclared.contigs
    ]
    added += [f"##FILTER=<ID={name},{_ADDED}>" for name in undeclared.filters]
    added += [_undeclared_info_line(name) for name in undeclared.info]
    added += [
        f"##FORMAT=<ID=GT,Number=1,Type=String,{_ADDED}>"
        if name == "GT"
        else f"##FORMAT=<ID={name},Number=.,Type=String,{_ADDED}>"
        for name in undeclared.formats
    ]
    return "\n".join(lines[:-1] + added + lines[-1:]) + "\n"


def _undeclared_info_line(name: str) -> str:
    # END is reserved (VCF 4.3, section 1.6.1): htslib reads it as the record's end and refuses a String END.
    if name == "END":
        return f"##INFO=<ID=END,Number=1,Type=Integer,{_ADDED}>"
    return f"##INFO=<ID={name},Number=.,Type=String,{_ADDED}>"


class _RecordWalker:
    """Follows the record stream: sort order, records per contig, duplicate ordinals."""

    def __init__(self, input_path: Path, contig_lengths: dict[str, int | None]) -> None:
        self.input_path = input_path
        self.contig_lengths = contig_lengths
        self.bad_lengths: list[str] = []
        self.counts: Counter[str] = Counter()
        self.duplicates = 0
        self.upper_cased = 0
        self._finished: set[int] = set()
        self._rid, self._pos = -1, -1
        self._alleles_here: Counter[tuple[str, str]] = Counter()
        self.last_record = ""

    def upper_case_alleles(self, record) -> None:
        """Bases in upper case, as ids compare them: `norm -c s` and left-alignment copy
        a soft-masked reference's lower-case bases into REF and ALT."""
        alleles = record.alleles
        if all(a == a.upper() for a in alleles):
            return
        upper = tuple(a.upper() if _BASES.match(a) else a for a in alleles)
        if upper == alleles or len(alleles) < 2:
            return  # pysam cannot rewrite a record without ALT: the conversion upper-cases its REF
        stop = record.stop
        record.alleles = upper
        if record.stop != stop:  # pysam resets the length (and drops an INFO/END) of base alleles
            record.stop = stop
        self.upper_cased += 1

    def duplicate_ordinal(self, record) -> int:
        """1 for the first record with its CHROM:POS:REF:ALT, 2 for the next one, ..."""
        self._check_order(record)
        self.last_record = f"{record.chrom}:{record.pos}"
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
            self._length = self.contig_lengths.get(record.chrom)
        if self._length and record.pos > self._length and record.chrom not in self.bad_lengths:
            self.bad_lengths.append(record.chrom)
        if record.pos != self._pos:
            if record.pos < self._pos:
                self._unsorted(f"{record.chrom}:{record.pos} follows position {self._pos}")
            self._pos = record.pos
            self._alleles_here.clear()

    def _unsorted(self, where: str) -> None:
        raise UnsortedRecords(f"{self.input_path}: records are not sorted: {where}")


def _tag_and_write(stream: IO[bytes], tmp_bcf: Path, threads: int, input_path: Path) -> _RecordWalker:
    """Copy records to BCF, tagging repeated alleles at one position; check the sort order."""
    pysam.set_verbosity(0)  # bcftools upstream already reported what htslib has to say
    reader = pysam.VariantFile(stream)
    lengths = {name: contig.length for name, contig in reader.header.contigs.items()}
    walker = _RecordWalker(input_path, lengths)
    with pysam.VariantFile(str(tmp_bcf), f"wb{BCF_LEVEL}", header=reader.header, threads=threads) as writer:
        try:
            for record in reader:
                walker.upper_case_alleles(record)
                ordinal = walker.duplicate_ordinal(record)
                if ordinal > 1:
                    record.info[DUPLICATE_TAG] = ordinal
                writer.write(record)
        except (OSError, ValueError) as error:
            where = f" after {walker.last_record}" if walker.last_record else ""
            raise fail(input_path, f"unreadable record{where} in the normalised stream ({error})") from error
    if walker.bad_lengths:
        raise UndeclaredError(input_path, Undeclared(bad_lengths=walker.bad_lengths))
    return walker


def _fill_stats(stats: NormalizeStats, norm_stderr: str, walker: _RecordWalker, added: Undeclared) -> None:
    match = _NORM_LINES.search(norm_stderr)
    if match is None:
        raise fail(stats.input, "bcftools norm did not report its line counts; its output cannot be trusted")
    stats.records_in, stats.split, stats.realigned, stats.skipped = map(int, match.groups())
    stats.ref_mismatches = len(_REF_MISMATCH.findall(norm_stderr))
    fixed = _REF_FIXED.search(norm_stderr)
    if fixed:
        stats.ref_mismatches += sum(map(int, fixed.groups()))
    stats.records_out = sum(walker.counts.values())
    stats.records_per_contig = dict(walker.counts)
    stats.duplicate_records = walker.duplicates
    stats.alleles_upper_cased = walker.upper_cased
    stats.header_lines_added = added.describe()


def index_bcf(bcf: Path | str, threads: int = 1) -> Path:
    """Write the CSI index beside `bcf` (shards are read by region)."""
    index = Path(f"{bcf}.csi")
    with atomic_file(index) as tmp:
        run(bcftools("index", "--csi", "--threads", threads, "-f", "-o", tmp, bcf), subject=bcf)
    return index
