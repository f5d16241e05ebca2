"""Benchmark of the embedding stage (vcf_agent.embedding.embed) on real variants.

Input: a variant shard given with --shard, or one made from a real cohort of
$VCF_TEST_DATA (default: the 1000 Genomes chr22 cohort) by the project's own
converter (normalize_vcf -> convert_shard). The shard is repeated at shifted
positions (new variant ids, same descriptions) up to --records rows, as a
bigger cohort of the same kind would look.

    python benchmarks/bench_embed.py                     # 1,000,000 variants, cold then warm cache
    python benchmarks/bench_embed.py --shard S.parquet --records 0   # that shard as it is
    python benchmarks/bench_embed.py --overhead          # ours vs bare SentenceTransformer.encode, same texts
    python benchmarks/bench_embed.py --memory-model      # baseline RSS and per-row batch cost
    python benchmarks/bench_embed.py --startup           # a fresh process until the model is ready
    python benchmarks/bench_embed.py --cold-cli RESULTS  # `vcf-agent search` and the server on those stores

Every run of embed_shard happens in a fresh process, so peak RSS is that job's. --runtime picks
the embedding runtime of embed_shard (auto: onnx for the bundled model on CPU). The machine's load
average is printed with each figure: other processes on the same cores slow every one of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VCF_TEST_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_COHORT = "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"
#: Real files whose variants, together, give many distinct descriptions (for --overhead).
VARIED_SOURCES = (
    DEFAULT_COHORT,
    "cohorts/platinum_NA12878_hg19_chr21.vcf.gz",
    "cohorts/1kgp_high_coverage_chr1_3202samples_head.vcf.gz",
    "edge/cyvcf2/test.vcf.gz",
    "edge/hail/sample.gnomad.exomes.r2.1.1.sites.chr1.vcf.gz",
    "edge/vcflib/grch38_chr8_36353854-36453166.pangenome.vcf",
)


# ---------------------------------------------------------------- input


def convert_vcf(vcf: Path, workdir: Path) -> Path:
    """The whole VCF as one variant shard, made by the project's converter."""
    from vcf_agent.ingest import pipeline
    from vcf_agent.ingest.shards import ShardSize

    name = vcf.name.split(".")[0]
    out = workdir / name
    out.mkdir(parents=True, exist_ok=True)
    variants = out / "variants.parquet"
    if variants.exists():
        return variants
    converted = pipeline.convert_vcf(vcf, out, source=name, shard_size=ShardSize(records=10**9), threads=2, mem_mb=2000)
    parts = converted.parquet["variants"]  # one shard per contig
    _sql(f"COPY (SELECT * FROM read_parquet({[str(p) for p in parts]}, union_by_name=true)) TO '{variants}'")
    return variants


