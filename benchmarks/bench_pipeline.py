"""Throughput and peak RSS of each stage from VCF to Parquet, on a real cohort.

    python benchmarks/bench_pipeline.py                      # the 2,504-sample 1000 Genomes cohort
    python benchmarks/bench_pipeline.py --vcf my.vcf.gz --shard-records 50000

Each stage runs in its own process (as its Snakemake job would), measured with
benchmarks/measure.py. Records/s counts the input records of the stage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from measure import run_measured

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VCF_TEST_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_VCF = DATA / "cohorts" / "1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"


def stage(name: str, workdir: Path, vcf: Path, shard_records: int, threads: int, mem_mb: int) -> dict:
    """Run one stage in this process and return its counts (called through --stage)."""
    from vcf_agent.ingest.inputs import check_vcf
    from vcf_agent.ingest.normalize import index_bcf, normalize_vcf
    from vcf_agent.ingest.parquet import convert_shard
    from vcf_agent.ingest.shards import ShardSize, plan_shards, read_plan, write_plan

    bcf = workdir / "normalized.bcf"
    if name == "check":
        report, _ = check_vcf(vcf)
        return {"records": None, "samples": report.samples}
    if name == "normalize":
        stats = normalize_vcf(vcf, bcf, source="bench", threads=threads)
        (workdir / "normalize.json").write_text(json.dumps({"samples": stats.samples}))
        return {"records": stats.records_in, "records_out": stats.records_out}
    if name == "index":
        index_bcf(bcf, threads)
        return {"records": None}
    if name == "plan":
        samples = json.loads((workdir / "normalize.json").read_text())["samples"]
        shards = plan_shards(bcf, ShardSize(records=shard_records), samples)
        write_plan(shards, workdir / "plan.tsv")
        return {"records": sum(s.records for s in shards), "shards": len(shards)}
    if name == "convert":
        variants = genotypes = 0
        for shard in read_plan(workdir / "plan.tsv"):
            out = {
                k: workdir / "parquet" / k / f"{shard.shard}.parquet" for k in ("variants", "genotypes", "annotations")
            }
            result = convert_shard(
                bcf, shard, source="bench", threads=threads, mem_mb=mem_mb, **{f"{k}_out": v for k, v in out.items()}
            )
            variants += result.variants
            genotypes += result.genotypes
        return {"records": variants, "genotypes": genotypes}
    raise SystemExit(f"unknown stage {name}")


STAGES = ("check", "normalize", "index", "plan", "convert")


def main() -> None:
    from vcf_agent.runtime import setup_process

    setup_process()  # the environment and allocator of every entry point
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vcf", type=Path, default=DEFAULT_VCF)
    parser.add_argument("--shard-records", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mem-mb", type=int, default=1200, help="the convert job's declared memory")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.workdir, args.vcf, args.shard_records, args.threads, args.mem_mb)))
        return
    print(f"input: {args.vcf} ({args.vcf.stat().st_size / 2**20:.1f} MiB), shards of {args.shard_records} records")
    print(f"{'stage':<10} {'seconds':>8} {'records/s':>12} {'peak RSS MiB':>13}  notes")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as workdir:
        for name in STAGES:
            command = [sys.executable, __file__, "--stage", name, "--workdir", workdir, "--vcf", str(args.vcf),
                       "--shard-records", str(args.shard_records), "--threads", str(args.threads),
                       "--mem-mb", str(args.mem_mb)]  # fmt: skip
            measured = run_measured(command)
            counts = json.loads(measured.stdout.strip().splitlines()[-1])
            rate = f"{counts['records'] / measured.seconds:,.0f}" if counts.get("records") else "-"
            notes = ", ".join(f"{k}={v:,}" for k, v in counts.items() if k != "records" and v is not None)
            print(f"{name:<10} {measured.seconds:8.2f} {rate:>12} {measured.peak_rss_mb:13.0f}  {notes}")


if __name__ == "__main__":
    main()
