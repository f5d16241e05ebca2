"""The Kuzu graph of samples, variants, genes and files -- the only module that imports Kuzu.

Kuzu 0.11.3 is the last release of Kuzu (the project is archived). Its fork
LadybugDB ships the same Python API as the PyPI package ``ladybug``: moving to it
means changing the one import line below (``import ladybug as graphdb``) and the pin.

Contract (what rules load_kuzu_partition and load_kuzu write, and the query layer reads)
---------------------------------------------------------------------------------------
* ``results/kuzu`` is a symlink to the current build: ``partitions.json`` (the index)
  and one Kuzu database per partition, ``parts/pNNNNN.kuzu``. A partition is a range of
  positions per contig (whole shards, `vcf_agent.stores.build.plan_partitions`);
  the index gives, per partition and contig, its variants, first and last position,
  last ``end`` and longest span, and its table counts, so a query knows which
  partitions it needs before opening any. `open_graph` opens a store (all partitions,
  read-only, rows of `StoreGraph.query` concatenated in partition order) or one
  database file; `Graph.query` takes Cypher with bound parameters only (``$name``).
* Every partition holds the same tables (names, properties and types in
  vcf_agent.schema): node ``Sample(id)``, ``Variant(variant_id, chrom, pos, end, ref,
  alt, id, qual, filter, variant_class, gene, consequence, impact, af)``,
  ``Gene(symbol)``, ``File(name, path)``; rel ``CARRIES(Sample->Variant: gt, phased,
  alt_count, ploidy, dp, gq, source)``, ``IN_GENE``, ``VARIANT_IN_FILE``,
  ``SAMPLE_IN_FILE``. Its own variants, their edges and the genes they name; Sample,
  File and SAMPLE_IN_FILE are the same in every partition (all samples, all VCFs), so
  a query about samples or files asks any one partition. ``af`` is INFO/AF where the
  VCF declares it numeric (the filters af_min/af_max run in the graph). ``end`` is a
  Cypher keyword: write ``v.`end``` (schema.kuzu_property).
* CARRIES is stored on both sides (schema.CARRIES_REL). Its ``dp``/``gq`` exist only
  when some genotype holds one, ``source`` only when the graph holds several VCFs;
  decided once for the whole store (`carries_left_out`), so every partition has the
  same properties (the manifest's ``properties_left_out``).
* One Variant node per variant_id and one CARRIES edge per (sample, variant_id)
  carrying the ALT, from the first VCF of the config that holds both
  (stores.build.GENOTYPE_RULE): a variant_id names one position, and a position lies
  in one partition, so the rule is applied inside each partition, as for the whole.
* ``results/kuzu.json`` (the manifest, written last): counts over all partitions,
  properties left out, VCFs, samples, genotypes shared across files, partitions and
  their largest, build time, seconds.

Why one database per partition (the figures: ../shared/notes/kuzu-partitioned-loads.md)
--------------------------------------------------------------------------------------
Kuzu's COPY of a rel table holds it whole: ~105 MiB + 130 B per CARRIES edge in one
table (2.5 M edges 409 MiB, 10 M 1,343 MiB, 30 M 3,818 MiB; a smaller buffer pool
fails instead of spilling). Three layouts bound a load by its partition (30 M edges
as 10 ranges of ~3 M): (a) node tables Variant_p0.. with one multi-pair CARRIES rel
table, (b) one rel table per partition, (c) one database per partition. (a) and (b)
put every partition in one database, so their loads run one after the other and every
open pays ~8.5 MiB per partition table already there (448 -> 524 MiB from job 1 to 10,
610 MiB at 20). At genome scale (84.8 M sites x 2,504 samples, ~7e9 carrier genotypes)
a job's peak there is ~105 MiB + 8.5 MiB x K + 130 B x 7e9 / K, at least ~5.5 GiB
(K ~ 320), and the server pays 8.5 MiB x K on every open. (c) stays at 448-458 MiB
per job whatever K (each job opens only its own database), its loads are independent
jobs (side by side with --cores or on a cluster), and a query opens only the
partitions it is routed to (~60 MiB each; `vcf_agent.query.graph` keeps a bounded
number open). Routed queries were as fast on (c) as on one table: a variant's
carriers 1.4 ms (3.9 ms in one table), a sample's first 100 walked partition by
partition 4.9 ms (112 ms in one table), the routed region join 0.85 s at ~600 MiB
(9.8 s, 3 GiB in one table). What (c) pays: Sample, File and SAMPLE_IN_FILE in every
partition (2,504 samples: < 1 MiB each), ~5 % more disk, and queries that need every
partition (a sample's counts without a region) ask each in turn.

With ``kuzu.partition_edges`` = 4,000,000 (config/README.md): a load job peaks at
~105 MiB + 130 B x 4 M = ~600 MiB (under 1 GiB at any cohort size; the DuckDB
preparation runs in a child process and is gone before Kuzu starts). A 1000 Genomes
chromosome 22 (~90 M carrier genotypes) is ~23 partitions, the genome (~7e9) ~1,750
partitions of ~600 MiB each, ~110 GiB of disk (0.016 GiB per million edges, measured),
as many independent jobs.

Measured here (``python benchmarks/bench_stores.py --only kuzu --variants 100000
--genotypes 8000000 --shard-records 6139 --partitions 1 4 16``: the same 7,935,344
genotypes, each partition's load in a fresh process, as its job runs it): one
partition 1,146 MiB; 4 partitions of 1,983,836 edges 417 MiB each (first = last =
largest job); 16 partitions of 495,959 edges 304 MiB (job 1) to 317 MiB (job 16).
So a job costs ~175 MiB + ~122 B per edge of its own partition, flat in the number of
partitions: ~665 MiB at the default 4,000,000, for a chromosome as for the genome.
A read-only partition reserves four times its file of address space (Kuzu's default,
8 TiB per database, lets a process open only ~15).

How a partition loads
---------------------
DuckDB (bounded by its memory_limit; in a child process for large inputs) writes one
Parquet file per table from the partition's shards only, in the column order Kuzu
expects. Kuzu bulk-loads each with one ``COPY ... FROM`` into a database written
beside its target and renamed into place. Rule load_kuzu then hard-links the
partition databases into a fresh build folder, writes the index and swaps the
build in atomically (vcf_agent.stores.build.StoreBuild); counts are checked against
the prepared files in each partition's job.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

# The one import of the graph database (LadybugDB: `import ladybug as graphdb`).
import kuzu as graphdb
import pyarrow as pa
import pyarrow.parquet as pq

from vcf_agent.errors import VcfAgentError, fail
from vcf_agent.files import write_json
from vcf_agent.ingest.header import read_header
from vcf_agent.ingest.parquet import duckdb_connect
from vcf_agent.logs import log
from vcf_agent.resources import PROCESS_OVERHEAD_MB
from vcf_agent.runtime import run_in_child
from vcf_agent.schema import (
    CARRIES_REL,
    FILE_NODE,
    GENE_NODE,
    GENOTYPE_COLUMNS,
    IN_GENE_REL,
    KUZU_NODE_TABLES,
    KUZU_REL_TABLES,
    SAMPLE_IN_FILE_REL,
    SAMPLE_NODE,
    VARIANT_IN_FILE_REL,
    VARIANT_NODE,
    kuzu_ddl,
    kuzu_property,
)
from vcf_agent.stores.build import (
    CONFLICT_EXAMPLES,
    GENOTYPE_RULE,
    ShardExtent,
    StoreBuild,
    genotype_overlap,
    paired_shards,
    parquet_file,
    plan_partitions,
    present_columns,
    shadowed_rows,
    shards_digest,
    source_of,
    sources_in_order,
    sql_list,
    sql_string,
    utc_now,
)

#: The index of a store's partitions, and the folder of their databases (inside the build).
PARTITIONS_FILE = "partitions.json"
PARTS_DIR = "parts"
#: Genotypes (CARRIES edges) per partition unless the config says otherwise (kuzu.partition_edges):
#: a load job peaks at ~105 MiB + 130 B per edge, ~600 MiB at 4,000,000.
DEFAULT_PARTITION_EDGES = 4_000_000
#: Tables every partition holds whole (all samples, all VCFs): ask any one partition about them.
SHARED_TABLES = frozenset({SAMPLE_NODE.name, FILE_NODE.name, SAMPLE_IN_FILE_REL.name})
#: The numeric INFO column that becomes Variant.af.
AF_SOURCE_COLUMN = "info_AF"
ENGINE = f"{graphdb.__name__} {graphdb.__version__}"
MIN_BUFFER_POOL_MB = 64
#: Input rows from which DuckDB runs in a child process (whose memory is gone before
#: Kuzu starts); below, the ~100 MB of a second interpreter would cost more than it saves.
CHILD_PROCESS_MIN_ROWS = 1_000_000


# ---------------------------------------------------------------- opening


class Graph:
    """An open Kuzu database and a connection to it.

    Queries are prepared once per Graph and reused: preparing a Cypher statement
    costs about 1.4 ms, running a primary-key look-up about 0.4 ms.
    """

    def __init__(self, path: Path, *, read_only: bool, buffer_pool_mb: int | None, threads: int | None) -> None:
        self.path = path
        self.read_only = read_only
        self._db = graphdb.Database(
            str(path),
            read_only=read_only,
            buffer_pool_size=int(buffer_pool_mb or 0) * 2**20,
            max_num_threads=int(threads or 0),
            **({"max_db_size": _address_space(path)} if read_only else {}),
        )
        self._conn = graphdb.Connection(self._db, num_threads=int(threads or 0))
        self._prepared: dict[str, Any] = {}

    def query(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        """Rows of a Cypher query as dicts; values only through `params` ($name in the query)."""
        result = self._run(cypher, params)
        try:
            names = result.get_column_names()
            return [dict(zip(names, row, strict=True)) for row in result.get_all()]
        finally:
            result.close()

    def query_arrow(self, cypher: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Many rows: as an Arrow table, without a Python object per value."""
        result = self._run(cypher, params)
        try:
            return result.get_as_arrow()
        finally:
            result.close()

    def _run(self, cypher: str, params: Mapping[str, Any] | None):
        statement = self._prepared.get(cypher)
        if statement is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # Kuzu 0.11 prefers execute(str), which re-plans
                statement = self._prepared[cypher] = self._conn.prepare(cypher)
        return self._conn.execute(statement, dict(params or {}))

    def execute(self, cypher: str, params: Mapping[str, Any] | None = None) -> None:
        self._conn.execute(cypher, dict(params or {})).close()

    def properties(self, table: str) -> list[str]:
        """Property names of a node or rel table (CARRIES lacks dp, gq or source in some graphs)."""
        if table not in {t.name for t in (*KUZU_NODE_TABLES, *KUZU_REL_TABLES)}:
            raise fail(table, "no such table in the graph")
        return [row["name"] for row in self.query(f"CALL table_info('{table}') RETURN name")]

    def count(self, table: str, *, rel: bool = False) -> int:
        pattern = f"()-[r:{table}]->()" if rel else f"(r:{table})"
        return self.query(f"MATCH {pattern} RETURN count(r) AS n")[0]["n"]

    def close(self) -> None:
        self._conn.close()
        self._db.close()

    def __enter__(self) -> Graph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: The least address space a read-only database reserves (see _address_space).
