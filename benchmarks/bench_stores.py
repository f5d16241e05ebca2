"""Throughput and peak RSS of the two store loads at scale.

    python benchmarks/bench_stores.py                        # 1,000,000 variants, 10,000,000 genotypes
    python benchmarks/bench_stores.py --variants 200000 --genotypes 2000000 --data /tmp/scaled
    python benchmarks/bench_stores.py --only kuzu --genotypes 8000000 --shard-records 6139 --partitions 1 4 16

The data is the real 1000 Genomes chr22 cohort repeated at shifted positions
(benchmarks/scaled_data.py; built once, then reused from --data). Each load runs
in its own process through the package function its rule calls, measured with
benchmarks/measure.py (peak RSS of the whole process tree). The declared memory
defaults to what rules load_lancedb and load_kuzu would declare for this data
(vcf_agent.resources, which workflow/rules/common.smk uses).

With --partitions K...: the same shards cut into K graph partitions each
(kuzu.partition_edges = genotypes / K, whole shards: give --shard-records small
enough for 16 shards), every partition loaded by vcf_agent.stores.kuzu.load_partition
in a fresh process, as rule load_kuzu_partition runs it; printed per K: the
partitions, their largest, and the peak RSS of the first, last and largest job.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from measure import run_measured
from scaled_data import build_scaled_shards

from vcf_agent import resources


def lancedb_mem_mb(variants: int) -> int:
    """What rule load_lancedb declares (vcf_agent.resources, first attempt)."""
    return resources.lancedb_mem_mb(resources.DEFAULT_RESOURCES["load_lancedb"]["mem_mb"], variants, 1)


def kuzu_mem_mb(variants: int, genotypes: int) -> int:
    """What rule load_kuzu declares for one VCF without annotations (vcf_agent.resources)."""
    counts = {"variants": variants, "genotypes": genotypes, "annotations": 0}
    base = resources.DEFAULT_RESOURCES["load_kuzu_partition"]["mem_mb"]
    return resources.kuzu_partition_mem_mb(base, counts, 1, several_sources=False)


def stage(name: str, data: Path, out: Path, threads: int, mem_mb: int) -> dict:
    """Run one load in this process (called through --stage) and return its manifest."""
    if name == "kuzu-partition":
        from vcf_agent.stores.kuzu import load_partition

        job = json.loads(out.read_text())
        return load_partition(
            job["name"], job["variants"], job["genotypes"], job["annotations"], job["graph"], job["record"],
            samples=job["samples"], plan=job["plan"], threads=threads, mem_mb=mem_mb,
        )  # fmt: skip
    shards = build_scaled_shards(data, **json.loads((data / "wanted.json").read_text()))
    if name == "lancedb":
        from vcf_agent.stores.lance import load_lancedb

        return load_lancedb(
            shards.variants, shards.embeddings, out / "lancedb", out / "lancedb.json", threads=threads, mem_mb=mem_mb
        )
    from vcf_agent.stores.kuzu import load_kuzu

    return load_kuzu(
        shards.variants, shards.genotypes, shards.annotations, out / "kuzu", out / "kuzu.json",
        samples={shards.source: shards.samples}, threads=threads, mem_mb=mem_mb,
    )  # fmt: skip


def main() -> None:
    from vcf_agent.runtime import setup_process

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--genotypes", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "vcf-agent-scaled")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lancedb-mem-mb", type=int, help="declared memory of the LanceDB load")
    parser.add_argument("--kuzu-mem-mb", type=int, help="declared memory of the Kuzu load")
    parser.add_argument("--only", choices=("lancedb", "kuzu"), help="measure one store's load only")
    parser.add_argument("--shard-records", type=int, default=100_000, help="records per scaled shard")
    parser.add_argument("--partitions", type=int, nargs="+", help="cut the graph into K partitions, for each K")
    parser.add_argument("--stage", choices=("lancedb", "kuzu", "kuzu-partition"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mem-mb", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    setup_process(threads=args.threads)  # the environment, allocator and threads of every entry point
    if args.stage:
        print(json.dumps(stage(args.stage, args.data, args.out, args.threads, args.mem_mb)))
        return

    wanted = {"variants": args.variants, "genotypes": args.genotypes, "shard_records": args.shard_records}
    shards = build_scaled_shards(args.data, **wanted)
    (args.data / "wanted.json").write_text(json.dumps(wanted))
    mem = {
        "lancedb": args.lancedb_mem_mb or lancedb_mem_mb(shards.n_variants),
        "kuzu": args.kuzu_mem_mb or kuzu_mem_mb(shards.n_variants, shards.n_genotypes),
    }
    print(
        f"data: {shards.n_variants:,} variants with {shards.dim}-d vectors, {shards.n_genotypes:,} genotypes,"
        f" {len(shards.variants)} shards ({args.data})"
    )
    if args.partitions:
        for count in args.partitions:
            partitioned(shards, count, args.data, args.threads)
        return
    with tempfile.TemporaryDirectory(prefix="bench-stores-", dir=args.data) as out:
        for name in [args.only] if args.only else ["lancedb", "kuzu"]:
            command = [sys.executable, __file__, "--stage", name, "--data", str(args.data), "--out", out]
            command += ["--threads", str(args.threads), "--mem-mb", str(mem[name])]
            measured = run_measured(command)
            manifest = json.loads(measured.stdout.strip().splitlines()[-1])
            report(name, manifest, measured, mem[name], shards)


def partitioned(shards, count: int, data: Path, threads: int) -> None:
    """Every partition of a `count`-partition graph loaded in its own process, as its own job would be."""
    from vcf_agent.stores.kuzu import plan_graph, shard_extents

    samples = {shards.source: shards.samples}
    edges = -(-shards.n_genotypes // count)
    plan = plan_graph(shard_extents(shards.variants, shards.genotypes), shards.genotypes, samples, edges)
    label = {f"{shards.source}/{Path(v).stem}": i for i, v in enumerate(shards.variants)}
    peaks, seconds = [], []
    with tempfile.TemporaryDirectory(prefix="bench-partitions-", dir=data) as out:
        for partition in plan["partitions"]:
            at = [label[name] for name in partition["shards"]]
            kinds = ("variants", "genotypes", "annotations")
            job = {
                "name": partition["name"], "samples": samples, "plan": plan,
                "graph": f"{out}/{partition['name']}.kuzu", "record": f"{out}/{partition['name']}.json",
                **{kind: [str(getattr(shards, kind)[i]) for i in at] for kind in kinds},
            }  # fmt: skip
            job_file = Path(out) / "job.json"
            job_file.write_text(json.dumps(job))
            mem_mb = kuzu_mem_mb(partition["variants"], partition["genotypes"])
            command = [sys.executable, __file__, "--stage", "kuzu-partition", "--data", str(data)]
            command += ["--out", str(job_file), "--threads", str(threads), "--mem-mb", str(mem_mb)]
            measured = run_measured(command)
            record = json.loads(measured.stdout.strip().splitlines()[-1])
            peaks.append((measured.peak_rss_mb, record["counts"]["CARRIES"], mem_mb))
            seconds.append(record["seconds"]["CARRIES"])
    largest = max(peaks)
    print(
        f"Kuzu, {len(peaks)} partitions of {shards.n_genotypes:,} genotypes (kuzu.partition_edges {edges:,}):"
        f" peak RSS per load job: first {peaks[0][0]:,.0f} MiB, last {peaks[-1][0]:,.0f} MiB, largest"
        f" {largest[0]:,.0f} MiB ({largest[1]:,} edges, declared mem_mb {largest[2]:,});"
        f" COPY CARRIES {min(seconds):.1f}-{max(seconds):.1f} s per partition",
        flush=True,
    )


def report(name: str, manifest: dict, measured, mem_mb: int, shards) -> None:
    seconds = manifest["seconds"]
    rss = f"peak RSS {measured.peak_rss_mb:,.0f} MiB (declared mem_mb {mem_mb:,})"
    if name == "lancedb":
        rows = manifest["rows"]
        ann = next((i for i in manifest["indexes"] if i["type"] == "IVF_PQ"), None)
        print(
            f"LanceDB: {rows:,} rows in {seconds['rows']:.1f} s = {rows / seconds['rows']:,.0f} rows/s written"
            f" (the writer itself {seconds['rows_writer']:.1f} s = {rows / seconds['rows_writer']:,.0f} rows/s);"
            f" scalar indexes {seconds['scalar_indexes']:.1f} s, ANN index {seconds.get('ann_index', 0):.1f} s"
            f" ({ann and {k: ann[k] for k in ('num_partitions', 'num_sub_vectors', 'num_bits')}});"
            f" whole load {seconds['total']:.1f} s = {rows / seconds['total']:,.0f} rows/s"
            f" ({measured.seconds:.1f} s with the interpreter); {rss}"
        )
    else:
        edges = manifest["counts"]["CARRIES"]
        print(
            f"Kuzu: {edges:,} CARRIES edges copied in {seconds['CARRIES']:.1f} s = {edges / seconds['CARRIES']:,.0f}"
            f" edges/s; whole load (DuckDB preparation, {manifest['counts']['Variant']:,} Variant nodes, all tables)"
            f" {seconds['total']:.1f} s = {edges / seconds['total']:,.0f} edges/s"
            f" ({measured.seconds:.1f} s with the interpreter); {rss}"
        )


if __name__ == "__main__":
    main()
