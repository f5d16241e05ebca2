"""Fixtures shared by the test modules (helpers live in tests/helpers.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from xdist.scheduler import LoadScopeScheduling

from helpers import DATA, ROOT, data_file, run_workflow

# ---------------------------------------------------------------- workers (pytest-xdist)
# Each worker has its own session, so modules that share a session fixture go to one
# worker (one workflow run each), and every other module is a unit of its own, so that its
# module-scoped run is made once. The longest units start first, one per worker; the SLURM
# test mostly waits on its cluster while the other worker runs the rest.

WORKER_GROUPS = {
    "test_report": "example_run",
    "test_simulate": "example_run",
    "test_slurm_workflow": "example_run",
    "test_query": "query_stores",
    "test_cli": "query_stores",
    "test_server": "query_stores",
    "test_ask": "query_stores",
    "test_ask_example": "example_run",
    "test_readme": "example_run",
    "test_search_quality": "example_run",
    "test_cli_server": "example_run",
}
# Longest first, so that no long unit starts last while the other worker idles (greedy list
# scheduling). Seconds of each unit's slowest tests in a whole-suite run on the 2-core VM (full
# run 1,155 s): example_run >= 386 (the SLURM run 294, started first: it mostly waits), query_stores
# >= 454, test_validator_suite 196, test_invalid_inputs 116, test_reruns 113, test_workflow 108,
# test_onnx_model 81, test_embed 73, test_stores 54; every other module under 30. Since then the
# validator suite's queries share a DuckDB database (~30% less CPU: ~140 s), test_workflow makes
# one reference run, not two (~85 s), and test_ask_cohorts measured 72 s of CPU (two small
# workflow runs; 123 for test_reruns, 222 for test_invalid_inputs alone on the same machine), so
# it starts after the 80-120 s units. test_incremental (five workflow runs on one folder and a re-run:
# 141 s of CPU, 161 s of wall at load average 1.5) starts right after the session fixtures' groups.
LONGEST_FIRST = (
    "example_run",
    "query_stores",
    "test_incremental",
    "test_validator_suite",
    "test_invalid_inputs",
    "test_reruns",
    "test_workflow",
    "test_onnx_model",
    "test_embed",
    "test_ask_cohorts",
    "test_stores",
)


def worker_group(nodeid: str) -> str:
    """The worker group of a test: its module's, or the module itself."""
    module = Path(nodeid.split("::", 1)[0]).stem
    return WORKER_GROUPS.get(module, module)


class ModuleGroupScheduling(LoadScopeScheduling):
    """xdist's --dist loadscope, with a unit per worker group rather than per module."""

    def _split_scope(self, nodeid: str) -> str:
        return worker_group(nodeid)


def pytest_xdist_make_scheduler(config: pytest.Config, log) -> ModuleGroupScheduling:
    return ModuleGroupScheduling(config, log)


# ---------------------------------------------------------------- the fast lane (make test-fast)
# A test that runs the workflow or builds a large cohort is `slow`: a module of such tests says
# so at its top (pytestmark); a test elsewhere that needs one of these fixtures, itself or through
# another fixture, is marked here.
SLOW_FIXTURES = {
    "example_run": "the bundled example's workflow run",
    "query_stores": "the query tools' workflow run",
    "built": "tests/test_stores.py's workflow run",
    "two_vcfs": "tests/test_stores.py's two-VCF workflow run",
    "cohort_shard": "the 2,504-sample cohort converted",
    "model": "tests/test_embed.py's model, exported to ONNX first in a fresh session",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)

    # The scheduler tracks tests by id: two tests with one id would run once, silently.
    repeated = sorted(nodeid for nodeid, n in Counter(item.nodeid for item in items).items() if n > 1)
    if repeated:
        raise pytest.UsageError(f"tests sharing an id (each would not run on the workers): {repeated}")

    def rank(item: pytest.Item) -> int:
        group = worker_group(item.nodeid)
        return LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: collection order within a group


# ---------------------------------------------------------------- one ONNX export per test run
# Every workflow run would otherwise export the model again (rule export_onnx_model, 15-60 s and
# ~0.9 GB each); with VCF_AGENT_MODELS set, the first export lands there and later runs copy it.
# Set on the controller before the xdist workers start, so that they inherit it.

_MODELS_MADE_HERE = "_VCF_AGENT_TEST_MODELS_MADE"


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if not DATA.is_dir() and not config.option.help:
        # One line, before collection: otherwise every module that reads the data fails on its own.
        raise pytest.UsageError(
            f"shared test data not found at {DATA}: set VCF_TEST_DATA to the shared data folder "
            "(default ../shared/data beside the checkout)"
        )
    if os.environ.get("VCF_AGENT_MODELS"):
        return
    os.environ["VCF_AGENT_MODELS"] = tempfile.mkdtemp(prefix="vcf-agent-test-models-")
    os.environ[_MODELS_MADE_HERE] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER") and os.environ.pop(_MODELS_MADE_HERE, None):
        shutil.rmtree(os.environ.pop("VCF_AGENT_MODELS", ""), ignore_errors=True)


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


