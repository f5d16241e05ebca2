"""Questions to the two stores: the Python API behind the CLI and the HTTP server.

Open both stores once, then ask::

    from vcf_agent.query import Filters, Region, Stores

    with Stores.open("results") as stores:
        hits = stores.search("missense variant in BRCA2, rare", Filters(region=Region.parse("13:32.3M-32.4M")))
        for hit in hits:
            print(hit.variant_id, hit.similarity, hit.carriers, hit.carrier_samples)
        record = stores.variant("22:16050075:A:G")  # the record, annotations, carriers
        mine = stores.sample("HG00096", Filters(consequence="missense_variant"))
        mine.variants.to_pandas()  # many rows come as an Arrow table

Where each answer comes from
----------------------------
* LanceDB (table ``variants``: every variant column, ``text``, ``vector``) answers
  the vector searches and the variant records; its scalar indexes serve the
  region, gene and id look-ups.
* Kuzu (``Sample-[CARRIES]->Variant-[IN_GENE]->Gene``) answers who carries what.
  Every vector hit gets its graph context (carrier count, first carriers, genes)
  from one Kuzu query for the whole page.

Filters (:class:`Filters`) mean the same in every operation: region
(``chrom:start-end``, variants overlapping it), gene (the gene of the most
severe annotation), consequence (one SO term among the variant's terms), FILTER
(``PASS`` or one filter name), allele frequency range (``info_AF``), variant
class, and "carried by sample S" (through Kuzu). Vector searches apply them
before the search by default (prefilter), so a search returns ``limit`` hits
whenever that many variants pass.

Safety: user text never becomes SQL or Cypher by concatenation. Every value is
checked first (numbers are numbers, contigs and samples must exist in the
stores, terms match strict patterns); LanceDB filters are built as typed
expressions (``lancedb.expr``), which the library renders with its own
quoting, and Kuzu queries are constant strings with bound ``$parameters``.

The stores are read-only here and one `Stores` serves any number of threads:
Kuzu is opened read-only through vcf_agent.stores.kuzu, its handles lent to one
query at a time (a pool of GRAPH_HANDLES, prepared statements kept per handle);
LanceDB runs on one background event loop shared by all threads. `Stores`
opens the build folders the symlinks point at and holds them (see
vcf_agent.stores.build): a load publishes new builds beside them without disturbing
it; reopen to see them (`Stores.rebuilt()` tells; the server does it by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, is_dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vcf_agent.errors import VcfAgentError
from vcf_agent.files import read_json
from vcf_agent.schema import DEFAULT_VECTOR_DIM, LANCE_TABLE, LANCE_VECTOR_COLUMN, info_column_name

if TYPE_CHECKING:  # Kuzu itself is imported only when a graph is opened
    from vcf_agent.stores.build import BuildHold
    from vcf_agent.stores.kuzu import Graph

TABLE_NAME = LANCE_TABLE
LANCE_DIR = "lancedb"
KUZU_DIR = "kuzu"
KUZU_GRAPH = Path(KUZU_DIR) / "graph.kuzu"
LANCE_MANIFEST = "lancedb.json"
KUZU_MANIFEST = "kuzu.json"

#: Variant classes the workflow writes (schema.VARIANT_COLUMNS' variant_class).
VARIANT_CLASSES = (
    "snv",
    "mnp",
    "insertion",
    "deletion",
    "indel",
    "symbolic",
    "breakend",
    "overlap",
    "non_ref",
    "no_alt",
)
AF_COLUMN = info_column_name("AF")

#: Columns of a vector hit and of the rows of region/sample/shared tables.
CORE_ROW_COLUMNS = (
    "variant_id", "chrom", "pos", "end", "ref", "alt", "variant_class", "gene", "consequence", "impact", "filter",
)  # fmt: skip
MAX_LIMIT = 10_000
#: Largest position accepted in a region (Kuzu and LanceDB store positions as int64).
MAX_POSITION = 2**62
#: A carried-by filter whose sample carries at most this many matching variants is applied
#: in LanceDB as `variant_id IN (...)` before the search; larger sets are checked after it.
PREFILTER_IN_MAX = 2_000
#: Ids per LanceDB `variant_id IN (...)` look-up.
LOOKUP_CHUNK = 2_000
LANCE_VECTOR = LANCE_VECTOR_COLUMN
#: An ANN search fetches this many times `limit` candidates by their compressed (PQ) codes and
#: re-ranks them with the full vectors: on the 1,000,000-variant benchmark store 3 of 300 hits
#: were worse than the exact 10th neighbour with it, 210 of 300 without (1 ms more per query).
REFINE_FACTOR = 5
#: Share of the IVF partitions searched first (all of them again when too few rows there pass
#: the filters). On the benchmark store (8 partitions) one partition plus re-ranking returned
#: the exact top 10 (checked against an exhaustive search) in 120 of 120 queries, with and
#: without a region filter, in 5-8 ms against 11-34 ms for LanceDB's default of 20 partitions.
PROBE_SHARE = 1 / 8
#: Partitions assumed when the manifest does not say (LanceDB's default for 1,000,000 rows is ~1,000).
DEFAULT_PARTITIONS = 256
#: Kuzu queries that may run at once (handles in the pool). Each handle is a database of its own
#: with its own buffer pool: under 500 clients on two cores four handles answered no faster than
#: one, and their caches made the server's memory grow for minutes instead of seconds.
GRAPH_HANDLES = 1
#: Query embeddings remembered (text -> vector).
QUERY_CACHE_SIZE = 1_024

_GENE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+\-/@()*]{0,99}")
_TERM = re.compile(r"[A-Za-z0-9_.+\-]{1,100}")
_ALLOWED = {"gene": ". _ - : + / @ ( ) *", "consequence": ". _ + -", "filter": ". _ + -"}
_NAME_MAX = 1_000  # sample names and variant ids
_ID_MAX = 100_000  # a variant id holds its alleles, which can be long
_REGION = re.compile(r"(?P<chrom>.+?)(?::(?P<start>[\d,_]+(?:\.\d+)?[kKmM]?)(?:-(?P<end>[\d,_]+(?:\.\d+)?[kKmM]?))?)?")


class NotFound(VcfAgentError):
    """A variant, sample or contig the stores do not hold (HTTP 404)."""


class BadQuery(VcfAgentError):
    """A malformed argument: a bad region, an out-of-range number, an unknown term (HTTP 400)."""


class StoreMissing(VcfAgentError):
    """A store folder or manifest is missing or unreadable (HTTP 503)."""


# ---------------------------------------------------------------- arguments


def _plain_text(value: str, what: str, max_length: int = _NAME_MAX) -> str:
    if not isinstance(value, str) or not value:
        raise BadQuery(f"{what}: empty")
    if len(value) > max_length:
        raise BadQuery(f"{what}: longer than {max_length} characters")
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise BadQuery(f"{what}: control characters are not allowed")
    return value


def _matching(value: str | None, pattern: re.Pattern, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise BadQuery(f"{what} {value!r}: not a valid {what} (letters, digits and {_ALLOWED[what]} only)")
    return value


def _coordinate(text: str, what: str) -> int:
    """'1,234', '1_234', '1.5M', '20k' -> int (Decimal: 16.1M is exactly 16,100,000)."""
    cleaned = text.replace(",", "").replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(cleaned[-1:].lower(), 1)
    try:
        value = Decimal(cleaned[:-1] if scale != 1 else cleaned) * scale
    except InvalidOperation:
        raise BadQuery(f"region: {what} {text!r} is not a number") from None
    if value != value.to_integral_value() or value < 1 or value > MAX_POSITION:
        raise BadQuery(f"region: {what} {text!r} must be a whole position from 1 to {MAX_POSITION}")
    return int(value)


@dataclass(frozen=True)
class Region:
    """Contig and 1-based inclusive range; `end` None = to the end of the contig."""

    chrom: str
    start: int = 1
    end: int | None = None

    def __post_init__(self) -> None:
        _plain_text(self.chrom, "region contig")
        if self.start < 1 or (self.end is not None and self.end < self.start):
            raise BadQuery(f"region {self}: the start must be >= 1 and not after the end")

    @classmethod
    def parse(cls, text: str) -> Region:
        """`chrom`, `chrom:pos`, `chrom:start-end` (commas, `k`/`M` suffixes allowed).

        A contig name may itself hold ':' (HLA-A*01:01:01:01): only a numeric
        tail after the last ':' is read as the range.
        """
        text = _plain_text(text.strip() if isinstance(text, str) else text, "region")
        match = _REGION.fullmatch(text)
        if match is None or match["chrom"].endswith(":"):
            raise BadQuery(f"region {text!r}: expected chrom, chrom:pos or chrom:start-end")
        if match["start"] is None:
            return cls(match["chrom"])
        start = _coordinate(match["start"], "start")
        end = _coordinate(match["end"], "end") if match["end"] is not None else start
        if end < start:
            raise BadQuery(f"region {text!r}: the end is before the start")
        return cls(match["chrom"], start, end)

    def __str__(self) -> str:
        if self.start == 1 and self.end is None:
            return self.chrom
        return f"{self.chrom}:{self.start}-{self.end if self.end is not None else ''}"


@dataclass(frozen=True)
class Filters:
    """Structured filters shared by every operation (None = no condition)."""

    region: Region | None = None
    #: gene symbol of the variant's most severe annotation
    gene: str | None = None
    #: one SO term, e.g. missense_variant (matches when it is one of the variant's terms)
    consequence: str | None = None
    #: FILTER value: PASS, or one filter name (matches when it is one of the record's filters)
    filter: str | None = None
    af_min: float | None = None
    af_max: float | None = None
    variant_class: str | None = None
    #: only variants this sample carries (an ALT allele in its genotype)
    carried_by: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.region, str):
            object.__setattr__(self, "region", Region.parse(self.region))
        _matching(self.gene, _GENE, "gene")
        _matching(self.consequence, _TERM, "consequence")
        _matching(self.filter, _TERM, "filter")
        for name in ("af_min", "af_max"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                    raise BadQuery(f"{name}: {value!r} is not a number")
                if not 0.0 <= value <= 1.0:
                    raise BadQuery(f"{name}: {value} is outside 0-1")
                object.__setattr__(self, name, float(value))
        if self.af_min is not None and self.af_max is not None and self.af_min > self.af_max:
            raise BadQuery(f"af_min {self.af_min} is above af_max {self.af_max}")
        if self.variant_class is not None and self.variant_class not in VARIANT_CLASSES:
            raise BadQuery(f"variant_class {self.variant_class!r}: use one of {', '.join(VARIANT_CLASSES)}")
        if self.carried_by is not None:
            _plain_text(self.carried_by, "sample")

    @property
    def needs_af(self) -> bool:
        return self.af_min is not None or self.af_max is not None

    def without(self, *names: str) -> Filters:
        return Filters(**{f.name: (None if f.name in names else getattr(self, f.name)) for f in fields(self)})

    def describe(self) -> dict[str, Any]:
        return {name: str(value) if isinstance(value, Region) else value for name, value in _items(self)}


def _items(filters: Filters) -> Iterator[tuple[str, Any]]:
    for f in fields(filters):
        value = getattr(filters, f.name)
        if value is not None:
            yield f.name, value


NO_FILTERS = Filters()


def _limit(limit: int, what: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"{what}: {limit!r} must be a whole number from 1 to {MAX_LIMIT}")
    return limit


# ---------------------------------------------------------------- results


@dataclass
class Counts:
    """Carriers of a variant (or variants of a sample) by zygosity."""

    carriers: int = 0
    het: int = 0
    hom_alt: int = 0
    #: one ALT copy in a haploid genotype (chrX in males, chrM, haploid callers)
    hemizygous: int = 0
    #: an ALT with a missing allele beside it (./1)
    partial: int = 0
    phased: int = 0


def zygosity(gt: str, alt_count: int, ploidy: int) -> str:
    """het, hom_alt, hemizygous or partial (./1) for a genotype that carries the ALT."""
    if ploidy <= 1:
        return "hemizygous"
    if alt_count >= ploidy:
        return "hom_alt"
    return "partial" if "." in gt else "het"


def _tally(counts: Counts, gt: str, alt_count: int, ploidy: int, phased: bool, n: int = 1) -> None:
    kind = zygosity(gt, alt_count, ploidy)
    setattr(counts, kind, getattr(counts, kind) + n)
    counts.carriers += n
    counts.phased += n if phased else 0


def counted(groups: Iterable[dict]) -> Counts:
    """Counts from genotype groups (missing, alt_count, ploidy, phased, n) of a Kuzu aggregate."""
    counts = Counts()
    for g in groups:
        _tally(counts, "." if g["missing"] else "", g["alt_count"], g["ploidy"], g["phased"], g["n"])
    return counts


@dataclass
class Carrier:
    sample: str
    gt: str
    phased: bool
    zygosity: str
    alt_count: int
    ploidy: int
    dp: int | None
    gq: int | None
    source: str | None


@dataclass
class Annotation:
    gene: str
    consequence: str | None
    impact: str | None
    feature_id: str | None
    hgvs_c: str | None
    hgvs_p: str | None
    source: str | None


@dataclass
class VariantRecord:
    """One variant: its columns, INFO values, annotations, files and carriers."""

    variant_id: str
    source: str
    chrom: str
    pos: int
    end: int
    ref: str
    alt: str
    id: str | None
    qual: float | None
    filter: str | None
    variant_class: str
    gene: str | None
    consequence: str | None
    impact: str | None
    text: str | None
    info: dict[str, Any]
    files: list[str]
    annotations: list[Annotation]
    counts: Counts
    carriers: list[Carrier]
    #: True when `carriers` was cut at the requested limit (counts are always complete)
    carriers_truncated: bool = False


@dataclass
class Hit:
    """A vector-search hit with its graph context."""

    variant_id: str
    chrom: str
    pos: int
    ref: str
    alt: str
    variant_class: str
    gene: str | None
    consequence: str | None
    impact: str | None
    filter: str | None
    af: float | None
    text: str | None
    #: cosine distance to the query (0 = same direction)
    distance: float
    similarity: float
    carriers: int
    #: the first carriers by sample name (at most the requested number)
    carrier_samples: list[str]
    #: genes of all annotations of the variant (IN_GENE)
    genes: list[str]


@dataclass
class SampleResult:
    sample: str
    files: list[str]
    filters: dict[str, Any]
    #: variants matching the filters, by zygosity (complete, whatever the limit)
    counts: Counts
    #: the first `limit` of them in contig/position order, with the sample's genotype
    variants: pa.Table
    truncated: bool


@dataclass
class SharedResult:
    samples: list[str]
    filters: dict[str, Any]
    #: variants carried by every one of the samples
    total: int
    #: the first `limit` of them; column `genotypes` holds each sample's GT in `samples` order
    variants: pa.Table
    truncated: bool


@dataclass
class RegionResult:
    region: str
    filters: dict[str, Any]
    total: int
    #: the first `limit` variants by position, with their carrier counts
    variants: pa.Table
    truncated: bool


@dataclass
class Contig:
    name: str
    variants: int
    first: int
    last: int


@dataclass
class Stats:
    results: str
    files: list[str]
    samples: int
    variants: int
    graph_variants: int
    genotypes: int
    genes: int
    contigs: list[Contig]
    model: str | None
    vector_dim: int
    lancedb_built: str | None
    kuzu_built: str | None
    indexes: list[str]
    info_columns: list[str]


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: dataclasses -> dicts, Arrow tables -> lists of rows, NaN -> null."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, pa.Table):
        return [to_jsonable(row) for row in value.to_pylist()]
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, bytes):
        return value.hex()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# ---------------------------------------------------------------- Kuzu


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


def lance_filter(filters: Filters, *, max_span: int = 0, af_column: str | None = AF_COLUMN):
    """The filters LanceDB can evaluate, as a typed expression (None when there are none).

    `max_span` is the longest variant of the store (end - pos): a region keeps the
    index-friendly `pos >= start - max_span` bound and also `end >= start`, so it
    returns the variants overlapping the region, as `bcftools view -r` does.
    """
    from lancedb.expr import col, func, lit

    parts = []
    if filters.region is not None:
        region = filters.region
        parts.append(col("chrom") == lit(region.chrom))
        if region.end is not None:
            parts.append(col("pos") <= lit(region.end))
        if region.start > 1:
            parts.append(col("pos") >= lit(max(1, region.start - max_span)))
            parts.append(col("end") >= lit(region.start))
    if filters.gene is not None:
        parts.append(col("gene") == lit(filters.gene))
    if filters.consequence is not None:
        terms = func("concat", lit("&"), col("consequence"), lit("&"))
        parts.append(terms.contains(lit(f"&{filters.consequence}&")))
    if filters.filter is not None:
        names = func("concat", lit(";"), col("filter"), lit(";"))
        parts.append(names.contains(lit(f";{filters.filter};")))
    if filters.variant_class is not None:
        parts.append(col("variant_class") == lit(filters.variant_class))
    if filters.needs_af:
        if af_column is None:
            raise BadQuery("af_min/af_max: the stores have no numeric info_AF column")
        if filters.af_min is not None:
            parts.append(col(af_column) >= lit(filters.af_min))
        if filters.af_max is not None:
            parts.append(col(af_column) <= lit(filters.af_max))
    expression = None
    for part in parts:
        expression = part if expression is None else expression & part
    return expression


# ---------------------------------------------------------------- LanceDB


class _LanceTable:
    """The variants table through LanceDB's async API, on one background event loop.

    LanceDB's sync API hops to its own loop two to six times per query (schema and
    blob-column checks, then the batches), about 0.5 ms each; here a query is one
    hop. Any number of threads may call these methods at once.
    """

    def __init__(self, path: Path, manifest_indexes: Sequence[dict] = ()) -> None:
        import lancedb

        self.path = path
        self.manifest_indexes = list(manifest_indexes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lancedb-queries", daemon=True)
        self._thread.start()
        try:
            self._table = self._run(self._open(lancedb, path))
        except Exception as error:
            self.close()
            raise StoreMissing(f"{path}: cannot open table {TABLE_NAME!r} ({error})") from error
        self.schema: pa.Schema = self._run(self._table.schema())
        #: rows (the store is read-only)
        self.rows: int = self._run(self._table.count_rows())
        self.indexes = self._run(self._table.list_indices())
        #: IVF partitions of the ANN index (0: no index, searches are exact)
        self.partitions = self._partitions()

    def _partitions(self) -> int:
        """From the manifest's index parameters (LanceDB's index statistics do not report them)."""
        if not any(LANCE_VECTOR in i.columns and i.index_type.upper().startswith("IVF") for i in self.indexes):
            return 0
        for entry in self.manifest_indexes:
            if entry.get("column") == LANCE_VECTOR and entry.get("num_partitions"):
                return int(entry["num_partitions"])
        return DEFAULT_PARTITIONS

    @staticmethod
    async def _open(lancedb, path: Path):
        return await (await lancedb.connect_async(str(path))).open_table(TABLE_NAME)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def rows_where(self, where, columns: Sequence[str], limit: int, order_by: Sequence[str] = ()) -> pa.Table:
        async def run() -> pa.Table:
            from lancedb.query import ColumnOrdering

            query = self._table.query().where(where).select(list(columns)).limit(limit)
            if order_by:
                query = query.order_by([ColumnOrdering(column_name=name) for name in order_by])
            return await query.to_arrow()

        return self._run(run())

    def nearest(self, vector: np.ndarray, where, columns: Sequence[str], limit: int, prefilter: bool) -> pa.Table:
        """Top `limit` rows by cosine distance.

        With an ANN index: first the nearest PROBE_SHARE of the IVF partitions, re-ranked with
        the full vectors; when fewer than `limit` rows of those pass the filters, again over
        as many partitions as LanceDB's default search takes.
        """

        async def run(probes: int | None) -> pa.Table:
            query = self._table.query().nearest_to(vector).distance_type("cosine")
            if where is not None:
                query = query.where(where)
                if not prefilter:
                    query = query.postfilter()
            if self.partitions:
                query = query.refine_factor(REFINE_FACTOR)
                if probes:
                    query = query.nprobes(probes)
            return await query.select(list(columns)).limit(limit).to_arrow()

        if not self.partitions:
            return self._run(run(None))
        result = self._run(run(max(1, math.ceil(self.partitions * PROBE_SHARE))))
        return result if result.num_rows >= limit else self._run(run(None))

    def count(self, where=None) -> int:
        if where is None:
            return self.rows
        # rendered by LanceDB's own unparser from the typed expression (values quoted by it)
        return self._run(self._table.count_rows(where.to_sql()))

    def close(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


# ---------------------------------------------------------------- the stores


class Stores:
    """Both stores, opened once; every operation of the CLI and the HTTP API."""

    def __init__(self, results: Path, lance: _LanceTable, graph: _GraphPool, manifests: dict[str, dict]) -> None:
        self.results = results
        self.lance = lance
        self.graph = graph
        self.manifests = manifests
        self.schema: pa.Schema = lance.schema
        self.columns = set(self.schema.names)
        self.af_column = AF_COLUMN if self._numeric(AF_COLUMN) else None
        self.row_columns = [c for c in CORE_ROW_COLUMNS if c in self.columns]
        self.vector_dim = self._vector_dim()
        self._contigs = self._load_contigs()
        self.max_span = self._longest_variant()
        self._sample_names: list[str] | None = None
        self._edges: int | None = None
        carries = {r["name"] for r in self.graph.query("CALL table_info('CARRIES') RETURN name")}
        self._genotypes_all = _genotypes_of(carries)
        files = self.graph.query("MATCH (f:File) RETURN f.name AS name")
        #: graphs of one VCF leave CARRIES.source out: it is that VCF
        self._only_file = files[0]["name"] if len(files) == 1 and "source" not in carries else None
        self._has_genes = bool(self.graph.query("MATCH (g:Gene) RETURN count(*) AS n")[0]["n"])
        self._model_lock = threading.Lock()
        self._encoder = None
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._stats: Stats | None = None
        self.model_override: str | Path | None = None
        self.device = "cpu"

    # ------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        results: Path | str = "results",
        *,
        model: str | Path | None = None,
        device: str = "cpu",
        graph_handles: int = GRAPH_HANDLES,
        graph_buffer_mb: int | None = None,
    ) -> Stores:
        """Open `results/lancedb` and `results/kuzu` read-only.

        `model`: the local model folder when the stores were embedded with another
        model than the default. `graph_handles`: Kuzu queries that may run at once
        (each handle has its own buffer pool, of at most `graph_buffer_mb`).
        """
        os.environ.setdefault("LANCEDB_LOG", "error")
        results = Path(results)
        lance_dir, graph_path = results / LANCE_DIR, results / KUZU_GRAPH
        for path, target in ((lance_dir, LANCE_MANIFEST), (graph_path, KUZU_MANIFEST)):
            if not path.exists():
                raise StoreMissing(f"{path}: no store here; build it with `snakemake results/{target}`")
        manifests = {name: _manifest(results / name) for name in (LANCE_MANIFEST, KUZU_MANIFEST)}
        holds = _hold_builds(results)
        try:
            lance = _LanceTable(holds[0].path, manifests[LANCE_MANIFEST].get("indexes") or ())
            try:
                graph = _GraphPool(holds[1].path, graph_handles, graph_buffer_mb)
            except BaseException:
                lance.close()
                raise
            try:
                stores = cls(results, lance, graph, manifests)
            except BaseException:
                graph.close()
                lance.close()
                raise
        except BaseException:
            for hold in holds:
                hold.release()
            raise
        stores.model_override, stores.device = model, device
        stores._holds = holds
        #: the build folders opened (LanceDB, Kuzu): a load publishes new ones, these stay as they are
        stores.builds = tuple(hold.name for hold in holds)
        return stores

    def close(self) -> None:
        self.graph.close()
        self.lance.close()
        for hold in getattr(self, "_holds", ()):
            hold.release()  # the next load may remove these builds now

    @property
    def table(self):
        """The LanceDB table (sync API) for queries of your own."""
        import lancedb

        return lancedb.connect(self.lance.path).open_table(TABLE_NAME)

    def complete(self) -> bool:
        """True when the manifests read at opening describe the builds opened (see complete_builds)."""
        return one_release([self.manifests[LANCE_MANIFEST], self.manifests[KUZU_MANIFEST]], self.builds)

    def share_model(self, other: Stores) -> None:
        """Use `other`'s loaded query model and query vectors when both hold vectors of the same model."""
        same = (other.model_override, other.manifests[LANCE_MANIFEST].get("model"), other.vector_dim) == (
            self.model_override, self.manifests[LANCE_MANIFEST].get("model"), self.vector_dim
        )  # fmt: skip
        if same and other._encoder is not None:
            self._encoder, self._model_lock = other._encoder, other._model_lock
            self._query_vectors, self._cache_lock = other._query_vectors, other._cache_lock

    def rebuilt(self) -> bool:
        """True when a load has published another build since these stores were opened (they keep
        answering from the builds they opened; reopen to see the new ones)."""
        return published_builds(self.results) != self.builds

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _numeric(self, name: str) -> bool:
        return name in self.columns and (
            pa.types.is_floating(self.schema.field(name).type) or pa.types.is_integer(self.schema.field(name).type)
        )

    def _vector_dim(self) -> int:
        kind = self.schema.field("vector").type if "vector" in self.columns else None
        return kind.list_size if isinstance(kind, pa.FixedSizeListType) else DEFAULT_VECTOR_DIM

    def _load_contigs(self) -> dict[str, Contig]:
        rows = self.graph.query(
            "MATCH (v:Variant) RETURN v.chrom AS chrom, count(*) AS n, min(v.pos) AS first, max(v.`end`) AS last"
        )
        contigs = [Contig(r["chrom"], r["n"], r["first"], r["last"]) for r in rows]
        return {c.name: c for c in sorted(contigs, key=lambda c: _natural_key(c.name))}

    def _longest_variant(self) -> int:
        rows = self.graph.query("MATCH (v:Variant) RETURN max(v.`end` - v.pos) AS span")
        return int(rows[0]["span"] or 0) if rows else 0

    def warm(self, threads: int = 1) -> None:
        """Load what queries would otherwise load on first use: the model, the indexes, the node
        and rel columns; with `threads` > 1 also run a burst of each operation on that many
        threads, so that their working memory is taken too. The server calls this before it
        accepts requests: its first users do not wait and its memory does not grow under load."""
        from lancedb.expr import col, lit

        self.stats()
        names = self.sample_names()
        for cypher in _WARM_CYPHER:
            self.graph.query(cypher)
        for name in ("variant_id", "pos", "chrom", "gene", "consequence"):
            if name in self.columns:
                self.lance.count(col(name) >= lit(0 if name == "pos" else ""))
        self.search("warm-up", limit=1)
        if threads > 1 and names:
            step = max(1, self.lance.rows // (2 * threads))
            ids = [r["id"] for r in self.graph.query(_SPREAD_IDS, {"step": step, "n": 2 * threads})]
            calls = [partial(self.variant, vid, carriers=20) for vid in ids]
            calls += [partial(self.similar, vid, limit=10) for vid in ids[::2]]
            calls += [partial(self.sample, names[i * len(names) // len(ids)], limit=20) for i in range(len(ids))]
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda call: call(), calls))

    # ------------------------------------------------------------ checks against the stores

    def check(self, filters: Filters | None) -> Filters:
        """Validate the filters against what the stores hold (contigs, samples, AF column)."""
        filters = filters or NO_FILTERS
        if filters.region is not None and filters.region.chrom not in self._contigs:
            _refuse_unknown_contig(filters.region.chrom, self._contigs)
        if filters.needs_af and self.af_column is None:
            raise BadQuery("af_min/af_max: the stores have no numeric info_AF column")
        if filters.carried_by is not None:
            self._require_sample(filters.carried_by)
        return filters

    def _require_sample(self, sample: str) -> str:
        sample = _plain_text(sample, "sample")
        rows = self.graph.query("MATCH (s:Sample {id: $id}) RETURN s.id AS id", {"id": sample})
        if not rows:
            raise NotFound(f"unknown sample {sample!r}")
        return sample

    # ------------------------------------------------------------ embeddings

    def embed(self, text: str) -> np.ndarray:
        """The query vector of `text` (same model and normalisation as the variants), cached."""
        text = _plain_text(text, "search text", 10_000)
        with self._cache_lock:
            vector = self._query_vectors.get(text)
            if vector is not None:
                self._query_vectors.move_to_end(text)
                return vector
        from vcf_agent.embedding.embed import embed_texts

        with self._model_lock:  # one forward pass at a time: torch already uses every core
            vector = embed_texts([text], loaded=self._model())[0]
        vector.setflags(write=False)
        with self._cache_lock:
            self._query_vectors[text] = vector
            while len(self._query_vectors) > QUERY_CACHE_SIZE:
                self._query_vectors.popitem(last=False)
        return vector

    def _model(self):
        """The embedding model, loaded on the first search (only searches need it)."""
        if self._encoder is None:
            from vcf_agent.embedding.embed import load_model, model_id

            self._check_model(model_id(self.model_override))
            encoder = load_model(self.model_override, self.device)
            if encoder.get_embedding_dimension() != self.vector_dim:
                raise BadQuery(
                    f"the query model makes {encoder.get_embedding_dimension()}-d vectors,"
                    f" the stores hold {self.vector_dim}-d ones"
                )
            self._encoder = encoder
        return self._encoder

    def _check_model(self, have: str) -> None:
        """The query model must be the one the variants were embedded with (same files: same digest)."""
        wanted = self.manifests[LANCE_MANIFEST].get("model")
        if isinstance(wanted, list):
            raise BadQuery(f"the stores mix vectors of several models ({', '.join(wanted)}); rebuild with one")
        if wanted and _model_digest(wanted) != _model_digest(have):
            raise BadQuery(
                f"the stores were embedded with {wanted}, the query model is {have}; pass the store's model (--model)"
            )

    # ------------------------------------------------------------ vector search

    def search(
        self,
        text: str,
        filters: Filters | None = None,
        *,
        limit: int = 10,
        prefilter: bool = True,
        carriers: int = 10,
        hints: bool = True,
    ) -> list[Hit]:
        """Variants whose description is nearest to `text`, with their carriers and genes.

        `hints`: words of the text that name a filter ("rare", "missense", "failed filter", ...)
        become filters where `filters` sets none; the variants that pass them come first, and
        the nearest others fill the page (vcf_agent.query.hints; docs/search-quality.md).
        """
        filters, limit = self.check(filters), _limit(limit)
        vector = self.embed(text)
        if hints:  # filter hints (issue 14): vcf_agent.query.hints
            from vcf_agent.query.hints import hinted

            narrowed = hinted(self, text, filters)
            first = self._nearest(vector, narrowed, limit, prefilter, carriers, exclude=None)
            if narrowed == filters or len(first) == limit:
                return first
            seen = {hit.variant_id for hit in first}
            rest = [
                h for h in self._nearest(vector, filters, limit, prefilter, carriers, None) if h.variant_id not in seen
            ]
            return first + rest[: limit - len(first)]
        return self._nearest(vector, filters, limit, prefilter, carriers, exclude=None)

    def similar(
        self,
        variant_id: str,
        filters: Filters | None = None,
        *,
        limit: int = 10,
        prefilter: bool = True,
        carriers: int = 10,
    ) -> list[Hit]:
        """The nearest neighbours of a stored variant (itself excluded)."""
        filters, limit = self.check(filters), _limit(limit)
        row = self._rows_by_id([variant_id], ["variant_id", "vector"])
        if row.num_rows == 0:
            variant_id = self._resolve_one(variant_id)
            row = self._rows_by_id([variant_id], ["variant_id", "vector"])
        vector = np.asarray(row.column("vector")[0].values.to_numpy(zero_copy_only=False), dtype=np.float32)
        return self._nearest(vector, filters, limit, prefilter, carriers, exclude=variant_id)

    def _nearest(
        self, vector: np.ndarray, filters: Filters, limit: int, prefilter: bool, carriers: int, exclude: str | None
    ) -> list[Hit]:
        from lancedb.expr import col

        expression = lance_filter(filters.without("carried_by"), max_span=self.max_span, af_column=self.af_column)
        allowed: set[str] | None = None
        if filters.carried_by is not None:
            ids = self._carried_ids(filters)
            if not ids:
                return []
            if len(ids) <= PREFILTER_IN_MAX:
                expression = _and(expression, col("variant_id").isin(sorted(ids)))
            else:
                allowed = ids
        table = self._vector_query(vector, expression, limit, prefilter, allowed, exclude)
        return self._hits(table, _limit(carriers, "carriers") if carriers else 0)

    def _vector_query(
        self, vector, expression, limit: int, prefilter: bool, allowed: set[str] | None, exclude: str | None
    ) -> pa.Table:
        """Top `limit` rows other than `exclude`; with `allowed`, fetch more until `limit` of them are allowed.

        `exclude` (the variant of `similar`) is dropped here rather than in the filter:
        `variant_id != x` would turn every search into a filtered one (a scan of the ids).
        """
        columns = [*self.row_columns, *([self.af_column] if self.af_column else []), "text", "_distance"]
        fetch = (limit if allowed is None else limit * 8) + (exclude is not None)
        total = max(self.lance.rows, 1)
        while True:
            result = self.lance.nearest(vector, expression, columns, min(fetch, total), prefilter)
            ids = result.column("variant_id").to_pylist()
            keep = [vid != exclude and (allowed is None or vid in allowed) for vid in ids]
            kept = result.filter(pa.array(keep, pa.bool_())) if not all(keep) else result
            if kept.num_rows >= limit or result.num_rows < fetch or fetch >= total:
                return kept.slice(0, limit)
            fetch *= 4

    def _carried_ids(self, filters: Filters) -> set[str]:
        conditions, params = graph_conditions(filters.without("carried_by", "af_min", "af_max"))
        rows = self.graph.query(
            f"MATCH (s:Sample)-[:CARRIES]->(v:Variant) {_where(['s.id = $sample', *conditions])}"
            " RETURN v.variant_id AS id",
            {**params, "sample": filters.carried_by},
        )
        return {row["id"] for row in rows}

    def _hits(self, table: pa.Table, carriers: int) -> list[Hit]:
        ids = table.column("variant_id").to_pylist()
        context = self._graph_context(ids, carriers)
        af = table.column(self.af_column).to_pylist() if self.af_column else [None] * table.num_rows
        hits = []
        for row, value in zip(table.select([*self.row_columns, "text", "_distance"]).to_pylist(), af, strict=True):
            count, samples, genes = context.get(row["variant_id"], (0, [], []))
            distance = float(row["_distance"])
            hits.append(
                Hit(
                    variant_id=row["variant_id"], chrom=row["chrom"], pos=row["pos"], ref=row["ref"],
                    alt=row["alt"], variant_class=row["variant_class"], gene=row.get("gene"),
                    consequence=row.get("consequence"), impact=row.get("impact"), filter=row.get("filter"),
                    af=value, text=row.get("text"), distance=distance, similarity=1.0 - distance,
                    carriers=count, carrier_samples=samples, genes=genes,
                )
            )  # fmt: skip
        return hits

    def _graph_context(self, ids: list[str], carriers: int) -> dict[str, tuple[int, list[str], list[str]]]:
        """variant_id -> (carrier count, first carriers in sample order, annotated genes).

        A few hits: one primary-key query each (~2 ms). Many hits (a `limit` in the
        thousands): one join of their ids, once it costs less than their key look-ups
        (`_per_variant`: the join reads every CARRIES edge). Carriers come back
        as Sample node offsets (reading their names for ~2,000 carriers costs more than
        the whole look-up) and are named from `sample_names`.
        """
        names = self.sample_names()
        rows = self._per_variant(ids, _CARRIERS_OF, _CARRIERS_OF_ALL, first=max(carriers, 1))
        genes = self._per_variant(ids, _GENES_OF, _GENES_OF_ALL) if self._has_genes else {}
        context = {}
        for vid in ids:
            row = rows.get(vid) or {"n": 0, "first": []}
            carried = [names[offset] for offset in (row["first"] or [])[:carriers]]
            context[vid] = (row["n"], carried, sorted((genes.get(vid) or {}).get("genes") or []))
        return context

    def _per_variant(self, ids: list[str], one: str, all_of: str, **params) -> dict[str, dict]:
        """variant_id -> the row of query `one` for it ($id), or of `all_of` for them all ($ids) when that pays.

        A variant that `all_of` finds nothing for has no entry.
        """
        if len(ids) * KEY_LOOKUP_SECONDS > self._carries_edges() * JOIN_SECONDS_PER_EDGE:
            return {row["id"]: row for row in self.graph.query(all_of, {"ids": ids, **params})}
        return {vid: self.graph.query(one, {"id": vid, **params})[0] for vid in ids}

    def _carries_edges(self) -> int:
        if self._edges is None:
            self._edges = self.graph.query("MATCH ()-[c:CARRIES]->() RETURN count(c) AS n")[0]["n"]
        return self._edges

    def sample_names(self) -> list[str]:
        """Every sample name, indexed by its Sample node offset (node order = VCF header order)."""
        if self._sample_names is None:
            rows = self.graph.query("MATCH (s:Sample) RETURN offset(id(s)) AS o, s.id AS id")
            names = [""] * len(rows)
            for row in rows:
                names[row["o"]] = row["id"]
            self._sample_names = names
        return self._sample_names

    # ------------------------------------------------------------ one variant

    def variant(self, variant_id: str, *, carriers: int | None = None) -> VariantRecord:
        """The record, its INFO values, annotations, files and carriers (all, or the first `carriers`)."""
        variant_id = _plain_text(variant_id, "variant id", _ID_MAX)
        if carriers is not None:
            _limit(carriers, "carriers")
        columns = [name for name in self.schema.names if name != "vector"]
        table = self._rows_by_id([variant_id], columns)
        if table.num_rows == 0:
            variant_id = self._resolve_one(variant_id)
            table = self._rows_by_id([variant_id], columns)
        row = table.slice(0, 1).to_pylist()[0]
        counts, found = self._carriers_of(variant_id, carriers)
        info = {name: row.pop(name) for name in list(row) if name.startswith("info_")}
        core = {f.name: row.get(f.name) for f in fields(VariantRecord) if f.name in row}
        return VariantRecord(
            **core,
            info={name: value for name, value in info.items() if value is not None},
            files=[r["name"] for r in self.graph.query(_FILES_OF, {"id": variant_id})],
            annotations=[Annotation(**a) for a in self.graph.query(_ANNOTATIONS_OF, {"id": variant_id})],
            counts=counts,
            carriers=found,
            carriers_truncated=counts.carriers > len(found),
        )

    def _carriers_of(self, variant_id: str, first: int | None = None) -> tuple[Counts, list[Carrier]]:
        """Zygosity counts (one aggregate query) and the carriers in sample order (all, or the first ones)."""
        counts = counted(self.graph.query(_ZYGOSITY_OF, {"id": variant_id}))
        if first is None:
            table = self.graph.query_arrow(self._genotypes_all, {"id": variant_id})
        else:
            table = self.graph.query_arrow(self._genotypes_all + " LIMIT $first", {"id": variant_id, "first": first})
        names = self.sample_names()
        columns = {name: table.column(name).to_pylist() for name in table.column_names}
        carriers = [
            Carrier(names[o], gt, phased, zygosity(gt, alt, ploidy), alt, ploidy, dp, gq, source or self._only_file)
            for o, gt, phased, alt, ploidy, dp, gq, source in zip(
                *(columns[name] for name in ("o", "gt", "phased", "alt_count", "ploidy", "dp", "gq", "source")),
                strict=True,
            )
        ]
        return counts, carriers

    def _rows_by_id(self, ids: Sequence[str], columns: Sequence[str]) -> pa.Table:
        from lancedb.expr import col, lit

        parts = []
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = [_plain_text(vid, "variant id", _ID_MAX) for vid in ids[start : start + LOOKUP_CHUNK]]
            where = col("variant_id") == lit(chunk[0]) if len(chunk) == 1 else col("variant_id").isin(chunk)
            parts.append(self.lance.rows_where(where, columns, len(chunk)))
        return pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})

    # ------------------------------------------------------------ samples

    def sample(self, sample: str, filters: Filters | None = None, *, limit: int = 100) -> SampleResult:
        """The variants `sample` carries (matching the filters), with its zygosity counts."""
        sample = self._require_sample(sample)
        filters, limit = self.check(filters), _limit(limit)
        conditions, params = graph_conditions(filters.without("carried_by", "af_min", "af_max"))
        params["sample"] = sample
        match = "MATCH (s:Sample)-[c:CARRIES]->(v:Variant)"
        extra = ["s.id = $sample"]
        if filters.carried_by is not None and filters.carried_by != sample:
            match += ", (o:Sample)-[:CARRIES]->(v)"
            extra.append("o.id = $other")
            params["other"] = filters.carried_by
        where = _where([*extra, *conditions])
        files = [
            r["name"]
            for r in self.graph.query(
                "MATCH (s:Sample {id: $sample})-[:SAMPLE_IN_FILE]->(f:File) RETURN f.name AS name ORDER BY name",
                {"sample": sample},
            )
        ]
        columns = _graph_row_columns(", c.gt AS gt, c.phased AS phased, c.alt_count AS alt_count, c.ploidy AS ploidy")
        if filters.needs_af:
            rows = self.graph.query(f"{match} {where} RETURN {columns} ORDER BY v.chrom, v.pos, v.variant_id", params)
            rows = self._with_af(rows, filters)
            counts = Counts()
            for r in rows:
                _tally(counts, r["gt"], r["alt_count"], r["ploidy"], r["phased"])
            page = rows[:limit]
        else:
            counts = counted(self.graph.query(f"{match} {where} RETURN {_ZYGOSITY_GROUPS}", params))
            page = self.graph.query(
                f"{match} {where} RETURN {columns} ORDER BY v.chrom, v.pos, v.variant_id LIMIT $limit",
                {**params, "limit": limit},
            )
            page = self._with_af(page, None)
        for r in page:
            r["zygosity"] = zygosity(r["gt"], r["alt_count"], r["ploidy"])
        return SampleResult(
            sample=sample,
            files=files,
            filters=filters.describe(),
            counts=counts,
            variants=self._row_table(page, ("gt", "phased", "zygosity")),
            truncated=counts.carriers > len(page),
        )

    def shared(self, samples: Sequence[str], filters: Filters | None = None, *, limit: int = 100) -> SharedResult:
        """Variants carried by every one of `samples` (two or more)."""
        names = list(dict.fromkeys(samples))
        if len(names) < 2:
            raise BadQuery("shared: give at least two different samples")
        if len(names) > 100:
            raise BadQuery("shared: at most 100 samples")
        for name in names:
            self._require_sample(name)
        filters, limit = self.check(filters), _limit(limit)
        conditions, params = graph_conditions(filters.without("carried_by", "af_min", "af_max"))
        wanted = [*names, *([filters.carried_by] if filters.carried_by and filters.carried_by not in names else [])]
        params.update(samples=wanted, n=len(wanted))
        # Kuzu 0.11.3 aborts the process on collect() after a grouping WITH, so the genotypes
        # of the page come from a second query.
        base = (
            f"MATCH (s:Sample)-[:CARRIES]->(v:Variant) {_where(['s.id IN $samples', *conditions])}"
            " WITH v, count(DISTINCT s.id) AS k WHERE k = $n"
        )
        columns = _graph_row_columns()
        if filters.needs_af:
            rows = self._with_af(self.graph.query(f"{base} RETURN {columns} ORDER BY v.chrom, v.pos", params), filters)
            total, page = len(rows), rows[:limit]
        else:
            total = self.graph.query(f"{base} RETURN count(*) AS n", params)[0]["n"]
            ordered = f"{base} RETURN {columns} ORDER BY v.chrom, v.pos LIMIT $limit"
            page = self._with_af(self.graph.query(ordered, {**params, "limit": limit}), None)
        genotypes = self._genotypes([r["variant_id"] for r in page], names)
        for r in page:
            r["genotypes"] = [genotypes.get((r["variant_id"], name)) for name in names]
        return SharedResult(
            samples=names,
            filters=filters.describe(),
            total=total,
            variants=self._row_table(page, ("genotypes",)),
            truncated=total > len(page),
        )

    def _genotypes(self, ids: list[str], samples: list[str]) -> dict[tuple[str, str], str]:
        """(variant_id, sample) -> GT for the given variants and samples (one key look-up per variant)."""
        found = {}
        for vid in ids:
            for row in self.graph.query(_GENOTYPES_OF, {"id": vid, "samples": samples}):
                found[(vid, row["sample"])] = row["gt"]
        return found

    def _with_af(self, rows: list[dict], filters: Filters | None) -> list[dict]:
        """Add `af` to graph rows (from LanceDB); with AF filters keep only the rows inside the range."""
        if self.af_column is None:
            for r in rows:
                r["af"] = None
            return rows
        af = {}
        if rows:
            table = self._rows_by_id([r["variant_id"] for r in rows], ["variant_id", self.af_column])
            af = dict(zip(*(table.column(name).to_pylist() for name in table.column_names), strict=True))
        kept = []
        for r in rows:
            r["af"] = af.get(r["variant_id"])
            if filters is None or _af_inside(r["af"], filters):
                kept.append(r)
        return kept

    # ------------------------------------------------------------ regions

    def region(self, region: Region | str, filters: Filters | None = None, *, limit: int = 100) -> RegionResult:
        """Variants overlapping `region` (and matching the filters), by position, with carrier counts."""
        region = Region.parse(region) if isinstance(region, str) else region
        filters = self.check(replace(filters or NO_FILTERS, region=region))
        limit = _limit(limit)
        if filters.carried_by is not None:
            found = self.sample(filters.carried_by, filters.without("carried_by"), limit=limit)
            rows = found.variants.drop_columns(["gt", "phased", "zygosity"]).to_pylist()
            total = found.counts.carriers
        else:
            expression = lance_filter(filters, max_span=self.max_span, af_column=self.af_column)
            total = self.lance.count(expression)
            columns = [*self.row_columns, *([self.af_column] if self.af_column else [])]
            rows = self.lance.rows_where(expression, columns, limit, order_by=("pos", "variant_id")).to_pylist()
            for r in rows:
                r["af"] = r.pop(self.af_column) if self.af_column else None
        counts = self._carrier_counts([r["variant_id"] for r in rows])
        for r in rows:
            r["carriers"] = counts.get(r["variant_id"], 0)
        return RegionResult(
            region=str(region),
            filters=filters.without("region").describe(),
            total=total,
            variants=self._row_table(rows, ("carriers",)),
            truncated=total > len(rows),
        )

    def _carrier_counts(self, ids: list[str]) -> dict[str, int]:
        rows = self._per_variant(ids, _CARRIER_COUNT_OF, _CARRIER_COUNTS_OF_ALL)
        return {vid: row["n"] for vid, row in rows.items()}

    # ------------------------------------------------------------ stats

    def stats(self) -> Stats:
        """What the stores hold (computed once: the stores are read-only)."""
        if self._stats is None:
            one = lambda cypher: self.graph.query(cypher)[0]["n"]  # noqa: E731
            lance_manifest, kuzu_manifest = self.manifests[LANCE_MANIFEST], self.manifests[KUZU_MANIFEST]
            self._stats = Stats(
                results=str(self.results),
                files=[r["name"] for r in self.graph.query("MATCH (f:File) RETURN f.name AS name ORDER BY name")],
                samples=one("MATCH (s:Sample) RETURN count(*) AS n"),
                variants=self.lance.rows,
                graph_variants=one("MATCH (v:Variant) RETURN count(*) AS n"),
                genotypes=one("MATCH ()-[c:CARRIES]->() RETURN count(*) AS n"),
                genes=one("MATCH (g:Gene) RETURN count(*) AS n"),
                contigs=list(self._contigs.values()),
                model=lance_manifest.get("model"),
                vector_dim=self.vector_dim,
                lancedb_built=_built(lance_manifest),
                kuzu_built=_built(kuzu_manifest),
                indexes=sorted(f"{', '.join(i.columns)} ({i.index_type})" for i in self.lance.indexes),
                info_columns=sorted(name for name in self.columns if name.startswith("info_")),
            )
        return self._stats

    # ------------------------------------------------------------ helpers

    def _row_table(self, rows: list[dict], extra: Iterable[str]) -> pa.Table:
        names = [*self.row_columns, "af", *extra]
        if not rows:
            return pa.table({name: pa.array([], type=self._row_type(name)) for name in names})
        return pa.table({name: pa.array([r.get(name) for r in rows], type=self._row_type(name)) for name in names})

    def _row_type(self, name: str) -> pa.DataType:
        if name in self.row_columns:
            return self.schema.field(name).type
        return {
            "af": pa.float64(),
            "carriers": pa.int64(),
            "gt": pa.string(),
            "phased": pa.bool_(),
            "zygosity": pa.string(),
            "genotypes": pa.list_(pa.string()),
        }[name]

    # ------------------------------------------------------------ finding your way (vcf_agent.query.listing)

    def resolve_variant(self, text: str) -> list[str]:
        """The stored variant ids `text` names: an id, an rsID (all its split records), 20-1000341-C-A, ..."""
        from vcf_agent.query.listing import resolve_variant

        return resolve_variant(self, _plain_text(text, "variant id", _ID_MAX))

    def _resolve_one(self, text: str) -> str:
        """The one stored id `text` names (NotFound when none; BadQuery naming them when several)."""
        found = self.resolve_variant(text)
        if not found:
            raise NotFound(f"unknown variant {text!r}")
        if len(found) > 1:
            raise BadQuery(f"{text} names {len(found)} split records: {', '.join(found)}; give one of them")
        return found[0]

    def list_samples(self):
        """Every sample (header order) with the variants it carries and its files."""
        return self._listed("samples")

    def list_genes(self):
        """Every gene symbol with its variants (most severe annotation, as the gene filter) and contigs."""
        return self._listed("genes")

    def list_contigs(self) -> list[Contig]:
        return self._listed("contigs")

    def list_files(self):
        """Every input VCF with its path, samples and variants."""
        return self._listed("files")

    def listing(self, what: str) -> list:
        """list_samples/genes/contigs/files by name (`vcf-agent list WHAT`, GET /list/WHAT)."""
        from vcf_agent.query.listing import LISTINGS

        if what not in LISTINGS:
            raise BadQuery(f"list {what!r}: use one of {', '.join(LISTINGS)}")
        return self._listed(what)

    def _listed(self, what: str) -> list:
        from vcf_agent.query import listing

        cache = self.__dict__.setdefault("_listings", {})
        if what not in cache:
            cache[what] = getattr(listing, f"list_{what}")(self)
        return cache[what]

    def ask(self, question: str, *, llm: str | None = None, llm_model: str = "local", limit: int | None = None):
        """Answer a question in plain words with calls of these operations (vcf_agent.ask.planner.Answer)."""
        from vcf_agent.ask.planner import ask

        return ask(self, question, llm=llm, llm_model=llm_model, limit=limit)


