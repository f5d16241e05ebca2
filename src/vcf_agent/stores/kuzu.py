"""The Kuzu graph of samples, variants, genes and files -- the only module that imports Kuzu.

Kuzu 0.11.3 is the last release of Kuzu (the project is archived). Its fork
LadybugDB ships the same Python API as the PyPI package ``ladybug``: moving to it
means changing the one import line below (``import ladybug as graphdb``) and the pin.

Contract (what rule load_kuzu writes and the query layer reads)
---------------------------------------------------------------
* ``results/kuzu`` is a symlink to the current build; the database file is
  ``results/kuzu/graph.kuzu``. Open it with `open_graph` (read-only by default);
  `Graph.query` takes Cypher with bound parameters only (``$name``) and returns
  rows as dicts.
* Tables (names, properties and types in vcf_agent.schema):
  node ``Sample(id)``, ``Variant(variant_id, chrom, pos, end, ref, alt, id, qual,
  filter, variant_class, gene, consequence, impact)``, ``Gene(symbol)``,
  ``File(name, path)``; rel ``CARRIES(Sample->Variant: gt, phased, alt_count,
  ploidy, dp, gq, source)``, ``IN_GENE(Variant->Gene: consequence, impact,
  feature_id, hgvs_c, hgvs_p, gene_id, source)``, ``VARIANT_IN_FILE(Variant->File)``,
  ``SAMPLE_IN_FILE(Sample->File)``. ``end`` is a Cypher keyword: write ``v.`end```
  (schema.kuzu_property).
* CARRIES is stored on both sides (schema.CARRIES_REL): write it
  ``(s:Sample)-[c:CARRIES]->(v:Variant)``, from either end. Its ``dp``/``gq``
  exist only when some VCF declares integer FORMAT/DP or GQ, and
  ``source`` only when the graph holds several VCFs (with one, it is the one File
  node); `Graph.properties("CARRIES")` and the manifest's ``properties_left_out`` say which.
* One Variant node per variant_id and one Sample node per sample name, however
  many VCFs hold them (properties from the first VCF of the config, as in the
  LanceDB table); each VCF adds its own VARIANT_IN_FILE / SAMPLE_IN_FILE edge.
  One CARRIES edge per (sample, variant_id) carrying the ALT, from the first VCF
  of the config that holds both (stores.GENOTYPE_RULE; a later VCF's call is
  counted as a duplicate or a conflict in the manifest); one IN_GENE
  edge per ANN/CSQ entry naming a gene. Sample nodes are the header's samples,
  carriers or not.
* ``results/kuzu.json`` (the manifest, written last): node and rel counts,
  properties left out, VCFs, files, samples, genotypes shared across files
  (``across_files``), build time (UTC), buffer pool and threads used, seconds per table.

How it loads
------------
DuckDB (bounded by its memory_limit, spilling beyond it; in a child process for
large inputs, so that its memory is gone before Kuzu starts) writes one Parquet
file per table in the column order Kuzu expects, keeping each variant once.
Kuzu then bulk-loads each with one ``COPY ... FROM`` (never row by row), with its
buffer pool and threads taken from the job's mem_mb and threads. Kuzu's COPY holds
a whole rel table in the buffer pool (about 60 bytes per CARRIES edge), hence the
rule's mem_mb grows with the genotypes (workflow/rules/common.smk). Counts are
checked against the prepared files before the new graph is swapped in atomically
(vcf_agent.stores.build.StoreBuild).
"""

from __future__ import annotations

import json
import subprocess
import sys
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
from vcf_agent.ingest.parquet import PROCESS_OVERHEAD_MB, duckdb_connect
from vcf_agent.logs import log
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
    StoreBuild,
    genotype_overlap,
    paired_shards,
    parquet_file,
    shadowed_rows,
    shards_digest,
    sources_in_order,
    sql_list,
    sql_string,
    utc_now,
)

GRAPH_FILE = "graph.kuzu"
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


def graph_file(path: Path | str) -> Path:
    """The database file: `path` itself, or graph.kuzu inside a store folder."""
    path = Path(path)
    return path / GRAPH_FILE if path.is_dir() else path


