"""Every file htslib rejects ends in a one-line error naming the file and the cause, with no output."""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pysam
import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.ingest.normalize import normalize_vcf
from vcf_agent.ingest.parquet import MIN_CONVERT_MEM_MB, convert_shard
from vcf_agent.ingest.shards import read_plan
from vcf_agent.query import BadQuery, NotFound, Stores

from helpers import DATA, bcftools_lines, data_file, nonref_genotypes, run_workflow, split_records

VALIDATOR = DATA / "invalid" / "vcf-validator"
TRUNCATED = "invalid/other/truncated_1kg_chr22.vcf.gz"


def htslib_rejected() -> list[tuple[str, str]]:
    """(file, htslib's message) for every file `bcftools view` fails on, per bcftools_results.tsv."""
    with (VALIDATOR / "bcftools_results.tsv").open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [(r["file"], r["view_error"]) for r in rows if r["view_rc"] != "0"]


REJECTED = htslib_rejected()


UNDECLARED = re.compile(rb"(Contig|INFO|FORMAT) '([^']+)'(?: at \S+)? is not defined in the header")


def htslib_rejects_for_a_real_defect(relative: str) -> bool:
    """`bcftools view` still fails on the file with its blank lines left out and the names that
    bcftools says the header lacks declared (as htslib assumes them: String, any number).

    The workflow does both (README, normalize_vcf), so a file htslib rejects only for those is
    accepted; tests/test_validator_suite.py checks its values against bcftools'.
    """
    lines = [line for line in (VALIDATOR / relative).read_bytes().splitlines(keepends=True) if line.strip()]
    declared: set[tuple[bytes, bytes]] = set()
    while True:
        view = subprocess.run(["bcftools", "view", "-Ou", "-o", "/dev/null", "-"], input=b"".join(lines),
                              capture_output=True)  # fmt: skip
        missing = set(UNDECLARED.findall(view.stderr)) - declared
        if view.returncode == 0 or not missing:
            return view.returncode != 0
        declared |= missing
        header = [_declaration(kind, name) for kind, name in sorted(missing)]
        at = next((i for i, line in enumerate(lines) if line.startswith(b"#CHROM")), 0)
        lines[at:at] = header


def _declaration(kind: bytes, name: bytes) -> bytes:
    if kind == b"Contig":
        return b"##contig=<ID=" + name + b">\n"
    return b"##" + kind + b"=<ID=" + name + b',Number=.,Type=String,Description="declared by the test">\n'


STILL_REJECTED = [(file, message) for file, message in REJECTED if htslib_rejects_for_a_real_defect(file)]


def test_the_data_set_has_the_documented_rejections():
    # The data README: htslib rejects 74 of the 843 failed files (plus a few 'passed' ones htslib 1.16 cannot read).
    assert sum(1 for f, _ in REJECTED if "/failed/" in f) == 74
    assert len(REJECTED) == 81


def assert_one_line_error(error: VcfAgentError, path: Path) -> None:
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    cause = message.removeprefix(f"{path}: ")
    assert len(cause) > 10, message


@pytest.mark.parametrize(("relative", "htslib_message"), STILL_REJECTED, ids=[f for f, _ in STILL_REJECTED])
def test_htslib_rejected_file_fails_with_one_line_and_no_output(tmp_path, relative, htslib_message):
    path = VALIDATOR / relative
    output = tmp_path / "out.bcf"
    with pytest.raises(VcfAgentError) as raised:
        normalize_vcf(path, output, source="bad")
    assert_one_line_error(raised.value, path)
    assert list(tmp_path.iterdir()) == []


def test_truncated_bgzf_cohort_is_refused(tmp_path):
    path = data_file(TRUNCATED)
    with pytest.raises(VcfAgentError) as raised:
        normalize_vcf(path, tmp_path / "out.bcf", source="cut")
    assert_one_line_error(raised.value, path)
    assert "truncated" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_spaced_reference_is_refused_before_normalising(tmp_path):
    vcf = data_file("normalize/pinfsc50/pinf_sc50.vcf.gz")
    fasta = data_file("normalize/pinfsc50/pinf_sc50.ORIGINAL_with_spaces.fasta")
    with pytest.raises(VcfAgentError, match="not a base"):
        normalize_vcf(vcf, tmp_path / "out.bcf", source="pinf", reference=fasta)
    assert list(tmp_path.iterdir()) == []


