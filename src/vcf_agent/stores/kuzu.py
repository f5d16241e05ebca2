"""The Kuzu graph of samples, variants, genes and files -- the only module that imports Kuzu.

Kuzu 0.11.3 is the last release of Kuzu (the project is archived). Its fork
LadybugDB ships the same Python API as the PyPI package ``ladybug``: moving to it
means changing the one import line below (``import ladybug as graphdb``) and the pin.

Contract (what rules load_kuzu_partition and load_kuzu write, and the query layer reads)
---------------------------------------------------------------------------------------
* The store is built in LAYERS, one per configured VCF, in config order. A layer is its
  VCF's own partitions, planned from that VCF's shards only (`plan_graph`, one plan per
  VCF: ``results/kuzu_partitions/<vcf>.json``); a partition is a range of positions per
  contig covering whole shards (`vcf_agent.stores.build.plan_partitions`), one Kuzu
  database. Within a layer partitions are disjoint; partitions of different layers may
  cover the same positions.
* ``results/kuzu`` is a symlink to the current build: ``partitions.json`` (the index)
  and ``parts/<vcf>/pNNNNN.kuzu``, each with its sample index ``pNNNNN.samples``
  (vcf_agent.stores.sample_index: per sample its counts and carried variants) and its
  variant index ``pNNNNN.variants`` (vcf_agent.stores.variant_index: per variant id its
  carriers with their genotypes, its files, genes and annotations). The
  index: ``{"layout": "layers", "partition_edges",
  "layers": [{"source", "samples", "properties_left_out"}...] (config order),
  "partitions": [{"name", "layer", "file", "counts", "chroms"}...], "vocabulary":
  {"consequences", "filters", "consequence_values", "filter_values"}, "genes": {symbol:
  {"variants": {chrom: n}, "annotated": n}}}`` (layer by layer, each in plan order; the
  vocabulary: the consequence terms and non-PASS FILTER names the store holds, and the values
  they come in; per gene its variants by most severe annotation and its annotated ones);
  ``chroms`` gives per contig its variants, first and last position, last ``end`` and
  longest span, so a query knows which partitions (of any layer) it needs before opening
  any; the vocabulary and the genes spare the listings and search's hints opening them
  all. ``counts`` has the tables' rows and ``canonical``. `open_graph` opens a store
  (`StoreGraph`: all partitions, read-only) or one database file; `Graph.query` takes Cypher with bound parameters only.
* A layer's databases hold (names, properties and types in vcf_agent.schema):
  ``Sample(id)`` and ``File(name, path)`` of that VCF only, with their
  ``SAMPLE_IN_FILE`` (the same in each partition of the layer); ``Variant(variant_id,
  chrom, pos, end, ref, alt, id, qual, filter, variant_class, gene, consequence, impact,
  af, canonical)``: every variant of the VCF's shards in the partition, once;
  ``canonical`` is true iff no earlier VCF holds the variant_id, and a non-canonical
  node carries the earliest holder's properties (a filter answers the same in every
  layer); ``VARIANT_IN_FILE`` from every node to the layer's File; ``IN_GENE`` and
  ``Gene`` for canonical variants only (an annotation counted once over the store);
  ``CARRIES(Sample->Variant: gt, phased, alt_count, ploidy, dp, gq)``, stored on both
  sides, without a source (the layer is the source): the VCF's carrier rows less those
  the genotype rule (stores.build.GENOTYPE_RULE) gives to an earlier VCF, i.e. the
  first VCF that holds both the sample (header) and the variant (records), even when
  it called it hom-ref. ``dp``/``gq`` are left out of a layer none of whose genotypes
  holds one (its ``properties_left_out``). ``af`` is INFO/AF where the VCF declares it
  numeric (decided file by file). ``end`` is a Cypher keyword: write ``v.`end```.
* So: a variant's record is its canonical node; its carriers are the union over the
  layers' partitions covering it, without duplicates by construction; a carrier's
  VCF is its partition's layer; counts add up over layers (`store_counts`).
* ``results/kuzu.json`` (the manifest, written last): counts over the store (Variant:
  canonical nodes; Sample: distinct ids; File: layers; Gene: distinct symbols; edges
  added up), properties left out per layer, VCFs, samples per VCF, genotypes shared
  across files (each layer counts what it shares with earlier ones, so the figures add
  up to stores.build.genotype_overlap's over all VCFs), partitions and their largest,
  build time, seconds.

Why layers: adding a VCF must load only what it adds
----------------------------------------------------
With one plan over all VCFs, a VCF added to the config moved the partition cuts and
changed every partition's inputs, so every partition was loaded again (the whole
graph, for one more file). A layer depends only on its VCF and the earlier ones: a
partition's job reads its own shards, the variant shards of the earlier VCFs that meet
its ranges (for canonical and the earliest holder's properties), their genotype shards
only where the sample sets intersect (the duplicate/conflict figures), and their BCF
headers (samples); never inputs.json, a later VCF's files or a plan covering all VCFs,
each of which an added VCF rewrites (Snakemake reruns a job whose inputs are newer or
whose input set or params changed). So adding a VCF at the end runs its own layer's
jobs and load_kuzu (which only hard-links); removing one reruns the later layers'
partitions that met it. The earlier shards are read within the partition's ranges
(DuckDB prunes row groups by pos) and joined to the layer's own variant_ids and
samples, so what a job holds follows its partition, under DuckDB's memory_limit. The
price: a variant held by k VCFs has k nodes (one canonical), and a query asks one
partition per layer covering a position instead of one.

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
partitions it is routed to (~30 MiB each with a 512 MiB pool; `vcf_agent.query.graph`
keeps a bounded number open). Routed queries were as fast on (c) as on one table: a variant's
carriers 1.4 ms (3.9 ms in one table), a sample's first 100 walked partition by
partition 4.9 ms (112 ms in one table), the routed region join 0.85 s at ~600 MiB
(9.8 s, 3 GiB in one table). What (c) pays: Sample, File and SAMPLE_IN_FILE in every
partition of a layer (2,504 samples: < 1 MiB each), ~5 % more disk, and counts that need
every partition (a sample's zygosity counts, the variants samples share): those are read from
the partitions' sample indexes (vcf_agent.stores.sample_index) instead of each database, and
a variant's page and search's hits (which lie in any partition) take their carriers, genotypes,
genes and annotations from the partitions' variant indexes (vcf_agent.stores.variant_index).

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
Parquet file per table from the partition's shards and the earlier VCFs' overlapping
rows, in the column order Kuzu expects. Kuzu bulk-loads each with one ``COPY ... FROM`` into a database written
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
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vcf_agent.errors import VcfAgentError, fail
from vcf_agent.files import write_json
from vcf_agent.ingest.header import read_header
from vcf_agent.ingest.parquet import duckdb_connect
from vcf_agent.logs import log
from vcf_agent.resources import PROCESS_OVERHEAD_MB
from vcf_agent.runtime import run_in_child
from vcf_agent.schema import (
    ANNOTATION_FIELDS,
    CARRIES_REL,
    FILE_NODE,
    GENE_NODE,
    GENOTYPE_COLUMNS,
    IN_GENE_REL,
    KUZU_NODE_TABLES,
    KUZU_REL_TABLES,
    SAMPLE_IN_FILE_REL,
    SAMPLE_NODE,
    VARIANT_AF,
    VARIANT_IN_FILE_REL,
    VARIANT_NODE,
    Column,
    is_number,
    kuzu_ddl,
    kuzu_property,
)
from vcf_agent.stores.build import (
    CONFLICT_EXAMPLES,
    GENOTYPE_RULE,
    ShardExtent,
    StoreBuild,
    merged_overlaps,
    paired_shards,
    parquet_file,
    plan_partitions,
    present_columns,
    shards_digest,
    source_of,
    sources_in_order,
    sql_list,
    sql_string,
    utc_now,
)
from vcf_agent.stores.sample_index import COUNT_FIELDS, index_path, write_index
from vcf_agent.stores.variant_index import (
    CARRIER_INTS,
    NULL_INT,
    CarrierLists,
    GenotypeKinds,
    variant_index_path,
    write_variant_index,
)

#: The index of a store's partitions, and the folder of their databases (inside the build).
PARTITIONS_FILE = "partitions.json"
PARTS_DIR = "parts"
#: Genotypes (CARRIES edges) per partition unless the config says otherwise (kuzu.partition_edges):
#: a load job peaks at ~105 MiB + 130 B per edge, ~600 MiB at 4,000,000.
DEFAULT_PARTITION_EDGES = 4_000_000
#: The layout of the store (partitions.json "layout"): one layer of partitions per VCF.
LAYOUT = "layers"
#: Tables every partition of a layer holds whole (the layer's samples and file): ask one partition per layer.
LAYER_TABLES = frozenset({SAMPLE_NODE.name, FILE_NODE.name, SAMPLE_IN_FILE_REL.name})
#: The count of a partition's canonical Variant nodes (its variants counted in the store), beside the tables'.
CANONICAL = "canonical"
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
    """The index of a store folder (results/kuzu or a build folder): its layers and partitions in order."""
    path = Path(store) / PARTITIONS_FILE
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise fail(store, "no graph here (run the workflow's load_kuzu rule first)") from None
    except (OSError, ValueError) as error:
        raise fail(path, f"unreadable partition index ({error})") from error
    if index.get("layout") != LAYOUT:
        raise fail(path, "a graph of an earlier version, without layers: run the workflow again to rebuild it")
    if not index.get("partitions"):
        raise fail(path, "the partition index lists no partition")
    return index


class StoreGraph:
    """Every partition of a store, opened read-only (for tests, scripts and checks).

    `query` runs on each partition and returns their rows one after the other (layer by layer,
    in partition order: aggregate them yourself; `query_by_partition` keeps them apart, with
    each partition's index entry). `count` gives store-level counts: Variant its canonical
    nodes, Sample and Gene distinct names, the layer tables (LAYER_TABLES) once per layer,
    every other table added up. The query layer routes instead (vcf_agent.query.graph).
    """

    def __init__(self, store: Path, *, buffer_pool_mb: int | None, threads: int | None) -> None:
        self.path = store
        self.index = read_partitions(store)
        self.partitions: list[dict] = self.index["partitions"]
        self.parts: list[Graph] = []
        try:
            for part in self.partitions:
                file = store / part["file"]
                self.parts.append(Graph(file, read_only=True, buffer_pool_mb=buffer_pool_mb, threads=threads))
        except RuntimeError as error:
            self.close()
            raise fail(store, f"cannot open the graph: {error}") from error

    def query(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        return [row for part in self.parts for row in part.query(cypher, params)]

    def query_by_partition(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[tuple[dict, list[dict]]]:
        """(index entry, rows) of each partition: its layer is entry["layer"]."""
        return [(entry, part.query(cypher, params)) for entry, part in zip(self.partitions, self.parts, strict=True)]

    def _first_of_each_layer(self) -> list[Graph]:
        first: dict[str, Graph] = {}
        for entry, part in zip(self.partitions, self.parts, strict=True):
            first.setdefault(entry["layer"], part)
        return list(first.values())

    def properties(self, table: str) -> list[str]:
        """The table's properties in any layer (CARRIES lacks dp or gq in some), in schema order."""
        found = [part.properties(table) for part in self._first_of_each_layer()]
        return list(dict.fromkeys(name for names in found for name in names))

    def count(self, table: str, *, rel: bool = False) -> int:
        if table == VARIANT_NODE.name:  # a variant of several layers is canonical in one
            return sum(p.query("MATCH (v:Variant) WHERE v.canonical RETURN count(v) AS n")[0]["n"] for p in self.parts)
        if table == SAMPLE_NODE.name:  # a sample of several layers
            rows = [r for part in self._first_of_each_layer() for r in part.query("MATCH (n:Sample) RETURN n.id AS k")]
            return len({row["k"] for row in rows})
        if table == GENE_NODE.name:  # a gene named in several partitions
            return len({row["k"] for row in self.query("MATCH (n:Gene) RETURN n.symbol AS k")})
        if table in LAYER_TABLES:
            return sum(part.count(table, rel=rel) for part in self._first_of_each_layer())
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


# ---------------------------------------------------------------- planning


def carries_left_out(genotypes: Sequence[Path | str]) -> set[str]:
    """CARRIES properties a layer leaves out: dp/gq that none of its genotypes holds (read from the
    shards' Parquet statistics; see schema.CARRIES_REL)."""
    return {"dp", "gq"} - present_columns(genotypes, ["dp", "gq"])


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
    """The plan of one layer, from its VCF's shards only (`samples`: that VCF's name -> its samples):
    its partitions (each a list of shards and the ranges they cover) and the CARRIES properties it
    leaves out. A layer without variants has one empty partition, which holds its samples and file."""
    if len(samples) != 1:
        raise fail("samples", f"a layer is one VCF, not {len(samples)} ({', '.join(samples)})")
    ((source, names),) = samples.items()
    foreign = sorted({e.source for e in extents} - {source})
    if foreign:
        raise fail(source, f"the plan of its layer was given shards of {', '.join(foreign)}")
    partitions = plan_partitions(extents, partition_edges) or [
        {"name": "p00001", "ranges": [], "shards": [], "variants": 0, "genotypes": 0}
    ]
    order = {label: i for i, label in enumerate(dict.fromkeys(e.label for e in extents))}
    for partition in partitions:  # shard order
        partition["shards"] = sorted(dict.fromkeys(partition["shards"]), key=order.__getitem__)
    return {
        "layout": LAYOUT,
        "partition_edges": partition_edges,
        "source": source,
        "samples": list(names),
        "properties_left_out": {CARRIES_REL.name: sorted(carries_left_out(genotypes))},
        "partitions": partitions,
    }


def overlaps(chrom: str, start: int, end: int, ranges: Sequence[Sequence]) -> bool:
    """Whether positions start..end of `chrom` meet one of a partition's ranges ([chrom, first, last])."""
    return any(r[0] == chrom and start <= r[2] and end >= r[1] for r in ranges)


def earlier_overlapping(extents: Sequence[ShardExtent], layer: str, ranges: Sequence[Sequence]) -> list[str]:
    """Labels of the shards of the VCFs before `layer` (the order of `extents`: config order) that
    meet the partition's ranges: the only earlier shards its load reads (within the ranges)."""
    sources = list(dict.fromkeys(e.source for e in extents))
    earlier = set(sources[: sources.index(layer)]) if layer in sources else set(sources)
    found = [e.label for e in extents if e.source in earlier and overlaps(e.chrom, e.start, e.end, ranges)]
    return list(dict.fromkeys(found))


# ---------------------------------------------------------------- loading


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
    """Build the layered Kuzu graph from the shards in one call (layer after layer, partition after
    partition; the workflow runs each partition as its own job instead); return the manifest (also
    written to `manifest`). `samples` maps each VCF, in config order, to its samples; `files` each
    VCF to its input path (the File node's)."""
    started = time.perf_counter()
    variants = [Path(p) for p in variants]
    genotypes = [s.other for s in paired_shards(variants, genotypes, "genotypes")]
    annotations = [s.other for s in paired_shards(variants, annotations, "annotations")]
    samples = _samples_in_order(variants, samples)
    extents = shard_extents(variants, genotypes)
    by_label = {f"{source_of(v)}/{v.stem}": (v, g, a) for v, g, a in zip(variants, genotypes, annotations, strict=True)}
    layers = []
    with StoreBuild(out) as build, build.scratch() as scratch:
        for source in samples:
            own = [g for v, g, _ in by_label.values() if source_of(v) == source]
            plan = plan_graph(
                [e for e in extents if e.source == source], own, {source: samples[source]}, partition_edges
            )
            loaded = []
            for partition in plan["partitions"]:
                shards = [by_label[label] for label in partition["shards"]]
                earlier = [by_label[label] for label in earlier_overlapping(extents, source, partition["ranges"])]
                sharing = {s for s in samples if set(samples[s]) & set(samples[source])}
                loaded.append(
                    load_partition(
                        partition["name"], [v for v, _, _ in shards], [g for _, g, _ in shards],
                        [a for _, _, a in shards], build.path / part_file(source, partition["name"]),
                        Path(scratch) / f"{source}-{partition['name']}.json", samples=samples, plan=plan,
                        earlier_variants=[v for v, _, _ in earlier],
                        earlier_genotypes=[g for v, g, _ in earlier if source_of(v) in sharing],
                        files=files, threads=threads, mem_mb=mem_mb,
                    )
                )  # fmt: skip
            layers.append((plan, loaded))
        result = _assemble(build, layers, variants, out)
        build.commit()
    result["seconds"]["total"] = round(time.perf_counter() - started, 3)
    write_json(result, manifest)
    log.info(
        "Kuzu %s: %s in %d partitions, %.1f s",
        out,
        result["counts"],
        result["partitions"],
        time.perf_counter() - started,
    )
    return result


def part_file(layer: str, name: str) -> str:
    """Where a partition's database lies inside a build."""
    return f"{PARTS_DIR}/{layer}/{name}.kuzu"


def _samples_in_order(variants: Sequence[Path], samples: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """VCF name -> samples, in config order (VCFs without records have no shards, but their
    samples and File node belong in the graph too)."""
    sources = list(dict.fromkeys([*samples, *sources_in_order(variants)]))
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
    earlier_variants: Sequence[Path | str] = (),
    earlier_genotypes: Sequence[Path | str] = (),
    files: Mapping[str, str] | None = None,
    threads: int = 2,
    mem_mb: int = 2048,
) -> dict:
    """Load one partition of the layer of `plan` (its shards, and the earlier VCFs' shards that meet
    its ranges, read within them) into the database `graph`; return its record (also written to
    `manifest`): counts, genes and, per contig, what the index routes queries by.

    `samples` maps VCF names, in config order, to their samples: the layer's and those of the
    earlier VCFs whose shards are given (other names are ignored). The database is written beside
    `graph` and renamed into place once its counts are checked.
    """
    started = time.perf_counter()
    graph, variants = Path(graph), [Path(p) for p in variants]
    genotypes = [s.other for s in paired_shards(variants, genotypes, "genotypes")]
    annotations = [s.other for s in paired_shards(variants, annotations, "annotations")]
    layer = plan["source"]
    partition = _planned(plan, name)
    job = _Prepare(
        scratch=graph.with_name(f".{graph.name}-{os.getpid()}"),
        layer=layer,
        variants=variants,
        genotypes=genotypes,
        annotations=annotations,
        earlier_variants=[Path(p) for p in earlier_variants],
        earlier_genotypes=[Path(p) for p in earlier_genotypes],
        samples=_earlier_and_layer(samples, layer, [*earlier_variants, *earlier_genotypes]),
        ranges=[list(r) for r in partition["ranges"]],
        path=dict(files or {}).get(layer),
        threads=threads,
        mem_mb=mem_mb,
        omit={t: set(v) for t, v in plan["properties_left_out"].items()},
    )
    pool_mb = buffer_pool_mb_for(mem_mb)
    seconds: dict[str, float] = {}
    graph.parent.mkdir(parents=True, exist_ok=True)
    work = job.scratch
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        prepared = job.run_in_child() if job.input_rows() >= CHILD_PROCESS_MIN_ROWS else job.run()
        seconds["prepare"] = round(time.perf_counter() - started, 3)
        with Graph(work / "graph.kuzu", read_only=False, buffer_pool_mb=pool_mb, threads=threads) as db:
            for statement in kuzu_ddl(prepared.omit):
                db.execute(statement)
            for table, parquet in prepared.files.items():
                _copy(db, table, parquet, prepared.rows[table])
                seconds[table] = round(time.perf_counter() - started - sum(seconds.values()), 3)
            counts = _counts(db)
            counts[CANONICAL] = db.query("MATCH (v:Variant) WHERE v.canonical RETURN count(v) AS n")[0]["n"]
            _check(counts, prepared.rows)
            _check_sample_order(db, job.samples[layer], graph)
            held = _held_terms(db)
            held["gene_counts"] = _gene_counts(db)
            sample_counts = _sample_counts(db, counts[SAMPLE_NODE.name])
            _write_indexes(db, work, graph, counts, sample_counts, prepared.omit.get(CARRIES_REL.name, set()))
        seconds["indexes"] = round(time.perf_counter() - started - sum(seconds.values()), 3)
        os.replace(work / "graph.samples", index_path(graph))
        os.replace(work / "graph.variants", variant_index_path(graph))
        os.replace(work / "graph.kuzu", graph)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds["total"] = round(time.perf_counter() - started, 3)
    record = {
        "name": name,
        "layer": layer,
        "counts": counts,
        "chroms": prepared.chroms,
        "genes": prepared.genes,
        **held,
        "across_files": prepared.overlap,
        "shards": [f"{source_of(p)}/{p.stem}" for p in variants],
        "earlier_shards": [f"{source_of(p)}/{Path(p).stem}" for p in earlier_variants],
        "buffer_pool_mb": pool_mb,
        "threads": threads,
        "seconds": seconds,
    }
    write_json(record, manifest)
    log.info("Kuzu partition %s/%s: %s in %.1f s", layer, name, counts, seconds["total"])
    return record


#: Samples per query of the sample index's genotype pairs (~1,500 carriers a sample in a
#: 4,000,000-edge partition of 2,504 samples: ~0.4 M pairs, ~6 MiB, per query).
SAMPLE_INDEX_CHUNK = 256
_SAMPLE_GROUPS = (
    "MATCH (s:Sample)-[c:CARRIES]->(v:Variant) RETURN offset(id(s)) AS sample,"
    " c.gt CONTAINS '.' AS missing, c.alt_count AS alt_count, c.ploidy AS ploidy, c.phased AS phased, count(*) AS n"
)
_SAMPLE_PAIRS = (
    "MATCH (s:Sample)-[c:CARRIES]->(v:Variant) WHERE offset(id(s)) >= $first AND offset(id(s)) < $stop"
    " RETURN offset(id(s)) AS sample, offset(id(v)) AS variant"
)


def _held_terms(db: Graph) -> dict[str, list[str]]:
    """The consequence terms and FILTER names (other than PASS) the partition's variants hold, and
    the values they come in (terms joined by '&', names by ';'): search's filter hints ask the
    store's (vcf_agent.query.hints) without opening every partition, and LanceDB filters turn a
    term into `IN (the values holding it)`, which its BITMAP index answers (query.vectors)."""
    rows = db.query("MATCH (v:Variant) WHERE v.consequence IS NOT NULL RETURN DISTINCT v.consequence AS c")
    consequence_values = sorted(row["c"] for row in rows)
    rows = db.query("MATCH (v:Variant) WHERE v.filter IS NOT NULL RETURN DISTINCT v.filter AS f")
    filter_values = sorted(row["f"] for row in rows)
    return {
        "consequences": sorted({term for value in consequence_values for term in value.split("&")}),
        "filters": sorted({name for value in filter_values for name in value.split(";")} - {"PASS", "."}),
        "consequence_values": consequence_values,
        "filter_values": filter_values,
    }


#: A gene's variants: those whose most severe annotation is in it (the `gene` filter's), and
#: those with any annotation in it, per contig (vcf_agent.query.listing.list_genes).
MOST_SEVERE_CYPHER = (
    "MATCH (v:Variant) WHERE v.canonical AND v.gene IS NOT NULL RETURN v.gene AS gene, v.chrom AS chrom, count(*) AS n"
)
ANNOTATED_CYPHER = "MATCH (v:Variant)-[:IN_GENE]->(g:Gene) RETURN g.symbol AS gene, count(DISTINCT v.variant_id) AS n"


def _gene_counts(db: Graph) -> dict[str, dict]:
    """Per gene of the partition: its variants by contig (most severe annotation) and annotated ones."""
    counts: dict[str, dict] = {}
    for row in db.query(MOST_SEVERE_CYPHER):
        entry = counts.setdefault(row["gene"], {"variants": {}, "annotated": 0})
        entry["variants"][row["chrom"]] = row["n"]
    for row in db.query(ANNOTATED_CYPHER):
        counts.setdefault(row["gene"], {"variants": {}, "annotated": 0})["annotated"] = row["n"]
    return counts


def merged_gene_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, dict]:
    """The partitions' gene counts added up (a variant is canonical, and annotated, in one layer)."""
    merged: dict[str, dict] = {}
    for record in records:
        for gene, entry in record["gene_counts"].items():
            into = merged.setdefault(gene, {"variants": {}, "annotated": 0})
            into["annotated"] += entry["annotated"]
            for chrom, n in entry["variants"].items():
                into["variants"][chrom] = into["variants"].get(chrom, 0) + n
    return merged


