"""Test helpers: where the real data lives, running the workflow, bcftools as the truth."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml

from vcf_agent.runtime import setup_process

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VCF_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()
TEST_FILES = ROOT / "tests" / "data"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

# The test session is an entry point like the CLI: its environment (nothing fetched from a hub)
# and allocator are set as every other's.
setup_process()


def data_file(relative: str) -> Path:
    """A file of the shared third-party data set; a missing one is a failure, not a skip."""
    path = DATA / relative
    assert path.exists(), f"test data missing: {path} (set VCF_TEST_DATA to the shared data folder)"
    return path


def variant(**values) -> dict:
    """A row of the variant table: core columns (None unless given) plus the given INFO columns."""
    from vcf_agent.schema import VARIANT_COLUMNS

    row = {column.name: None for column in VARIANT_COLUMNS}
    row.update(source="test", chrom="1", pos=1000, ref="C", alt="T", variant_class="snv")
    row.update(values)
    row["end"] = row["end"] or row["pos"] + len(row["ref"]) - 1
    row["variant_id"] = row["variant_id"] or f"{row['chrom']}:{row['pos']}:{row['ref']}:{row['alt']}"
    return row


def whole_vcf_as_one_shard(vcf: Path, folder: Path, source: str) -> Path:
    """The variant Parquet of `vcf` converted by the project's chain as one shard (one contig)."""
    from vcf_agent.ingest.pipeline import convert_vcf
    from vcf_agent.ingest.shards import ShardSize

    converted = convert_vcf(vcf, folder, source=source, shard_size=ShardSize(records=10**9))
    (variants,) = converted.parquet["variants"]
    return variants


_DATABASES: dict[int, duckdb.DuckDBPyConnection] = {}


def query(sql: str, params: list | None = None) -> list[tuple]:
    """All rows of a DuckDB query, on a connection of its own (none left half-read for the next test).

    The connections are cursors of one in-memory database per process: a new database costs ~45 ms
    of CPU (a cursor 0.5 ms), and the validator suite alone asks ~1,200 queries. The database caches
    no file (workflow reruns rewrite the Parquet files read here); a forked process makes its own.
    """
    database = _DATABASES.get(os.getpid())
    if database is None:
        database = _DATABASES[os.getpid()] = duckdb.connect(config={"enable_external_file_cache": False})
    with database.cursor() as connection:
        return connection.execute(sql, params or []).fetchall()


def workflow_command(
    workdir: Path, config: dict, *targets: str, cores: int = 2, extra: tuple[str, ...] = ()
) -> list[str]:
    """The checkout's workflow as a command, run in `workdir` on `config` (written there as
    config.yaml); the benchmarks run it the same way (benchmarks/measure.py)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))  # the vcfs order is the config order
    return [
        str(SNAKEMAKE),
        "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(config_file),
        "--workflow-profile", str(ROOT / "profiles" / "default"),
        "--cores", str(cores),
        "--retries", "0",
        *extra,
        *targets,
    ]  # fmt: skip


def run_workflow(
    workdir: Path, config: dict, *targets: str, extra: tuple[str, ...] = (), check: bool = True
) -> subprocess.CompletedProcess:
    """Run the real workflow in `workdir` with `config`; return the finished process."""
    command = workflow_command(workdir, config, *targets, extra=extra)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"workflow failed ({result.returncode}):\n{result.stderr[-6000:]}")
    return result


def bcftools_lines(*args: str | Path) -> list[str]:
    """Run bcftools (the independent truth) and return its stdout lines."""
    result = subprocess.run(["bcftools", *map(str, args)], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def split_records(vcf: Path, reference: Path | None = None) -> int:
    """Records after `bcftools norm -m -any` (the README's 'split' column)."""
    norm = ["bcftools", "norm", "-m", "-any", *(["-f", str(reference)] if reference else []), "-Ov", str(vcf)]
    with subprocess.Popen(norm, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as process:
        count = sum(1 for line in process.stdout if not line.startswith(b"#"))
    assert process.returncode == 0
    return count


def nonref_genotypes(vcf: Path, reference: Path | None = None) -> int:
    """Genotypes carrying an ALT after the split: bcftools query -i 'GT="alt"' (the README's method)."""
    norm = ["bcftools", "norm", "-m", "-any", *(["-f", str(reference)] if reference else []), "-Ou", str(vcf)]
    query = ["bcftools", "query", "-i", 'GT="alt"', "-f", "[%SAMPLE\\n]", "-"]
    with (
        subprocess.Popen(norm, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as first,
        subprocess.Popen(query, stdin=first.stdout, stdout=subprocess.PIPE) as second,
    ):
        first.stdout.close()
        count = sum(1 for _ in second.stdout)
    assert first.returncode == 0 and second.returncode == 0
    return count


#: The start of a child script that measures its own peak RSS with its children's (psutil, every
#: 5 ms): `tree_rss()` now, and `peak[0]` the largest seen by `watch` (run it in a thread until
#: `done` holds an item). A job's memory is what its process tree holds, as Snakemake measures it.
TREE_RSS_WATCHER = """
import json, sys, threading, time
from pathlib import Path
import psutil

job = json.loads(sys.argv[1])
me = psutil.Process()

def tree_rss():
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total

peak, done = [0], []
def watch():
    while not done:
        peak[0] = max(peak[0], tree_rss())
        time.sleep(0.005)
"""
