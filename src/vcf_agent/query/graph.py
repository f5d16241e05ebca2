"""The Kuzu side of the queries: a pool of read-only graphs and the Cypher every operation runs."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vcf_agent.errors import VcfAgentError
from vcf_agent.query.filters import MAX_POSITION, Filters, StoreMissing

if TYPE_CHECKING:  # Kuzu itself is imported only when a graph is opened
    from vcf_agent.stores.kuzu import Graph

#: with its own buffer pool: under 500 clients on two cores four handles answered no faster than
#: one, and their caches made the server's memory grow for minutes instead of seconds.
GRAPH_HANDLES = 1


class _GraphPool:
    """A bounded pool of read-only graphs (kuzu_store.Graph) shared by all threads.

    Kuzu runs one query at a time per connection, so a thread borrows a graph
    for the length of one query; at most `size` queries run at once (more would
    only queue for the CPU) and each graph opened costs one buffer pool.
    """

    def __init__(self, path: Path, size: int = 4, buffer_pool_mb: int | None = None) -> None:
        from vcf_agent.stores import kuzu as kuzu_store

        self.path = path
        self._open_graph = kuzu_store.open_graph
        self._buffer_pool_mb = buffer_pool_mb
        self._idle: queue.LifoQueue[Graph] = queue.LifoQueue()
        self._free_slots = threading.Semaphore(max(1, size))
        self._lock = threading.Lock()
        self._all: list[Graph] = []
        self._closed = False
        self._idle.put(self._open())  # opened now, so that a broken graph fails at open time

    def _open(self) -> Graph:
        try:
            graph = self._open_graph(self.path, read_only=True, buffer_pool_mb=self._buffer_pool_mb)
        except VcfAgentError as error:
            raise StoreMissing(str(error)) from error
        except Exception as error:
            raise StoreMissing(f"{self.path}: cannot open the Kuzu graph ({error})") from error
        with self._lock:
            self._all.append(graph)
        return graph

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[Graph]:
        with self._free_slots:
            if self._closed:
                raise StoreMissing(f"{self.path}: the stores are closed")
            try:
                graph = self._idle.get_nowait()
            except queue.Empty:
                graph = self._open()
            try:
                yield graph
            finally:
                self._idle.put(graph)

    def query(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._borrow() as graph:
            return graph.query(cypher, params)

    def query_arrow(self, cypher: str, params: dict[str, Any] | None = None) -> pa.Table:
        with self._borrow() as graph:
            return graph.query_arrow(cypher, params)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            graphs, self._all = self._all, []
        for graph in graphs:
            with contextlib.suppress(Exception):
                graph.close()


#: Cypher conditions on the Variant node `v`, each with the parameters it binds (values only).
_REGION_CYPHER = "v.chrom = $chrom AND v.pos <= $region_end AND v.`end` >= $region_start"
_GENE_CYPHER = "v.gene = $gene"
_CONSEQUENCE_CYPHER = "list_contains(string_split(v.consequence, '&'), $consequence)"
_FILTER_CYPHER = "list_contains(string_split(v.filter, ';'), $filter)"
_CLASS_CYPHER = "v.variant_class = $variant_class"


#: Per-variant look-ups by primary key (see Stores._graph_context for why not one query for all).
#: A global aggregate returns one row even without matches; OPTIONAL MATCH would be planned as a
#: scan of every CARRIES edge (27 ms against 1 ms on 500,000 edges).
_CARRIERS_OF = (
    "MATCH (s:Sample)-[:CARRIES]->(v:Variant {variant_id: $id})"
    " RETURN count(*) AS n, list_slice(list_sort(collect(offset(id(s)))), 1, $first) AS first"
)
#: CARRIES properties a Carrier reports; dp, gq and source are absent from some graphs.
CARRIER_PROPERTIES = ("gt", "phased", "alt_count", "ploidy", "dp", "gq", "source")


def _genotypes_of(properties: set[str]) -> str:
    """The carriers of one variant; properties the graph lacks come back as nulls."""
    values = ", ".join(f"{'c.' + name if name in properties else 'NULL'} AS {name}" for name in CARRIER_PROPERTIES)
    return (
        f"MATCH (s:Sample)-[c:CARRIES]->(v:Variant {{variant_id: $id}}) RETURN offset(id(s)) AS o, {values} ORDER BY o"
    )


#: Genotypes grouped by what decides their zygosity (see `counted`).
_ZYGOSITY_GROUPS = (
    "c.gt CONTAINS '.' AS missing, c.alt_count AS alt_count, c.ploidy AS ploidy, c.phased AS phased, count(*) AS n"
)
_ZYGOSITY_OF = f"MATCH (s:Sample)-[c:CARRIES]->(v:Variant {{variant_id: $id}}) RETURN {_ZYGOSITY_GROUPS}"
_ANNOTATIONS_OF = (
    "MATCH (v:Variant {variant_id: $id})-[a:IN_GENE]->(g:Gene)"
    " RETURN g.symbol AS gene, a.consequence AS consequence, a.impact AS impact,"
    " a.feature_id AS feature_id, a.hgvs_c AS hgvs_c, a.hgvs_p AS hgvs_p, a.source AS source"
    " ORDER BY gene, feature_id"
)
_FILES_OF = "MATCH (v:Variant {variant_id: $id})-[:VARIANT_IN_FILE]->(f:File) RETURN f.name AS name ORDER BY name"
_CARRIER_COUNT_OF = "MATCH (s:Sample)-[:CARRIES]->(v:Variant {variant_id: $id}) RETURN count(*) AS n"
_GENES_OF = "MATCH (v:Variant {variant_id: $id})-[:IN_GENE]->(g:Gene) RETURN collect(DISTINCT g.symbol) AS genes"
# The same for a list of variants (vid: each one's id). Kuzu 0.11 plans them as a hash join
# that reads every CARRIES (IN_GENE) edge, whatever the list's length (`IN $ids` instead
# tests each Variant node against the whole list: 14 s for 3,000 ids among 1,000,000 variants).
_EACH_CARRIER = "UNWIND $ids AS vid MATCH (s:Sample)-[:CARRIES]->(v:Variant) WHERE v.variant_id = vid"
_CARRIERS_OF_ALL = (
    f"{_EACH_CARRIER} RETURN vid AS id, count(*) AS n,"
    " list_slice(list_sort(collect(offset(id(s)))), 1, $first) AS first"
)
_CARRIER_COUNTS_OF_ALL = f"{_EACH_CARRIER} RETURN vid AS id, count(*) AS n"
_GENES_OF_ALL = (
    "UNWIND $ids AS vid MATCH (v:Variant)-[:IN_GENE]->(g:Gene) WHERE v.variant_id = vid"
    " RETURN vid AS id, collect(DISTINCT g.symbol) AS genes"
)
#: Costs that choose between them, measured on this project's 2-core VM: carriers and genes
#: of one hit by its key ~2 ms; the join ~0.1-0.3 s per million CARRIES edges (0.1-0.3 s
#: for 502,000 edges, 2.0-3.6 s for 10,000,000), whatever the number of hits.
KEY_LOOKUP_SECONDS = 2e-3
JOIN_SECONDS_PER_EDGE = 3e-7
_GENOTYPES_OF = (
    "MATCH (s:Sample)-[c:CARRIES]->(v:Variant {variant_id: $id}) WHERE s.id IN $samples"
    " RETURN s.id AS sample, c.gt AS gt"
)


#: Scans that read every column the queries use (Stores.warm).
_WARM_CYPHER = (
    "MATCH (v:Variant) RETURN count(v.variant_id) AS a, min(v.chrom) AS b, min(v.pos) AS c, min(v.`end`) AS d,"
    " min(v.ref) AS e, min(v.alt) AS f, min(v.variant_class) AS g, min(v.gene) AS h, min(v.consequence) AS i,"
    " min(v.impact) AS j, min(v.filter) AS k",
    "MATCH (s:Sample)-[c:CARRIES]->(v:Variant) RETURN count(c.gt) AS a, sum(c.alt_count) AS b, sum(c.ploidy) AS c,"
    " count(c.phased) AS d",
)


_SPREAD_IDS = "MATCH (v:Variant) WHERE offset(id(v)) % $step = 0 RETURN v.variant_id AS id LIMIT $n"


def graph_conditions(filters: Filters) -> tuple[list[str], dict[str, Any]]:
    """Cypher WHERE conditions on `v` for the filters Kuzu can evaluate (all but AF and carried_by)."""
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if filters.region is not None:
        conditions.append(_REGION_CYPHER)
        params.update(
            chrom=filters.region.chrom,
            region_start=filters.region.start,
            region_end=filters.region.end if filters.region.end is not None else MAX_POSITION,
        )
    for name, condition in (
        ("gene", _GENE_CYPHER),
        ("consequence", _CONSEQUENCE_CYPHER),
        ("filter", _FILTER_CYPHER),
        ("variant_class", _CLASS_CYPHER),
    ):
        value = getattr(filters, name)
        if value is not None:
            conditions.append(condition)
            params[name] = value
    return conditions, params


def _where(conditions: Sequence[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


# ---------------------------------------------------------------- LanceDB filters