def repeat_shard(shard: Path, records: int, out: Path) -> Path:
    """`shard` repeated at shifted positions up to `records` rows (positions and ids change)."""
    span = _sql(f"SELECT max(pos) - min(pos) + 1000 FROM '{shard}'")[0][0]
    rows = _sql(f"SELECT count(*) FROM '{shard}'")[0][0]
    copies = -(-records // rows)
    _sql(
        f"""COPY (
          SELECT * REPLACE (pos + k * {span} AS pos, "end" + k * {span} AS "end",
                            chrom || ':' || (pos + k * {span}) || ':' || ref || ':' || alt AS variant_id)
          FROM range({copies}) AS r(k), '{shard}' ORDER BY k, pos LIMIT {records}
        ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)"""
    )
    return out


def varied_shard(workdir: Path) -> Path:
    """One row per distinct description found in several real files (for --overhead)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vcf_agent.embedding.describe import Describer

    tables = [_describable(pq.read_table(convert_vcf(DATA / name, workdir))) for name in VARIED_SOURCES]
    table = pa.concat_tables(tables, promote_options="permissive")
    texts = Describer().describe(table)
    first = list({text: row for row, text in reversed(list(enumerate(texts)))}.values())
    out = workdir / "varied.parquet"
    pq.write_table(table.take(sorted(first)), out)
    return out


def _describable(table):
    """The columns a description uses, typed alike in every file (INFO types differ between VCFs)."""
    import pyarrow as pa

    from vcf_agent.schema import VARIANT_CORE_NAMES

    table = table.select(
        [name for name in VARIANT_CORE_NAMES if name in table.column_names]
        + (["info_AF"] if "info_AF" in table.column_names else [])
    )
    if "info_AF" in table.column_names:
        af = table.column("info_AF")
        if pa.types.is_list(af.type):
            table = table.drop_columns(["info_AF"])
        else:
            table = table.set_column(table.column_names.index("info_AF"), "info_AF", af.cast(pa.float64()))
    return table


def _sql(query: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


# ---------------------------------------------------------------- runs


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def run_job(
    shard: Path, cache: Path, *, mem_mb: int, threads: int, batch_rows: int | None = None, runtime: str = "auto"
) -> dict:
    """embed_shard in a fresh process (its peak RSS is the job's); returns its stats."""
    out = shard.with_name(f"{shard.stem}.vectors.parquet")
    code = (
        "import json, sys; from vcf_agent.embedding.embed import embed_shard; "
        f"s = embed_shard({str(shard)!r}, {str(out)!r}, cache_dir={str(cache)!r}, mem_mb={mem_mb},"
        f" threads={threads}, batch_rows={batch_rows!r}, runtime={runtime!r}); print(json.dumps(s.to_dict()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(result.stderr)
    out.unlink()
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(label: str, stats: dict) -> None:
    stage = stats["seconds"] - stats["model_seconds"]
    print(
        f"{label}: {stats['records']:,} variants in {stats['seconds']:.1f} s"
        f" ({stats['records'] / stats['seconds']:,.0f} variants/s;"
        f" {stats['records'] / stage:,.0f}/s after the {stats['model_seconds']:.1f} s model load);"
        f" distinct descriptions {stats['distinct_texts']:,}, newly embedded {stats['embedded']:,},"
        f" cache hits {stats['cache_hits']:,}/{stats['cache_lookups']:,}"
        f" ({stats['cache_hit_share']:.1%}), peak RSS {stats['peak_rss_mb']:.0f} MB,"
        f" batch {stats['batch_rows']:,} rows, runtime {stats['runtime']} ({load()})"
    )


def throughput(args, workdir: Path) -> None:
    shard = args.shard or convert_vcf(DATA / args.cohort, workdir)
    if args.records:
        shard = repeat_shard(shard, args.records, workdir / f"repeated-{args.records}.parquet")
    cache = workdir / "cache"
    for label in ("cold cache", "warm cache"):
        report(label, run_job(shard, cache, mem_mb=args.mem_mb, threads=args.threads, runtime=args.runtime))


def overhead(args, workdir: Path) -> None:
    """Our time (model load excluded) vs bare SentenceTransformer.encode on the same distinct texts.

    Each of `--repeats` pairs runs both in fresh processes, back to back, in alternating order; a
    pair's ratio (bare seconds / ours: our throughput relative to bare encode) sees the same load
    on both sides, and the median of the pairs' ratios is the figure (the machine is shared).
    """
    import pyarrow.parquet as pq

    from vcf_agent.embedding.describe import Describer

    shard = args.shard or varied_shard(workdir)
    texts_file = workdir / "overhead-texts.json"
    texts_file.write_text(json.dumps(list(dict.fromkeys(Describer().describe(pq.read_table(shard))))))
    bare_code = (
        "import json, sys, time, torch; from vcf_agent.embedding.embed import embed_texts, load_model; "
        f"torch.set_num_threads({args.threads}); texts = json.load(open({str(texts_file)!r})); "
        "m = load_model(runtime='sentence-transformers', device='cpu'); embed_texts(['warm-up'], loaded=m); "
        "t = time.perf_counter(); "
        "m.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True); "
        "print(time.perf_counter() - t)"
    )

    def bare() -> float:
        result = subprocess.run([sys.executable, "-c", bare_code], capture_output=True, text=True, check=True)
        return float(result.stdout.strip().splitlines()[-1])

    def ours(repeat: int) -> dict:
        cache = workdir / f"overhead-cache-{repeat}"
        shutil.rmtree(cache, ignore_errors=True)  # every run embeds every text
        return run_job(shard, cache, mem_mb=args.mem_mb, threads=args.threads, runtime=args.runtime)

    ratios = []
    for repeat in range(args.repeats):
        if repeat % 2 == 0:
            bare_s, stats = bare(), ours(repeat)
        else:
            stats, bare_s = ours(repeat), bare()
        ours_s = stats["seconds"] - stats["model_seconds"]
        ratios.append(bare_s / ours_s)
        print(
            f"pair {repeat + 1}: bare SentenceTransformer.encode {bare_s:.2f} s, embed_shard ({stats['runtime']})"
            f" {ours_s:.2f} s after model load -> ours/bare throughput {ratios[-1]:.2f} ({load()})"
        )
    count = stats["embedded"]
    shutil.rmtree(workdir / "overhead-cache-timed", ignore_errors=True)
    inside = _time_inside_encode(shard, workdir / "overhead-cache-timed", args)
    print(
        f"one more run, timing model.encode inside embed_shard: {inside['encode']:.2f} s in model.encode,"
        f" {inside['rest']:.2f} s in everything else after the model load -> overhead"
        f" {inside['rest'] / inside['encode']:+.1%}"
    )
    print(
        f"{count:,} distinct texts, {args.threads} threads: embed_shard ({stats['runtime']}) / bare"
        f" SentenceTransformer.encode throughput, median of {len(ratios)} paired interleaved runs:"
        f" {statistics.median(ratios):.2f} (pairs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    report("embed_shard (last run)", stats)


_TIMED_ENCODE = """
import json, sys, time
from vcf_agent.embedding.embed import embed_shard, load_model
model = load_model(runtime=sys.argv[6], threads=int(sys.argv[5]))
encode, spent = model.encode, []
def timed(*args, **kwargs):
    started = time.perf_counter()
    try:
        return encode(*args, **kwargs)
    finally:
        spent.append(time.perf_counter() - started)
model.encode = timed
shard, out, cache, mem_mb, threads, runtime = sys.argv[1:7]
stats = embed_shard(shard, out, cache_dir=cache, mem_mb=int(mem_mb), threads=int(threads), runtime=runtime)
inside = sum(spent[1:])  # the first call is embed_shard's warm-up, counted in model_seconds
print(json.dumps({"encode": inside, "rest": stats.seconds - stats.model_seconds - inside}))
"""


def _time_inside_encode(shard: Path, cache: Path, args) -> dict:
    """Seconds in model.encode and in the rest of embed_shard (model load excluded), one process."""
    out = shard.with_name("timed.vectors.parquet")
    command = [
        sys.executable,
        "-c",
        _TIMED_ENCODE,
        str(shard),
        str(out),
        str(cache),
        str(args.mem_mb),
        str(args.threads),
        args.runtime,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    out.unlink()
    return json.loads(result.stdout.strip().splitlines()[-1])


def memory_model(args, workdir: Path) -> None:
    """Baseline RSS (model loaded, one encode) and the slope of peak RSS over batch sizes."""
    code = (
        "import json; from vcf_agent.embedding.embed import embed_texts, load_model, peak_rss_mb; "
        f"m = load_model(runtime={args.runtime!r}); embed_texts(['warm-up'], loaded=m); "
        "print(json.dumps(peak_rss_mb()))"
    )
    baseline = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
    print(f"baseline (imports + model + one encode, runtime {args.runtime}): peak RSS {baseline:.0f} MB")
    shard = args.shard or convert_vcf(DATA / args.cohort, workdir)
    shard = repeat_shard(shard, 4 * 16_384, workdir / "memory-model.parquet")
    cache = workdir / "memory-cache"
    run_job(shard, cache, mem_mb=args.mem_mb, threads=args.threads, runtime=args.runtime)  # warm the cache
    points = []
    for rows in (1_024, 4_096, 8_192, 16_384):
        stats = run_job(shard, cache, mem_mb=args.mem_mb, threads=args.threads, batch_rows=rows, runtime=args.runtime)
        points.append((rows, stats["peak_rss_mb"]))
        print(f"batch {rows:>6,} rows: peak RSS {stats['peak_rss_mb']:.0f} MB")
    (x0, y0), (x1, y1) = points[0], points[-1]
    slope = (y1 - y0) / (x1 - x0)
    print(f"per-row cost: {slope * (1 << 20):,.0f} bytes/row; at 0 rows: {y0 - x0 * slope:.0f} MB")


_READY = """
import json, sys, time
started = time.perf_counter()
from vcf_agent.embedding.embed import embed_texts, load_model, peak_rss_mb
model = load_model(runtime=sys.argv[1], device="cpu", threads=int(sys.argv[2]))
embed_texts(["warm-up"], loaded=model)
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()}))
"""


def startup(args, workdir: Path) -> None:
    """A fresh process until the model has encoded once: onnx and sentence-transformers, interleaved.

    `wall` is the whole process seen from outside (interpreter start and exit included); `ready`
    is from its first line to the end of the first encode. Medians of `--repeats` runs each.
    """
    runs: dict[str, list[dict]] = {"onnx": [], "sentence-transformers": []}
    for repeat in range(args.repeats):
        for runtime in sorted(runs, reverse=repeat % 2 == 1):
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-c", _READY, runtime, str(args.threads)], capture_output=True, text=True, check=True
            )
            runs[runtime].append({**json.loads(result.stdout.splitlines()[-1]), "wall": time.perf_counter() - started})
    for runtime, measured in runs.items():
        median = {key: statistics.median(m[key] for m in measured) for key in ("wall", "seconds", "peak_rss_mb")}
        print(
            f"{runtime}: model ready in a fresh process {median['seconds']:.2f} s (whole process"
            f" {median['wall']:.2f} s), peak RSS {median['peak_rss_mb']:.0f} MB; median of {len(measured)} ({load()})"
        )


def cold_cli(args, workdir: Path) -> None:
    """`vcf-agent search TEXT` from the shell (fresh process each time), and the server until ready."""
    from measure import run_measured

    cli = Path(sys.executable).with_name("vcf-agent")
    search = [str(cli), "search", "missense variant in a gene", "--results", str(args.cold_cli), "--limit", "3"]
    runs = [run_measured(search) for _ in range(args.repeats)]
    imports = [
        run_measured([sys.executable, "-c", f"import {module}"]).seconds
        for module in ("lancedb", "kuzu", "onnxruntime")
    ]
    print(
        f"vcf-agent search (cold, fresh process): median {statistics.median(r.seconds for r in runs):.2f} s"
        f" of {len(runs)}, peak RSS {max(r.peak_rss_mb for r in runs):.0f} MB; of which importing lancedb"
        f" {imports[0]:.2f} s, kuzu {imports[1]:.2f} s, onnxruntime {imports[2]:.2f} s ({load()})"
    )
    import psutil
    from measure import tree_rss

    port = 18000 + os.getpid() % 1000
    serve = [str(cli), "serve", "--results", str(args.cold_cli), "--port", str(port)]
    started = time.perf_counter()
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"the server exited ({server.returncode})")
                time.sleep(0.05)
        ready = time.perf_counter() - started
        rss = tree_rss(psutil.Process(server.pid)) / 2**20
    finally:
        server.terminate()
        server.wait()
    print(f"vcf-agent serve: ready (first /health) in {ready:.2f} s at {rss:.0f} MB RSS before any load ({load()})")


def main() -> None:
    from vcf_agent.runtime import setup_process

    setup_process()  # the environment and allocator of every entry point
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shard", type=Path, help="a variant shard (Parquet) instead of converting --cohort")
    parser.add_argument("--cohort", default=DEFAULT_COHORT, help="VCF under $VCF_TEST_DATA to convert")
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="repeat the shard up to this many rows (0: as is)"
    )
    parser.add_argument("--mem-mb", type=int, default=None, help="declared job memory (default: embed_mem_mb(1))")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--runtime", default="auto", choices=["auto", "onnx", "sentence-transformers"], help="embed_shard's runtime"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side for --overhead")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--overhead", action="store_true", help="compare with bare model.encode")
    mode.add_argument("--memory-model", action="store_true", help="measure baseline and per-row memory")
    mode.add_argument("--startup", action="store_true", help="a fresh process until the model is ready")
    mode.add_argument("--cold-cli", type=Path, metavar="RESULTS", help="cold `vcf-agent search` and server start")
    args = parser.parse_args()
    if args.mem_mb is None:
        from vcf_agent.resources import embed_mem_mb

        args.mem_mb = embed_mem_mb(1, "sentence-transformers" if args.runtime == "sentence-transformers" else "onnx")
    with tempfile.TemporaryDirectory(prefix="bench-embed-") as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.overhead:
            overhead(args, workdir)
        elif args.memory_model:
            memory_model(args, workdir)
        elif args.startup:
            startup(args, workdir)
        elif args.cold_cli:
            cold_cli(args, workdir)
        else:
            throughput(args, workdir)


if __name__ == "__main__":
    main()