def test_ref_mismatch_names_the_record(tmp_path):
    # bcftools' own test data: norm.fa has a deliberate REF mismatch at 1:60 for norm.vcf.
    vcf = data_file("normalize/bcftools_tests/norm.vcf")
    fasta = data_file("normalize/bcftools_tests/norm.fa")
    with pytest.raises(VcfAgentError) as raised:
        normalize_vcf(vcf, tmp_path / "out.bcf", source="norm", reference=fasta, ref_check="error")
    assert "1:60" in str(raised.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_workflow_stops_on_every_rejected_file_and_writes_no_parquet(tmp_path):
    vcfs = {
        relative.replace("/", "_").removesuffix(".vcf"): str(VALIDATOR / relative) for relative, _ in STILL_REJECTED
    }
    vcfs["truncated_cohort"] = str(data_file(TRUNCATED))
    result = run_workflow(tmp_path, {"vcfs": vcfs, "reference": None}, extra=("--keep-going",), check=False)
    assert result.returncode != 0
    assert not (tmp_path / "results" / "parquet").exists()
    for name, path in vcfs.items():
        logs = [tmp_path / "results" / "logs" / rule / f"{name}.log" for rule in ("check_vcf", "normalize_vcf")]
        errors = [line for log in logs if log.exists() for line in log.read_text().splitlines() if " ERROR " in line]
        assert len(errors) == 1, (name, errors)
        assert f"{path}: " in errors[0]
        assert f"{path}: " in result.stderr  # shown on the console too (show-failed-logs)


# ---------------------------------------------------------------- messages that name the file, the record, the cause
# Bad files are made from the GIAB call set (221 records, one sample) in each test.

GIAB = "normalize/giab_chr20_nucleus/test_nist.b37_chr20_100kbp_at_10mb.vcf.gz"
GIAB_FASTA = "normalize/giab_chr20_nucleus/ucsc.hg19.chr20.unittest.fasta.gz"
VCF_AGENT = Path(sys.executable).with_name("vcf-agent")


def edited_giab(out: Path, edit: Callable[[list[bytes]], None], record: int = 1) -> tuple[Path, str]:
    """A copy of the GIAB VCF with the columns of one record (0-based) changed by `edit`; (path, CHROM:POS)."""
    lines = gzip.decompress(data_file(GIAB).read_bytes()).split(b"\n")
    index = [i for i, line in enumerate(lines) if line and not line.startswith(b"#")][record]
    columns = lines[index].split(b"\t")
    edit(columns)
    lines[index] = b"\t".join(columns)
    out.write_bytes(b"\n".join(lines))
    return out, f"{columns[0].decode()}:{columns[1].decode()}"


def job_error(workdir: Path, rule: str) -> str:
    """The last line of the rule's only job log, which must be its ERROR line: the message after ERROR."""
    (log,) = (workdir / "results" / "logs" / rule).rglob("*.log")
    last = log.read_text().strip().splitlines()[-1]
    assert " ERROR " in last, (log, last)
    return last.split(" ERROR ", 1)[1]


def without_records(tmp_path: Path) -> Path:
    """The GIAB VCF's header alone: a valid VCF with no records."""
    empty = tmp_path / "empty.vcf"
    empty.write_text("\n".join(bcftools_lines("view", "-h", data_file(GIAB))) + "\n")
    return empty


@pytest.mark.slow
def test_a_vcf_without_records_gives_empty_stores_that_agree(tmp_path):
    empty = without_records(tmp_path)
    samples = bcftools_lines("query", "-l", empty)
    run_workflow(tmp_path / "run", {"vcfs": {"empty": str(empty)}, "reference": None})
    results = tmp_path / "run" / "results"
    with Stores.open(results) as stores:
        stats = stores.stats()
        with pytest.raises(NotFound, match="unknown contig 'chr20'; the stores hold no variants"):
            stores.region("chr20:1-100")
    assert (stats.variants, stats.graph_variants, stats.genotypes, stats.genes, stats.contigs) == (0, 0, 0, 0, [])
    assert stats.files == ["empty"] and stats.samples == len(samples) == 1
    cli = subprocess.run([VCF_AGENT, "stats", "--json", "--results", results], capture_output=True, text=True)
    assert cli.returncode == 0 and "Traceback" not in cli.stderr, cli.stderr
    assert json.loads(cli.stdout)["variants"] == json.loads(cli.stdout)["genotypes"] == 0


@pytest.fixture(scope="module")
def empty_beside_giab(tmp_path_factory) -> Path:
    """The stores of a VCF without records beside the GIAB VCF (its results folder)."""
    workdir = tmp_path_factory.mktemp("empty_beside")
    vcfs = {"empty": str(without_records(workdir)), "giab": str(data_file(GIAB))}
    run_workflow(workdir / "run", {"vcfs": vcfs, "reference": None})
    return workdir / "run" / "results"


@pytest.mark.slow
def test_an_empty_vcf_beside_another_is_in_both_stores(empty_beside_giab):
    with Stores.open(empty_beside_giab) as stores:
        stats = stores.stats()
    variants = split_records(data_file(GIAB))
    assert stats.variants == stats.graph_variants == variants == 222
    assert stats.genotypes == nonref_genotypes(data_file(GIAB))
    assert stats.files == ["empty", "giab"]  # the empty VCF is a File of the graph too


@pytest.mark.slow
def test_a_malformed_region_says_which_forms_are_accepted(empty_beside_giab):
    with Stores.open(empty_beside_giab) as stores:
        assert stores.region("chr20:10000117").total == 1  # the contig is there
        with pytest.raises(BadQuery) as raised:
            stores.region("chr20:abc")
    message = str(raised.value)
    assert message.startswith("region 'chr20:abc': malformed: 'abc' is not a position"), message
    assert "chrom, chrom:pos or chrom:start-end" in message and "unknown contig" not in message


@pytest.mark.slow
def test_bytes_that_are_not_utf8_stop_with_the_file_and_the_record(tmp_path):
    def latin1(columns: list[bytes]) -> None:
        columns[2] = "rs_café".encode("latin-1")
        columns[7] = columns[7].replace(b"platformnames=Illumina", "platformnames=Illuminá".encode("latin-1"))

    vcf, record = edited_giab(tmp_path / "latin1.vcf", latin1)
    result = run_workflow(tmp_path / "run", {"vcfs": {"latin": str(vcf)}, "reference": None}, check=False)
    assert result.returncode != 0
    message = job_error(tmp_path / "run", "convert_shard")
    assert message.startswith(f"{vcf}: record {record}: ID and INFO/platformnames hold bytes that are not UTF-8")
    assert message in result.stderr  # Snakemake's error output shows it too
    assert not list((tmp_path / "run" / "results").glob("parquet/*/latin/*.parquet"))


@pytest.mark.slow
def test_too_little_memory_names_the_job_and_what_it_needs(tmp_path):
    workdir = tmp_path / "run"
    config = {"vcfs": {"giab": str(data_file(GIAB))}, "reference": None}
    result = run_workflow(workdir, config, extra=("--resources", "mem_mb=300"), check=False)
    assert result.returncode != 0
    message = job_error(workdir, "convert_shard")
    assert message.startswith("job convert_shard (vcf=giab, shard=00001): mem_mb=300 is too little"), message
    assert f"needs at least {MIN_CONVERT_MEM_MB} MB" in message and "resources.convert_shard.mem_mb" in message
    # ... and that is enough: the shard converts with exactly that much.
    shard = read_plan(workdir / "results" / "shards" / "giab.tsv")[0]
    out = {f"{kind}_out": tmp_path / f"{kind}.parquet" for kind in ("variants", "genotypes", "annotations")}
    bcf = workdir / "results" / "normalized" / "giab.bcf"
    stats = convert_shard(bcf, shard, source="giab", mem_mb=MIN_CONVERT_MEM_MB, **out)
    assert stats.variants == split_records(data_file(GIAB))


@pytest.mark.slow
def test_an_unexpected_failure_ends_the_job_log_with_its_cause(tmp_path):
    workdir, config = tmp_path / "run", {"vcfs": {"giab": str(data_file(GIAB))}, "reference": None}
    run_workflow(workdir, config, "results/normalized/inputs.json")
    stats = workdir / "results" / "normalized" / "giab.stats.json"
    stats.write_text(stats.read_text()[:20])  # cut short, as by a full disk
    result = run_workflow(workdir, config, "results/normalized/inputs.json", extra=("--forcerun", "summarize_inputs"),
                          check=False)  # fmt: skip
    assert result.returncode != 0
    log = (workdir / "results" / "logs" / "summarize_inputs" / "inputs.log").read_text()
    assert "Traceback" in log and "json" in log  # where it failed, for a bug report
    assert job_error(workdir, "summarize_inputs").startswith("JSONDecodeError: ")
    assert sum(" ERROR " in line for line in log.splitlines()) == 1


def test_an_early_ref_mismatch_names_the_record_not_a_later_stage(tmp_path):
    vcf = data_file(GIAB)
    pos, ref = bcftools_lines("query", "-f", "%POS\t%REF\n", vcf)[4].split("\t")
    fasta = tmp_path / "edited.fa"
    data = bytearray(gzip.decompress(data_file(GIAB_FASTA).read_bytes()))
    first_base = data.index(b"\n") + 1
    offset = first_base + int(pos) - 1 + (int(pos) - 1) // 50  # 50 bases a line
    data[offset : offset + 1] = b"A" if ref != "A" else b"C"
    fasta.write_bytes(data)
    pysam.faidx(str(fasta))
    # bcftools itself names the record
    norm = subprocess.run(["bcftools", "norm", "-f", fasta, "-c", "e", "-o", "/dev/null", vcf], capture_output=True)
    assert f"Reference allele mismatch at chr20:{pos}" in norm.stderr.decode()
    with pytest.raises(VcfAgentError) as raised:
        normalize_vcf(vcf, tmp_path / "out" / "x.bcf", source="giab", reference=fasta, ref_check="error")
    assert_one_line_error(raised.value, vcf)
    assert f"record chr20:{pos}: REF {ref} does not match the reference FASTA" in str(raised.value)


def test_a_gzip_wrapped_bcf_is_named_as_such(tmp_path):
    bcf = tmp_path / "giab.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", bcf, data_file(GIAB)], check=True)
    wrapped = tmp_path / "giab.bcf.gz"
    wrapped.write_bytes(gzip.compress(bcf.read_bytes()))
    assert subprocess.run(["bcftools", "view", "-h", wrapped], capture_output=True).returncode != 0
    with pytest.raises(VcfAgentError) as raised:
        normalize_vcf(wrapped, tmp_path / "out" / "x.bcf", source="giab")
    assert_one_line_error(raised.value, wrapped)
    assert "compressed twice: a BCF inside another layer of gzip" in str(raised.value)


