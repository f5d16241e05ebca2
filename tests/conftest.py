"""Fixtures shared by the test modules (helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from helpers import DATA, ROOT, run_workflow


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"shared test data not found at {DATA} (set VCF_TEST_DATA)"
    return DATA


@pytest.fixture(scope="session")
def example_run(tmp_path_factory) -> tuple[Path, Path]:
    """The bundled example run end to end with the default config, once per session: (workdir, config file)."""
    workdir = tmp_path_factory.mktemp("example")
    run_workflow(workdir, yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    return workdir, workdir / "config.yaml"
