"""Fixtures shared by the test modules (helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"shared test data not found at {DATA} (set VCF_TEST_DATA)"
    return DATA
