"""Every file htslib rejects ends in a one-line error naming the file and the cause, with no output."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.normalize import normalize_vcf

from helpers import DATA, data_file, run_workflow

VALIDATOR = DATA / "invalid" / "vcf-validator"
TRUNCATED = "invalid/other/truncated_1kg_chr22.vcf.gz"


def htslib_rejected() -> list[tuple[str, str]]:
    """(file, htslib's message) for every file `bcftools view` fails on, per bcftools_results.tsv."""
    with (VALIDATOR / "bcftools_results.tsv").open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return [(r["file"], r["view_error"]) for r in rows if r["view_rc"] != "0"]


REJECTED = htslib_rejected()


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


@pytest.mark.parametrize(("relative", "htslib_message"), REJECTED, ids=[f for f, _ in REJECTED])
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


def test_workflow_stops_on_every_rejected_file_and_writes_no_parquet(tmp_path):
    vcfs = {relative.replace("/", "_").removesuffix(".vcf"): str(VALIDATOR / relative) for relative, _ in REJECTED}
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
