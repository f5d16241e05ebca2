"""Peak RSS of Kuzu's bulk load of CARRIES under other schemas and load orders (README, Stores).

    python benchmarks/bench_kuzu_options.py                    # the 10,000,000 edges of bench_stores.py
    python benchmarks/bench_kuzu_options.py --only gt_code as_loaded

What load_kuzu would write is prepared once (vcf_agent.stores.kuzu.prepare_tables, from
the scaled cohort of benchmarks/scaled_data.py). Each option then loads every table into
a new database with one `COPY` per file, in a process of its own that imports Kuzu alone
(or, for the `*_loader_imports` options, also the package, i.e. pyarrow and DuckDB), and
is measured with benchmarks/measure.py. Only the load as it is (`as_loaded`) is what the
workflow does; the others are the ways we tried to bring it under 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from measure import run_measured
from scaled_data import build_scaled_shards

CARRIES_COLUMNS = "sample, variant_id, gt, phased, alt_count, ploidy"
CARRIES_PROPERTIES = "gt STRING, phased BOOLEAN, alt_count INT8, ploidy INT8"
# gt as a one-byte code (the rank of the GT string among those present) instead of the string.
GT_CODE_COLUMNS = (
    "sample, variant_id, CAST(dense_rank() OVER (ORDER BY gt) - 1 AS UTINYINT) AS gt, phased, alt_count, ploidy"
)
GT_CODE_PROPERTIES = CARRIES_PROPERTIES.replace("gt STRING", "gt UINT8")


# The same edges declared Variant -> Sample, so that one stored direction is the Variant side.
VARIANT_SIDE_COLUMNS = CARRIES_COLUMNS.replace("sample, variant_id", "variant_id, sample")


@dataclass(frozen=True)
class Option:
    carries: str = CARRIES_COLUMNS  # DuckDB select list over the prepared CARRIES file
    properties: str = CARRIES_PROPERTIES  # CARRIES properties in Kuzu's DDL
    chunks: int = 1  # COPY statements the edges are split into
    buffer_pool_mb: int = 1300
    loader_imports: bool = False
    threads: int = 2
    ends: str = "FROM Sample TO Variant"
    storage_direction: str = "both"  # Kuzu's rel table option: both sides, or the FROM side only
    own_process: bool = False  # CARRIES copied by a second process, after the node tables


OPTIONS = {
    "as_loaded": Option(),
    "as_loaded_loader_imports": Option(loader_imports=True),
    "no_properties": Option("sample, variant_id", ""),
    "alt_count_only": Option("sample, variant_id, alt_count", "alt_count INT8"),
    "gt_null": Option("sample, variant_id, NULL::VARCHAR AS gt, phased, alt_count, ploidy"),
    "gt_code": Option(GT_CODE_COLUMNS, GT_CODE_PROPERTIES),
    "gt_code_loader_imports": Option(GT_CODE_COLUMNS, GT_CODE_PROPERTIES, loader_imports=True),
    "chunks_10_pool_600": Option(chunks=10, buffer_pool_mb=600),
    "chunks_4_pool_700": Option(chunks=4, buffer_pool_mb=700),
    "chunks_2_pool_800": Option(chunks=2, buffer_pool_mb=800),
    "threads_1": Option(threads=1),
    "own_process": Option(own_process=True),
    "gt_code_own_process": Option(GT_CODE_COLUMNS, GT_CODE_PROPERTIES, own_process=True),
    "sample_side_only": Option(storage_direction="fwd"),
    "variant_side_only": Option(VARIANT_SIDE_COLUMNS, ends="FROM Variant TO Sample", storage_direction="fwd"),
}


def prepare(data: Path, variants: int, genotypes: int, folder: Path) -> dict:
    """The tables load_kuzu would copy (once per --data and size), as {"files", "rows", "ddl"}."""
    done = folder / "prepared.json"
    if done.exists():
        return json.loads(done.read_text())
    from vcf_agent.schema import kuzu_ddl
    from vcf_agent.stores.kuzu import prepare_tables

    shards = build_scaled_shards(data, variants=variants, genotypes=genotypes)
    folder.mkdir(parents=True, exist_ok=True)
    samples = {shards.source: list(shards.samples)}
    tables = prepare_tables(folder, list(shards.variants), list(shards.genotypes), list(shards.annotations), samples)
    prepared = {
        "files": {t: str(f) for t, f in tables.files.items() if tables.rows[t]},
        "rows": tables.rows,
        "ddl": [s for s in kuzu_ddl(tables.omit) if "REL TABLE CARRIES" not in s],
    }
    done.write_text(json.dumps(prepared))
    return prepared


def carries_files(prepared: dict, name: str, option: Option, folder: Path) -> list[str]:
    """The CARRIES edges as this option loads them: columns changed, split into chunks."""
    import duckdb

    source = prepared["files"]["CARRIES"]
    out = folder / f"carries_{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    rows = prepared["rows"]["CARRIES"]
    per_chunk = -(-rows // option.chunks)
    with duckdb.connect() as con:  # streams: DuckDB keeps the file's row order for LIMIT/OFFSET
        for chunk in range(option.chunks):
            part = f"SELECT {option.carries} FROM read_parquet('{source}') LIMIT {per_chunk} OFFSET {chunk * per_chunk}"
            con.execute(f"COPY ({part}) TO '{out}/{chunk:03d}.parquet' (FORMAT parquet)")
    return [str(p) for p in sorted(out.glob("*.parquet"))]


def stage(job: dict) -> dict:
    """Load every table into a new database (run in a child process; prints seconds and counts)."""
    if job["loader_imports"]:
        import vcf_agent.stores.kuzu  # noqa: F401  (what the loader's process holds: pyarrow, DuckDB)
    import kuzu

    threads = job["threads"]
    database = kuzu.Database(job["database"], buffer_pool_size=job["buffer_pool_mb"] << 20, max_num_threads=threads)
    connection = kuzu.Connection(database, num_threads=threads)
    for statement in job["ddl"]:
        connection.execute(statement)
    seconds = {}
    for table, files in job["copies"]:
        started = time.perf_counter()
        for file in files:
            connection.execute(f"COPY {table} FROM '{file}'")
        seconds[table] = round(time.perf_counter() - started, 1)
    edges = connection.execute("MATCH ()-[c:CARRIES]->() RETURN count(c)").get_next()[0]
    return {"seconds": seconds, "edges": edges}


def measure(name: str, option: Option, prepared: dict, folder: Path) -> str:
    properties = f", {option.properties}" if option.properties else ""
    carries_ddl = f"CREATE REL TABLE CARRIES({option.ends}{properties})"
    carries = carries_files(prepared, name, option, folder)
    copies = [[t, [f]] for t, f in prepared["files"].items() if t != "CARRIES"] + [["CARRIES", carries]]
    database = folder / f"graph_{name}"
    shutil.rmtree(database, ignore_errors=True)
    database.mkdir()
    job = {
        "database": str(database / "graph.kuzu"),
        "buffer_pool_mb": option.buffer_pool_mb,
        "loader_imports": option.loader_imports,
        "threads": option.threads,
        "ddl": [*prepared["ddl"], f"{carries_ddl} WITH (storage_direction='{option.storage_direction}')"],
        "copies": copies,
    }
    if option.own_process:  # the node tables first, then CARRIES into the closed database
        run_measured([sys.executable, __file__, "--stage", json.dumps(dict(job, copies=copies[:-1]))])
        job = dict(job, ddl=[], copies=copies[-1:])
    measured = run_measured([sys.executable, __file__, "--stage", json.dumps(job)])
    result = json.loads(measured.stdout.strip().splitlines()[-1])
    shutil.rmtree(database)
    shutil.rmtree(folder / f"carries_{name}")
    copy_s = result["seconds"]["CARRIES"]
    return (
        f"{name:<26} peak RSS {measured.peak_rss_mb:6,.0f} MiB   COPY CARRIES {copy_s:5.1f} s"
        f" = {result['edges'] / copy_s:9,.0f} edges/s   ({option.chunks} COPY, pool {option.buffer_pool_mb} MB)"
    )


def main() -> None:
    from vcf_agent.runtime import setup_process

    setup_process()  # the environment and allocator of every entry point
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--genotypes", type=int, default=10_000_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "vcf-agent-scaled")
    parser.add_argument("--only", nargs="+", choices=sorted(OPTIONS), help="measure these options only")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(stage(json.loads(args.stage))))
        return
    folder = args.data / f"kuzu-options-{args.variants}-{args.genotypes}"
    prepared = prepare(args.data, args.variants, args.genotypes, folder)
    print(f"{prepared['rows']['Variant']:,} variants, {prepared['rows']['CARRIES']:,} CARRIES edges ({folder})")
    for name in args.only or OPTIONS:
        print(measure(name, OPTIONS[name], prepared, folder), flush=True)


if __name__ == "__main__":
    main()
