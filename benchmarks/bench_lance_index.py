"""Does the LanceDB ANN index build grow with the table? Its peak RSS at several table sizes.

    python benchmarks/bench_lance_index.py                          # 1.1 M and 3.3 M rows
    python benchmarks/bench_lance_index.py --rows 1100000,3300000 --partitions 1024
    python benchmarks/bench_lance_index.py --table benchmarks/out/scale-1/results/lancedb

The genome's table (85 M rows) cannot be built on this machine, so the question is asked of
the synthetic tables it can hold: each size is a table of 384-wide unit vectors around 95,000
centres (as many distinct descriptions as the full-size cohort has), written once under
benchmarks/out/lance-index/ (~1.6 GB a million rows) and indexed again for each run by a fresh
process of this script with the workflow's own parameters (vcf_agent.stores.lance._ann_index:
partitions from the rows, a training sample bounded by MAX_TRAINING_VECTORS), with its
resident memory sampled every 50 ms (the load's LANCE_IO_THREADS and batch size; set either
to measure another). `--partitions N` asks for N IVF partitions instead (the
genome's table would have ~5,200); `--table` indexes a copy of a real store's table. Each
size is measured `--repeats` times (the build's peak varies by ~15 % from run to run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from measure import ROOT

OUT = ROOT / "benchmarks" / "out" / "lance-index"
CENTRES, DIM, ROWS_PER_ADD = 95_000, 384, 131_072


def synthetic_table(rows: int) -> Path:
    """A table of `rows` vectors (one data file per 131,072 rows, as the load writes them), made once."""
    import lancedb
    import pyarrow as pa

    path = OUT / f"rows-{rows}"
    if (path / "done").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((CENTRES, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    schema = pa.schema([("variant_id", pa.string()), ("vector", pa.list_(pa.float32(), DIM))])
    table = lancedb.connect(str(path)).create_table("variants", schema=schema)
    for start in range(0, rows, ROWS_PER_ADD):
        count = min(ROWS_PER_ADD, rows - start)
        numbers = np.arange(start, start + count)
        vectors = centres[(numbers * 7919) % CENTRES] + rng.standard_normal((count, DIM), dtype=np.float32) * 0.01
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM)
        table.add(pa.table({"variant_id": [f"chr1:{n}" for n in numbers], "vector": column}, schema=schema))
    (path / "done").touch()
    return path


def copied_table(source: Path) -> Path:
    """A copy of a store's live table (the index is built again on the copy, not the store)."""
    from vcf_agent.stores.build import live_build

    live = live_build(source)
    path = OUT / f"copy-{source.parent.parent.name}"
    if not (path / "done").exists():
        shutil.rmtree(path, ignore_errors=True)
        shutil.copytree(live, path)
        (path / "done").touch()
    return path


def build_index(path: Path, partitions: int | None) -> None:
    """The child's side: the ANN index of the table at `path`, as the workflow builds it; prints JSON."""
    from vcf_agent.runtime import setup_process
    from vcf_agent.stores import lance

    setup_process(2)  # as the load_lancedb job: two threads, two malloc arenas, and its Lance settings
    for name, value in lance.LOAD_SETTINGS.items():
        os.environ.setdefault(name, value)
    import lancedb

    db = lancedb.connect(str(path))
    table = db.open_table(db.table_names()[0])
    rows = table.count_rows()
    peak, stop = [0], threading.Event()

    def sample() -> None:
        process = psutil.Process()
        while not stop.wait(0.05):
            peak[0] = max(peak[0], process.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    if partitions:
        original = lance.ann_parameters
        lance.ann_parameters = lambda r, d, dim: {**original(r, d, dim), "num_partitions": partitions}
    index = lance._ann_index(table, rows, CENTRES, DIM)
    seconds = time.perf_counter() - started
    stop.set()
    print(json.dumps({"rows": rows, "partitions": index["num_partitions"], "sample_rate": index["sample_rate"],
                      "seconds": round(seconds, 1), "rss_before_mib": round(before / 2**20),
                      "peak_rss_mib": round(max(peak[0], before) / 2**20)}))  # fmt: skip


def measure(path: Path, partitions: int | None, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        command = [sys.executable, __file__, "--child", str(path)]
        if partitions:
            command += ["--partitions", str(partitions)]
        done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"  {runs[-1]}", file=sys.stderr, flush=True)
    peaks = [r["peak_rss_mib"] for r in runs]
    return {**runs[0], "peak_rss_mib": statistics.median(peaks), "peaks": peaks,
            "seconds": statistics.median(r["seconds"] for r in runs)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1100000,3300000", help="synthetic table sizes, comma-separated")
    parser.add_argument("--table", type=Path, help="a store's LanceDB folder (results/lancedb) instead")
    parser.add_argument("--partitions", type=int, help="IVF partitions (default: the workflow's formula)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        build_index(args.child, args.partitions)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    paths = [copied_table(args.table)] if args.table else [synthetic_table(int(n)) for n in args.rows.split(",")]
    results = []
    for path in paths:
        print(f"{path}:", file=sys.stderr, flush=True)
        results.append(measure(path, args.partitions, args.repeats))
    print(f"\n{'rows':>10} {'partitions':>10} {'seconds':>8} {'peak RSS (MiB, median)':>24}  runs")
    for r in results:
        print(f"{r['rows']:>10,} {r['partitions']:>10} {r['seconds']:>8.1f} {r['peak_rss_mib']:>24.0f}  {r['peaks']}")
    if len(results) > 1:
        first, last = results[0], results[-1]
        per_million = (last["peak_rss_mib"] - first["peak_rss_mib"]) / ((last["rows"] - first["rows"]) / 1e6)
        print(f"growth: {per_million:+.0f} MiB per million rows between {first['rows']:,} and {last['rows']:,}")


if __name__ == "__main__":
    main()