def open_graph(
    path: Path | str = "results/kuzu",
    read_only: bool = True,
    buffer_pool_mb: int | None = None,
    threads: int | None = None,
) -> Graph:
    """Open the graph (a store folder such as results/kuzu, or the graph.kuzu file itself)."""
    file = graph_file(path)
    if read_only and not file.exists():
        raise fail(file, "no graph here (run the workflow's load_kuzu rule first)")
    try:
        return Graph(file, read_only=read_only, buffer_pool_mb=buffer_pool_mb, threads=threads)
    except RuntimeError as error:
        raise fail(file, f"cannot open the graph: {error}") from error


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
) -> dict:
    """Build the Kuzu graph from the shards; return the manifest (also written to `manifest`)."""
    started = time.perf_counter()
    variants = [Path(p) for p in variants]
    genotypes = [s.other for s in paired_shards(variants, genotypes, "genotypes")]
    annotations = [s.other for s in paired_shards(variants, annotations, "annotations")]
    # VCFs without records have no shards, but their samples and File node belong in the graph too.
    sources = list(dict.fromkeys([*sources_in_order(variants), *samples]))
    missing = [s for s in sources if s not in samples]
    if missing:
        raise fail("samples", f"no sample list for {', '.join(missing)}")
    pool_mb = buffer_pool_mb_for(mem_mb)
    seconds = {}
    with StoreBuild(out) as build, build.scratch() as scratch:
        in_order = {s: list(samples[s]) for s in sources}
        prepared = prepare_tables(Path(scratch), variants, genotypes, annotations, in_order, files, threads, mem_mb)
        seconds["prepare"] = round(time.perf_counter() - started, 3)
        with Graph(build.path / GRAPH_FILE, read_only=False, buffer_pool_mb=pool_mb, threads=threads) as graph:
            for statement in kuzu_ddl(prepared.omit):
                graph.execute(statement)
            for table, parquet in prepared.files.items():
                _copy(graph, table, parquet, prepared.rows[table])
                seconds[table] = round(time.perf_counter() - started - sum(seconds.values()), 3)
            counts = _counts(graph)
        _check(counts, prepared.rows)
        build.commit()
    seconds["total"] = round(time.perf_counter() - started, 3)
    result = {
        "store": "kuzu",
        "path": str(out),
        "database": f"{out}/{GRAPH_FILE}",
        "build": build.path.name,
        "engine": ENGINE,
        "counts": counts,
        "properties_left_out": {t: sorted(p) for t, p in prepared.omit.items()},
        "sources": sources,
        "samples": {s: len(samples[s]) for s in sources},
        "across_files": prepared.overlap,
        "files": [str(p) for p in variants],
        "variants_digest": shards_digest(variants),
        "buffer_pool_mb": pool_mb,
        "threads": threads,
        "built_at": utc_now(),
        "seconds": seconds,
    }
    write_json(result, manifest)
    log.info("Kuzu %s: %s in %.1f s", out, counts, seconds["total"])
    return result


