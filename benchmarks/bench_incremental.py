"""Stores that grow by adding (issue 16): what adding a VCF costs against building from scratch.

    python benchmarks/bench_incremental.py --size 0.01          # the 1/100 scale cohort (made first if not cached)
    python benchmarks/bench_incremental.py --size 0.1 --cores 2
    python benchmarks/bench_incremental.py --size 0.01 --report # the tables of the last run again

On the scale cohort (benchmarks/scale_cohort.py: chr22, 2,504 samples) cut by bcftools into
`base` (the first 90 % of the samples), `new` (the other 10 %, the same chromosome, the sites
they carry) and `chr21` (every sample, the same records renamed to a second contig), five runs
of the workflow, each in its own folder under `benchmarks/out/incremental-<size>/`:

1. `base` alone (not compared: it also makes the ONNX export that every later run copies);
2. in the same folder, `new_samples` added: its wall against (4);
3. in the same folder, `second_chrom` added: its wall against (5);
4. `base` + `new_samples` from scratch (the full build of the same config as 2);
5. `second_chrom` alone from scratch (that chromosome built by itself).

Targets (the issue): (2) / (4) under 0.2; (3) / (5) about 1. For each run: wall seconds, the
bytes it wrote under results/ (files new or changed, each inode once; logs and benchmark files
left out) against what the folder then holds, and per rule the summed seconds of the jobs that
ran (results/benchmarks, their files new or changed in the run). Figures go to
`<workdir>/bench_incremental.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pysam
from measure import fresh_workdir, run_workflow
from scale_cohort import ensure_cohort

from vcf_agent.report.jobs import job_usage

ROOT = Path(__file__).resolve().parents[1]
#: Created in every work folder this script made: only such a folder is emptied for a new run.
MARKER = ".bench_incremental"
#: The share of the samples in the VCF added to the same chromosome.
NEW_SHARE = 0.1
SECOND_CONTIG = "chr21"
#: Files under results/ that record how the run went, not what it made.
NOT_DATA = ("logs", "benchmarks", "report")
#: Runs: name -> (folder, the VCFs configured); runs sharing a folder follow each other.
#: The config is written with its keys sorted (tests/helpers.workflow_command): VCF names sort in
#: config order, so that each addition comes last (a VCF sorted before another would reorder them).
RUNS = {
    "base": ("grown", ("base",)),
    "add_new": ("grown", ("base", "new_samples")),
    "add_chr21": ("grown", ("base", "new_samples", "second_chrom")),
    "full_base_new": ("full", ("base", "new_samples")),
    "chr21_alone": ("alone", ("second_chrom",)),
}
#: (run, the run it is compared with, what the issue asks of the ratio)
RATIOS = (("add_new", "full_base_new", "< 0.2"), ("add_chr21", "chr21_alone", "~ 1"))


def default_workdir(size: float) -> Path:
    return ROOT / "benchmarks" / "out" / f"incremental-{size:g}"


# --- inputs ---------------------------------------------------------------------------------------------------


def make_inputs(cohort: dict, folder: Path) -> tuple[dict[str, Path], Path]:
    """base, new and chr21 cut from the cohort by bcftools, and a FASTA holding both contigs."""
    vcf, fasta = Path(cohort["vcf"]), Path(cohort["fasta"])
    folder.mkdir(parents=True, exist_ok=True)
    listed = subprocess.run(["bcftools", "query", "-l", vcf], capture_output=True, text=True, check=True)
    samples = listed.stdout.split()
    cut = len(samples) - round(len(samples) * NEW_SHARE)
    files = {}
    for name, group in (("base", samples[:cut]), ("new_samples", samples[cut:])):
        (folder / f"{name}.samples").write_text("\n".join(group) + "\n")
        files[name] = folder / f"{name}.vcf.gz"
        view = ["bcftools", "view", "-S", folder / f"{name}.samples", "--min-ac", "1", "-Oz", "-o", files[name], vcf]
        subprocess.run(view, check=True)
    (folder / "rename.txt").write_text(f"{cohort['chrom']}\t{SECOND_CONTIG}\n")
    files["second_chrom"] = folder / "second_chrom.vcf.gz"
    rename = ["bcftools", "annotate", "--rename-chrs", folder / "rename.txt", "-Oz", "-o", files["second_chrom"], vcf]
    subprocess.run(rename, check=True)
    return files, two_contig_fasta(fasta, cohort["chrom"], folder / "two_contigs.fa")


def two_contig_fasta(fasta: Path, chrom: str, out: Path) -> Path:
    """The cohort's reference and the same sequence again as SECOND_CONTIG, indexed."""
    sequence = pysam.FastaFile(str(fasta)).fetch(chrom)
    lines = [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    body = "\n".join(lines)
    out.write_text(f">{chrom}\n{body}\n>{SECOND_CONTIG}\n{body}\n")
    pysam.faidx(str(out))
    return out


# --- one run --------------------------------------------------------------------------------------------------


def snapshot(results: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (inode, mtime_ns, size) of every file under results/ (build folders included, links not)."""
    files = {}
    if not results.exists():
        return files
    for folder, dirs, names in os.walk(results):
        dirs[:] = [d for d in dirs if not (Path(folder) == results and d in NOT_DATA)]
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink():
                info = path.stat()
                files[str(path.relative_to(results))] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return files


def bytes_written(before: dict, after: dict) -> tuple[int, int]:
    """Bytes of files new or changed (each inode once), and bytes the folder holds after the run."""
    old = {(ino, mtime) for ino, mtime, _ in before.values()}
    inodes = {(ino, mtime): size for ino, mtime, size in after.values()}
    return sum(size for key, size in inodes.items() if key not in old), sum(inodes.values())


def benchmark_mtimes(workdir: Path) -> dict[str, int]:
    folder = workdir / "results" / "benchmarks"
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in folder.rglob("*.tsv")}


def rule_seconds(workdir: Path, before: dict[str, int]) -> dict[str, dict]:
    """Per rule, the jobs that ran in this run (benchmark file new or rewritten) and their summed seconds."""
    after = benchmark_mtimes(workdir)
    ran = {path for path, mtime in after.items() if before.get(path) != mtime}
    rules: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "seconds": 0.0})
    for job in job_usage(workdir):
        if job.benchmark in ran:
            rules[job.rule]["jobs"] += 1
            rules[job.rule]["seconds"] = round(rules[job.rule]["seconds"] + (job.seconds or 0), 2)
    return dict(rules)


def run_step(name: str, workdir: Path, config: dict, cores: int) -> dict:
    results = workdir / "results"
    files, benchmarks = snapshot(results), benchmark_mtimes(workdir) if results.exists() else {}
    print(f"{name}: {', '.join(config['vcfs'])} in {workdir}", file=sys.stderr)
    seconds = run_workflow(workdir, config, cores=cores)
    wrote, holds = bytes_written(files, snapshot(results))
    kuzu = json.loads((results / "kuzu.json").read_text())
    lance = json.loads((results / "lancedb.json").read_text())
    return {
        "vcfs": list(config["vcfs"]),
        "seconds": round(seconds, 1),
        "bytes_written": wrote,
        "bytes_held": holds,
        "rules": rule_seconds(workdir, benchmarks),
        "counts": {"lancedb_rows": lance["rows"], **{k: kuzu["counts"][k] for k in ("Variant", "CARRIES", "Sample")}},
        "load": " / ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def run_benchmark(size: float, workdir: Path, cores: int, shard_records: int) -> dict:
    cohort = ensure_cohort(size)
    fresh_workdir(workdir, MARKER)
    inputs, fasta = make_inputs(cohort, workdir / "inputs")
    runs = {}
    for name, (folder, vcfs) in RUNS.items():
        assert list(vcfs) == sorted(vcfs), f"{name}: VCF names must sort in config order"
        config = {
            "vcfs": {vcf: str(inputs[vcf]) for vcf in vcfs},
            "reference": str(fasta),
            "shard": {"records": shard_records},
        }
        runs[name] = run_step(name, workdir / folder, config, cores)
    return {
        "size": size,
        "cohort": cohort,
        "cores": cores,
        "shard_records": shard_records,
        "new_share": NEW_SHARE,
        "input_bytes": {name: path.stat().st_size for name, path in inputs.items()},
        "runs": runs,
    }


# --- tables ---------------------------------------------------------------------------------------------------


def markdown(result: dict) -> str:
    runs = result["runs"]
    lines = [
        f"Scale cohort {result['size']:g} ({result['cohort']['sites']:,} sites, {result['cohort']['samples']:,}"
        f" samples), {result['cores']} cores, shards of {result['shard_records']:,} records",
        "",
        "| run | VCFs | wall s | MB written | MB held | written / held | LanceDB rows | Kuzu CARRIES | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, run in runs.items():
        lines.append(
            f"| {name} | {' + '.join(run['vcfs'])} | {run['seconds']:.1f} | {run['bytes_written'] / 1e6:.1f} |"
            f" {run['bytes_held'] / 1e6:.1f} | {run['bytes_written'] / max(1, run['bytes_held']):.2f} |"
            f" {run['counts']['lancedb_rows']:,} | {run['counts']['CARRIES']:,} | {run['load']} |"
        )
    lines += ["", "| addition | against | wall ratio | bytes written ratio | target |", "|---|---|---:|---:|---|"]
    for run, base, target in RATIOS:
        wall = runs[run]["seconds"] / runs[base]["seconds"]
        written = runs[run]["bytes_written"] / max(1, runs[base]["bytes_written"])
        lines.append(f"| {run} | {base} | {wall:.2f} | {written:.2f} | {target} |")
    rules = sorted({rule for run in runs.values() for rule in run["rules"]})
    lines += ["", "Seconds per rule (jobs that ran in the run: count x summed seconds)", ""]
    lines += ["| rule | " + " | ".join(runs) + " |", "|---|" + "---:|" * len(runs)]
    for rule in rules:
        cells = []
        for run in runs.values():
            entry = run["rules"].get(rule)
            cells.append(f"{entry['jobs']} x {entry['seconds']:.1f}" if entry else "-")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, default=0.01, help="cohort size: 0.01, 0.1, 1 (see scale_cohort.py)")
    parser.add_argument("--workdir", type=Path, help="work folder (default benchmarks/out/incremental-<size>)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--shard-records", type=int, default=2_000)
    parser.add_argument("--report", action="store_true", help="print the tables of the last run at --size again")
    args = parser.parse_args()
    workdir = (args.workdir or default_workdir(args.size)).resolve()
    if args.report:
        print(markdown(json.loads((workdir / "bench_incremental.json").read_text())))
        return
    result = run_benchmark(args.size, workdir, args.cores, args.shard_records)
    (workdir / "bench_incremental.json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    sys.exit(main())
