"""Re-running changes nothing; adding a VCF adds only its rows; a failed shard leaves no file behind."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.ingest.pipeline import convert_vcf
from vcf_agent.ingest.shards import ShardSize

from helpers import ROOT, SNAKEMAKE, TEST_FILES, data_file, query, run_workflow, split_records

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


@pytest.mark.slow
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
    # Adding a VCF re-runs summarize_inputs, and Snakemake deletes inputs.json as that job
    # starts. Whether the existing shards were redone was a race: they were when the new
    # VCF's plan_shards checkpoint ended (the DAG is re-evaluated then) while inputs.json
    # was gone. Set up that state for certain: the new plan made, inputs.json absent.
    run_workflow(tmp_path, second, "results/shards/giab.tsv")
    (tmp_path / "results" / "normalized" / "inputs.json").unlink()
    run_workflow(tmp_path, second)
    after = snapshot(tmp_path / "results")
    # the small VCF's files, its graph layer (kuzu_parts/small/) included; not the stores' builds (.kuzu-*,
    # .lancedb-*), which each load makes anew (the graph's hard-links the layers' partitions)
    unchanged = {
        k: v
        for k, v in before.items()
        if ("/small/" in k or k.startswith(("checks/small", "normalized/small"))) and not k.startswith(".")
    }
    assert any(k.startswith("kuzu_parts/small/") for k in unchanged)
    assert unchanged and all(after[k] == v for k, v in unchanged.items())
    assert variant_rows(tmp_path) == 7 + 222  # giab: 221 records, one multiallelic split (data README)


SHARD_OUTPUTS = (
    "parquet/variants/{vcf}/{shard}.parquet",
    "parquet/genotypes/{vcf}/{shard}.parquet",
    "parquet/annotations/{vcf}/{shard}.parquet",
    "shard_stats/{vcf}/{shard}.json",
    "embeddings/{vcf}/{shard}.parquet",
    "embedding_stats/{vcf}/{shard}.json",
)


def kill_when_gone(workdir: Path, config_file: Path, watched: list[Path], *args: str) -> None:
    """Start the workflow with `args` and SIGKILL its whole process group once a watched file is gone."""
    command = [
        str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
        "--configfile", str(config_file), "--workflow-profile", str(ROOT / "profiles" / "default"),
        "--cores", "1", *args,
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) as run:
        deadline = time.monotonic() + 300
        while all(path.exists() for path in watched):
            assert run.poll() is None, "the run ended before any watched file was deleted"
            assert time.monotonic() < deadline, "no watched file was deleted within 300 s"
            time.sleep(0.02)
        os.killpg(run.pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_killed_forced_rerun_is_completed_by_the_next_run(tmp_path):
    # One shard: every embedding job loads the model (~10-40 s), and one missing shard is the case.
    config = {"vcfs": {"giab": str(data_file(GIAB))}, "reference": None, "shard": {"records": 1000}}
    run_workflow(tmp_path, config)
    results = tmp_path / "results"
    shards = [line.split("\t")[0] for line in (results / "shards" / "giab.tsv").read_text().splitlines()[1:]]
    assert len(shards) == 1
    files = [results / pattern.format(vcf="giab", shard=shard) for shard in shards for pattern in SHARD_OUTPUTS]

    # Snakemake deletes a job's outputs before it runs it: kill the run right then.
    kill_when_gone(tmp_path, tmp_path / "config.yaml", files, "--forcerun", "convert_shard")
    assert not all(path.exists() for path in files)
    run_workflow(tmp_path, config, extra=("--unlock",))
    rerun = run_workflow(tmp_path, config)

    assert "Nothing to be done" not in rerun.stderr
    assert [path for path in files if not path.exists()] == []
    expected = split_records(data_file(GIAB))  # 222: one multiallelic record split (data README)
    assert variant_rows(tmp_path) == expected
    summary = json.loads((results / "summary.json").read_text())
    assert summary["totals"]["variants"] == expected and summary["totals"]["shards"] == 1


def test_failed_conversion_leaves_no_parquet(tmp_path):
    # INFO/AC is declared Number=1 but a record holds '2,1': the shard must fail as a whole.
    with pytest.raises(VcfAgentError, match=r"record chr19:11210912: INFO/AC value '2,1'"):
        convert_vcf(
            data_file("edge/cyvcf2/test-hemi.vcf"), tmp_path, source="hemi", shard_size=ShardSize(records=10_000)
        )
    out = tmp_path / "parquet"
    assert not out.exists() or [p for p in out.rglob("*") if p.is_file()] == []  # nor a temporary file
