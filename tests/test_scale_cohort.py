"""The scale benchmark's cohort generator (benchmarks/scale_cohort.py) at a tiny size, checked with bcftools."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, bcftools_lines

pytestmark = pytest.mark.slow  # builds stores or a cohort

#: 1/500 of the full size: 100 kb, one toy gene, ~2,000 sites, still 2,504 samples.
SIZE = 0.002
_NORM_LINES = re.compile(r"Lines\s+total/split/realigned/skipped:\s*(\d+)/(\d+)/(\d+)/(\d+)")


def _make(out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / "scale_cohort.py"), "--size", str(SIZE), "--out", str(out)]
    return subprocess.run([*command, *extra], capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("scale")
    _make(out)
    folder = out / f"scale-{SIZE:g}"
    return folder / "cohort.vcf.gz", folder / "cohort.fa"


def _stats(vcf: Path) -> dict[str, int]:
    """The SN (summary numbers) section of `bcftools stats`."""
    numbers = {}
    for line in bcftools_lines("stats", vcf):
        if line.startswith("SN\t"):
            _, _, key, value = line.split("\t")
            numbers[key.rstrip(":")] = int(value)
    return numbers


def test_the_files_are_a_valid_indexed_2504_sample_cohort(cohort):
    vcf, _ = cohort
    assert sorted(p.name for p in vcf.parent.iterdir()) == [
        "cohort.fa",
        "cohort.fa.fai",
        "cohort.json",
        "cohort.vcf.gz",
        "cohort.vcf.gz.tbi",
    ]
    subprocess.run(["bcftools", "view", "-Ou", "-o", "/dev/null", str(vcf)], check=True)
    stats = _stats(vcf)
    assert stats["number of samples"] == 2504
    # the full size is >= 1,000,000 records over 50 Mb: this 1/500 keeps that density
    assert 0.9 * 1_000_000 * SIZE < stats["number of records"] < 1.5 * 1_000_000 * SIZE
    contig = bcftools_lines("view", "-h", vcf)
    assert f"##contig=<ID=chr22,length={round(50_000_000 * SIZE)}>" in contig
    assert len(bcftools_lines("view", "-H", "-r", "chr22:1-50000", vcf)) > 0  # the .tbi answers regions


def test_every_ref_matches_the_fasta(cohort):
    vcf, fasta = cohort
    norm = ["bcftools", "norm", "-c", "e", "-f", str(fasta), "-m", "-any", "-Ou", "-o", "/dev/null", str(vcf)]
    result = subprocess.run(norm, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    total, split, realigned, skipped = map(int, _NORM_LINES.search(result.stderr).groups())
    assert total == _stats(vcf)["number of records"] and skipped == 0
    assert split > 0 and realigned > 0


def test_there_are_multiallelic_sites_and_indels_of_both_kinds(cohort):
    vcf, _ = cohort
    stats = _stats(vcf)
    assert stats["number of multiallelic sites"] >= 10
    assert stats["number of indels"] >= 50
    lengths = [
        (len(ref), len(alt))
        for line in bcftools_lines("query", "-i", 'TYPE="indel"', "-f", "%REF\t%ALT\n", vcf)
        for ref, alts in [line.split("\t")]
        for alt in alts.split(",")
    ]
    assert sum(r > a for r, a in lengths) >= 20 and sum(r < a for r, a in lengths) >= 20


def test_the_carrier_spectrum_is_like_1000_genomes(cohort):
    """~80-100 carriers per site with a majority of rare sites (a constant-size population gives ~400)."""
    vcf, fasta = cohort
    norm = subprocess.run(
        ["bcftools", "norm", "-m", "-any", "-f", str(fasta), "-Ou", str(vcf)], capture_output=True, check=True
    )
    query = ["bcftools", "query", "-i", 'GT="alt"', "-f", "%POS:%REF:%ALT\t[%SAMPLE,]\n", "-"]
    lines = subprocess.run(query, input=norm.stdout, capture_output=True, check=True).stdout.decode().splitlines()
    carriers = [line.split("\t")[1].count(",") for line in lines]
    split_sites = subprocess.run(["bcftools", "view", "-H", "-"], input=norm.stdout, capture_output=True, check=True)
    split_sites = split_sites.stdout.count(b"\n")
    mean = sum(carriers) / split_sites
    assert 60 <= mean <= 130, mean
    assert sum(c <= 5 for c in carriers) / split_sites > 0.5  # mostly rare: the sign of recent growth
    assert max(carriers) > 1000  # and some common variants


def test_a_made_cohort_is_reused(cohort):
    """The cache: a second run finds the complete set and does not make it again."""
    vcf, _ = cohort
    first = vcf.stat().st_mtime_ns
    _make(vcf.parent.parent)
    assert vcf.stat().st_mtime_ns == first
