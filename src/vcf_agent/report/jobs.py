"""What each job of a run declared against what it used: its `benchmark:` file.

Run with ``--benchmark-extended`` (profiles/default and profiles/slurm set it), Snakemake writes
into each job's benchmark file, beside its measured runtime and peak RSS, the rule, the threads
and the resources the job was given (mem_mb as Snakemake granted it, after any scaling to the
run's --resources budget). Reading those files shows whether every job stayed inside the memory
it declared; a benchmark file without those columns (a run without the flag) has no declaration.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import asdict, dataclass
from pathlib import Path

#: Where the rules write their benchmark files (results/benchmarks/<rule>/...).
BENCHMARKS = Path("results") / "benchmarks"


@dataclass
class JobUsage:
    rule: str
    benchmark: str
    declared_mem_mb: int | None
    declared_runtime_min: int | None
    threads: int
    peak_rss_mb: float | None = None
    seconds: float | None = None

    @property
    def within_memory(self) -> bool:
        return (
            self.peak_rss_mb is not None
            and self.declared_mem_mb is not None
            and (self.peak_rss_mb < self.declared_mem_mb)
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "within_memory": self.within_memory}


def job_usage(workdir: Path | str) -> list[JobUsage]:
    """Every job of the runs in `workdir` with a benchmark file, by benchmark path."""
    workdir = Path(workdir)
    jobs = []
    for benchmark in sorted((workdir / BENCHMARKS).rglob("*.tsv")):
        with benchmark.open(newline="") as handle:
            # params and wildcards are Python reprs, quotes and all: no CSV quoting
            rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
        if rows:
            jobs.append(_job(benchmark.relative_to(workdir), rows[-1]))
    return jobs


def _job(benchmark: Path, row: dict[str, str]) -> JobUsage:
    resources = _resources(row.get("resources"))
    number = lambda key: int(float(resources[key])) if key in resources else None  # noqa: E731
    return JobUsage(
        rule=row.get("rule_name") or benchmark.relative_to(BENCHMARKS).parts[0],
        benchmark=str(benchmark),
        declared_mem_mb=number("mem_mb"),
        declared_runtime_min=number("runtime"),
        threads=int(row.get("threads") or 1),
        peak_rss_mb=_float(row.get("max_rss")),
        seconds=_float(row.get("s")),
    )


def _resources(text: str | None) -> dict:
    """The resources column: the repr of a dict of plain values."""
    try:
        value = ast.literal_eval(text or "")
    except (ValueError, SyntaxError):
        return {}
    return value if isinstance(value, dict) else {}


def _float(value: str | None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # Snakemake writes NA when a job ended before its first sample
