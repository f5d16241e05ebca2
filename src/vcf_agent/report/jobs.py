"""What each job of a run declared (Snakemake's log) against what it used (its benchmark: file).

Snakemake writes, for every job it starts, a block in `.snakemake/log/*.log`
with the rule, its `benchmark:` path and the resources it asked for; the
benchmark file holds the job's measured runtime and peak RSS. Joining the two
shows whether every job stayed inside the memory it declared.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from pathlib import Path

_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (?P<rule>\w+):$")
_FIELD = re.compile(r"^\s+(?P<key>benchmark|resources|threads): (?P<value>.*)$")


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


def declared_jobs(log_files: list[Path]) -> dict[str, JobUsage]:
    """benchmark path -> the job's declaration; a later log wins (the job ran again)."""
    jobs: dict[str, JobUsage] = {}
    for log_file in sorted(log_files):
        rule, fields = None, {}
        for line in Path(log_file).read_text(errors="replace").splitlines():
            if match := _RULE.match(line):
                rule, fields = match["rule"], {}
            elif rule and (match := _FIELD.match(line)):
                fields[match["key"]] = match["value"]
                if "benchmark" in fields and "resources" in fields:
                    jobs[fields["benchmark"]] = _job(rule, fields)
                    rule = None
    return jobs


def _job(rule: str, fields: dict[str, str]) -> JobUsage:
    resources = dict(item.split("=", 1) for item in fields["resources"].split(", ") if "=" in item)
    number = lambda key: int(float(resources[key])) if key in resources else None  # noqa: E731
    return JobUsage(
        rule=rule,
        benchmark=fields["benchmark"],
        declared_mem_mb=number("mem_mb"),
        declared_runtime_min=number("runtime"),
        threads=int(fields.get("threads", 1)),  # Snakemake prints threads only when above one
    )


def job_usage(workdir: Path | str) -> list[JobUsage]:
    """Every job of the runs in `workdir` that has both a declaration and a benchmark file."""
    workdir = Path(workdir)
    jobs = declared_jobs(list((workdir / ".snakemake" / "log").glob("*.log")))
    measured = []
    for path, job in sorted(jobs.items()):
        benchmark = workdir / path
        if not benchmark.exists():
            continue
        with benchmark.open(newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if rows:
            job.peak_rss_mb = _float(rows[-1].get("max_rss"))
            job.seconds = _float(rows[-1].get("s"))
            measured.append(job)
    return measured


def _float(value: str | None) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None  # Snakemake writes NA when a job ended before its first sample
