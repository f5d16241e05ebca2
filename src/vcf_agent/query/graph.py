"""The Kuzu side of the queries: a pool of read-only graphs and the Cypher every operation runs."""

from __future__ import annotations

import bisect
import contextlib
import functools
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vcf_agent.errors import VcfAgentError
from vcf_agent.query.filters import MAX_POSITION, Filters, StoreMissing
from vcf_agent.runtime import release_free_memory
from vcf_agent.schema import ANNOTATION_FIELDS
from vcf_agent.stores.sample_index import COUNT_FIELDS, SampleIndex, index_path
from vcf_agent.stores.variant_index import Found, Record, VariantIndex, is_current, variant_index_path

if TYPE_CHECKING:  # Kuzu itself is imported only when a graph is opened
    from vcf_agent.stores.kuzu import Graph

#: with its own buffer pool: under 500 clients on two cores four handles answered no faster than
#: one, and their caches made the server's memory grow for minutes instead of seconds.
GRAPH_HANDLES = 1
#: Partitions open at once (`vcf-agent serve --open-partitions`): beyond, the least recently
#: used idle one is closed and its memory handed back. Kuzu holds ~30 MiB per open database
#: of a 4 M-genotype partition before any query (opening one takes 20-40 ms), plus the pages
#: its queries read; the benchmark chromosome has 28 partitions, the genome ~1,750. `variant`,
#: search's hits and regions read the partitions' variant indexes and open none; counts over
#: every partition come from the sample indexes; a sample's first page walks its first
#: partitions. So a server holds few partitions open whatever the store's size, and the cap only
#: bounds filtered graph queries (a genome's graph then holds ~1 GiB at most).
OPEN_PARTITIONS = 32
#: The freed memory of closed partitions is handed back (malloc_trim) at most this often: a trim
#: after every close cost a small --open-partitions 28 % of its requests a second, while what
#: piles up between two trims is a few closed partitions' (~30 MiB each).
TRIM_INTERVAL_SECONDS = 1.0
#: Each open partition's Kuzu buffer pool (its default, 80 % of the machine's memory, costs
#: ~39 MiB of page bookkeeping per database before any query; 512 MiB costs ~1 MiB). A
#: 5 Mb region's carrier counts (the join over a partition's 4 M edges) fail with 128 MiB.
QUERY_BUFFER_POOL_MB = 512


class _Handles:
    """A bounded pool of read-only handles on one partition's database, shared by all threads.

    Kuzu runs one query at a time per connection, so a thread borrows a graph
    for the length of one query; at most `size` queries run at once (more would
    only queue for the CPU) and each graph opened costs one buffer pool.
    """

    def __init__(self, path: Path, size: int, buffer_pool_mb: int | None, threads: int | None = None) -> None:
        from vcf_agent.stores import kuzu as kuzu_store

        self.path = path
        self._open_graph = kuzu_store.open_graph
        self._buffer_pool_mb, self._threads = buffer_pool_mb, threads
        self._idle: queue.LifoQueue[Graph] = queue.LifoQueue()
        self._free_slots = threading.Semaphore(max(1, size))
        self._lock = threading.Lock()
        self._all: list[Graph] = []
        self._closed = False
        self.users = 0  # borrowers now (counted by _GraphPool, which closes only idle partitions)
        # the first graph opens on the first borrow, outside the pool's lock: an open takes 20-40 ms,
        # and under the lock it held up every query of every partition meanwhile

    def _open(self) -> Graph:
        try:
            graph = self._open_graph(
                self.path, read_only=True, buffer_pool_mb=self._buffer_pool_mb, threads=self._threads
            )
        except VcfAgentError as error:
            raise StoreMissing(str(error)) from error
        except Exception as error:
            raise StoreMissing(f"{self.path}: cannot open the Kuzu graph ({error})") from error
        with self._lock:
            self._all.append(graph)
        return graph

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Graph]:
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

    def close(self) -> None:
        with self._lock:
            self._closed = True
            graphs, self._all = self._all, []
        for graph in graphs:
            with contextlib.suppress(Exception):
                graph.close()