#: What each partition's record lists of its values, merged into the store index's vocabulary.
VOCABULARY_KEYS = ("consequences", "filters", "consequence_values", "filter_values")


def _check_sample_order(db: Graph, samples: Sequence[str], graph: Path) -> None:
    """The sample index (and the query layer) address a sample by its node's offset: the layer's order."""
    rows = db.query_arrow("MATCH (s:Sample) RETURN offset(id(s)) AS o, s.id AS id ORDER BY o")
    if rows.column("id").to_pylist() != list(samples):
        raise fail(graph, "the Sample nodes are not the layer's samples in order")


def _sample_counts(db: Graph, samples: int) -> np.ndarray:
    """Per Sample node offset, the Counts (sample_index.COUNT_FIELDS) of its genotypes."""
    from vcf_agent.query.results import counted

    groups: dict[int, list[dict]] = {}
    for row in db.query(_SAMPLE_GROUPS):
        groups.setdefault(row["sample"], []).append(row)
    counts = np.zeros((samples, len(COUNT_FIELDS)), np.int64)
    for sample, rows in groups.items():
        tally = counted(rows)
        counts[sample] = [getattr(tally, name) for name in COUNT_FIELDS]
    return counts


def _write_indexes(db: Graph, work: Path, graph: Path, counts: dict, sample_counts: np.ndarray, omit) -> None:
    """The partition's sample index and variant index, from one pass over its genotypes."""
    ints = tuple(name for name in CARRIER_INTS if name not in omit)
    kinds = GenotypeKinds()
    columns = {"kind": np.uint16, **dict.fromkeys(ints, np.int32)}
    carriers = CarrierLists(_carriers_per_variant(db, counts[VARIANT_NODE.name]), columns)
    pairs = carriers.tee(_genotype_pairs(db, counts[SAMPLE_NODE.name], kinds, ints))
    write_index(work / "graph.samples", sample_counts, pairs)
    write_variant_index(
        work / "graph.variants",
        _variant_ids(db, graph),
        carriers,
        _variant_pairs(db, _VARIANT_GENES),
        kinds=kinds.kinds,
        files=_variant_pairs(db, _VARIANT_FILES),
        annotations=_variant_annotations(db),
    )


