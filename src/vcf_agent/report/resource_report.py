"""Pages for `snakemake --report`: each rule's peak memory and runtime against what it declared.

The numbers come from vcf_agent.report.jobs (each job's `benchmark:` file, written with
Snakemake's --benchmark-extended). The plots are plain SVG written here, so the report needs
no plotting library and stays self-contained.
"""

from __future__ import annotations

import csv
import html
import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vcf_agent.files import atomic_file, write_text
from vcf_agent.report.jobs import JobUsage

_ROW_HEIGHT = 34
_LABEL_WIDTH = 150
_BAR_WIDTH = 520
_NOTE_WIDTH = 330
_DECLARED_COLOUR = "#c6dbef"
_USED_COLOUR = "#2171b5"
_OVER_COLOUR = "#cb181d"


@dataclass(frozen=True)
class RuleUsage:
    """One rule's jobs summarised: the largest use against the smallest declaration."""

    rule: str
    jobs: int
    declared: float  # smallest declaration among its jobs (the tightest budget)
    used_max: float
    used_median: float
    over: int  # jobs that used more than they declared

    @property
    def ratio(self) -> float:
        return self.used_max / self.declared if self.declared else float("inf")


def summarise(
    jobs: Iterable[JobUsage], used: Callable[[JobUsage], float | None], declared: Callable[[JobUsage], float | None]
) -> list[RuleUsage]:
    """Per rule, in the order rules first appear; jobs without both numbers are left out."""
    by_rule: dict[str, list[tuple[float, float]]] = {}
    for job in jobs:
        job_used, job_declared = used(job), declared(job)
        if job_used is not None and job_declared:
            by_rule.setdefault(job.rule, []).append((job_used, job_declared))
    return [
        RuleUsage(
            rule=rule,
            jobs=len(pairs),
            declared=min(d for _, d in pairs),
            used_max=max(u for u, _ in pairs),
            used_median=statistics.median(u for u, _ in pairs),
            over=sum(u >= d for u, d in pairs),
        )
        for rule, pairs in by_rule.items()
    ]


def memory_by_rule(jobs: list[JobUsage]) -> list[RuleUsage]:
    return summarise(jobs, lambda job: job.peak_rss_mb, lambda job: job.declared_mem_mb)


def runtime_by_rule(jobs: list[JobUsage]) -> list[RuleUsage]:
    def declared_seconds(job: JobUsage) -> float | None:
        return job.declared_runtime_min * 60 if job.declared_runtime_min else None

    return summarise(jobs, lambda job: job.seconds, declared_seconds)


def bar_chart_svg(title: str, unit: str, rules: list[RuleUsage]) -> str:
    """Horizontal bars: the declared budget (light) with the peak use over it (dark, red when over)."""
    height = 60 + _ROW_HEIGHT * max(1, len(rules))
    width = _LABEL_WIDTH + _BAR_WIDTH + _NOTE_WIDTH
    scale = _BAR_WIDTH / max([max(r.declared, r.used_max) for r in rules] or [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif"'
        ' font-size="12">',
        f'<text x="10" y="20" font-size="15" font-weight="bold">{html.escape(title)}</text>',
        f'<text x="10" y="40" fill="#555">light: declared ({unit}, smallest of the rule\'s jobs);'
        f" dark: largest measured; red: a job used more than it declared</text>",
    ]
    for index, rule in enumerate(rules):
        y = 52 + index * _ROW_HEIGHT
        colour = _OVER_COLOUR if rule.over else _USED_COLOUR
        note = (
            f"{rule.used_max:,.0f} of {rule.declared:,.0f} {unit} ({rule.ratio:.0%}),"
            f" median {rule.used_median:,.0f}, {rule.jobs} job{'s' if rule.jobs != 1 else ''}"
        )
        parts += [
            f'<text x="10" y="{y + 18}">{html.escape(rule.rule)}</text>',
            f'<rect x="{_LABEL_WIDTH}" y="{y + 4}" width="{rule.declared * scale:.1f}" height="22"'
            f' fill="{_DECLARED_COLOUR}"/>',
            f'<rect x="{_LABEL_WIDTH}" y="{y + 9}" width="{rule.used_max * scale:.1f}" height="12" fill="{colour}"/>',
            f'<text x="{_LABEL_WIDTH + _BAR_WIDTH + 10}" y="{y + 18}">{html.escape(note)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_jobs_table(jobs: list[JobUsage], path: Path | str) -> None:
    fields = ["rule", "benchmark", "threads", "declared_mem_mb", "peak_rss_mb", "declared_runtime_min", "seconds"]
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, "within_memory"], delimiter="\t")
        writer.writeheader()
        for job in jobs:
            row = job.to_dict()
            writer.writerow({key: row[key] for key in writer.fieldnames})


def summary_html(summary: dict) -> str:
    """The run summary (results/summary.json) as nested HTML tables."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>vcf-agent run summary</title>"
        "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "vertical-align:top;text-align:left}</style></head><body><h2>Run summary</h2>"
        f"{_html_value(summary)}</body></html>\n"
    )


def _html_value(value) -> str:
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_html_value(v)}</td></tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        columns = list(dict.fromkeys(key for item in value for key in item))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{_html_value(item.get(c, ''))}</td>" for c in columns) + "</tr>" for item in value
        )
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(value, list):
        return ", ".join(html.escape(str(item)) for item in value)
    return html.escape(f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))


def write_report_pages(
    jobs: list[JobUsage], summary_json: Path | str, memory_svg: Path, runtime_svg: Path, jobs_tsv: Path, summary: Path
) -> None:
    """Every page the report shows, from the jobs of the run and its summary."""
    write_text(memory_svg, bar_chart_svg("Peak memory per rule", "MB", memory_by_rule(jobs)))
    write_text(runtime_svg, bar_chart_svg("Runtime per rule", "s", runtime_by_rule(jobs)))
    write_jobs_table(jobs, jobs_tsv)
    write_text(summary, summary_html(json.loads(Path(summary_json).read_text())))
