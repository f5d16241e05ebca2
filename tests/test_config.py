"""Configs are validated against workflow/schemas/config.schema.yaml with messages that say what is wrong."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import ROOT, SNAKEMAKE, TEST_FILES, data_file, run_workflow

pytestmark = pytest.mark.slow  # every test runs Snakemake (a dry run or a target)

GOOD = {"vcfs": [str(TEST_FILES / "genotypes.vcf")], "reference": None}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"shard": {"records": 0}}, "minimum"),
        ({"shard": {"records": 10, "bp": 10}}, "shard"),
        ({"ref_check": "sometimes"}, "sometimes"),
        ({"vcfs": []}, "vcfs"),
        ({"shards": {"records": 10}}, "shards"),
    ],
)
def test_bad_config_is_refused_before_anything_runs(tmp_path, change, expected):
    result = run_workflow(tmp_path, {**GOOD, **change}, extra=("--dry-run",), check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_a_list_of_paths_is_named_after_the_files(tmp_path):
    result = run_workflow(tmp_path, GOOD, extra=("--dry-run",))
    assert "results/normalized/genotypes.bcf" in result.stdout + result.stderr


def test_two_files_with_the_same_name_need_a_mapping(tmp_path):
    config = {**GOOD, "vcfs": [str(TEST_FILES / "genotypes.vcf"), str(tmp_path / "genotypes.vcf.gz")]}
    result = run_workflow(tmp_path, config, extra=("--dry-run",), check=False)
    assert result.returncode != 0
    assert "give them names with a mapping" in result.stdout + result.stderr


def test_a_misspelled_resources_rule_is_refused(tmp_path):
    config = {**GOOD, "resources": {"convert_shrad": {"mem_mb": 4000}}}
    result = run_workflow(tmp_path, config, extra=("--dry-run",), check=False)
    assert result.returncode != 0
    (line,) = [line for line in (result.stdout + result.stderr).splitlines() if "convert_shrad" in line]
    assert "unknown rule 'convert_shrad'" in line and "convert_shard" in line and "load_kuzu" in line


# ---------------------------------------------------------------- the bundled example vs a user's config
# A user runs from the project folder, where config/config.yaml (the example) sits beside their file.

PINF = "normalize/pinfsc50/pinf_sc50.vcf.gz"  # 22,031 records (data README): 12 shards of the example's 2000


def project_like(workdir: Path) -> Path:
    """A working folder holding the project's config/ (the example) as a user's checkout does."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config").symlink_to(ROOT / "config")
    return workdir


def dry_run_jobs(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def test_a_users_vcfs_mapping_replaces_the_example_entirely(tmp_path):
    workdir = project_like(tmp_path / "run")
    config = {"vcfs": {"mine": str(data_file(PINF))}}  # no reference, no shard: the schema defaults apply
    planned = dry_run_jobs(run_workflow(workdir, config, extra=("--dry-run",)))
    assert "results/normalized/mine.bcf" in planned
    assert "example" not in planned  # neither simulate_example nor the example's VCF nor its FASTA

    run_workflow(workdir, config, "results/shards/mine.tsv")
    assert not (workdir / "resources" / "example").exists()
    plan = (workdir / "results" / "shards" / "mine.tsv").read_text().splitlines()
    assert len(plan) == 1 + 1  # header + one shard: the schema's records: 100000, not the example's 2000


def test_without_vcfs_the_example_runs_with_the_users_other_keys(tmp_path):
    workdir = project_like(tmp_path / "run")
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir), "--dry-run"]
    default = dry_run_jobs(subprocess.run(command, capture_output=True, text=True, check=True))
    assert "rule simulate_example" in default and "results/normalized/example.bcf" in default
    # `key=` is null on Snakemake's command line (`reference=null` would be the string 'null')
    overridden = subprocess.run([*command, "--config", "reference="], capture_output=True, text=True, check=True)
    assert "rule simulate_example" in dry_run_jobs(overridden)  # the example's VCF is still simulated
    assert "example.fa" not in dry_run_jobs(overridden).split("rule normalize_vcf", 1)[1]
