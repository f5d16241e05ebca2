"""Each rule run alone (snakemake --allowed-rules) on small inputs, outputs checked by hand or by bcftools.

This is the pattern `snakemake --generate-unit-tests` sets up (inputs in a fresh
working directory, one rule forced to run), with expectations worked out by hand
from tests/data/genotypes.vcf instead of copies of earlier outputs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vcf_agent.files import write_json
from vcf_agent.ingest.inputs import check_vcf
from vcf_agent.ingest.normalize import index_bcf, normalize_vcf
from vcf_agent.ingest.shards import ShardSize, plan_shards, write_plan

from helpers import TEST_FILES, bcftools_lines, query, run_workflow

pytestmark = pytest.mark.slow  # each rule run by Snakemake

SMALL = TEST_FILES / "genotypes.vcf"
CONFIG = {"vcfs": {"small": str(SMALL)}, "reference": None, "shard": {"records": 3}}


def run_rule(workdir: Path, rule: str, *targets: str) -> None:
    run_workflow(workdir, CONFIG, *targets, extra=("--allowed-rules", rule, "--force"))


@pytest.fixture
def normalized(tmp_path) -> Path:
    """results/ up to the normalised, indexed BCF, made by the package (not by the rules under test)."""
    results = tmp_path / "results"
    report, _ = check_vcf(SMALL, "small")
    write_json(report.to_dict(), results / "checks" / "small.json")
    stats = normalize_vcf(SMALL, results / "normalized" / "small.bcf", source="small")
    stats.write(results / "normalized" / "small.stats.json")
    index_bcf(results / "normalized" / "small.bcf")
    write_json(
        [json.loads((results / "normalized" / "small.stats.json").read_text())], results / "normalized" / "inputs.json"
    )
    return tmp_path


def test_check_vcf(tmp_path):
    run_rule(tmp_path, "check_vcf", "results/checks/small.json")
    report = json.loads((tmp_path / "results/checks/small.json").read_text())
    assert (report["samples"], report["declared_contigs"], report["info_fields"], report["container"]) == (
        3,
        2,
        5,
        "vcf",
    )


def test_normalize_vcf(tmp_path):
    report, _ = check_vcf(SMALL, "small")
    write_json(report.to_dict(), tmp_path / "results" / "checks" / "small.json")
    run_rule(tmp_path, "normalize_vcf", "results/normalized/small.bcf")
    bcf = tmp_path / "results/normalized/small.bcf"
    assert len(bcftools_lines("view", "-H", bcf)) == 7  # 6 records, one split in two
    assert bcftools_lines("query", "-i", "INFO/VCFAGENT_DUP=2", "-f", "%CHROM:%POS:%REF:%ALT\\n", bcf) == ["1:300:G:GA"]
    stats = json.loads((tmp_path / "results/normalized/small.stats.json").read_text())
    assert (stats["records_in"], stats["records_out"], stats["split"]) == (6, 7, 1)


def test_index_bcf(normalized):
    (normalized / "results/normalized/small.bcf.csi").unlink()
    run_rule(normalized, "index_bcf", "results/normalized/small.bcf.csi")
    assert bcftools_lines("index", "-n", normalized / "results/normalized/small.bcf") == ["7"]


def test_plan_shards(normalized):
    run_rule(normalized, "plan_shards", "results/shards/small.tsv")
    with (normalized / "results/shards/small.tsv").open() as handle:
        rows = [
            (r["chrom"], int(r["start"]), int(r["end"]), int(r["records"]))
            for r in csv.DictReader(handle, delimiter="\t")
        ]
    # 3 records per shard, never splitting a position: 100,200,200 | 300,300 | X:50,60
    assert rows == [("1", 100, 200, 3), ("1", 300, 300, 2), ("X", 50, 60, 2)]


def test_convert_shard(normalized):
    bcf = normalized / "results/normalized/small.bcf"
    write_plan(plan_shards(bcf, ShardSize(records=3), samples=3), normalized / "results/shards/small.tsv")
    run_rule(normalized, "convert_shard", "results/parquet/variants/small/00001.parquet")
    parquet = normalized / "results/parquet"
    variants = query(f"SELECT variant_id FROM '{parquet}/variants/small/00001.parquet'")
    assert sorted(v[0] for v in variants) == ["1:100:A:G", "1:200:C:G", "1:200:C:T"]
    genotypes = query(f"SELECT count(*) FROM '{parquet}/genotypes/small/00001.parquet'")[0][0]
    assert genotypes == 6  # s1,s2 at 1:100; s1,s3 at C>T; s1,s2 at C>G -- see test_parquet.py
    stats = json.loads((normalized / "results/shard_stats/small/00001.json").read_text())
    assert (stats["variants"], stats["genotypes"]) == (3, 6)


def test_summarize_run(normalized):
    shard_stats = normalized / "results/shard_stats/small"
    for shard, variants, genotypes in (("00001", 3, 6), ("00002", 2, 3), ("00003", 2, 3)):
        write_json({"source": "small", "shard": shard, "variants": variants, "genotypes": genotypes, "annotations": 0},
                   shard_stats / f"{shard}.json")  # fmt: skip
        embedded = {"records": variants, "distinct_texts": variants, "cache_lookups": variants, "cache_hits": 1,
                    "embedded": variants - 1, "model": "m", "device": "cpu"}  # fmt: skip
        write_json(embedded, normalized / "results/embedding_stats/small" / f"{shard}.json")
    write_plan(plan_shards(normalized / "results/normalized/small.bcf", ShardSize(records=3), 3),
               normalized / "results/shards/small.tsv")  # fmt: skip
    run_rule(normalized, "summarize_run", "results/summary.json")
    summary = json.loads((normalized / "results/summary.json").read_text())
    assert summary["totals"]["variants"] == 7 and summary["totals"]["genotypes"] == 12
    assert summary["sources"]["small"]["records_in"] == 6
    assert summary["sources"]["small"]["embedding"]["cache_hit_share"] == round(3 / 7, 4)