@pytest.mark.slow
def test_a_loop_of_symbolic_links_is_named_as_such(tmp_path):
    first, second = tmp_path / "a.vcf", tmp_path / "b.vcf"
    first.symlink_to(second)
    second.symlink_to(first)
    with pytest.raises(VcfAgentError, match="a loop of symbolic links"):
        normalize_vcf(first, tmp_path / "out" / "x.bcf", source="loop")
    result = run_workflow(tmp_path / "run", {"vcfs": {"loop": str(first)}, "reference": None}, check=False)
    assert result.returncode != 0
    assert f"config vcfs: loop: {first}: a loop of symbolic links" in result.stderr
    assert "Missing input" not in result.stderr


@pytest.mark.slow
def test_an_info_error_names_the_users_file(tmp_path):
    def two_values(columns: list[bytes]) -> None:
        # INFO/platforms is Number=1 Integer; htslib keeps a second value, which fits no integer column.
        columns[7] = re.sub(rb"platforms=(\d+);", rb"platforms=\1,3;", columns[7], count=1)

    vcf, record = edited_giab(tmp_path / "two_values.vcf", two_values)
    result = run_workflow(tmp_path / "run", {"vcfs": {"two": str(vcf)}, "reference": None}, check=False)
    assert result.returncode != 0
    errors = [
        line.split(" ERROR ", 1)[1]
        for log in (tmp_path / "run" / "results" / "logs").rglob("*.log")
        for line in log.read_text().splitlines()[-1:]
        if " ERROR " in line
    ]
    assert len(errors) == 1 and errors[0].startswith(f"{vcf}: record {record}: INFO/platforms"), errors
    assert "results/normalized" not in errors[0]
