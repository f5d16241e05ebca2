"""Configs are validated against workflow/schemas/config.schema.yaml with messages that say what is wrong."""

from __future__ import annotations

import pytest

from helpers import TEST_FILES, run_workflow

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