def _genotype_pairs(db: Graph, samples: int, kinds: GenotypeKinds, ints: Sequence[str]):
    """(Sample offsets, Variant offsets, {kind, and `ints` (dp, gq)}) of every CARRIES edge,
    SAMPLE_INDEX_CHUNK samples at a time."""
    cypher = _SAMPLE_PAIRS + "".join(f", c.{name} AS {name}" for name in ("gt", "phased", "alt_count", "ploidy", *ints))
    for first in range(0, samples, SAMPLE_INDEX_CHUNK):
        pairs = db.query_arrow(cypher, {"first": first, "stop": first + SAMPLE_INDEX_CHUNK})
        values = {"kind": kinds.codes(*(pairs.column(name) for name in ("gt", "phased", "alt_count", "ploidy")))}
        for name in ints:
            values[name] = pc.fill_null(pairs.column(name), NULL_INT).cast(pa.int32()).to_numpy()
        sample_at, variant_at = (pairs.column(name).to_numpy().astype(np.int64) for name in ("sample", "variant"))
        yield sample_at, variant_at, values


_VARIANT_IDS = "MATCH (v:Variant) RETURN offset(id(v)) AS o, v.variant_id AS id ORDER BY o"
_CARRIERS_PER_VARIANT = "MATCH (:Sample)-[:CARRIES]->(v:Variant) RETURN offset(id(v)) AS o, count(*) AS n"
_VARIANT_GENES = "MATCH (v:Variant)-[:IN_GENE]->(g:Gene) RETURN DISTINCT offset(id(v)) AS o, g.symbol AS name"
_VARIANT_FILES = "MATCH (v:Variant)-[:VARIANT_IN_FILE]->(f:File) RETURN offset(id(v)) AS o, f.name AS name"
_VARIANT_ANNOTATIONS = (
    f"MATCH (v:Variant)-[a:IN_GENE]->(g:Gene) RETURN offset(id(v)) AS o, {ANNOTATION_FIELDS}"
    " ORDER BY o, gene, feature_id"
)


