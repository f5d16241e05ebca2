"""The bundled example (vcf_agent.example.simulate): a realistic call set, checked with bcftools as the truth."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import duckdb
import pysam
import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.example.simulate import simulate_example

from helpers import bcftools_lines, split_records

pytestmark = pytest.mark.slow  # each test simulates the example cohort (60 samples)

_NORM_LINES = re.compile(r"Lines\s+total/split/realigned/skipped:\s*(\d+)/(\d+)/(\d+)/(\d+)")
_HALF_MISSING = re.compile(r"^\.[/|][1-9]$|^[1-9][/|]\.$")
_HGVS_P = re.compile(r"^p\.([A-Z][a-z]{2})(\d+)([A-Z][a-z]{2}|\*)$")


def _simulate(directory: Path, seed: int = 42, samples: int = 60) -> tuple[Path, Path, dict]:
    vcf, fasta = directory / "example.vcf.gz", directory / "example.fa"
    return vcf, fasta, simulate_example(vcf, fasta, seed=seed, samples=samples)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[Path, Path, dict]:
    return _simulate(tmp_path_factory.mktemp("simulated"))


@pytest.fixture(scope="module")
def records(example) -> list[list[str]]:
    """CHROM, POS, REF, ALT, FILTER, QUAL, ANN, CLNSIG of every record, as bcftools reads them."""
    vcf, _, _ = example
    fields = "%CHROM\t%POS\t%REF\t%ALT\t%FILTER\t%QUAL\t%INFO/ANN\t%INFO/CLNSIG\n"
    return [line.split("\t") for line in bcftools_lines("query", "-f", fields, vcf)]


def _decompressed(vcf: Path) -> bytes:
    with gzip.open(vcf, "rb") as handle:
        return handle.read()


def test_the_files_are_complete_and_nothing_temporary_is_left(example):
    vcf, _, _ = example
    assert sorted(p.name for p in vcf.parent.iterdir()) == [
        "example.fa",
        "example.fa.fai",
        "example.vcf.gz",
        "example.vcf.gz.tbi",
    ]


def test_the_cohort_has_at_least_50_samples_and_5000_records_on_two_contigs(example, records):
    vcf, _, summary = example
    samples = bcftools_lines("query", "-l", vcf)
    assert len(samples) == 60 == summary["samples"]
    per_contig = Counter(chrom for chrom, *_ in records)
    assert set(per_contig) == {"chr1", "chr2"}
    assert sum(per_contig.values()) >= 5000
    assert dict(per_contig) == summary["records_per_contig"]


def test_every_ref_matches_the_reference_and_some_records_need_left_alignment(example, records):
    vcf, fasta, _ = example
    norm = ["bcftools", "norm", "-m", "-any", "-f", str(fasta), "--check-ref", "e", "-Ov", "-o", "/dev/null", str(vcf)]
    result = subprocess.run(norm, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "REF_MISMATCH" not in result.stderr and "mismatch" not in result.stderr.lower()
    total, split, realigned, skipped = map(int, _NORM_LINES.search(result.stderr).groups())
    assert total == len(records) and skipped == 0
    assert split > 0 and realigned > 0


def test_a_repeat_tract_never_overwrites_the_record_before_it():
    """Sites CLEARANCE apart, each a repeat polymorphism or an indel anchored at a tract's right end:
    a later site's tract, written leftwards, must leave the earlier record's bases as its REF read
    them (the 1,070,835-site scale cohort had one such REF that bcftools norm rejected)."""
    import numpy as np

    from vcf_agent.example.simulate import CLEARANCE, make_records, random_sequence

    mismatches, kinds = [], set()
    for seed in range(40):
        rng = np.random.default_rng(seed)
        sequence = random_sequence(4_000, rng)
        positions = range(CLEARANCE, 4_000 - 2 * CLEARANCE, CLEARANCE)
        # three alleles: a repeat polymorphism or an SNV; two: any indel kind or an SNV
        alleles = (["A", "C"], ["A", "C", "G"])
        sites = [(pos, alleles[i % 2], np.zeros(4, np.int8)) for i, pos in enumerate(positions)]
        records = make_records(sites, sequence, np.zeros(len(sequence), bool), rng)
        kinds |= {r.kind for r in records}
        mismatches += [(seed, r.pos, r.ref) for r in records if sequence[r.pos : r.pos + len(r.ref)].decode() != r.ref]
    assert kinds >= {"repeat_multiallelic", "insertion_rightmost", "deletion_rightmost"}
    assert mismatches == []


def test_there_are_multiallelic_sites_insertions_and_deletions(example):
    vcf, _, _ = example
    assert len(bcftools_lines("view", "-H", "-m3", vcf)) >= 10
    indels = [line.split("\t") for line in bcftools_lines("query", "-i", 'TYPE="indel"', "-f", "%REF\t%ALT\n", vcf)]
    lengths = [(len(ref), len(alt)) for ref, alts in indels for alt in alts.split(",")]
    assert sum(r > a for r, a in lengths) >= 50, "deletions"
    assert sum(r < a for r, a in lengths) >= 50, "insertions"


def test_genotypes_are_mostly_phased_with_missing_and_half_missing_calls(example):
    vcf, _, _ = example
    calls = Counter(bcftools_lines("query", "-f", "[%GT\n]", vcf))
    total = sum(calls.values())
    assert calls["./."] > 0
    assert sum(n for gt, n in calls.items() if _HALF_MISSING.match(gt)) > 0
    phased = sum(n for gt, n in calls.items() if "|" in gt)
    assert 0.95 * total < phased < total
    assert calls["0/1"] + calls["1/0"] > 0, "some heterozygous calls are unphased"


def test_info_counts_agree_with_the_genotypes(example):
    """AC/AN/AF recounted from the GT strings bcftools reads; INFO/DP is the sum of FORMAT/DP."""
    vcf, _, _ = example
    fields = "%CHROM:%POS\t%ALT\t%INFO/AC\t%INFO/AN\t%INFO/AF\t%INFO/DP\t[%GT,]\t[%DP,]\n"
    for line in bcftools_lines("query", "-f", fields, vcf):
        where, alts, ac, an, af, dp, gts, depths = line.split("\t")
        alleles = [a for gt in gts.rstrip(",").split(",") for a in re.split(r"[/|]", gt) if a != "."]
        counts = Counter(alleles)
        assert int(an) == len(alleles), where
        assert [int(c) for c in ac.split(",")] == [counts[str(i)] for i in range(1, alts.count(",") + 2)], where
        assert [float(f) for f in af.split(",")] == pytest.approx(
            [int(c) / len(alleles) for c in ac.split(",")], rel=1e-3
        )
        assert int(dp) == sum(int(d) for d in depths.rstrip(",").split(",") if d != "."), where


def test_filter_and_qual_columns_hold_pass_lowqual_and_values(example, records):
    vcf, _, _ = example
    header = "\n".join(bcftools_lines("view", "-h", vcf))
    assert "##FILTER=<ID=LowQual" in header
    filters = Counter(record[4] for record in records)
    assert set(filters) == {"PASS", "LowQual"}
    assert 0 < filters["LowQual"] < 0.1 * len(records)
    assert all(float(record[5]) >= 0 for record in records)
    assert all(float(r[5]) < 30 for r in records if r[4] == "LowQual")


def test_the_header_declares_what_the_pipeline_reads(example):
    vcf, fasta, _ = example
    header = bcftools_lines("view", "-h", vcf)
    assert header[0] == "##fileformat=VCFv4.2"
    assert "##reference=example.fa" in header
    for tag in ("AC", "AF"):
        assert any(line.startswith(f"##INFO=<ID={tag},Number=A,") for line in header)
    ann = next(line for line in header if line.startswith("##INFO=<ID=ANN,"))
    assert "'Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID |" in ann
    lengths = {line.split("\t")[0]: int(line.split("\t")[1]) for line in Path(f"{fasta}.fai").read_text().splitlines()}
    assert {f"##contig=<ID={name},length={length}>" for name, length in lengths.items()} <= set(header)


def test_every_alt_allele_has_its_own_annotation(records):
    for chrom, pos, _, alts, *_, ann, _ in records:
        alleles = {entry.split("|")[0] for entry in ann.split(",")}
        assert alleles == set(alts.split(",")), f"{chrom}:{pos}"


def test_annotations_name_genes_with_consequences_and_impacts(records):
    entries = [entry.split("|") for *_, ann, _ in records for entry in ann.split(",")]
    consequences = Counter(entry[1] for entry in entries)
    expected = {
        "missense_variant", "synonymous_variant", "frameshift_variant", "intron_variant",
        "upstream_gene_variant", "downstream_gene_variant", "intergenic_region",
    }  # fmt: skip
    assert expected <= set(consequences)
    assert any(entry[2] == "HIGH" for entry in entries)
    genes = {entry[3] for entry in entries if entry[1] != "intergenic_region"}
    assert len(genes) >= 10
    clinical = [record[-1].strip() for record in records if record[-1].strip() != "."]
    assert len(clinical) >= 10 and any("athogenic" in value for value in clinical)


def test_coding_snv_annotations_agree_with_their_hgvs(records):
    """Amino-acid number = ceil(CDS position / 3); synonymous iff the residue stays; stop_gained ends in '*'."""
    checked = 0
    for *_, ann, _ in records:
        for entry in ann.split(","):
            fields = entry.split("|")
            if fields[1] not in ("missense_variant", "synonymous_variant", "stop_gained"):
                continue
            cds_position = int(re.match(r"c\.(\d+)[ACGT]>[ACGT]$", fields[9])[1])
            old, number, new = _HGVS_P.match(fields[10]).groups()
            assert int(number) == (cds_position + 2) // 3 == int(fields[13].split("/")[0])
            assert (old == new) == (fields[1] == "synonymous_variant")
            assert (new == "*") == (fields[1] == "stop_gained")
            checked += 1
    assert checked >= 20


def test_the_indexes_work(example, records):
    vcf, fasta, _ = example
    expected = sum(1 for chrom, pos, *_ in records if chrom == "chr1" and int(pos) <= 1000)
    assert len(bcftools_lines("view", "-H", "-r", "chr1:1-1000", vcf)) == expected
    assert len(bcftools_lines("view", "-H", "-r", "chr2", vcf)) == sum(1 for r in records if r[0] == "chr2")
    sequences, name = {}, None
    for line in fasta.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:]
            sequences[name] = []
        else:
            sequences[name].append(line)
    fai = [line.split("\t") for line in Path(f"{fasta}.fai").read_text().splitlines()]
    assert [(row[0], int(row[1])) for row in fai] == [(n, sum(map(len, s))) for n, s in sequences.items()]
    with pysam.FastaFile(str(fasta)) as indexed:
        for name, lines in sequences.items():
            text = "".join(lines)
            for start in (0, 59, 60, 123_457, len(text) - 70):
                assert indexed.fetch(name, start, start + 70) == text[start : start + 70]


def test_the_same_seed_gives_the_same_files_and_another_seed_does_not(example, tmp_path):
    vcf, fasta, _ = example
    again_vcf, again_fasta, _ = _simulate(tmp_path / "again")
    other_vcf, _, _ = _simulate(tmp_path / "other", seed=43)
    assert _decompressed(again_vcf) == _decompressed(vcf)
    assert again_fasta.read_bytes() == fasta.read_bytes()
    assert _decompressed(other_vcf) != _decompressed(vcf)


def test_a_failed_run_leaves_no_files(tmp_path):
    (tmp_path / "example.vcf.gz.tbi").mkdir()  # the last file cannot be renamed into place
    with pytest.raises(OSError):
        _simulate(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["example.vcf.gz.tbi"]
    with pytest.raises(VcfAgentError, match=r"example\.samples"):
        _simulate(tmp_path / "none", samples=0)


def test_the_default_workflow_loads_the_example_whole(example_run):
    """The example as `make example` runs it: every split record a variant row, genes and consequences kept."""
    workdir, _ = example_run
    vcf, fasta = workdir / "resources/example/example.vcf.gz", workdir / "resources/example/example.fa"
    summary = json.loads((workdir / "results/summary.json").read_text())
    source = summary["sources"]["example"]
    assert source["records_normalized"] == split_records(vcf, fasta) == source["variants"]
    assert source["realigned"] > 0 and source["samples"] == 60
    con = duckdb.connect()
    genes = {
        g
        for (g,) in con.execute(
            f"SELECT DISTINCT gene FROM '{workdir}/results/parquet/annotations/*/*.parquet'"
        ).fetchall()
    }
    truth = {
        entry.split("|")[3]
        for ann in bcftools_lines("query", "-f", "%INFO/ANN\n", vcf)
        for entry in ann.split(",")
        if "|intergenic_region|" not in entry
    }
    assert genes == truth
    consequences = {
        c
        for (c,) in con.execute(
            f"SELECT DISTINCT consequence FROM '{workdir}/results/parquet/variants/*/*.parquet' WHERE gene IS NOT NULL"
        ).fetchall()
    }
    assert {"missense_variant", "frameshift_variant", "intron_variant"} <= consequences