def _graph_row_columns(extra: str = "") -> str:
    return (
        "v.variant_id AS variant_id, v.chrom AS chrom, v.pos AS pos, v.`end` AS `end`, v.ref AS ref, v.alt AS alt,"
        " v.variant_class AS variant_class, v.gene AS gene, v.consequence AS consequence, v.impact AS impact,"
        f" v.filter AS filter{extra}"
    )


def _af_inside(value: float | None, filters: Filters) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return (filters.af_min is None or value >= filters.af_min) and (filters.af_max is None or value <= filters.af_max)


def _and(left, right):
    return right if left is None else left & right


def _manifest(path: Path) -> dict:
    if not path.exists():
        raise StoreMissing(f"{path}: missing; the store was not built completely (re-run snakemake {path.name})")
    try:
        data = read_json(path)
    except (OSError, ValueError) as error:
        raise StoreMissing(f"{path}: unreadable manifest ({error})") from error
    return data if isinstance(data, dict) else {}


def _hold_builds(results: Path) -> tuple[BuildHold, BuildHold]:
    """Hold the builds results/lancedb and results/kuzu point at (stores.hold_build)."""
    from vcf_agent.stores.build import hold_build  # not at the top: it imports DuckDB

    held: list[BuildHold] = []
    try:
        for name in (LANCE_DIR, KUZU_DIR):
            held.append(hold_build(results / name))
    except VcfAgentError as error:
        for hold in held:
            hold.release()
        raise StoreMissing(str(error)) from error
    return held[0], held[1]