def _variant_ids(db: Graph, graph: Path) -> list[str]:
    """Every Variant node's id, by node offset (the variant index addresses a node by its offset)."""
    rows = db.query_arrow(_VARIANT_IDS)
    if not np.array_equal(rows.column("o").to_numpy(), np.arange(rows.num_rows)):
        raise fail(graph, "the Variant node offsets are not 0..n-1")
    return rows.column("id").to_pylist()


def _carriers_per_variant(db: Graph, variants: int) -> np.ndarray:
    """Per Variant node offset, its carrier genotypes (CARRIES edges)."""
    rows = db.query_arrow(_CARRIERS_PER_VARIANT)
    per_variant = np.zeros(variants, np.int64)
    per_variant[rows.column("o").to_numpy()] = rows.column("n").to_numpy()
    return per_variant


def _variant_pairs(db: Graph, cypher: str) -> list[tuple[int, str]]:
    """(Variant node offset, name) of each row of `cypher` (its genes, its files)."""
    rows = db.query_arrow(cypher)
    return list(zip(rows.column("o").to_pylist(), rows.column("name").to_pylist(), strict=True))


def _variant_annotations(db: Graph) -> dict[int, list[dict]]:
    """Variant node offset -> its annotations (gene, consequence, ...), ordered as `variant` shows them."""
    annotations: dict[int, list[dict]] = {}
    for row in db.query_arrow(_VARIANT_ANNOTATIONS).to_pylist():
        annotations.setdefault(row.pop("o"), []).append(row)
    return annotations