MIN_ADDRESS_SPACE = 1 << 32


def _address_space(path: Path) -> int:
    """What a read-only database reserves of the address space: Kuzu's default is 8 TiB per
    database, so a process could open only ~15 (47-bit user space: "Mmap ... failed"); a
    read-only database never grows, so four times its file (at least 4 GiB), a power of two."""
    size = path.stat().st_size if path.exists() else 0
    return max(MIN_ADDRESS_SPACE, 1 << (4 * size).bit_length())


def read_partitions(store: Path | str) -> dict:
    """The index of a store folder (results/kuzu or a build folder): its partitions in order."""
    path = Path(store) / PARTITIONS_FILE
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise fail(store, "no graph here (run the workflow's load_kuzu rule first)") from None
    except (OSError, ValueError) as error:
        raise fail(path, f"unreadable partition index ({error})") from error
    if not index.get("partitions"):
        raise fail(path, "the partition index lists no partition")
    return index


class StoreGraph:
    """Every partition of a store, opened read-only (for tests, scripts and checks).

    `query` runs on each partition and returns their rows one after the other (in
    partition order: aggregate them yourself); `count` adds them up, counting the tables
    every partition holds whole (SHARED_TABLES) once. The query layer routes instead
    (vcf_agent.query.graph).
    """

    def __init__(self, store: Path, *, buffer_pool_mb: int | None, threads: int | None) -> None:
        self.path = store
        self.index = read_partitions(store)
        self.parts: list[Graph] = []
        try:
            for part in self.index["partitions"]:
                file = store / part["file"]
                self.parts.append(Graph(file, read_only=True, buffer_pool_mb=buffer_pool_mb, threads=threads))
        except RuntimeError as error:
            self.close()
            raise fail(store, f"cannot open the graph: {error}") from error

    def query(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        return [row for part in self.parts for row in part.query(cypher, params)]

    def properties(self, table: str) -> list[str]:
        return self.parts[0].properties(table)

    def count(self, table: str, *, rel: bool = False) -> int:
        if table in SHARED_TABLES:
            return self.parts[0].count(table, rel=rel)
        if table == GENE_NODE.name:  # a gene named by variants of two partitions is in both
            return len({row["g"] for row in self.query("MATCH (g:Gene) RETURN g.symbol AS g")})
        return sum(part.count(table, rel=rel) for part in self.parts)

    def close(self) -> None:
        for part in self.parts:
            part.close()
        self.parts = []

    def __enter__(self) -> StoreGraph:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_graph(
    path: Path | str = "results/kuzu",
    read_only: bool = True,
    buffer_pool_mb: int | None = None,
    threads: int | None = None,
) -> Graph | StoreGraph:
    """Open a store folder (results/kuzu, a build folder: every partition, read-only) or one database file."""
    path = Path(path)
    if path.is_dir():
        return StoreGraph(path, buffer_pool_mb=buffer_pool_mb, threads=threads)
    if read_only and not path.exists():
        raise fail(path, "no graph here (run the workflow's load_kuzu rule first)")
    try:
        return Graph(path, read_only=read_only, buffer_pool_mb=buffer_pool_mb, threads=threads)
    except RuntimeError as error:
        raise fail(path, f"cannot open the graph: {error}") from error


def buffer_pool_mb_for(mem_mb: int) -> int:
    """Kuzu's buffer pool inside a job allowed `mem_mb` in all."""
    # Kuzu fills its pool only as far as a load needs (peak RSS = what the COPY needs, not
    # the pool size), so the pool may take everything but the process's own share.
    return max(MIN_BUFFER_POOL_MB, mem_mb - PROCESS_OVERHEAD_MB)


# ---------------------------------------------------------------- inputs


def samples_from_headers(bcfs: Sequence[Path | str]) -> dict[str, list[str]]:
    """Samples of each normalized BCF (results/normalized/<vcf>.bcf), keyed by its VCF name."""
    return {Path(bcf).name.removesuffix(".bcf"): read_header(bcf).samples for bcf in bcfs}


def input_paths(inputs_json: Path | str | None) -> dict[str, str]:
    """VCF name -> configured input path, from results/normalized/inputs.json."""
    if inputs_json is None or not Path(inputs_json).exists():
        return {}
    return {entry["source"]: entry["input"] for entry in json.loads(Path(inputs_json).read_text())}


# ---------------------------------------------------------------- loading


def carries_left_out(genotypes: Sequence[Path | str], sources: Sequence[str]) -> set[str]:
    """CARRIES properties the whole store leaves out: dp/gq that no genotype holds (read from the
    shards' Parquet statistics), and source when there is one VCF (see schema.CARRIES_REL)."""
    left_out = set() if len(sources) > 1 else {"source"}
    return left_out | ({"dp", "gq"} - present_columns(genotypes, ["dp", "gq"]))


def shard_extents(variants: Sequence[Path | str], genotypes: Sequence[Path | str]) -> list[ShardExtent]:
    """Contig, first and last position, variants and genotypes of each shard (from its files)."""
    extents = []
    for shard in paired_shards(variants, genotypes, "genotypes"):
        table = pq.read_table(shard.variants, columns=["chrom", "pos"])
        if table.num_rows == 0:
            continue
        chroms = table.column("chrom").unique().to_pylist()
        positions = table.column("pos").to_numpy()
        for chrom in chroms:  # shards never cross contigs; a hand-made file might
            extents.append(
                ShardExtent(
                    shard.source, shard.variants.stem, chrom, int(positions.min()), int(positions.max()),
                    table.num_rows, parquet_file(shard.other).metadata.num_rows,
                )
            )  # fmt: skip
    return extents


def plan_graph(
    extents: Sequence[ShardExtent],
    genotypes: Sequence[Path | str],
    samples: Mapping[str, Sequence[str]],
    partition_edges: int = DEFAULT_PARTITION_EDGES,
) -> dict:
    """The plan of a store: its partitions (each a list of shards), the VCFs and the CARRIES
    properties left out (the same in every partition). A store without variants has one
    empty partition, which holds its samples and files."""
    sources = list(samples)
    partitions = plan_partitions(extents, partition_edges) or [
        {"name": "p00001", "ranges": [], "shards": [], "variants": 0, "genotypes": 0}
    ]
    order = {label: i for i, label in enumerate(dict.fromkeys(e.label for e in extents))}
    for partition in partitions:  # config order, then shard order: the first VCF wins (shadowed_rows)
        partition["shards"] = sorted(dict.fromkeys(partition["shards"]), key=order.__getitem__)
    return {
        "partition_edges": partition_edges,
        "sources": sources,
        "properties_left_out": {CARRIES_REL.name: sorted(carries_left_out(genotypes, sources))},
        "partitions": partitions,
    }


def load_kuzu(
    variants: Sequence[Path | str],
    genotypes: Sequence[Path | str],
    annotations: Sequence[Path | str],
    out: Path | str = "results/kuzu",
    manifest: Path | str = "results/kuzu.json",
    *,
    samples: Mapping[str, Sequence[str]],
    files: Mapping[str, str] | None = None,
    threads: int = 2,
    mem_mb: int = 2048,
    partition_edges: int = DEFAULT_PARTITION_EDGES,
) -> dict:
    """Build the Kuzu graph from the shards in one call (partition after partition; the workflow
    runs each partition as its own job instead); return the manifest (also written to `manifest`)."""
    started = time.perf_counter()
    variants = [Path(p) for p in variants]
    genotypes = [s.other for s in paired_shards(variants, genotypes, "genotypes")]
    annotations = [s.other for s in paired_shards(variants, annotations, "annotations")]
    samples = _samples_in_order(variants, samples)
    plan = plan_graph(shard_extents(variants, genotypes), genotypes, samples, partition_edges)
    by_label = {f"{source_of(v)}/{v.stem}": (v, g, a) for v, g, a in zip(variants, genotypes, annotations, strict=True)}
    with StoreBuild(out) as build, build.scratch() as scratch:
        loaded = []
        for partition in plan["partitions"]:
            shards = [by_label[label] for label in partition["shards"]]
            loaded.append(
                load_partition(
                    partition["name"], [v for v, _, _ in shards], [g for _, g, _ in shards],
                    [a for _, _, a in shards], build.path / PARTS_DIR / f"{partition['name']}.kuzu",
                    Path(scratch) / f"{partition['name']}.json", samples=samples, files=files, plan=plan,
                    threads=threads, mem_mb=mem_mb,
                )
            )  # fmt: skip
        result = _assemble(build, loaded, plan, variants, out, samples)
        build.commit()
    result["seconds"]["total"] = round(time.perf_counter() - started, 3)
    write_json(result, manifest)
    log.info("Kuzu %s: %s in %d partitions, %.1f s", out, result["counts"], len(loaded), result["seconds"]["total"])
    return result


def _samples_in_order(variants: Sequence[Path], samples: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """VCF name -> samples, in config order (VCFs without records have no shards, but their
    samples and File node belong in the graph too)."""
    sources = list(dict.fromkeys([*sources_in_order(variants), *samples]))
    missing = [s for s in sources if s not in samples]
    if missing:
        raise fail("samples", f"no sample list for {', '.join(missing)}")
    return {s: list(samples[s]) for s in sources}


def load_partition(
    name: str,
    variants: Sequence[Path | str],
    genotypes: Sequence[Path | str],
    annotations: Sequence[Path | str],
    graph: Path | str,
    manifest: Path | str,
    *,
    samples: Mapping[str, Sequence[str]],
    plan: Mapping[str, Any],
    files: Mapping[str, str] | None = None,
    threads: int = 2,
    mem_mb: int = 2048,
) -> dict:
    """Load one partition (its shards only) into the database `graph`; return its record (also
    written to `manifest`): counts, genes and, per contig, what the index routes queries by.

    The database is written beside `graph` and renamed into place once its counts are checked.
    """
    started = time.perf_counter()
    graph, variants = Path(graph), [Path(p) for p in variants]
    genotypes = [s.other for s in paired_shards(variants, genotypes, "genotypes")]
    annotations = [s.other for s in paired_shards(variants, annotations, "annotations")]
    sources = list(plan["sources"])
    in_order = {s: list(samples[s]) for s in sources}
    omit = {t: set(v) for t, v in plan["properties_left_out"].items()}
    pool_mb = buffer_pool_mb_for(mem_mb)
    seconds: dict[str, float] = {}
    graph.parent.mkdir(parents=True, exist_ok=True)
    work = graph.with_name(f".{graph.name}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        job = _Prepare(work, variants, genotypes, annotations, in_order, dict(files or {}), threads, mem_mb, omit)
        prepared = job.run_in_child() if job.input_rows() >= CHILD_PROCESS_MIN_ROWS else job.run()
        seconds["prepare"] = round(time.perf_counter() - started, 3)
        with Graph(work / "graph.kuzu", read_only=False, buffer_pool_mb=pool_mb, threads=threads) as db:
            for statement in kuzu_ddl(prepared.omit):
                db.execute(statement)
            for table, parquet in prepared.files.items():
                _copy(db, table, parquet, prepared.rows[table])
                seconds[table] = round(time.perf_counter() - started - sum(seconds.values()), 3)
            counts = _counts(db)
        _check(counts, prepared.rows)
        os.replace(work / "graph.kuzu", graph)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds["total"] = round(time.perf_counter() - started, 3)
    record = {
        "name": name,
        "counts": counts,
        "chroms": prepared.chroms,
        "genes": prepared.genes,
        "across_files": prepared.overlap,
        "shards": [f"{source_of(p)}/{p.stem}" for p in variants],
        "buffer_pool_mb": pool_mb,
        "threads": threads,
        "seconds": seconds,
    }
    write_json(record, manifest)
    log.info("Kuzu partition %s: %s in %.1f s", name, counts, seconds["total"])
    return record


def publish_kuzu(
    graphs: Sequence[Path | str],
    records: Sequence[Path | str],
    plan: Path | str,
    variants: Sequence[Path | str],
    out: Path | str = "results/kuzu",
    manifest: Path | str = "results/kuzu.json",
    *,
    samples: Mapping[str, Sequence[str]],
) -> dict:
    """Rule load_kuzu: the partitions loaded by rule load_kuzu_partition, hard-linked into a fresh
    build (their files stay the jobs' outputs), indexed and swapped in; return the manifest."""
    started = time.perf_counter()
    plan_data = json.loads(Path(plan).read_text())
    loaded = [json.loads(Path(r).read_text()) for r in records]
    names = [p["name"] for p in plan_data["partitions"]]
    if [r["name"] for r in loaded] != names or len(graphs) != len(names):
        raise fail(plan, f"the partitions loaded ({len(loaded)}) are not those of the plan ({len(names)})")
    variants = [Path(p) for p in variants]
    with StoreBuild(out) as build:
        (build.path / PARTS_DIR).mkdir()
        for name, source in zip(names, graphs, strict=True):
            _link_or_copy(Path(source), build.path / PARTS_DIR / f"{name}.kuzu")
        result = _assemble(build, loaded, plan_data, variants, out, _samples_in_order(variants, samples))
        build.commit()
    result["seconds"]["publish"] = round(time.perf_counter() - started, 3)
    write_json(result, manifest)
    log.info("Kuzu %s: %s in %d partitions", out, result["counts"], len(loaded))
    return result


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (a job rewriting its output makes a new file, so the build keeps this one), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _assemble(build: StoreBuild, loaded: Sequence[dict], plan: Mapping, variants, out, samples) -> dict:
    """Write the index of the partitions into the build; return the store's manifest."""
    index = {
        "partition_edges": plan["partition_edges"],
        "partitions": [
            {"name": r["name"], "file": f"{PARTS_DIR}/{r['name']}.kuzu", "counts": r["counts"], "chroms": r["chroms"]}
            for r in loaded
        ],
    }
    write_json(index, build.path / PARTITIONS_FILE)
    counts = {
        table: (loaded[0]["counts"][table] if table in SHARED_TABLES else sum(r["counts"][table] for r in loaded))
        for table in loaded[0]["counts"]
    }
    counts[GENE_NODE.name] = len({gene for r in loaded for gene in r["genes"]})
    seconds: dict[str, float] = {}
    for record in loaded:
        for key, value in record["seconds"].items():
            seconds[key] = round(seconds.get(key, 0) + value, 3)
    sources = list(samples)
    return {
        "store": "kuzu",
        "path": str(out),
        "index": f"{out}/{PARTITIONS_FILE}",
        "build": build.path.name,
        "engine": ENGINE,
        "counts": counts,
        "properties_left_out": plan["properties_left_out"],
        "sources": sources,
        "samples": {s: len(samples[s]) for s in sources},
        "across_files": _merged_overlaps([r["across_files"] for r in loaded], sources),
        "partitions": len(loaded),
        "partition_edges": plan["partition_edges"],
        "largest_partition": max(r["counts"][CARRIES_REL.name] for r in loaded),
        "files": [str(p) for p in variants],
        "variants_digest": shards_digest(variants),
        "buffer_pool_mb": max(r["buffer_pool_mb"] for r in loaded),
        "threads": max(r["threads"] for r in loaded),
        "built_at": utc_now(),
        "seconds": seconds,
    }


def _merged_overlaps(overlaps: Sequence[dict], sources: Sequence[str]) -> dict:
    """genotype_overlap's figures over all partitions (each variant is in one partition)."""
    merged = {"rule": GENOTYPE_RULE}
    for key in ("variants_in_several_files", "duplicate_variant_rows", "duplicate_genotypes", "conflicting_genotypes"):
        merged[key] = sum(o.get(key, 0) for o in overlaps)
    rank = {s: i for i, s in enumerate(sources)}
    examples = [e for o in overlaps for e in o.get("conflict_examples", [])]
    examples.sort(key=lambda e: (rank[e["kept"]["file"]], rank[e["other"]["file"]], e["variant_id"], e["sample"]))
    merged["conflict_examples"] = examples[:CONFLICT_EXAMPLES]
    return merged


@dataclass
class PreparedTables:
    """One Parquet file per graph table, its row count, the CARRIES properties left out, what VCFs
    share, and per contig the variants, first and last position, last end and longest span."""

    files: dict[str, Path]
    rows: dict[str, int]
    omit: dict[str, set[str]]
    overlap: dict
    chroms: dict[str, dict[str, int]]
    genes: list[str]


def prepare_tables(
    scratch: Path,
    variants: list[Path],
    genotypes: list[Path],
    annotations: list[Path],
    samples: dict[str, list[str]],
    files: Mapping[str, str] | None = None,
    threads: int = 2,
    mem_mb: int = 2048,
) -> PreparedTables:
    """The tables of one database from these shards as Parquet in `scratch`, as Kuzu's COPY takes
    them (DuckDB's part of a partition's load). `samples` maps each VCF name, in config order, to
    its samples; `files` each VCF name to its input path."""
    omit = {CARRIES_REL.name: carries_left_out(genotypes, list(samples))}
    job = _Prepare(scratch, variants, genotypes, annotations, samples, dict(files or {}), threads, mem_mb, omit)
    return job.run_in_child() if job.input_rows() >= CHILD_PROCESS_MIN_ROWS else job.run()


@dataclass
class _Prepare:
    """DuckDB's part: one Parquet file per table, in the column order Kuzu's COPY expects."""

    scratch: Path
    variants: list[Path]
    genotypes: list[Path]
    annotations: list[Path]
    samples: dict[str, list[str]]  # VCF name -> its samples, in config order
    paths: dict[str, str]
    threads: int
    mem_mb: int
    omit: dict[str, set[str]]  # the store's CARRIES properties left out (carries_left_out)

    @property
    def sources(self) -> list[str]:
        return list(self.samples)

    def input_rows(self) -> int:
        return sum(parquet_file(p).metadata.num_rows for p in [*self.variants, *self.genotypes, *self.annotations])

    def run_in_child(self) -> PreparedTables:
        """`run` in a child interpreter, so that DuckDB's memory is returned before Kuzu starts."""
        try:
            return run_in_child(self.run, threads=self.threads)
        except duckdb.Error as error:  # DuckDB names the file it could not read in its first line
            raise VcfAgentError(" ".join(str(error).split("\n")[0].split())) from None

    def run(self) -> PreparedTables:
        con = duckdb_connect(self.scratch, self.threads, max(128, self.mem_mb - PROCESS_OVERHEAD_MB))
        try:
            files = {name: self.scratch / f"{name}.parquet" for name in TABLE_ORDER}
            omit = {CARRIES_REL.name: set(self.omit.get(CARRIES_REL.name, ()))}
            self._small_tables(files)
            if self.variants:
                self._variants(con, files)
                self._annotations(con, files)
            else:
                self._no_variants(files)
            overlap = genotype_overlap(con, self.variants, self.genotypes, self.samples)
            self._carries(con, files[CARRIES_REL.name], omit[CARRIES_REL.name])
            rows = {t: pq.ParquetFile(f).metadata.num_rows for t, f in files.items()}
            return PreparedTables(files, rows, omit, overlap, self._chroms(con, files), self._genes(files))
        finally:
            con.close()

    def _small_tables(self, files: dict[str, Path]) -> None:
        memberships = [(sample, source) for source in self.sources for sample in self.samples[source]]
        ids = list(dict.fromkeys(sample for sample, _ in memberships))
        pq.write_table(pa.table({"id": ids}, schema=_schema(SAMPLE_NODE)), files[SAMPLE_NODE.name])
        pq.write_table(
            pa.table({"id": [m[0] for m in memberships], "name": [m[1] for m in memberships]}, pa.schema(
                [("id", pa.string()), ("name", pa.string())])),
            files[SAMPLE_IN_FILE_REL.name],
        )  # fmt: skip
        paths = [self.paths.get(s) for s in self.sources]
        files_table = pa.table({"name": self.sources, "path": paths}, schema=_schema(FILE_NODE))
        pq.write_table(files_table, files[FILE_NODE.name])

    def _no_variants(self, files: dict[str, Path]) -> None:
        """VCFs without records (valid, and so is their empty graph): empty variant and gene tables."""
        for node in (VARIANT_NODE, GENE_NODE):
            pq.write_table(_schema(node).empty_table(), files[node.name])
        for rel in (IN_GENE_REL, VARIANT_IN_FILE_REL):
            ends = [pa.field("from", pa.string()), pa.field("to", pa.string())]
            pq.write_table(pa.schema(ends + [c.field() for c in rel.columns]).empty_table(), files[rel.name])

    def _read_variants(self) -> str:
        return f"read_parquet({sql_list(self.variants)}, filename = true, file_row_number = true, union_by_name = true)"

    def _variants(self, con, files: dict[str, Path]) -> None:
        """Each variant_id once (from the first VCF holding it), and an edge to every VCF holding it."""
        shadowed = shadowed_rows(con, self.variants)
        keep = ""
        if shadowed:
            con.execute("CREATE OR REPLACE TEMP TABLE shadowed (filename VARCHAR, file_row_number BIGINT)")
            con.executemany(
                "INSERT INTO shadowed VALUES (?, ?)", [(str(f), int(r)) for f, rows in shadowed.items() for r in rows]
            )
            keep = "ANTI JOIN shadowed USING (filename, file_row_number)"
        columns = ", ".join(f'"{c.name}"' for c in VARIANT_NODE.columns if c.name != "af")
        columns += f", {self._af()} AS af"
        _copy_query(con, f"SELECT {columns} FROM {self._read_variants()} {keep}", files[VARIANT_NODE.name])
        _copy_query(con, f"SELECT variant_id, source FROM {self._read_variants()}", files[VARIANT_IN_FILE_REL.name])

    def _af(self) -> str:
        """Variant.af: INFO/AF where every shard holding it has it as a number (NaN as null), else null."""
        types = [parquet_file(p).schema_arrow for p in self.variants]
        held = [t.field(AF_SOURCE_COLUMN).type for t in types if AF_SOURCE_COLUMN in t.names]
        if not held or not all(pa.types.is_floating(t) or pa.types.is_integer(t) for t in held):
            return "NULL::DOUBLE"
        value = f'CAST("{AF_SOURCE_COLUMN}" AS DOUBLE)'
        return f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END"

    def _annotations(self, con, files: dict[str, Path]) -> None:
        notes = f"read_parquet({sql_list(self.annotations)}, union_by_name = true)"
        props = ", ".join(c.name for c in IN_GENE_REL.columns)
        in_gene = f"SELECT variant_id, gene, {props} FROM {notes} WHERE gene IS NOT NULL"
        _copy_query(con, in_gene, files[IN_GENE_REL.name])
        genes = f"SELECT gene FROM {notes} UNION SELECT gene FROM {self._read_variants()}"
        _copy_query(con, f"SELECT DISTINCT gene AS symbol FROM ({genes}) WHERE gene IS NOT NULL", files[GENE_NODE.name])

    def _chroms(self, con, files: dict[str, Path]) -> dict[str, dict[str, int]]:
        """What the index routes queries by: per contig, variants, first and last pos, last end, longest span."""
        rows = con.execute(
            f"""SELECT chrom, count(*), min(pos), max(pos), max("end"), max("end" - pos)
                FROM read_parquet({sql_string(files[VARIANT_NODE.name])}) GROUP BY chrom ORDER BY chrom"""
        ).fetchall()
        keys = ("variants", "first", "last", "end", "span")
        return {chrom: dict(zip(keys, map(int, values), strict=True)) for chrom, *values in rows}

    def _genes(self, files: dict[str, Path]) -> list[str]:
        return pq.read_table(files[GENE_NODE.name], columns=["symbol"]).column("symbol").to_pylist()

    def _carries(self, con, out: Path, left_out: set[str]) -> None:
        expected = [c.name for c in GENOTYPE_COLUMNS]
        for path in self.genotypes:
            names = parquet_file(path).schema_arrow.names
            if names != expected:
                raise fail(path, f"genotype columns {names}, expected {expected}")
        props = ", ".join(c.name for c in CARRIES_REL.columns if c.name not in left_out)
        if not self.genotypes:
            con.execute(f"COPY (SELECT NULL::VARCHAR AS sample LIMIT 0) TO {sql_string(out)} (FORMAT parquet)")
            return
        genotypes = f"read_parquet({sql_list(self.genotypes)})"
        if len(self.sources) > 1:  # each (sample, variant) once: later VCFs' calls are left out (genotype_overlap)
            genotypes += " ANTI JOIN later_genotypes USING (sample, variant_id, source)"
        _copy_query(con, f"SELECT sample, variant_id, {props} FROM {genotypes}", out)


TABLE_ORDER = (
    SAMPLE_NODE.name, VARIANT_NODE.name, GENE_NODE.name, FILE_NODE.name,
    IN_GENE_REL.name, VARIANT_IN_FILE_REL.name, SAMPLE_IN_FILE_REL.name, CARRIES_REL.name,
)  # fmt: skip


def _schema(node) -> pa.Schema:
    return pa.schema([c.field() for c in node.columns])


def _copy_query(con, query: str, out: Path) -> None:
    con.execute(f"COPY ({query}) TO {sql_string(out)} (FORMAT parquet, COMPRESSION zstd)")


def _copy(graph: Graph, table: str, parquet: Path, rows: int) -> None:
    if not rows:
        return
    try:
        graph.execute(f"COPY {table} FROM {sql_string(parquet)}")
    except RuntimeError as error:
        raise VcfAgentError(f"Kuzu: loading {table}: {' '.join(str(error).split())}") from error


def _counts(graph: Graph) -> dict[str, int]:
    counts = {node.name: graph.count(node.name) for node in KUZU_NODE_TABLES}
    counts.update({rel.name: graph.count(rel.name, rel=True) for rel in KUZU_REL_TABLES})
    return counts


def _check(counts: dict[str, int], rows: dict[str, int]) -> None:
    """Every prepared row became a node or an edge."""
    wrong = {t: (counts[t], n) for t, n in rows.items() if counts[t] != n}
    if wrong:
        raise VcfAgentError(
            "Kuzu graph incomplete: " + ", ".join(f"{t} has {got}, expected {want}" for t, (got, want) in wrong.items())
        )


__all__ = [
    "DEFAULT_PARTITION_EDGES",
    "Graph",
    "PreparedTables",
    "StoreGraph",
    "kuzu_property",
    "load_kuzu",
    "load_partition",
    "open_graph",
    "plan_graph",
    "prepare_tables",
    "publish_kuzu",
    "read_partitions",
    "samples_from_headers",
    "shard_extents",
]
