"""The whole workflow on the real cohorts, checked against bcftools as the independent truth."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pysam
import pytest

from vcf_agent.report.jobs import job_usage
from vcf_agent.resources import DEFAULT_RESOURCES

from helpers import bcftools_lines, data_file, nonref_genotypes, query, run_workflow, split_records

pytestmark = pytest.mark.slow  # real cohorts through the whole workflow

COHORTS = {
    "kg_phase3": "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz",
    "kg_highcov": "cohorts/1kgp_high_coverage_chr1_3202samples_head.vcf.gz",
    "platinum": "cohorts/platinum_NA12878_hg19_chr21.vcf.gz",
    "hail_nocontigs": "cohorts/hail_1kg_chr20_100samples_nocontigs.vcf.gz",
}
WITH_REFERENCE = {
    "pinfsc50": ("normalize/pinfsc50/pinf_sc50.vcf.gz", "normalize/pinfsc50/pinf_sc50.clean.fa"),
    "giab": (
        "normalize/giab_chr20_nucleus/test_nist.b37_chr20_100kbp_at_10mb.vcf.gz",
        "normalize/giab_chr20_nucleus/ucsc.hg19.chr20.unittest.fasta.gz",
    ),
}


@pytest.fixture(scope="module")
def cohort_run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("cohorts")
    vcfs = {name: str(data_file(path)) for name, path in COHORTS.items()}
    # Shards of 35,000 records: platinum (67,641 records, duplicates included) spans two jobs, the
    # other cohorts one each (every embedding job loads the model: ~10 s of a test's time each).
    run_workflow(workdir, {"vcfs": vcfs, "reference": None, "shard": {"records": 35000}})
    return workdir


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """Both WITH_REFERENCE files in one run, against one FASTA holding the contigs of both of theirs.

    Their contigs differ (Supercontig_1.50, chr20) and `bcftools norm -f` reads only a record's own
    contig, so each file is normalised as against its own FASTA, which bcftools is given below; one
    run instead of one per file (a whole workflow run each). A bgzipped reference goes through the
    workflow in tests/test_alleles.py too.
    """
    workdir = tmp_path_factory.mktemp("references")
    combined = workdir / "references.fa"
    with combined.open("wb") as out:
        for _, fasta in WITH_REFERENCE.values():
            text = data_file(fasta).read_bytes()
            out.write(gzip.decompress(text) if fasta.endswith(".gz") else text)
    pysam.faidx(str(combined))
    vcfs = {name: str(data_file(vcf)) for name, (vcf, _) in WITH_REFERENCE.items()}
    run_workflow(workdir, {"vcfs": vcfs, "reference": str(combined), "shard": {"bp": 5_000_000}})
    return workdir


def parquet(workdir: Path, kind: str, source: str) -> str:
    return f"read_parquet('{workdir}/results/parquet/{kind}/{source}/*.parquet')"


def count(workdir: Path, kind: str, source: str) -> int:
    return query(f"SELECT count(*) FROM {parquet(workdir, kind, source)}")[0][0]


@pytest.mark.parametrize("source", sorted(set(COHORTS) - {"hail_nocontigs"}))
def test_variant_rows_equal_bcftools_split_records(cohort_run, source):
    assert count(cohort_run, "variants", source) == split_records(data_file(COHORTS[source]))


@pytest.mark.parametrize("source", sorted(set(COHORTS) - {"hail_nocontigs"}))
def test_genotype_rows_equal_bcftools_nonref_genotypes(cohort_run, source):
    assert count(cohort_run, "genotypes", source) == nonref_genotypes(data_file(COHORTS[source]))


def test_contigless_cohort_is_loaded_whole(cohort_run):
    # bcftools cannot read back its own norm output for this file, so count the input directly.
    vcf = data_file(COHORTS["hail_nocontigs"])
    records = len(bcftools_lines("view", "-H", vcf))
    carriers = len(bcftools_lines("query", "-i", 'GT="alt"', "-f", "[%SAMPLE\\n]", vcf))
    assert count(cohort_run, "variants", "hail_nocontigs") == records == 346
    assert count(cohort_run, "genotypes", "hail_nocontigs") == carriers


def test_platinum_duplicate_records_keep_distinct_ids(cohort_run):
    ids = query(f"SELECT count(*), count(DISTINCT variant_id) FROM {parquet(cohort_run, 'variants', 'platinum')}")[0]
    assert ids[0] == ids[1] == 67_641


def test_sampled_records_match_bcftools_field_by_field(cohort_run):
    vcf = data_file(COHORTS["kg_phase3"])
    fmt = "%CHROM\\t%POS\\t%REF\\t%ALT\\t%ID\\t%QUAL\\t%FILTER\\t%INFO/AF\\t%INFO/AC\\n"
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", vcf], capture_output=True, check=True)
    lines = (
        subprocess.run(["bcftools", "query", "-f", fmt, "-"], input=norm.stdout, capture_output=True, check=True)
        .stdout.decode()
        .splitlines()
    )
    sample = lines[:: max(1, len(lines) // 25)]
    table = parquet(cohort_run, "variants", "kg_phase3")
    for line in sample:
        chrom, pos, ref, alt, vid, qual, filt, af, ac = line.split("\t")
        row = query(
            f"SELECT id, qual, filter, info_AF, info_AC FROM {table} WHERE variant_id = ?",
            [f"{chrom}:{pos}:{ref}:{alt}"],
        )
        assert row == [(None if vid == "." else vid, float(qual), filt, pytest.approx(float(af)), int(ac))]


def test_sampled_genotypes_match_bcftools(cohort_run):
    vcf = data_file(COHORTS["kg_phase3"])
    normalized = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", vcf], capture_output=True, check=True).stdout
    table = parquet(cohort_run, "genotypes", "kg_phase3")
    for sample in bcftools_lines("query", "-l", vcf)[::500]:
        command = ["bcftools", "query", "-s", sample, "-i", 'GT="alt"', "-f", "%CHROM:%POS:%REF:%ALT\t[%GT]\n", "-"]
        lines = subprocess.run(command, input=normalized, capture_output=True, check=True).stdout.decode().splitlines()
        got = query(f"SELECT variant_id, gt FROM {table} WHERE sample = ?", [sample])
        assert sorted(got) == sorted(tuple(line.split("\t")) for line in lines)
        assert got, sample


def test_summary_reports_every_stage(cohort_run):
    summary = json.loads((cohort_run / "results" / "summary.json").read_text())
    kg = summary["sources"]["kg_phase3"]
    assert (kg["records_in"], kg["records_normalized"], kg["samples"]) == (6109, 6139, 2504)
    assert kg["variants"] == 6139 and kg["genotypes"] == 495_959
    assert summary["sources"]["platinum"]["shards"] == 2


@pytest.mark.parametrize("name", sorted(WITH_REFERENCE))
def test_reference_runs_match_bcftools_with_the_fasta(reference_run, name):
    vcf, fasta = (data_file(p) for p in WITH_REFERENCE[name])
    assert count(reference_run, "variants", name) == split_records(vcf, fasta)
    assert count(reference_run, "genotypes", name) == nonref_genotypes(vcf, fasta)


def test_every_job_stayed_within_its_declared_memory(cohort_run):
    jobs = job_usage(cohort_run)
    measured = [j for j in jobs if j.peak_rss_mb is not None]
    assert {"normalize_vcf", "convert_shard", "embed_shard"} <= {j.rule for j in measured}
    assert [j.to_dict() for j in measured if not j.within_memory] == []


def test_jobs_report_the_threads_snakemake_gave_them(cohort_run):
    # The benchmark files (--benchmark-extended) record the threads each job was given.
    threads = {job.rule: job.threads for job in job_usage(cohort_run)}
    rules = ("check_vcf", "plan_shards", "convert_shard", "embed_shard")
    declared = {rule: DEFAULT_RESOURCES[rule]["threads"] for rule in rules}  # what common.smk gives the rules
    assert max(declared.values()) > 1  # a job given more than one core shows it
    assert {rule: threads[rule] for rule in declared} == declared


def test_embeddings_cover_every_variant_row_in_order(cohort_run):
    shards = sorted((cohort_run / "results" / "parquet" / "variants" / "platinum").glob("*.parquet"))
    assert len(shards) == 2
    for shard in shards:
        vectors = pq.read_table(cohort_run / "results" / "embeddings" / "platinum" / shard.name)
        assert vectors.column("variant_id").equals(pq.read_table(shard, columns=["variant_id"]).column("variant_id"))
        assert vectors.schema.field("vector").type == pa.list_(pa.float32(), 384)
