"""The workflow and the code pass the linters the project promises (snakemake --lint, snakefmt, ruff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT, SNAKEMAKE

BIN = Path(sys.executable).parent


def run(*command: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], cwd=ROOT, capture_output=True, text=True, check=False)


def test_snakemake_lint_is_clean():
    result = run(SNAKEMAKE, "--lint", "--cores", "1")
    assert result.returncode == 0 and "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = run(BIN / "snakefmt", "--check", "Snakefile", "workflow")
    assert result.returncode == 0, result.stderr


def test_ruff_is_clean():
    check = run(BIN / "ruff", "check", ".")
    assert check.returncode == 0, check.stdout
    formatting = run(BIN / "ruff", "format", "--check", ".")
    assert formatting.returncode == 0, formatting.stdout
