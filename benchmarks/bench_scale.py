"""The whole workflow on the scale cohort: time per stage against bcftools' bare scans, memory per job, counts.

    python benchmarks/bench_scale.py --size 0.01            # makes the 1/100 cohort first if it is not cached
    python benchmarks/bench_scale.py --size 0.1 --cores 2 --shard-records 10000
    python benchmarks/bench_scale.py --compare 0.01,0.1     # memory flatness from two earlier runs
    python benchmarks/bench_scale.py --size 0.01 --report   # the tables of the last run again

A run makes (or reuses) the cohort of benchmarks/scale_cohort.py, runs
`snakemake --cores N` on it in a fresh work folder (`benchmarks/out/scale-<size>/`
unless --workdir), times `bcftools view -Ou` and `bcftools query -i 'GT="alt"'`
on the same file, and prints Markdown tables:

* per rule: jobs, wall span (first job's start to last job's end, from
  Snakemake's log), summed job seconds, span / each bcftools scan, the largest
  job's peak RSS and its declared mem_mb (from the `benchmark:` files);
* the Parquet path (check_vcf's start to the last convert_shard's end) / the
  `bcftools query` scan;
* every job's peak RSS against its declared mem_mb, and the largest job peak
  per variant (MB per variant);
* what the stores hold (Parquet rows, LanceDB rows, Kuzu variants and CARRIES
  edges) beside bcftools' counts after `bcftools norm -m -any -f REF`.

The figures are also written to `<workdir>/bench_scale.json`; --compare reads
two of them and prints, per rule, the largest job peak at the larger size over
that at the smaller one (1.0 = memory flat in input size).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import duckdb
from measure import fresh_workdir, run_workflow
from scale_cohort import ensure_cohort

from vcf_agent.report.jobs import job_usage

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "scale"
#: Created in every work folder this script made: only such a folder is emptied for a new run.
MARKER = ".bench_scale"
#: The rules from the input VCF to Parquet.
PARQUET_PATH = ("check_vcf", "convert_shard")
#: Rules whose work does not depend on the input (the ONNX export is made once per user).
FIXED_RULES = ("export_onnx_model",)

_TIMESTAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_JOB_START = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")
_JOB_ID = re.compile(r"^\s+jobid: (\d+)$")
_JOB_END = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)$")


def default_workdir(size: float) -> Path:
    return ROOT / "benchmarks" / "out" / f"scale-{size:g}"


# --- running ------------------------------------------------------------------------------------------------


def run_benchmark(size: float, workdir: Path, cores: int, shard_records: int, scan_repeats: int) -> dict:
    cohort = ensure_cohort(size)
    vcf, fasta = Path(cohort["vcf"]), Path(cohort["fasta"])
    fresh_workdir(workdir, MARKER)
    config = {"vcfs": {SOURCE: str(vcf)}, "reference": str(fasta), "shard": {"records": shard_records}}
    print(f"cohort: {vcf} ({vcf.stat().st_size / 2**20:.0f} MiB); workflow in {workdir}", file=sys.stderr)
    workflow_seconds = run_workflow(workdir, config, cores=cores)
    scans = {name: _best_time(command, scan_repeats) for name, command in _scan_commands(vcf).items()}
    jobs = [job.to_dict() for job in job_usage(workdir)]
    return {
        "size": size,
        "cohort": cohort,
        "cores": cores,
        "shard_records": shard_records,
        "workflow_seconds": round(workflow_seconds, 1),
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
        "scans": scans,
        "spans": _rule_spans(workdir),
        "jobs": jobs,
        "counts": {"bcftools": bcftools_counts(vcf, fasta, workdir), "stores": store_counts(workdir / "results")},
    }


def _scan_commands(vcf: Path) -> dict[str, list[str]]:
    return {
        "bcftools view -Ou": ["bcftools", "view", "-Ou", str(vcf)],
        "bcftools query GT=alt": ["bcftools", "query", "-i", 'GT="alt"', "-f", "[%SAMPLE %GT\\n]", str(vcf)],
    }


def _best_time(command: list[str], repeats: int) -> float:
    """The fastest of `repeats` runs, output to /dev/null (the machine may be shared)."""
    best = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        best = min(best, time.perf_counter() - started)
    return round(best, 2)


def _rule_spans(workdir: Path) -> dict[str, dict]:
    """Per rule: first job start and last job end in seconds from the run's start (Snakemake's log)."""
    starts, ends, rules = {}, {}, {}
    now, rule = None, None
    for log_file in sorted((workdir / ".snakemake" / "log").glob("*.log")):
        for line in log_file.read_text(errors="replace").splitlines():
            if match := _TIMESTAMP.match(line):
                now = datetime.strptime(match[1], "%a %b %d %H:%M:%S %Y").timestamp()
            elif match := _JOB_START.match(line):
                rule = match[1]
            elif rule and (match := _JOB_ID.match(line)):
                starts[match[1]], rules[match[1]], rule = now, rule, None
            elif match := _JOB_END.match(line):
                ends[match[1]] = now
    origin = min(starts.values(), default=0)
    spans: dict[str, dict] = {}
    for job, name in rules.items():
        if job not in ends:
            continue
        span = spans.setdefault(name, {"start": starts[job] - origin, "end": ends[job] - origin})
        span["start"], span["end"] = min(span["start"], starts[job] - origin), max(span["end"], ends[job] - origin)
    return spans


# --- counts -------------------------------------------------------------------------------------------------


def bcftools_counts(vcf: Path, fasta: Path, scratch: Path) -> dict:
    """Records, and after `bcftools norm -m -any -f` (the workflow's split) sites and genotypes, by bcftools.

    `carrier_genotypes` are the calls whose GT names an ALT allele, half-missing `./1`
    included (the stores keep those); bcftools' `GT="alt"` counts `./1` as missing, so
    its count is given beside, with the half-missing calls that make the difference.
    """
    split = scratch / "split.bcf"
    subprocess.run(
        ["bcftools", "norm", "-m", "-any", "-f", fasta, "-Ob", "-o", split, vcf], check=True, capture_output=True
    )
    try:
        gts = f"bcftools query -f '[%GT\\n]' {split}"
        pipelines = {
            "records": f"bcftools view -H {vcf} | wc -l",
            "variants": f"bcftools view -H {split} | wc -l",
            "carrier_genotypes": f"{gts} | grep -c '[1-9]'",
            "gt_alt": f"bcftools query -i 'GT=\"alt\"' -f '[%SAMPLE\\n]' {split} | wc -l",
            "half_missing": f"{gts} | grep -c '^\\.[/|][1-9]$'",
            "samples": f"bcftools query -l {vcf} | wc -l",
        }
        # the stages are timed by now: two pipelines at a time halve the ~25 minutes of the full size
        with ThreadPoolExecutor(max_workers=2) as pool:
            return dict(zip(pipelines, pool.map(_count, pipelines.values()), strict=True))
    finally:
        split.unlink(missing_ok=True)


def _count(pipeline: str) -> int:
    result = subprocess.run(["bash", "-o", "pipefail", "-c", pipeline], capture_output=True, text=True, check=False)
    if result.returncode not in (0, 1) or not result.stdout.strip():  # grep -c exits 1 when it counts 0
        raise SystemExit(f"{pipeline} failed ({result.returncode}): {result.stderr.strip()}")
    return int(result.stdout)


def store_counts(results: Path) -> dict:
    """Rows in the Parquet shards, the LanceDB table and the Kuzu graph, read from the stores themselves."""
    from vcf_agent.query import Stores

    parquet = {}
    with duckdb.connect() as con:
        for kind in ("variants", "genotypes"):
            files = str(results / "parquet" / kind / SOURCE / "*.parquet")
            parquet[kind] = con.execute(f"SELECT count(*) FROM read_parquet('{files}')").fetchone()[0]
    with Stores.open(results) as stores:
        stats = stores.stats()
    return {
        "parquet_variants": parquet["variants"],
        "parquet_genotypes": parquet["genotypes"],
        "lancedb_variants": stats.variants,
        "kuzu_variants": stats.graph_variants,
        "kuzu_carries": stats.genotypes,
        "kuzu_samples": stats.samples,
    }


# --- tables -------------------------------------------------------------------------------------------------


def by_rule(jobs: list[dict]) -> dict[str, dict]:
    rules: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0, "peak": None})
    for job in jobs:
        rule = rules[job["rule"]]
        rule["jobs"] += 1
        rule["seconds"] += job["seconds"] or 0.0
        if job["peak_rss_mb"] is not None and (
            rule["peak"] is None or job["peak_rss_mb"] > rule["peak"]["peak_rss_mb"]
        ):
            rule["peak"] = job
    return dict(rules)


def markdown(result: dict) -> str:
    scans, spans, jobs = result["scans"], result["spans"], result["jobs"]
    view, query = scans["bcftools view -Ou"], scans["bcftools query GT=alt"]
    cohort, truth, stores = result["cohort"], result["counts"]["bcftools"], result["counts"]["stores"]
    rules = by_rule(jobs)
    order = sorted(rules, key=lambda name: (spans.get(name, {}).get("start", 1e9), name))
    out = [
        f"### Scale cohort {result['size']:g}: {truth['records']:,} records ({truth['variants']:,} after the split) "
        f"x {truth['samples']:,} samples, {truth['carrier_genotypes']:,} carrier genotypes",
        "",
        f"`snakemake --cores {result['cores']}` (load average after it, 1/5/15 min: {result.get('load', '?')}), "
        f"shards of {result['shard_records']:,} records: "
        f"**{result['workflow_seconds']:,.0f} s** wall. bcftools on the same file: `view -Ou` {view:.1f} s, "
        f"`query -i 'GT=\"alt\"'` {query:.1f} s. Cohort: {cohort['length'] / 1e6:g} Mb, "
        f"{cohort['mean_carriers_per_site']:g} carriers per site, made in {cohort['seconds']:,.0f} s.",
        "",
        "| rule | jobs | wall span s | job s (sum) | span / view | span / query | largest peak MiB | its mem_mb |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in order:
        rule, span = rules[name], spans.get(name)
        wall = span["end"] - span["start"] if span else None
        peak = rule["peak"]
        out.append(
            f"| {name} | {rule['jobs']} | {_num(wall, 0)} | {rule['seconds']:,.1f} | "
            f"{_ratio(wall, view)} | {_ratio(wall, query)} | "
            f"{_num(peak and peak['peak_rss_mb'], 0)} | {_num(peak and peak['declared_mem_mb'], 0)} |"
        )
    path = [spans[name] for name in PARQUET_PATH if name in spans]
    if len(path) == len(PARQUET_PATH):
        parquet_wall = path[-1]["end"] - path[0]["start"]
        out += ["", f"Parquet path (check_vcf start -> last convert_shard end): {parquet_wall:,.0f} s = "
                f"**{_ratio(parquet_wall, query)}** the `bcftools query` scan."]  # fmt: skip
    out += _memory_lines(jobs, truth["variants"])
    out += _count_lines_table(truth, stores)
    return "\n".join(out) + "\n"


def _memory_lines(jobs: list[dict], variants: int) -> list[str]:
    measured = [j for j in jobs if j["peak_rss_mb"] is not None]
    largest = max(measured, key=lambda j: j["peak_rss_mb"])
    data_jobs = [j for j in measured if j["rule"] not in FIXED_RULES]
    largest_data = max(data_jobs, key=lambda j: j["peak_rss_mb"])
    over = [j for j in measured if not j["within_memory"]]
    lines = [
        "",
        f"Largest job peak: {largest['peak_rss_mb']:,.0f} MiB ({largest['rule']}) = "
        f"**{largest['peak_rss_mb'] / variants:.6f} MB per variant**; without {', '.join(FIXED_RULES)} "
        f"(once per user, whatever the input): {largest_data['peak_rss_mb']:,.0f} MiB ({largest_data['rule']}) = "
        f"{largest_data['peak_rss_mb'] / variants:.6f} MB per variant. Jobs at or over their mem_mb: "
        f"{len(over)} of {len(measured)}; jobs over 1 GiB: {sum(j['peak_rss_mb'] >= 1024 for j in measured)}.",
        "",
        "| job (benchmark file) | peak RSS MiB | mem_mb | within |",
        "|---|---:|---:|---|",
    ]
    for job in sorted(measured, key=lambda j: (j["rule"], j["benchmark"])):
        name = job["benchmark"].removeprefix("results/benchmarks/")
        within = "yes" if job["within_memory"] else "**NO**"
        lines.append(f"| {name} | {job['peak_rss_mb']:,.0f} | {_num(job['declared_mem_mb'], 0)} | {within} |")
    return lines


def _count_lines_table(truth: dict, stores: dict) -> list[str]:
    rows = [
        ("variants (split records)", truth["variants"], "parquet_variants"),
        ("variants (split records)", truth["variants"], "lancedb_variants"),
        ("variants (split records)", truth["variants"], "kuzu_variants"),
        ("carrier genotypes", truth["carrier_genotypes"], "parquet_genotypes"),
        ("carrier genotypes", truth["carrier_genotypes"], "kuzu_carries"),
        ("samples", truth["samples"], "kuzu_samples"),
    ]
    lines = ["", "| count | bcftools | store | store's count | equal |", "|---|---:|---|---:|---|"]
    for what, expected, key in rows:
        got = stores[key]
        lines.append(f"| {what} | {expected:,} | {key} | {got:,} | {'yes' if got == expected else '**NO**'} |")
    lines += [
        "",
        "Carrier genotypes: calls whose GT (`bcftools query -f '[%GT]'` after the split) names an ALT, "
        f"half-missing `./1` included; `bcftools query -i 'GT=\"alt\"'` gives {truth['gt_alt']:,}, "
        f"counting the {truth['half_missing']:,} `./1` calls as missing.",
    ]
    return lines


def compare(sizes: list[float], workdirs: list[Path]) -> str:
    results = []
    for size, workdir in zip(sizes, workdirs, strict=True):
        path = workdir / "bench_scale.json"
        if not path.exists():
            raise SystemExit(f"{path}: no result; run `python benchmarks/bench_scale.py --size {size:g}` first")
        results.append(json.loads(path.read_text()))
    small, large = (by_rule(r["jobs"]) for r in results)
    variants = [r["counts"]["bcftools"]["variants"] for r in results]
    head = f"| rule | largest peak MiB at {sizes[0]:g} | at {sizes[1]:g} | ratio |"
    out = [
        f"### Memory flatness: {variants[0]:,} -> {variants[1]:,} variants ({variants[1] / variants[0]:.1f}x)",
        "",
        head,
        "|---|---:|---:|---:|",
    ]
    for name in sorted(set(small) | set(large)):
        a = small.get(name, {}).get("peak") or {}
        b = large.get(name, {}).get("peak") or {}
        ratio = _ratio(b.get("peak_rss_mb"), a.get("peak_rss_mb"), digits=2)
        out.append(f"| {name} | {_num(a.get('peak_rss_mb'), 0)} | {_num(b.get('peak_rss_mb'), 0)} | {ratio} |")
    return "\n".join(out) + "\n"


def _num(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(value, base, digits: int = 1) -> str:
    return "-" if value is None or not base else f"{value / base:.{digits}f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, help="cohort size: 0.01, 0.1, 1 (see scale_cohort.py)")
    parser.add_argument("--compare", help="two sizes run before, e.g. 0.01,0.1: per-rule peak ratio")
    parser.add_argument("--workdir", type=Path, help="work folder (default benchmarks/out/scale-<size>)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--shard-records", type=int, default=10_000)
    parser.add_argument("--report", action="store_true", help="print the tables of the last run at --size again")
    parser.add_argument("--scan-repeats", type=int, default=2, help="bcftools scans: the fastest of N")
    args = parser.parse_args()
    if args.compare:
        sizes = [float(s) for s in args.compare.split(",")]
        if len(sizes) != 2:
            raise SystemExit("--compare takes two sizes, e.g. 0.01,0.1")
        print(compare(sizes, [default_workdir(s) for s in sizes]))
        return
    if args.size is None:
        parser.error("give --size or --compare")
    workdir = (args.workdir or default_workdir(args.size)).resolve()
    if args.report:
        print(markdown(json.loads((workdir / "bench_scale.json").read_text())))
        return
    result = run_benchmark(args.size, workdir, args.cores, args.shard_records, args.scan_repeats)
    (workdir / "bench_scale.json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