def _planned(plan: Mapping[str, Any], name: str) -> dict:
    for partition in plan["partitions"]:
        if partition["name"] == name:
            return partition
    raise fail(name, f"not a partition of the plan of {plan['source']}")


def _earlier_and_layer(samples: Mapping[str, Sequence[str]], layer: str, earlier_files) -> dict[str, list[str]]:
    """The samples of the VCFs before `layer` (config order) and of the layer, the layer last."""
    names = list(samples)
    if layer not in names:
        raise fail("samples", f"no sample list for {layer}")
    before = names[: names.index(layer)]
    wrong = sorted({source_of(p) for p in earlier_files} - set(before))
    if wrong:
        raise fail(layer, f"shards of {', '.join(wrong)} given as earlier, but no sample list precedes {layer}'s")
    return {s: list(samples[s]) for s in [*before, layer]}


def publish_kuzu(
    graphs: Sequence[Path | str],
    records: Sequence[Path | str],
    plans: Sequence[Path | str],
    variants: Sequence[Path | str],
    out: Path | str = "results/kuzu",
    manifest: Path | str = "results/kuzu.json",
) -> dict:
    """Rule load_kuzu: every layer's partitions (rule load_kuzu_partition), hard-linked into a fresh
    build (their files stay the jobs' outputs), indexed and swapped in; return the manifest. `plans`
    are the layers' plans in config order; `graphs` and `records` their partitions, layer by layer."""
    started = time.perf_counter()
    loaded = [json.loads(Path(r).read_text()) for r in records]
    if len(graphs) != len(loaded):
        raise fail(out, f"{len(graphs)} partition databases for {len(loaded)} partition records")
    by_part = {(r["layer"], r["name"]): (r, Path(g)) for r, g in zip(loaded, graphs, strict=True)}
    layers = []
    with StoreBuild(out) as build:
        for plan_file in plans:
            plan = json.loads(Path(plan_file).read_text())
            names = [(plan["source"], p["name"]) for p in plan["partitions"]]
            missing = [f"{s}/{n}" for s, n in names if (s, n) not in by_part]
            if missing:
                raise fail(plan_file, f"partitions of the plan not loaded: {', '.join(missing)}")
            for source, name in names:
                target = build.path / part_file(source, name)
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(by_part[(source, name)][1], target)
                _link_or_copy(index_path(by_part[(source, name)][1]), index_path(target))
                _link_or_copy(variant_index_path(by_part[(source, name)][1]), variant_index_path(target))
            layers.append((plan, [by_part[key][0] for key in names]))
        result = _assemble(build, layers, [Path(p) for p in variants], out)
        build.commit()
    result["seconds"]["publish"] = round(time.perf_counter() - started, 3)
    write_json(result, manifest)
    log.info("Kuzu %s: %s in %d partitions", out, result["counts"], result["partitions"])
    return result


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (a job rewriting its output makes a new file, so the build keeps this one), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _assemble(build: StoreBuild, layers: Sequence[tuple[dict, list[dict]]], variants, out) -> dict:
    """Write the index of the layers and their partitions into the build; return the store's manifest."""
    loaded = [record for _, records in layers for record in records]
    index = {
        "layout": LAYOUT,
        "partition_edges": layers[0][0]["partition_edges"],
        "layers": [
            {"source": p["source"], "samples": p["samples"], "properties_left_out": p["properties_left_out"]}
            for p, _ in layers
        ],
        "partitions": [
            {"name": r["name"], "layer": r["layer"], "file": part_file(r["layer"], r["name"]),
             "counts": r["counts"], "chroms": r["chroms"]}
            for r in loaded
        ],
    }  # fmt: skip
    if all(key in r for r in loaded for key in VOCABULARY_KEYS):
        index["vocabulary"] = {key: sorted({term for r in loaded for term in r[key]}) for key in VOCABULARY_KEYS}
    if all("gene_counts" in r for r in loaded):
        index["genes"] = merged_gene_counts(loaded)
    write_json(index, build.path / PARTITIONS_FILE)
    seconds: dict[str, float] = {}
    for record in loaded:
        for key, value in record["seconds"].items():
            seconds[key] = round(seconds.get(key, 0) + value, 3)
    sources = [p["source"] for p, _ in layers]
    return {
        "store": "kuzu",
        "layout": LAYOUT,
        "path": str(out),
        "index": f"{out}/{PARTITIONS_FILE}",
        "build": build.path.name,
        "engine": ENGINE,
        "counts": store_counts(index, {gene for r in loaded for gene in r["genes"]}),
        "properties_left_out": {p["source"]: p["properties_left_out"] for p, _ in layers},
        "sources": sources,
        "samples": {p["source"]: len(p["samples"]) for p, _ in layers},
        "across_files": merged_overlaps([r["across_files"] for r in loaded], sources),
        "partitions": len(loaded),
        "partitions_per_layer": {p["source"]: len(records) for p, records in layers},
        "partition_edges": index["partition_edges"],
        "largest_partition": max(r["counts"][CARRIES_REL.name] for r in loaded),
        "files": [str(p) for p in variants],
        "variants_digest": shards_digest(variants),
        "buffer_pool_mb": max(r["buffer_pool_mb"] for r in loaded),
        "threads": max(r["threads"] for r in loaded),
        "built_at": utc_now(),
        "seconds": seconds,
    }