def published_builds(results: Path | str) -> tuple[str, str]:
    """The names of the build folders results/lancedb and results/kuzu point at now."""
    return tuple(Path(os.path.realpath(Path(results) / name)).name for name in (LANCE_DIR, KUZU_DIR))


def complete_builds(results: Path | str) -> tuple[str, str] | None:
    """The published builds once they make one complete release, else None.

    Complete: each manifest names the build its symlink points at (a load swaps the
    link, then writes the manifest), both were built from the same variant shards
    (their `variants_digest`), so a server never pairs a new LanceDB table with the
    graph of the previous variants, and no load of either store is under way.
    """
    from vcf_agent.stores.build import load_in_progress  # not at the top: it imports DuckDB

    results = Path(results)
    if any(load_in_progress(results / name) for name in (LANCE_DIR, KUZU_DIR)):
        return None
    builds = published_builds(results)
    try:
        manifests = [read_json(results / name) for name in (LANCE_MANIFEST, KUZU_MANIFEST)]
    except (OSError, ValueError):
        return None
    return builds if one_release(manifests, builds) else None


def one_release(manifests: Sequence[object], builds: Sequence[str]) -> bool:
    """True when the manifests (LanceDB, Kuzu) describe these builds, made from the same variants."""
    if not all(isinstance(m, dict) for m in manifests):
        return False
    if any(m.get("build", build) != build for m, build in zip(manifests, builds, strict=True)):
        return False
    return manifests[0].get("variants_digest") == manifests[1].get("variants_digest")


