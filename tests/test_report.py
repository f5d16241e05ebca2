"""The report's resource pages (vcf_agent.report.resource_report), and `snakemake --report` on a real run."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ElementTree

from vcf_agent.report.jobs import JobUsage, job_usage
from vcf_agent.report.resource_report import bar_chart_svg, memory_by_rule, runtime_by_rule, summary_html

from helpers import ROOT, SNAKEMAKE


def job(rule: str, peak: float | None, declared: int | None, seconds: float = 1.0, runtime: int = 10) -> JobUsage:
    return JobUsage(rule, f"results/benchmarks/{rule}/{peak}.tsv", declared, runtime, 1, peak, seconds)


def test_a_rule_is_summarised_by_its_largest_peak_against_its_tightest_declaration():
    jobs = [job("embed_shard", 700, 1280), job("embed_shard", 900, 1000), job("embed_shard", 650, 1280)]
    [embed] = memory_by_rule(jobs)
    assert (embed.jobs, embed.declared, embed.used_max, embed.used_median, embed.over) == (3, 1000, 900, 700, 0)


def test_a_job_over_its_declaration_is_counted_and_drawn_red():
    jobs = [job("convert_shard", 1300, 1200), job("convert_shard", 100, 1200), job("check_vcf", 50, 400)]
    rules = memory_by_rule(jobs)
    assert [(r.rule, r.over) for r in rules] == [("convert_shard", 1), ("check_vcf", 0)]
    svg = bar_chart_svg("Peak memory per rule", "MB", rules)
    ElementTree.fromstring(svg)  # well-formed
    assert svg.count('fill="#cb181d"') == 1
    assert "1,300 of 1,200 MB (108%)" in svg


def test_runtime_compares_seconds_with_declared_minutes_and_skips_unmeasured_jobs():
    jobs = [job("normalize_vcf", 5, 800, seconds=90, runtime=30), job("normalize_vcf", None, 800, seconds=None)]
    [normalize] = runtime_by_rule(jobs)
    assert (normalize.jobs, normalize.declared, normalize.used_max) == (1, 1800, 90)


def test_the_summary_page_shows_every_count_and_escapes_names():
    page = summary_html({"inputs": [{"name": "a<b", "records_in": 6109, "samples": 2504}]})
    assert "a&lt;b" in page and "6,109" in page and "2,504" in page


TINY_WORKFLOW = """
rule make_text:
    output: "results/text/{name}.txt"
    params: quoted='a"b'
    threads: 2
    resources: mem_mb=lambda wildcards, attempt: 700 * attempt, runtime=5
    benchmark: "results/benchmarks/make_text/{name}.tsv"
    shell: "python -c 'bytearray(50 << 20); import time; time.sleep(1)'; echo done > {output}"
"""


def test_declarations_are_read_from_the_extended_benchmark_files(tmp_path):
    (tmp_path / "Snakefile").write_text(TINY_WORKFLOW)
    targets = ["results/text/one.txt", "results/text/two.txt"]
    run = subprocess.run(
        [str(SNAKEMAKE), *targets, "--cores", "2", "--benchmark-extended", "--resources", "mem_mb=600"],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    # Snakemake's own account of what it gave each job: mem_mb shrunk to the run's budget
    granted = [line for line in run.stderr.splitlines() if line.strip().startswith("resources:")]
    assert len(granted) == 2 and all("mem_mb=600," in line for line in granted), run.stderr
    for log in (tmp_path / ".snakemake" / "log").iterdir():
        log.unlink()  # the benchmark files alone carry the declarations
    jobs = job_usage(tmp_path)
    assert [(j.rule, j.benchmark, j.declared_mem_mb, j.declared_runtime_min, j.threads) for j in jobs] == [
        ("make_text", f"results/benchmarks/make_text/{name}.tsv", 600, 5, 2) for name in ("one", "two")
    ]
    assert all(j.seconds >= 1 and j.peak_rss_mb is not None and j.within_memory for j in jobs)


def workflow_rules(workdir, config) -> set[str]:
    """Every rule of the workflow, as Snakemake lists them (the example run uses them all)."""
    result = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(config), "--list-rules"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(result.stdout.split()) - {"all"}


def test_the_report_of_the_example_run_names_every_rule_and_shows_resources(example_run):
    workdir, config = example_run
    report = workdir / "results" / "report.html"
    subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(config), "--report", str(report)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    page = report.read_text()
    expected = workflow_rules(workdir, config)
    assert {"simulate_example", "convert_shard", "embed_shard", "plot_resources"} <= expected
    assert not [rule for rule in expected if rule not in page]
    for name in ("memory.svg", "runtime.svg", "jobs.tsv", "summary.html"):
        assert name in page, name