def store_counts(index: Mapping[str, Any], genes: set[str]) -> dict[str, int]:
    """Counts over the store from its index: each variant once (its canonical node), samples
    distinct over the layers, a layer's own tables (Sample, File, SAMPLE_IN_FILE) once per layer,
    every edge of every partition (each is in one layer only), `genes` distinct."""
    parts = index["partitions"]
    first = {}
    for part in parts:
        first.setdefault(part["layer"], part)
    counts = {table: sum(p["counts"][table] for p in parts) for table in parts[0]["counts"]}
    for table in LAYER_TABLES:
        counts[table] = sum(p["counts"][table] for p in first.values())
    counts[SAMPLE_NODE.name] = len({s for layer in index["layers"] for s in layer["samples"]})
    counts[VARIANT_NODE.name] = counts.pop(CANONICAL)
    counts[GENE_NODE.name] = len(genes)
    return counts


@dataclass
class PreparedTables:
    """One Parquet file per graph table, its row count, the CARRIES properties left out, what the
    layer shares with earlier ones, and per contig the variants, first and last position, last end
    and longest span."""

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
    """The tables of one layer's database from its shards alone (no earlier VCF), as Parquet in
    `scratch`, as Kuzu's COPY takes them. `samples`: the layer's VCF name -> its samples."""
    if len(samples) != 1:
        raise fail("samples", f"a layer is one VCF, not {len(samples)} ({', '.join(samples)})")
    ((layer, names),) = samples.items()
    job = _Prepare(
        Path(scratch), layer, [Path(p) for p in variants], [Path(p) for p in genotypes],
        [Path(p) for p in annotations], [], [], {layer: list(names)}, [], dict(files or {}).get(layer),
        threads, mem_mb, {CARRIES_REL.name: carries_left_out(genotypes)},
    )  # fmt: skip
    return job.run_in_child() if job.input_rows() >= CHILD_PROCESS_MIN_ROWS else job.run()