@dataclass
class PreparedTables:
    """One Parquet file per graph table, its row count, the CARRIES properties left out, what VCFs share."""

    files: dict[str, Path]
    rows: dict[str, int]
    omit: dict[str, set[str]]
    overlap: dict


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
    """The graph's tables as Parquet in `scratch`, as Kuzu's COPY takes them (DuckDB's part of load_kuzu).

    `samples` maps each VCF name, in config order, to its samples; `files` each VCF name to its input path.
    """
    job = _Prepare(scratch, variants, genotypes, annotations, samples, dict(files or {}), threads, mem_mb)
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

    @property
    def sources(self) -> list[str]:
        return list(self.samples)

    def input_rows(self) -> int:
        return sum(parquet_file(p).metadata.num_rows for p in [*self.variants, *self.genotypes, *self.annotations])

    def run_in_child(self) -> PreparedTables:
        """`run` in a child interpreter, so that DuckDB's memory is returned before Kuzu starts."""
        job = {k: [str(p) for p in v] if isinstance(v, list) else v for k, v in vars(self).items()}
        job["scratch"] = str(self.scratch)
        child = subprocess.run(
            [sys.executable, "-c", "from vcf_agent.stores.kuzu import _prepare_main; _prepare_main()"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
            raise VcfAgentError(lines[-1].removeprefix("ERROR: "))
        result = json.loads(child.stdout.strip().splitlines()[-1])
        return PreparedTables(
            {t: Path(f) for t, f in result["files"].items()},
            result["rows"],
            {t: set(v) for t, v in result["omit"].items()},
            result["overlap"],
        )

    def run(self) -> PreparedTables:
        con = duckdb_connect(self.scratch, self.threads, max(128, self.mem_mb - PROCESS_OVERHEAD_MB))
        try:
            files = {name: self.scratch / f"{name}.parquet" for name in TABLE_ORDER}
            omit = {CARRIES_REL.name: self._carries_left_out(con)}
            self._small_tables(files)
            if self.variants:
                self._variants(con, files)
                self._annotations(con, files)
            else:
                self._no_variants(files)
            overlap = genotype_overlap(con, self.variants, self.genotypes, self.samples)
            self._carries(con, files[CARRIES_REL.name], omit[CARRIES_REL.name])
            rows = {t: pq.ParquetFile(f).metadata.num_rows for t, f in files.items()}
            return PreparedTables(files, rows, omit, overlap)
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
        columns = ", ".join(f'"{c.name}"' for c in VARIANT_NODE.columns)
        _copy_query(con, f"SELECT {columns} FROM {self._read_variants()} {keep}", files[VARIANT_NODE.name])
        _copy_query(con, f"SELECT variant_id, source FROM {self._read_variants()}", files[VARIANT_IN_FILE_REL.name])

    def _annotations(self, con, files: dict[str, Path]) -> None:
        notes = f"read_parquet({sql_list(self.annotations)}, union_by_name = true)"
        props = ", ".join(c.name for c in IN_GENE_REL.columns)
        in_gene = f"SELECT variant_id, gene, {props} FROM {notes} WHERE gene IS NOT NULL"
        _copy_query(con, in_gene, files[IN_GENE_REL.name])
        genes = f"SELECT gene FROM {notes} UNION SELECT gene FROM {self._read_variants()}"
        _copy_query(con, f"SELECT DISTINCT gene AS symbol FROM ({genes}) WHERE gene IS NOT NULL", files[GENE_NODE.name])

    def _carries_left_out(self, con) -> set[str]:
        """dp/gq that no genotype holds, and source when there is one VCF (see schema.CARRIES_REL)."""
        left_out = set() if len(self.sources) > 1 else {"source"}
        if self.genotypes:
            reading = f"read_parquet({sql_list(self.genotypes)})"
            dp, gq = con.execute(f"SELECT count(dp), count(gq) FROM {reading}").fetchone()
        else:
            dp = gq = 0
        left_out |= {name for name, present in (("dp", dp), ("gq", gq)) if not present}
        return left_out

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


def _prepare_main() -> None:
    """Entry point of the child process of `_Prepare.run_in_child` (job as JSON on stdin)."""
    job = json.loads(sys.stdin.read())
    job["scratch"] = Path(job["scratch"])
    for key in ("variants", "genotypes", "annotations"):
        job[key] = [Path(p) for p in job[key]]
    try:
        prepared = _Prepare(**job).run()
    except VcfAgentError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except duckdb.Error as error:
        # DuckDB names the file it could not read in its first line.
        print(f"ERROR: {' '.join(str(error).split(chr(10))[0].split())}", file=sys.stderr)
        raise SystemExit(1) from None
    files = {t: str(f) for t, f in prepared.files.items()}
    omit = {t: sorted(v) for t, v in prepared.omit.items()}
    print(json.dumps({"files": files, "rows": prepared.rows, "omit": omit, "overlap": prepared.overlap}))


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
    "Graph",
    "PreparedTables",
    "graph_file",
    "kuzu_property",
    "load_kuzu",
    "open_graph",
    "prepare_tables",
    "samples_from_headers",
]