def _built(manifest: dict) -> str | None:
    for key in ("built", "build_time", "built_at", "created"):
        if manifest.get(key):
            return str(manifest[key])
    return None


def _model_digest(model_id: str) -> str:
    """'all-MiniLM-L6-v2-0123456789abcdef' -> '0123456789abcdef' (embed.model_id: digest of the files)."""
    return str(model_id).rsplit("-", 1)[-1]


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _refuse_unknown_contig(chrom: str, contigs: dict[str, Contig]) -> None:
    """A region whose contig the stores lack: a malformed range (chr1:abc) or a contig they do not hold."""
    if ":" in chrom:
        # Region.parse reads only a numeric tail as the range (contig names may hold ':').
        contig, tail = chrom.rsplit(":", 1)
        raise BadQuery(
            f"region {chrom!r}: malformed: {tail!r} is not a position and the stores hold no contig {chrom!r};"
            f" use chrom, chrom:pos or chrom:start-end, e.g. {contig}:10000-20000, {contig}:1.5M-2M or {contig}:20k"
        )
    raise NotFound(f"unknown contig {chrom!r}; the stores hold {_listing(contigs)}")


def _listing(contigs: dict[str, Contig], most: int = 10) -> str:
    names = list(contigs)
    if not names:
        return "no variants"
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


__all__ = [
    "Annotation",
    "BadQuery",
    "Carrier",
    "Counts",
    "Filters",
    "Hit",
    "NotFound",
    "Region",
    "RegionResult",
    "SampleResult",
    "SharedResult",
    "Stats",
    "StoreMissing",
    "Stores",
    "VariantRecord",
    "to_jsonable",
    "zygosity",
]
