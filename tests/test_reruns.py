"""Re-running changes nothing; adding a VCF adds only its rows; a failed shard leaves no file behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.normalize import index_bcf, normalize_vcf
from vcf_agent.parquet import convert_shard
from vcf_agent.shards import ShardSize, plan_shards

from helpers import TEST_FILES, data_file, query, run_workflow

GIAB = "normalize/giab_chr20_nucleus/test_nist.b37_chr20_100kbp_at_10mb.vcf.gz"


def snapshot(results: Path) -> dict[str, tuple[int, str]]:
    """mtime and content hash of every result file (logs and benchmarks excluded)."""
    files = {}
    for path in sorted(results.rglob("*")):
        if path.is_file() and not {"logs", "benchmarks"} & set(path.relative_to(results).parts):
            files[str(path.relative_to(results))] = (
                path.stat().st_mtime_ns,
                hashlib.sha256(path.read_bytes()).hexdigest(),
            )
    return files


def variant_rows(workdir: Path) -> int:
    pattern = f"{workdir}/results/parquet/variants/*/*.parquet"
    return query(f"SELECT count(*) FROM read_parquet('{pattern}')")[0][0]


def test_rerun_changes_nothing_and_a_new_vcf_adds_only_its_rows(tmp_path):
    # One shard per file: every embedding job loads the model (~10 s), and sharding is not what this tests.
    first = {"vcfs": {"small": str(TEST_FILES / "genotypes.vcf")}, "reference": None, "shard": {"records": 1000}}
    run_workflow(tmp_path, first)
    before = snapshot(tmp_path / "results")
    assert variant_rows(tmp_path) == 7

    again = run_workflow(tmp_path, first)
    assert "Nothing to be done" in again.stderr
    assert snapshot(tmp_path / "results") == before

    second = {**first, "vcfs": {**first["vcfs"], "giab": str(data_file(GIAB))}}
    run_workflow(tmp_path, second)
    after = snapshot(tmp_path / "results")
    unchanged = {
        k: v for k, v in before.items() if "/small/" in k or k.startswith(("checks/small", "normalized/small"))
    }
    assert unchanged and all(after[k] == v for k, v in unchanged.items())
    assert variant_rows(tmp_path) == 7 + 222  # giab: 221 records, one multiallelic split (data README)


def test_failed_conversion_leaves_no_parquet(tmp_path):
    # INFO/AC is declared Number=1 but a record holds '2,1': the shard must fail as a whole.
    bcf = tmp_path / "hemi.bcf"
    stats = normalize_vcf(data_file("edge/cyvcf2/test-hemi.vcf"), bcf, source="hemi")
    index_bcf(bcf)
    out = tmp_path / "out"
    for shard in plan_shards(bcf, ShardSize(records=10_000), stats.samples):
        with pytest.raises(VcfAgentError, match=r"record chr19:11210912: INFO/AC value '2,1'"):
            convert_shard(
                bcf, shard, source="hemi",
                variants_out=out / "v.parquet", genotypes_out=out / "g.parquet", annotations_out=out / "a.parquet",
            )  # fmt: skip
    assert not out.exists() or list(out.iterdir()) == []