@dataclass
class Layer:
    """One configured VCF's partitions (vcf_agent.stores.kuzu, "layers"): its samples (in the order
    of its Sample nodes), the partitions holding its variants and how to route to them."""

    source: str
    samples: list[str]
    parts: list[int] = field(default_factory=list)
    #: contig -> [(first, last, end, partition)] by first position (disjoint within a layer)
    ranges: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    firsts: dict[str, list[int]] = field(default_factory=dict)
    #: the store-wide index (`_GraphPool.sample_names`) of each Sample node offset of this layer
    names_at: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: True when the layer's sample order is the store's: its first carriers by offset are the first overall
    in_store_order: bool = True
    #: sample name -> its Sample node offset in every partition of the layer
    offset_of: dict[str, int] = field(default_factory=dict)

    def part_at(self, chrom: str, pos: int) -> int | None:
        firsts = self.firsts.get(chrom)
        if not firsts:
            return None
        at = bisect.bisect_right(firsts, pos) - 1
        if at < 0:
            return None
        first, last, _, part = self.ranges[chrom][at]
        return part if first <= pos <= last else None


class _GraphPool:
    """The partitions of a graph store (vcf_agent.stores.kuzu), opened read-only on first use.

    The store is layered: one layer per configured VCF, each with its own partitions (disjoint
    within the layer, overlapping other layers'). Routing uses the store's index
    (partitions.json): per partition and contig its first and last position, last end and
    longest span. `parts_at` gives the partitions (one per layer at most) that may hold a
    position, `parts_of_region` those a region overlaps, `walks` each layer's partitions in
    the order of `ORDER BY v.chrom, v.pos`. A variant's node is in every layer holding it
    (`canonical` in the first one only), a (sample, variant) genotype in one layer only, so
    counts add up over partitions. At most `max_open` partitions stay open.
    """

    def __init__(
        self,
        path: Path,
        size: int = 4,
        buffer_pool_mb: int | None = None,
        max_open: int = OPEN_PARTITIONS,
        threads: int | None = None,
    ) -> None:
        from vcf_agent.stores import kuzu as kuzu_store

        self.path = path
        try:
            index = kuzu_store.read_partitions(path)
        except VcfAgentError as error:
            raise StoreMissing(str(error)) from error
        if index.get("layout") != "layers":
            raise StoreMissing(
                f"{path}: a graph of an older layout (no layers); rebuild it (snakemake results/kuzu.json)"
            )
        self.partitions: list[dict] = index["partitions"]
        #: consequence terms and FILTER names held (None in builds made before the index had them)
        self.vocabulary: dict[str, list[str]] | None = index.get("vocabulary")
        #: per gene its variants by contig and annotated variants (None in such older builds)
        self.gene_counts: dict[str, dict] | None = index.get("genes")
        self._files = [path / part["file"] for part in self.partitions]
        self._size, self._max_open = size, max(1, max_open)
        self._buffer_pool_mb = buffer_pool_mb or QUERY_BUFFER_POOL_MB
        self._threads = threads  # per Kuzu query (None: Kuzu's default, every core)
        self.layers = [Layer(layer["source"], list(layer["samples"])) for layer in index["layers"]]
        #: every sample once, in config order (first appearance), and the layers holding each
        self.sample_names: list[str] = list(dict.fromkeys(s for layer in self.layers for s in layer.samples))
        at = {name: i for i, name in enumerate(self.sample_names)}
        self.sample_layers: dict[str, list[int]] = {}
        for i, layer in enumerate(self.layers):
            for name in dict.fromkeys(layer.samples):
                self.sample_layers.setdefault(name, []).append(i)
            layer.names_at = np.array([at[name] for name in layer.samples], dtype=np.int64)
            layer.offset_of = {name: offset for offset, name in enumerate(layer.samples)}
            layer.in_store_order = bool(np.all(np.diff(layer.names_at) > 0))
        self._route(index)
        self._carrier_properties: dict[int, frozenset[str]] = {}
        self._sample_indexes: dict[int, SampleIndex | None] = {}
        self._variant_indexes: dict[int, VariantIndex | None] = {}
        self._lock = threading.Lock()
        self._open: OrderedDict[int, _Handles] = OrderedDict()
        self._closed = False
        self._trimmed_at = float("-inf")
        with self._part(0) as handles, handles.borrow():  # opened now, so that a broken graph fails here
            pass

    def _route(self, index: dict) -> None:
        by_source = {layer.source: i for i, layer in enumerate(self.layers)}
        self.layer_of: list[int] = []
        for i, part in enumerate(self.partitions):
            if part.get("layer") not in by_source:
                raise StoreMissing(
                    f"{self.path}: partition {part.get('name')} of no listed layer ({part.get('layer')})"
                )
            layer = self.layers[by_source[part["layer"]]]
            self.layer_of.append(by_source[part["layer"]])
            layer.parts.append(i)
            for chrom, held in part["chroms"].items():
                layer.ranges.setdefault(chrom, []).append((held["first"], held["last"], held["end"], i))
        for layer in self.layers:
            for chrom, ranges in layer.ranges.items():
                ranges.sort()
                layer.firsts[chrom] = [r[0] for r in ranges]

    # ---------------------------------------------------------------- routing

    def parts_at(self, chrom: str, pos: int) -> list[int]:
        """The partitions (at most one per layer) whose range of `chrom` holds position `pos`."""
        found = (layer.part_at(chrom, pos) for layer in self.layers)
        return [part for part in found if part is not None]

    def parts_of_id(self, variant_id: str) -> list[int]:
        """The partitions that may hold a variant id (chrom:pos:ref:alt; a contig name may hold ':')."""
        at = variant_id.find(":")
        while at > 0:
            chrom = variant_id[:at]
            if any(chrom in layer.ranges for layer in self.layers):
                pos = variant_id[at + 1 :].split(":", 1)[0]
                if pos.isdigit():
                    return self.parts_at(chrom, int(pos))
            at = variant_id.find(":", at + 1)
        return []

    def parts_of_region(self, chrom: str, start: int, end: int, layers: Sequence[int] | None = None) -> list[int]:
        """The partitions (of these layers, else all) holding a variant of `chrom` that may overlap
        start..end (pos <= end, end >= start)."""
        chosen = range(len(self.layers)) if layers is None else layers
        return sorted(
            part
            for i in chosen
            for first, _, last_end, part in self.layers[i].ranges.get(chrom, ())
            if first <= end and last_end >= start
        )

    def parts_of_layers(self, layers: Sequence[int] | None = None) -> list[int]:
        """Every partition of these layers (else of all)."""
        if layers is None:
            return list(range(len(self.partitions)))
        return sorted(part for i in layers for part in self.layers[i].parts)

    def parts_of_ids(self, ids: Sequence[str]) -> dict[int, list[str]]:
        """Variant ids grouped by the partitions that may hold them (a variant of several layers is
        in several groups; ids of no partition are left out: no such variant)."""
        grouped: dict[int, list[str]] = {}
        for vid in ids:
            for part in self.parts_of_id(vid):
                grouped.setdefault(part, []).append(vid)
        return grouped

    def walks(self, parts: Sequence[int], chrom: str | None = None) -> list[list[tuple[int, list[str]]]]:
        """Per layer holding any of `parts`: (partition, its contigs) in the order of
        `ORDER BY v.chrom, v.pos`; the pieces of consecutive contigs of one partition come as one step."""
        allowed = set(parts)
        result = []
        for layer in self.layers:
            pieces = sorted(
                (name, first, part)
                for name, ranges in layer.ranges.items()
                if chrom is None or name == chrom
                for first, _, _, part in ranges
                if part in allowed
            )
            steps: list[tuple[int, list[str]]] = []
            for name, _, part in pieces:
                if steps and steps[-1][0] == part:
                    steps[-1][1].append(name)
                else:
                    steps.append((part, [name]))
            if steps:
                result.append(steps)
        return result

    def layer(self, part: int) -> Layer:
        return self.layers[self.layer_of[part]]

    def edges(self, part: int) -> int:
        return int(self.partitions[part]["counts"].get("CARRIES", 0))

    def total(self, table: str) -> int:
        """Store-wide count of a table from the index (Variant: canonical nodes, each variant once)."""
        key = "canonical" if table == "Variant" else table
        return sum(int(part["counts"].get(key, 0)) for part in self.partitions)

    def carrier_properties(self, part: int) -> frozenset[str]:
        """The CARRIES properties of a partition's layer (dp, gq are left out of some layers)."""
        layer = self.layer_of[part]
        if layer not in self._carrier_properties:
            rows = self.query("CALL table_info('CARRIES') RETURN name", None, part)
            self._carrier_properties[layer] = frozenset(row["name"] for row in rows)
        return self._carrier_properties[layer]

    # ---------------------------------------------------------------- the partitions' sample indexes

    def sample_index(self, part: int) -> SampleIndex | None:
        """The partition's sample index (vcf_agent.stores.sample_index); None in a build made without."""
        if part not in self._sample_indexes:
            path = index_path(self._files[part])
            found = SampleIndex(path) if path.exists() else None
            if found is not None and found.samples != len(self.layer(part).samples):
                raise StoreMissing(f"{path}: {found.samples} samples, its layer has {len(self.layer(part).samples)}")
            self._sample_indexes[part] = found
        return self._sample_indexes[part]

    def indexed(self, parts: Sequence[int]) -> bool:
        """True when every one of these partitions has its sample index."""
        return all(self.sample_index(part) is not None for part in parts)

    def indexed_counts(self, sample: str, parts: Sequence[int]) -> dict[str, int]:
        """The sample's zygosity counts (sample_index.COUNT_FIELDS) added up over these partitions."""
        total = np.zeros(len(COUNT_FIELDS), np.int64)
        for part in parts:
            offset = self.layer(part).offset_of.get(sample)
            if offset is not None:
                total += self.sample_index(part).counts([offset])
        return dict(zip(COUNT_FIELDS, (int(n) for n in total), strict=True))

    def indexed_carriers(self) -> dict[str, int]:
        """Every sample's carrier genotypes over the store (each genotype is in one layer)."""
        carried = dict.fromkeys(self.sample_names, 0)
        for part in range(len(self.partitions)):
            layer = self.layer(part)
            for name, n in zip(layer.samples, self.sample_index(part).all_counts()[:, 0].tolist(), strict=True):
                carried[name] += n
        return carried

    def indexed_shared(self, samples: Sequence[str], parts: Sequence[int]) -> int:
        """How many variants every one of `samples` carries in one partition, added up over these."""
        total = 0
        for part in parts:
            offsets = [self.layer(part).offset_of.get(name) for name in samples]
            if None not in offsets:
                total += len(self.sample_index(part).shared(offsets))
        return total

    # ---------------------------------------------------------------- the partitions' variant indexes

    def variant_index(self, part: int) -> VariantIndex | None:
        """The partition's variant index (vcf_agent.stores.variant_index); None in a build made without."""
        if part not in self._variant_indexes:
            path = variant_index_path(self._files[part])
            found = VariantIndex(path) if path.exists() and is_current(path) else None
            expected = int(self.partitions[part]["counts"].get("Variant", 0))
            if found is not None and found.variants != expected:
                raise StoreMissing(f"{path}: {found.variants} variants, its partition has {expected}")
            with self._lock:
                self._variant_indexes[part] = found
        return self._variant_indexes[part]

    def indexed_variants(
        self, ids: Sequence[str], first: int | None = None
    ) -> dict[str, list[tuple[int, Found]]] | None:
        """variant_id -> (partition, what its variant index holds of it) in each partition (one per
        layer) holding it, with the first `first` carriers of a layer in store order (else all of
        them: a layer's first by offset need not be the store's first; 0: none, for counts only).
        None when a partition that may hold one of `ids` has no variant index (a build made before it)."""
        groups = self.parts_of_ids(ids)
        if not all(self.variant_index(part) is not None for part in groups):
            return None
        found: dict[str, list[tuple[int, Found]]] = {}
        for part, here in groups.items():
            wanted = first if first == 0 or self.layer(part).in_store_order else None
            for vid, entry in self.variant_index(part).find(here, wanted).items():
                found.setdefault(vid, []).append((part, entry))
        return found

    def indexed_records(
        self, variant_id: str, parts: Sequence[int], first: int | None
    ) -> list[tuple[int, Record]] | None:
        """(partition, the variant whole) from the variant index of each of `parts` holding it,
        with the first `first` carriers of a layer in store order (else all); None when one of
        `parts` has no variant index of the current layout with the carriers' genotypes."""
        indexes = [self.variant_index(part) for part in parts]
        if not all(index is not None and "kinds" in index.holds for index in indexes):
            return None
        found = []
        for part, index in zip(parts, indexes, strict=True):
            record = index.record(variant_id, first if self.layer(part).in_store_order else None)
            if record is not None:
                found.append((part, record))
        return found

    # ---------------------------------------------------------------- queries

    @contextlib.contextmanager
    def _part(self, part: int) -> Iterator[_Handles]:
        with self._lock:
            if self._closed:
                raise StoreMissing(f"{self.path}: the stores are closed")
            handles = self._open.get(part)
            opened = handles is None
            if opened:
                handles = self._open[part] = _Handles(
                    self._files[part], self._size, self._buffer_pool_mb, self._threads
                )
            self._open.move_to_end(part)
            handles.users += 1  # before closing others: with every older one busy, not this one
            if opened:
                self._close_idle()
        try:
            yield handles
        finally:
            with self._lock:
                handles.users -= 1

    def _close_idle(self) -> None:
        """Close the least recently used partitions beyond max_open that nobody is querying."""
        closed = False
        for part in list(self._open):
            if len(self._open) <= self._max_open:
                break
            if self._open[part].users == 0:
                self._open.pop(part).close()
                closed = True
        if closed and time.monotonic() - self._trimmed_at >= TRIM_INTERVAL_SECONDS:
            self._trimmed_at = time.monotonic()
            release_free_memory()

    def query(self, cypher: str, params: dict[str, Any] | None = None, part: int | None = None) -> list[dict[str, Any]]:
        """Rows of one partition, or with `part` None of every partition one after the other
        (for listings and checks: aggregate them yourself; the hot paths route instead)."""
        if part is None:
            return [row for i in range(len(self.partitions)) for row in self.query(cypher, params, i)]
        with self._part(part) as handles, handles.borrow() as graph:
            return graph.query(cypher, params)

    def per_layer(self, cypher: str, params: dict[str, Any] | None = None) -> list[tuple[Layer, list[dict[str, Any]]]]:
        """Rows about Sample, File and SAMPLE_IN_FILE, which every partition of a layer holds whole
        (that layer's VCF only): each layer's, from its first partition."""
        return [(layer, self.query(cypher, params, layer.parts[0])) for layer in self.layers if layer.parts]

    def shared(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """`per_layer`'s rows one layer after the other (a sample of several VCFs comes once per VCF)."""
        return [row for _, rows in self.per_layer(cypher, params) for row in rows]

    def each(self, cypher: str, params: dict[str, Any] | None, parts: Sequence[int]) -> list[dict[str, Any]]:
        """The rows of these partitions one after the other."""
        return [row for part in parts for row in self.query(cypher, params, part)]

    def query_arrow(self, cypher: str, params: dict[str, Any] | None = None, part: int = 0) -> pa.Table:
        with self._part(part) as handles, handles.borrow() as graph:
            return graph.query_arrow(cypher, params)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            opened, self._open = list(self._open.values()), OrderedDict()
        for handles in opened:
            handles.close()


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
#: CARRIES properties a Carrier reports; dp and gq are absent from some layers (a carrier's
#: source is its partition's layer).
CARRIER_PROPERTIES = ("gt", "phased", "alt_count", "ploidy", "dp", "gq")


@functools.lru_cache(maxsize=8)
def _genotypes_of(properties: frozenset[str]) -> str:
    """The carriers of one variant in one partition; properties its layer lacks come back as nulls."""
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
    f"MATCH (v:Variant {{variant_id: $id}})-[a:IN_GENE]->(g:Gene) RETURN {ANNOTATION_FIELDS} ORDER BY gene, feature_id"
)
_FILES_OF = "MATCH (v:Variant {variant_id: $id})-[:VARIANT_IN_FILE]->(f:File) RETURN f.name AS name ORDER BY name"
_CARRIER_COUNT_OF = "MATCH (s:Sample)-[:CARRIES]->(v:Variant {variant_id: $id}) RETURN count(*) AS n"
#: a row per annotation, made distinct by the caller: 0.55 ms a look-up against 0.90 ms with
#: collect(DISTINCT g.symbol) (Kuzu's aggregation costs more than the rows of a few annotations)
_GENES_OF = "MATCH (v:Variant {variant_id: $id})-[:IN_GENE]->(g:Gene) RETURN g.symbol AS gene"
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
    " RETURN vid AS id, g.symbol AS gene"
)
#: Costs that choose between them, measured on this project's 2-core VM: carriers and genes
#: of one hit by its key ~2 ms; the join ~0.1-0.3 s per million CARRIES edges (0.1-0.3 s
#: for 502,000 edges, 2.0-3.6 s for 10,000,000), whatever the number of hits.
KEY_LOOKUP_SECONDS = 2e-3
JOIN_SECONDS_PER_EDGE = 3e-7
#: Read hits' carriers and genes, and regions' carrier counts, from the partitions' variant indexes
#: (vcf_agent.stores.variant_index) where they have them; False asks the databases, as for builds
#: made before the index (the tests compare both ways).
READ_VARIANT_INDEX = True
#: The columns of a result row (sample, shared and region pages) from the Variant node `v`.
ROW_COLUMNS = (
    "v.variant_id AS variant_id, v.chrom AS chrom, v.pos AS pos, v.`end` AS `end`, v.ref AS ref, v.alt AS alt,"
    " v.variant_class AS variant_class, v.gene AS gene, v.consequence AS consequence, v.impact AS impact,"
    " v.filter AS filter, v.af AS af"
)
#: A sample's genotype columns of a page row.
GENOTYPE_ROW_COLUMNS = ", c.gt AS gt, c.phased AS phased, c.alt_count AS alt_count, c.ploidy AS ploidy"
#: One page row by its key (the rows of variants found across layers).
_ROW_OF = f"MATCH (v:Variant {{variant_id: $id}}) RETURN {ROW_COLUMNS}"
_SAMPLE_ROW_OF = (
    f"MATCH (s:Sample {{id: $sample}})-[c:CARRIES]->(v:Variant {{variant_id: $id}}) RETURN {ROW_COLUMNS}"
    f"{GENOTYPE_ROW_COLUMNS}"
)
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
    """Cypher WHERE conditions on `v` for the filters Kuzu evaluates (all but carried_by)."""
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
    # Variant.af is null without a numeric AF, and a null is outside every range.
    for name, condition in (("af_min", "v.af >= $af_min"), ("af_max", "v.af <= $af_max")):
        value = getattr(filters, name)
        if value is not None:
            conditions.append(condition)
            params[name] = float(value)
    return conditions, params


def _where(conditions: Sequence[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


# ---------------------------------------------------------------- LanceDB filters