@dataclass
class _Prepare:
    """DuckDB's part of a partition's load: one Parquet file per table, in the column order Kuzu's
    COPY expects. The earlier VCFs' shards are read only within the partition's ranges and only for
    the layer's own variant_ids and samples, so what is held follows the partition."""

    scratch: Path
    layer: str
    variants: list[Path]
    genotypes: list[Path]
    annotations: list[Path]
    earlier_variants: list[Path]
    earlier_genotypes: list[Path]
    samples: dict[str, list[str]]  # the earlier VCFs (config order), then the layer
    ranges: list[list]
    path: str | None
    threads: int
    mem_mb: int
    omit: dict[str, set[str]]  # the layer's CARRIES properties left out (carries_left_out)

    def input_rows(self) -> int:
        """Rows DuckDB scans (the earlier shards too: a small layer may meet a large earlier VCF)."""
        read = [*self.variants, *self.genotypes, *self.annotations, *self.earlier_variants, *self.earlier_genotypes]
        return sum(parquet_file(p).metadata.num_rows for p in read)

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
            self._check_genotype_columns()
            self._small_tables(files)
            self._ranks(con)
            if self.variants:
                self._holders(con)
                self._variants(con, files)
                self._annotations(con, files)
            else:
                self._no_variants(files)
            overlap = self._overlap(con)
            self._carries(con, files[CARRIES_REL.name])
            rows = {t: pq.ParquetFile(f).metadata.num_rows for t, f in files.items()}
            rows[CANONICAL] = self._canonical(files[VARIANT_NODE.name])
            return PreparedTables(files, rows, self.omit, overlap, self._chroms(con, files), self._genes(files))
        finally:
            con.close()

    def _check_genotype_columns(self) -> None:
        expected = [c.name for c in GENOTYPE_COLUMNS]
        for path in [*self.genotypes, *self.earlier_genotypes]:
            names = parquet_file(path).schema_arrow.names
            if names != expected:
                raise fail(path, f"genotype columns {names}, expected {expected}")

    def _small_tables(self, files: dict[str, Path]) -> None:
        """The layer's samples, its File node and their SAMPLE_IN_FILE edges."""
        ids = list(dict.fromkeys(self.samples[self.layer]))
        pq.write_table(pa.table({"id": ids}, schema=_schema(SAMPLE_NODE)), files[SAMPLE_NODE.name])
        pq.write_table(
            pa.table({"id": ids, "name": [self.layer] * len(ids)}, pa.schema(
                [("id", pa.string()), ("name", pa.string())])),
            files[SAMPLE_IN_FILE_REL.name],
        )  # fmt: skip
        files_table = pa.table({"name": [self.layer], "path": [self.path]}, schema=_schema(FILE_NODE))
        pq.write_table(files_table, files[FILE_NODE.name])

    def _ranks(self, con) -> None:
        """Tables `file_rank (source, rank)`: the VCFs in config order, the layer last; `file_sample
        (rank, sample)`: their samples; `layer_sample (sample)`: the layer's."""
        sources = list(self.samples)
        members = [(rank, sample) for rank, source in enumerate(sources) for sample in self.samples[source]]
        con.register("file_rank_rows", pa.table({"source": sources, "rank": list(range(len(sources)))}))
        con.register("file_sample_rows", pa.table({"rank": [m[0] for m in members], "sample": [m[1] for m in members]}))
        con.execute("CREATE OR REPLACE TEMP TABLE file_rank AS SELECT * FROM file_rank_rows")
        con.execute("CREATE OR REPLACE TEMP TABLE file_sample AS SELECT DISTINCT * FROM file_sample_rows")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE layer_sample AS"
            f" SELECT sample FROM file_sample WHERE rank = {len(sources) - 1}"
        )

    def _node_rows(self, paths: Sequence[Path], where: str = "") -> str:
        """SELECT of the Variant node columns (af last) and source of the rows of `paths`: INFO/AF as af
        where a file holds it as a number (NaN as null), else null, decided file by file (a VCF's
        shards share their header's types), so a variant's af is the same in every layer."""
        names = ", ".join(f'"{c.name}"' for c in VARIANT_NODE.columns if c.name not in ("af", CANONICAL))
        numeric, other = [], []
        for path in paths:
            schema = parquet_file(path).schema_arrow
            held = schema.field(AF_SOURCE_COLUMN).type if AF_SOURCE_COLUMN in schema.names else None
            (numeric if held and is_number(held) else other).append(path)
        value = f'CAST("{AF_SOURCE_COLUMN}" AS DOUBLE)'
        selects = []
        for group, af in ((numeric, f"CASE WHEN isnan({value}) THEN NULL ELSE {value} END"), (other, "NULL::DOUBLE")):
            if group:
                source = f"read_parquet({sql_list(group)}, union_by_name = true)"
                selects.append(f"SELECT {names}, {af} AS af, source FROM {source} {where}")
        return " UNION ALL ".join(selects) if selects else _no_rows([*VARIANT_NODE.columns[:-2], VARIANT_AF, SOURCE])

    def _range_filter(self) -> str:
        """The WHERE clause keeping the rows in the partition's ranges (DuckDB prunes row groups by it)."""
        if not self.ranges:
            return "WHERE false"
        terms = [f"(chrom = {sql_string(c)} AND pos BETWEEN {int(a)} AND {int(b)})" for c, a, b in self.ranges]
        return "WHERE " + " OR ".join(terms)

    def _holders(self, con) -> None:
        """Tables `own (variant_id)`: the layer's variants; `holders`: every earlier VCF's row of one of
        them (node columns, source, rank), read only within the partition's ranges."""
        con.execute(
            "CREATE OR REPLACE TEMP TABLE own AS"
            f" SELECT DISTINCT variant_id FROM read_parquet({sql_list(self.variants)})"
        )
        if not self.earlier_variants:
            con.execute(f"CREATE OR REPLACE TEMP TABLE holders AS SELECT *, 0 AS rank FROM ({self._node_rows([])})")
            return
        rows = self._node_rows(self.earlier_variants, self._range_filter())
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE holders AS
                SELECT e.*, r.rank FROM ({rows}) AS e JOIN file_rank AS r USING (source)
                SEMI JOIN own USING (variant_id)"""
        )

    def _variants(self, con, files: dict[str, Path]) -> None:
        """Each of the layer's variant_ids once: with the first earlier holder's properties (not
        canonical), else its own (canonical); an edge from each to the layer's File."""
        names = ", ".join(f'"{c.name}"' for c in VARIANT_NODE.columns if c.name != CANONICAL)
        first = (
            f"SELECT {names}, false AS canonical FROM holders"
            " QUALIFY row_number() OVER (PARTITION BY variant_id ORDER BY rank) = 1"
        )
        own_rows = self._node_rows(self.variants)
        own = f"SELECT {names}, true AS canonical FROM ({own_rows}) ANTI JOIN holders USING (variant_id)"
        _copy_query(con, f"({first}) UNION ALL ({own})", files[VARIANT_NODE.name])
        _copy_query(
            con, f"SELECT variant_id, {sql_string(self.layer)} AS name FROM own", files[VARIANT_IN_FILE_REL.name]
        )

    def _annotations(self, con, files: dict[str, Path]) -> None:
        """IN_GENE and Gene of the canonical variants only: an annotation counted once over the store."""
        props = ", ".join(c.name for c in IN_GENE_REL.columns)
        read = f"read_parquet({sql_list(self.annotations)}, union_by_name = true)"
        notes = f"(SELECT * FROM {read} ANTI JOIN holders USING (variant_id))"
        _copy_query(
            con, f"SELECT variant_id, gene, {props} FROM {notes} WHERE gene IS NOT NULL", files[IN_GENE_REL.name]
        )
        genes = f"""SELECT gene FROM read_parquet({sql_string(files[IN_GENE_REL.name])})
                    UNION SELECT gene FROM read_parquet({sql_string(files[VARIANT_NODE.name])}) WHERE canonical"""
        _copy_query(con, f"SELECT DISTINCT gene AS symbol FROM ({genes}) WHERE gene IS NOT NULL", files[GENE_NODE.name])

    def _no_variants(self, files: dict[str, Path]) -> None:
        """VCFs without records (valid, and so is their empty graph): empty variant and gene tables."""
        for node in (VARIANT_NODE, GENE_NODE):
            pq.write_table(_schema(node).empty_table(), files[node.name])
        for rel in (IN_GENE_REL, VARIANT_IN_FILE_REL):
            ends = [pa.field("from", pa.string()), pa.field("to", pa.string())]
            pq.write_table(pa.schema(ends + [c.field() for c in rel.columns]).empty_table(), files[rel.name])

    def _earlier_calls(self, con) -> bool:
        """Table `earlier_calls (sample, variant_id, rank, gt)`: the earlier VCFs' carrier rows of the
        layer's samples at its shared variants. False when no earlier VCF shares a sample and a variant."""
        con.execute(
            "CREATE OR REPLACE TEMP TABLE earlier_calls (sample VARCHAR, variant_id VARCHAR, rank INTEGER, gt VARCHAR)"
        )
        shared = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT rank FROM holders) JOIN file_sample USING (rank)"
            " SEMI JOIN layer_sample USING (sample)"
        ).fetchone()[0]
        if not shared:
            return False
        if self.earlier_genotypes:
            con.execute(
                f"""INSERT INTO earlier_calls
                    SELECT g.sample, g.variant_id, r.rank, g.gt
                    FROM read_parquet({sql_list(self.earlier_genotypes)}) AS g
                    JOIN file_rank AS r USING (source)
                    SEMI JOIN (SELECT DISTINCT variant_id FROM holders) USING (variant_id)
                    SEMI JOIN layer_sample USING (sample)"""
            )
        return True

    def _overlap(self, con) -> dict:
        """What the layer shares with the earlier VCFs (`GENOTYPE_RULE`), each figure counted by the later
        file of a pair, so the layers' figures add up to genotype_overlap's over all VCFs. Leaves the
        layer's carrier rows an earlier VCF gives in table `given_earlier (sample, variant_id)`."""
        con.execute("CREATE OR REPLACE TEMP TABLE given_earlier (sample VARCHAR, variant_id VARCHAR)")
        result = {"rule": GENOTYPE_RULE, "variants_in_several_files": 0, "duplicate_variant_rows": 0,
                  "duplicate_genotypes": 0, "conflicting_genotypes": 0, "conflict_examples": []}  # fmt: skip
        if not self.variants or not self.earlier_variants:
            return result
        second, repeated = con.execute(
            """SELECT count(*) FILTER (n = 1), count(*)
               FROM (SELECT variant_id, count(*) AS n FROM holders GROUP BY variant_id)"""
        ).fetchone()
        result["variants_in_several_files"], result["duplicate_variant_rows"] = second, repeated
        if not self._earlier_calls(con) or not self.genotypes:
            return result
        own_calls = (
            f"(SELECT sample, variant_id, gt FROM read_parquet({sql_list(self.genotypes)})"
            " SEMI JOIN holders USING (variant_id))"
        )
        # each (sample, variant) that the layer or an earlier holder calls a carrier, beside its first holder
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE compared AS
                WITH own_calls AS {own_calls},
                pairs AS (SELECT sample, variant_id FROM own_calls UNION SELECT sample, variant_id FROM earlier_calls),
                firsts AS (
                  SELECT p.sample, p.variant_id, min(h.rank) AS first_rank FROM pairs AS p
                  JOIN holders AS h USING (variant_id) JOIN file_sample AS f ON f.rank = h.rank AND f.sample = p.sample
                  GROUP BY p.sample, p.variant_id
                )
                SELECT firsts.*, e.gt AS first_gt, o.gt AS gt FROM firsts
                LEFT JOIN earlier_calls AS e ON e.sample = firsts.sample AND e.variant_id = firsts.variant_id
                     AND e.rank = firsts.first_rank
                LEFT JOIN own_calls AS o ON o.sample = firsts.sample AND o.variant_id = firsts.variant_id
                WHERE e.gt IS NOT NULL OR o.gt IS NOT NULL"""
        )
        con.execute("INSERT INTO given_earlier SELECT sample, variant_id FROM compared WHERE gt IS NOT NULL")
        duplicates, conflicts = con.execute(
            "SELECT count(*) FILTER (gt = first_gt), count(*) FILTER (gt IS DISTINCT FROM first_gt) FROM compared"
        ).fetchone()
        examples = con.execute(
            f"""SELECT sample, variant_id, k.source, first_gt, gt
                FROM compared JOIN file_rank AS k ON k.rank = first_rank
                WHERE gt IS DISTINCT FROM first_gt ORDER BY first_rank, variant_id, sample LIMIT {CONFLICT_EXAMPLES}"""
        ).fetchall()
        result["duplicate_genotypes"], result["conflicting_genotypes"] = duplicates, conflicts
        result["conflict_examples"] = [
            {"sample": s, "variant_id": v, "kept": {"file": kf, "gt": kg}, "other": {"file": self.layer, "gt": og}}
            for s, v, kf, kg, og in examples
        ]
        return result

    def _carries(self, con, out: Path) -> None:
        """The layer's carrier rows, less those the genotype rule gives to an earlier VCF (given_earlier)."""
        if not self.genotypes:
            con.execute(f"COPY (SELECT NULL::VARCHAR AS sample LIMIT 0) TO {sql_string(out)} (FORMAT parquet)")
            return
        left_out = self.omit.get(CARRIES_REL.name, set())
        props = ", ".join(c.name for c in CARRIES_REL.columns if c.name not in left_out)
        genotypes = f"read_parquet({sql_list(self.genotypes)}) ANTI JOIN given_earlier USING (sample, variant_id)"
        _copy_query(con, f"SELECT sample, variant_id, {props} FROM {genotypes}", out)

    def _canonical(self, variants: Path) -> int:
        table = pq.read_table(variants, columns=[CANONICAL])
        return int(pc.sum(table.column(CANONICAL)).as_py() or 0) if table.num_rows else 0

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


TABLE_ORDER = (
    SAMPLE_NODE.name, VARIANT_NODE.name, GENE_NODE.name, FILE_NODE.name,
    IN_GENE_REL.name, VARIANT_IN_FILE_REL.name, SAMPLE_IN_FILE_REL.name, CARRIES_REL.name,
)  # fmt: skip


#: DuckDB's name of each Arrow type of the node columns.
_DUCKDB_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}
SOURCE = Column("source", pa.string(), "the VCF of a shard row")


def _no_rows(columns: Sequence[Column]) -> str:
    """A SELECT of no rows with these typed columns."""
    return "SELECT " + ", ".join(f'NULL::{_DUCKDB_TYPES[c.type]} AS "{c.name}"' for c in columns) + " LIMIT 0"


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
    "earlier_overlapping",
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
    "store_counts",
]
