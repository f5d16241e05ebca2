"""Normalise + shard + convert a small hand-written VCF and compare with hand-checked rows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vcf_agent.ingest.normalize import index_bcf, normalize_vcf
from vcf_agent.ingest.parquet import convert_shard
from vcf_agent.ingest.pipeline import convert_vcf
from vcf_agent.ingest.shards import Shard, ShardSize, plan_shards

from helpers import TEST_FILES, data_file, query

COHORT = "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"

# Worked out by hand from tests/data/genotypes.vcf: multiallelic 1:200 splits into
# C>T and C>G ('1/2' -> '1/0' and '0/1', '0/2' -> '0/0' and '0/1', './1' -> './1'
# and './0'); the second G>GA at 1:300 is a duplicate record and gets '#2'.
EXPECTED_VARIANTS = {
    "1:100:A:G": ("snv", 100, 100, "rs1", 50.0, "PASS"),
    "1:200:C:T": ("snv", 200, 200, None, 20.0, "q10"),
    "1:200:C:G": ("snv", 200, 200, None, 20.0, "q10"),
    "1:300:G:GA": ("insertion", 300, 300, None, None, None),
    "1:300:G:GA#2": ("insertion", 300, 300, None, None, None),
    "X:50:T:C": ("snv", 50, 50, None, None, "PASS"),
    "X:60:TAA:T": ("deletion", 60, 62, None, 30.0, "PASS"),
}
# (sample, variant) -> gt, phased, alt_count, ploidy, dp, gq
EXPECTED_GENOTYPES = {
    ("s1", "1:100:A:G"): ("0/1", False, 1, 2, 10, 30),
    ("s2", "1:100:A:G"): ("1/1", False, 2, 2, 12, 40),
    ("s1", "1:200:C:T"): ("1/0", False, 1, 2, 9, 15),
    ("s3", "1:200:C:T"): ("./1", False, 1, 2, None, None),
    ("s1", "1:200:C:G"): ("0/1", False, 1, 2, 9, 15),
    ("s2", "1:200:C:G"): ("0/1", False, 1, 2, 7, None),
    ("s1", "1:300:G:GA"): ("0|1", True, 1, 2, None, None),
    ("s2", "1:300:G:GA"): ("1|0", True, 1, 2, None, None),
    ("s1", "1:300:G:GA#2"): ("1|1", True, 2, 2, None, None),
    ("s1", "X:50:T:C"): ("1", False, 1, 1, None, None),
    ("s1", "X:60:TAA:T"): ("0/1", False, 1, 2, 5, None),
    ("s3", "X:60:TAA:T"): ("1", False, 1, 1, 3, None),
}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("small")
    converted = convert_vcf(TEST_FILES / "genotypes.vcf", work, source="small", shard_size=ShardSize(records=2))
    return {
        **{kind: [str(p) for p in paths] for kind, paths in converted.parquet.items()},
        "stats": converted.normalized,
    }


def rows(paths: list[str], sql: str) -> list[tuple]:
    return query(sql.replace("FILES", f"read_parquet({paths!r})"))


def test_normalize_counts_split_and_duplicates(converted):
    stats = converted["stats"]
    assert (stats.records_in, stats.records_out, stats.split, stats.duplicate_records) == (6, 7, 1, 1)
    assert stats.records_per_contig == {"1": 5, "X": 2}


def test_variant_rows_match_hand_checked_records(converted):
    got = rows(converted["variants"], 'SELECT variant_id, variant_class, pos, "end", id, qual, filter FROM FILES')
    assert {r[0]: r[1:] for r in got} == EXPECTED_VARIANTS
    assert len(got) == len(EXPECTED_VARIANTS)


def test_info_fields_are_typed_after_the_split(converted):
    got = rows(converted["variants"], "SELECT variant_id, info_AF, info_AC, info_RC, info_DB, info_NOTE FROM FILES")
    by_id = {r[0]: r[1:] for r in got}
    assert by_id["1:100:A:G"] == (0.5, 3, [5, 6], True, "hello")
    assert by_id["1:200:C:T"] == (0.25, 2, [1, 2], False, None)
    assert by_id["1:200:C:G"] == (0.125, 1, [1, 3], False, None)
    assert by_id["1:300:G:GA#2"][4] == "dup"


def test_genotypes_code_haploid_missing_and_split_alleles(converted):
    got = rows(converted["genotypes"], "SELECT sample, variant_id, gt, phased, alt_count, ploidy, dp, gq FROM FILES")
    assert {(r[0], r[1]): r[2:] for r in got} == EXPECTED_GENOTYPES
    assert len(got) == len(EXPECTED_GENOTYPES)


def test_every_genotype_points_at_a_variant(converted):
    variants = {r[0] for r in rows(converted["variants"], "SELECT variant_id FROM FILES")}
    genotypes = {r[0] for r in rows(converted["genotypes"], "SELECT variant_id FROM FILES")}
    assert genotypes <= variants


# tests/data/annotated_multiallelic*.vcf with their FASTA, by hand: bcftools norm splits ACC>A,AC
# at 1:10 into ACC>A and AC>A (the second trimmed) and GT>GTT,G at 1:30 into G>GT and GT>G;
# each split record must keep the entry of its own ALT as written (SnpEff ANN: A, AC, GTT, G;
# VEP CSQ, without the shared first base: -, C, TT, -), which names the HGVS.
EXPECTED_ANNOTATIONS = {
    "1:10:ACC:A": ("GENE1", "frameshift_variant", "HIGH", "c.5_6del"),
    "1:10:AC:A": ("GENE1", "frameshift_variant", "HIGH", "c.6del"),
    "1:30:G:GT": ("GENE1", "frameshift_variant", "HIGH", "c.20dup"),
    "1:30:GT:G": ("GENE1", "frameshift_variant", "HIGH", "c.20del"),
    "1:40:A:T": ("GENE1", "missense_variant", "MODERATE", "c.30A>T"),
}


@pytest.mark.parametrize("vcf", ["annotated_multiallelic.vcf", "annotated_multiallelic_vep.vcf"])
def test_split_and_trimmed_indels_keep_the_annotation_of_their_own_allele(vcf, tmp_path):
    fasta = tmp_path / "annotated.fa"
    fasta.write_bytes((TEST_FILES / "annotated_multiallelic.fa").read_bytes())
    converted = convert_vcf(
        TEST_FILES / vcf, tmp_path, source="annotated", reference=fasta, shard_size=ShardSize(records=100)
    )
    stats = converted.normalized
    assert (stats.records_in, stats.records_out, stats.split) == (3, 5, 2)
    assert len(converted.shards) == 1
    paths = {kind: files[0] for kind, files in converted.parquet.items()}

    notes = rows([str(paths["annotations"])], "SELECT variant_id, gene, consequence, impact, hgvs_c FROM FILES")
    assert {r[0]: r[1:] for r in notes} == EXPECTED_ANNOTATIONS
    assert len(notes) == len(EXPECTED_ANNOTATIONS)
    variants = rows([str(paths["variants"])], "SELECT variant_id, gene, consequence, impact FROM FILES")
    assert {r[0]: r[1:] for r in variants} == {k: v[:3] for k, v in EXPECTED_ANNOTATIONS.items()}
    columns = rows([str(paths["variants"])], "SELECT column_name FROM (DESCRIBE SELECT * FROM FILES)")
    assert not [c for (c,) in columns if "VCFAGENT" in c.upper()], "our own tags must not become INFO columns"


@pytest.fixture(scope="module")
def cohort_shard(tmp_path_factory) -> tuple[Path, Shard, int]:
    """The 2,504-sample cohort normalised and indexed, its first shard of 2,000 records, and the
    shard's carrier genotypes as bcftools counts them (calls naming allele 1 after the split)."""
    work = tmp_path_factory.mktemp("cohort")
    bcf = work / "kg.bcf"
    stats = normalize_vcf(data_file(COHORT), bcf, source="kg")
    index_bcf(bcf)
    shard = plan_shards(bcf, ShardSize(records=2000), stats.samples)[0]
    region = f"{shard.chrom}:{shard.start}-{shard.end}"
    calls = f"bcftools query -r {region} --regions-overlap pos -f '[%GT\\n]' {bcf} | grep -c 1"
    carriers = int(subprocess.run(calls, shell=True, capture_output=True, text=True, check=True).stdout)
    return bcf, shard, carriers


@pytest.fixture
def memray_on(request):
    if not request.config.pluginmanager.hasplugin("memray") or not request.config.getoption("memray", False):
        pytest.skip("memory limits are only measured under `pytest --memray`")


# DuckDB on one thread reading bcftools' pipe: what a shard of 2,000 records x 2,504 samples
# allocates in the job's process, bcftools aside: 67-73 MiB (446 MiB with the CSV reader's default
# buffer of 16 lines of 16 MiB).
@pytest.mark.limit_memory("96 MB")
def test_converting_a_2504_sample_shard_allocates_little(memray_on, cohort_shard, tmp_path):
    bcf, shard, carriers = cohort_shard
    out = {f"{kind}_out": tmp_path / f"{kind}.parquet" for kind in ("variants", "genotypes", "annotations")}
    stats = convert_shard(bcf, shard, source="kg", **out)
    assert stats.variants == shard.records == 2000
    assert stats.genotypes == carriers