# ---------------------------------------------------------------- the query tools' stores
# Shared by tests/test_query.py, test_cli.py and test_server.py: the real workflow builds
# both stores once per session from three small real call sets (an annotated exome file with
# half-missing genotypes, a haploid chrX file and the 2,504-sample 1000 Genomes cohort).

QUERY_INPUTS = {
    "annotated": "edge/cyvcf2/test.vcf.gz",
    "haploid": "edge/cyvcf2/test-haploidX.vcf",
    "kg": "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz",
}


@dataclass(frozen=True)
class QueryStores:
    results: Path
    inputs: dict[str, Path]


@pytest.fixture(scope="session")
def query_stores(tmp_path_factory) -> QueryStores:
    """results/lancedb and results/kuzu built by the workflow (targets lancedb.json, kuzu.json)."""
    workdir = tmp_path_factory.mktemp("query_stores")
    inputs = {name: data_file(path) for name, path in QUERY_INPUTS.items()}
    config = {
        "vcfs": {name: str(path) for name, path in inputs.items()},
        "reference": None,
        "shard": {"records": 10_000},
    }
    run_workflow(workdir, config, "results/lancedb.json", "results/kuzu.json")
    return QueryStores(workdir / "results", inputs)


class Bcftools:
    """Expected answers computed by bcftools from the input files (split with `norm -m -any`).

    Each input is first copied to an indexed BCF in a temporary folder (`bcftools view
    -Ob` + `index`, the records unchanged), so region look-ups jump instead of streaming.
    """

    #: Answers of up to this many lines are kept for the session: the modules of a worker group ask
    #: many of the same questions (the 2,504-sample cohort is read whole by each sample-subset one).
    KEPT_LINES = 100_000

    def __init__(self, inputs: dict[str, Path], scratch: Path) -> None:
        self.inputs = inputs
        self.scratch = scratch
        self._indexed: dict[str, Path] = {}
        self._answers: dict[tuple, tuple[str, ...]] = {}

    def indexed(self, name: str) -> Path:
        if name not in self._indexed:
            copy = self.scratch / f"{name}.bcf"
            subprocess.run(["bcftools", "view", "-Ob", "-o", copy, self.inputs[name]], check=True)
            subprocess.run(["bcftools", "index", copy], check=True)
            self._indexed[name] = copy
        return self._indexed[name]

    def split(self, name: str, fmt: str, *, view: tuple[str, ...] = (), include: str | None = None) -> list[str]:
        """`bcftools view VIEW | norm -m -any | query [-i INCLUDE] -f FMT` on input `name`."""
        query = ["bcftools", "query", *(["-i", include] if include else []), "-f", fmt, "-"]
        view_command = ["bcftools", "view", *view, "-Ou", str(self.indexed(name))]
        norm = ["bcftools", "norm", "-m", "-any", "-Ou", "-"]
        return self._answer(("split", name, fmt, tuple(view), include), view_command, norm, query)

    def _answer(self, key: tuple, *commands: list[str]) -> list[str]:
        """The lines of the pipeline `commands`, kept as the answer to `key` when they are few (a
        copy goes out: callers may edit theirs)."""
        if key in self._answers:
            return list(self._answers[key])
        lines = _pipeline(*commands)
        if len(lines) <= self.KEPT_LINES:
            self._answers[key] = tuple(lines)
        return lines

    def ids(self, name: str, *, view: tuple[str, ...] = (), include: str | None = None) -> list[str]:
        return self.split(name, "%CHROM:%POS:%REF:%ALT\n", view=view, include=include)

    def genotypes(self, name: str, variant_id: str) -> dict[str, str]:
        """sample -> GT of every sample whose genotype holds the ALT (half-missing ./1 included)."""
        chrom, pos, ref, alt = variant_id.rsplit(":", 3)
        lines = self.split(name, "%POS\t%REF\t%ALT[\t%SAMPLE=%GT]\n", view=("-r", f"{chrom}:{pos}"))
        (line,) = [line for line in lines if line.split("\t")[:3] == [pos, ref, alt]]
        calls = dict(cell.split("=", 1) for cell in line.split("\t")[3:])
        return {sample: gt for sample, gt in calls.items() if set(re.split(r"[/|]", gt)) - {"0", "."}}

    def samples(self, name: str) -> list[str]:
        return self._answer(("samples", name), ["bcftools", "query", "-l", str(self.inputs[name])])


def _pipeline(*commands: list[str]) -> list[str]:
    processes: list[subprocess.Popen] = []
    for command in commands:
        source = processes[-1].stdout if processes else None
        processes.append(subprocess.Popen(command, stdin=source, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        if source is not None:
            source.close()  # the next process owns the pipe now
    output = processes[-1].communicate()[0]
    for process in processes:
        assert process.wait() == 0, f"{process.args} failed"
    return output.decode().splitlines()


@pytest.fixture(scope="session")
def bcftools(query_stores, tmp_path_factory) -> Bcftools:
    return Bcftools(query_stores.inputs, tmp_path_factory.mktemp("bcftools"))
