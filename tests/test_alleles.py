"""Alleles as bcftools writes them, canonical in every store: ALT '.' and soft-masked references.

* A reference-only record (ALT '.') keeps alt '.', class no_alt, a description that says so and
  no carriers: bio2zarr's copy of the VCF specification's example, which has two.
* With `ref_check: set` (and when bcftools left-aligns an indel) against a soft-masked FASTA,
  bcftools writes the reference's lower-case bases into the alleles; ids stay upper-case. The
  GIAB chr20 reference is soft-masked (118 of the 221 records lie on lower-case bases); three of
  those records get a wrong REF in a copy of the VCF, which `set` replaces.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pysam
import pytest

from vcf_agent.query import Stores
from vcf_agent.stores.lance import open_table

from helpers import data_file, query, run_workflow

pytestmark = pytest.mark.slow

SPEC_EXAMPLE = "edge/bio2zarr/sample_all_missing_gts.vcf.gz"
GIAB_VCF = "normalize/giab_chr20_nucleus/test_nist.b37_chr20_100kbp_at_10mb.vcf.gz"
GIAB_FASTA = "normalize/giab_chr20_nucleus/ucsc.hg19.chr20.unittest.fasta.gz"


def normalized(vcf: Path, *norm_args: str) -> list[list[str]]:
    """CHROM, POS, REF, ALT of every record after `bcftools norm -m -any NORM_ARGS`."""
    norm = subprocess.run(
        ["bcftools", "norm", "-m", "-any", *norm_args, "-Ou", str(vcf)], capture_output=True, check=True
    )
    fmt = "%CHROM\\t%POS\\t%REF\\t%ALT\\n"
    listed = subprocess.run(["bcftools", "query", "-f", fmt], input=norm.stdout, capture_output=True, check=True)
    return [line.split("\t") for line in listed.stdout.decode().splitlines()]


def upper_cased(text: str) -> str:
    """`tr a-z A-Z`: the independent upper-casing the ids are checked against."""
    return subprocess.run(["tr", "a-z", "A-Z"], input=text, capture_output=True, text=True, check=True).stdout


def variant_rows(results: Path, source: str) -> list[tuple]:
    table = f"read_parquet('{results}/parquet/variants/{source}/*.parquet')"
    return query(f"SELECT variant_id, ref, alt, variant_class FROM {table} ORDER BY pos, variant_id")


@pytest.fixture(scope="module")
def spec_example(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("no_alt")
    vcf = data_file(SPEC_EXAMPLE)
    run_workflow(work, {"vcfs": {"spec": str(vcf)}, "reference": None, "shard": {"records": 1000}})
    return work / "results", vcf


def test_a_reference_only_record_keeps_alt_dot_and_is_no_deletion(spec_example):
    results, vcf = spec_example
    records = normalized(vcf)
    no_alt = [f"{c}:{p}:{r}:{a}" for c, p, r, a in records if a == "."]
    assert len(no_alt) == 2  # 20:1230237 T . and 20:1235237 T . (the specification's example)
    rows = {row[0]: row[1:] for row in variant_rows(results, "spec")}
    assert sorted(rows) == sorted(f"{c}:{p}:{r}:{a}" for c, p, r, a in records)
    assert all(rows[i][1:] == (".", "no_alt") for i in no_alt)
    assert not [i for i, (_, alt, _) in rows.items() if alt == ""]
    table = open_table(results / "lancedb").to_arrow()
    texts = dict(zip(table.column("variant_id").to_pylist(), table.column("text").to_pylist(), strict=True))
    with Stores.open(results) as stores:
        for variant_id in no_alt:
            record = stores.variant(variant_id)
            assert (record.alt, record.variant_class, record.counts.carriers) == (".", "no_alt", 0)
            assert "deletion" not in texts[variant_id] and "reference-only" in texts[variant_id]


@pytest.fixture(scope="module")
def soft_masked(tmp_path_factory) -> tuple[Path, Path, Path, list[int]]:
    """giab with a wrong REF at three SNVs on lower-case reference bases, run with ref_check: set."""
    work = tmp_path_factory.mktemp("soft_masked")
    fasta = data_file(GIAB_FASTA)
    with pysam.FastaFile(str(fasta)) as reference, gzip.open(data_file(GIAB_VCF), "rt") as source:
        lines = source.read().splitlines(keepends=True)
        edited = []
        for i, line in enumerate(lines):
            fields = line.split("\t")
            if line.startswith("#") or len(fields[3]) != 1 or len(fields[4]) != 1 or len(edited) == 3:
                continue
            base = reference.fetch(fields[0], int(fields[1]) - 1, int(fields[1]))
            if base.islower():  # soft-masked: a record whose fixed REF would be lower-case
                fields[3] = next(b for b in "ACGT" if b not in (base.upper(), fields[4]))
                lines[i] = "\t".join(fields)
                edited.append(int(fields[1]))
    vcf = work / "giab_wrong_refs.vcf"
    vcf.write_text("".join(lines))
    config = {"vcfs": {"giab": str(vcf)}, "reference": str(fasta), "ref_check": "set", "shard": {"records": 1000}}
    run_workflow(work, config)
    return work / "results", vcf, fasta, edited


def test_ref_set_from_a_soft_masked_reference_is_upper_case_everywhere(soft_masked):
    results, vcf, fasta, edited = soft_masked
    records = normalized(vcf, "-f", str(fasta), "-c", "s")
    written = {int(p): r for _, p, r, _ in records}
    assert all(written[pos].islower() for pos in edited)  # what bcftools norm -c s writes
    alleles = upper_cased("".join(f"{r}\t{a}\n" for _, _, r, a in records)).splitlines()
    expected = [f"{c}:{p}:{ra.replace(chr(9), ':')}" for (c, p, _, _), ra in zip(records, alleles, strict=True)]
    rows = variant_rows(results, "giab")
    assert sorted(row[0] for row in rows) == sorted(expected)
    assert sorted(f"{row[1]}\t{row[2]}" for row in rows) == sorted(alleles)
    bcf = normalized(results / "normalized" / "giab.bcf")
    assert ["\t".join(r[2:]) for r in bcf] == alleles  # the normalized BCF agrees with the stores
    summary = json.loads((results / "summary.json").read_text())["sources"]["giab"]
    assert summary["ref_mismatches"] == len(edited) == 3
    ids = set(open_table(results / "lancedb").to_arrow().column("variant_id").to_pylist())
    assert ids == set(expected)
    with Stores.open(results) as stores:
        for pos in edited:
            (variant_id,) = [i for i in expected if i.split(":")[1] == str(pos)]
            assert stores.variant(variant_id).ref == written[pos].upper()
