"""`Stores`: both stores opened once, and every operation of the CLI and the HTTP API."""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from vcf_agent.errors import VcfAgentError
from vcf_agent.files import read_json
from vcf_agent.query.filters import (
    _ID_MAX,
    AF_COLUMN,
    CORE_ROW_COLUMNS,
    MAX_POSITION,
    NO_FILTERS,
    BadQuery,
    Filters,
    NotFound,
    Region,
    StoreMissing,
    _limit,
    _plain_text,
)
from vcf_agent.query.graph import (
    _ANNOTATIONS_OF,
    _CARRIER_COUNT_OF,
    _CARRIER_COUNTS_OF_ALL,
    _CARRIERS_OF,
    _CARRIERS_OF_ALL,
    _FILES_OF,
    _GENES_OF,
    _GENES_OF_ALL,
    _GENOTYPES_OF,
    _ROW_OF,
    _SAMPLE_ROW_OF,
    _SPREAD_IDS,
    _WARM_CYPHER,
    _ZYGOSITY_GROUPS,
    _ZYGOSITY_OF,
    CARRIER_PROPERTIES,
    GENOTYPE_ROW_COLUMNS,
    GRAPH_HANDLES,
    JOIN_SECONDS_PER_EDGE,
    KEY_LOOKUP_SECONDS,
    OPEN_PARTITIONS,
    READ_VARIANT_INDEX,
    ROW_COLUMNS,
    _genotypes_of,
    _GraphPool,
    _where,
    graph_conditions,
)
from vcf_agent.query.results import (
    Annotation,
    Carrier,
    Contig,
    Counts,
    Hit,
    RegionResult,
    SampleResult,
    SharedResult,
    Stats,
    VariantRecord,
    counted,
    tally,
    tally_carriers,
    zygosity,
)
from vcf_agent.query.vectors import LOOKUP_CHUNK, PREFILTER_IN_MAX, TABLE_NAME, _LanceTable, lance_filter
from vcf_agent.schema import DEFAULT_VECTOR_DIM, is_number

if TYPE_CHECKING:  # Kuzu itself is imported only when a graph is opened
    from vcf_agent.stores.build import BuildHold

LANCE_DIR = "lancedb"
KUZU_DIR = "kuzu"
#: the graph store's index of its partitions (vcf_agent.stores.kuzu)
KUZU_GRAPH = Path(KUZU_DIR) / "partitions.json"
LANCE_MANIFEST = "lancedb.json"
KUZU_MANIFEST = "kuzu.json"

#: Query embeddings remembered (text -> vector).
QUERY_CACHE_SIZE = 1_024
#: Partitions whose node and rel columns the warm-up reads whole (a scan costs a partition
#: ~35 MiB of buffer pool: the others take only what their queries read).
WARM_PARTITIONS = 2
#: `shared` of at most this many samples joins one pattern per sample (and reads their
#: genotypes in the same query); more are grouped by variant instead.
JOINED_SAMPLES = 3
#: Threads one request's per-partition queries run on (Stores._fan_out): the cores of this VM.
FAN_OUT_THREADS = 2


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
        self._has_genes = self.graph.total("Gene") > 0
        self._model_lock = threading.Lock()
        self._encoder = None
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._stats: Stats | None = None
        self.model_override: str | Path | None = None
        self.device = "cpu"
        self._fan_out_pool: ThreadPoolExecutor | None = None
        self._fan_out_lock = threading.Lock()

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
        graph_threads: int | None = None,
        open_partitions: int = OPEN_PARTITIONS,
    ) -> Stores:
        """Open `results/lancedb` and `results/kuzu` read-only.

        `model`: the local model folder when the stores were embedded with another
        model than the default. `graph_handles`: Kuzu queries that may run at once
        (each handle has its own buffer pool, of at most `graph_buffer_mb`); `graph_threads`:
        the threads of one Kuzu query (None: every core); `open_partitions`: graph partitions
        kept open at once (vcf_agent.query.graph.OPEN_PARTITIONS).
        """
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
                graph = _GraphPool(
                    holds[1].path, graph_handles, graph_buffer_mb, max_open=open_partitions, threads=graph_threads
                )
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
        if self._fan_out_pool is not None:
            self._fan_out_pool.shutdown(wait=True)
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
        return name in self.columns and is_number(self.schema.field(name).type)

    def _vector_dim(self) -> int:
        kind = self.schema.field("vector").type if "vector" in self.columns else None
        return kind.list_size if isinstance(kind, pa.FixedSizeListType) else DEFAULT_VECTOR_DIM

    def _load_contigs(self) -> dict[str, Contig]:
        """From the graph's index: what each partition holds of each contig (its variants: the
        canonical nodes, each variant once over the layers)."""
        merged: dict[str, Contig] = {}
        for part in self.graph.partitions:
            for chrom, held in part["chroms"].items():
                known = merged.get(chrom)
                n, first, last = held.get("canonical", held["variants"]), held["first"], held["end"]
                if known is not None:
                    n, first, last = known.variants + n, min(known.first, first), max(known.last, last)
                merged[chrom] = Contig(chrom, n, first, last)
        held = [held for part in self.graph.partitions for held in part["chroms"].values()]
        if len(self.graph.layers) > 1 and any("canonical" not in h for h in held):
            from lancedb.expr import col, lit

            # an index without canonical nodes per contig counts a variant of k layers k times:
            # LanceDB holds each variant once
            for contig in merged.values():
                contig.variants = self.lance.count(col("chrom") == lit(contig.name))
        return {name: merged[name] for name in sorted(merged, key=_natural_key)}

    def _longest_variant(self) -> int:
        return max((held["span"] for part in self.graph.partitions for held in part["chroms"].values()), default=0)

    def warm(self, threads: int = 1) -> None:
        """Load what queries would otherwise load on first use: the model, the indexes, the node
        and rel columns; with `threads` > 1 also run a burst of each operation on that many
        threads, so that their working memory is taken too. The server calls this before it
        accepts requests: its first users do not wait and its memory does not grow under load."""
        from lancedb.expr import col, lit

        self.stats()
        names = self.sample_names()
        for part in range(min(len(self.graph.partitions), WARM_PARTITIONS)):
            for cypher in _WARM_CYPHER:
                self.graph.query(cypher, None, part)
        for name in ("variant_id", "pos", "chrom", "gene", "consequence"):
            if name in self.columns:
                self.lance.count(col(name) >= lit(0 if name == "pos" else ""))
        self.search("warm-up", limit=1)
        self.lance.plan(col("pos") >= lit(0))  # reads the sample that estimates a filter's rows (~0.15 s)
        if threads > 1 and names:
            step = max(1, self.lance.rows // (2 * threads))
            step = max(1, step // len(self.graph.partitions))
            ids = [r["id"] for r in self.graph.query(_SPREAD_IDS, {"step": step, "n": 2 * threads}, 0)]
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
        if sample not in self.graph.sample_layers:
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

        expression = self._lance_filter(filters.without("carried_by"))
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
        conditions, params = graph_conditions(filters.without("carried_by"))
        rows = self.graph.each(
            f"MATCH (s:Sample)-[:CARRIES]->(v:Variant) {_where(['s.id = $sample', *conditions])}"
            " RETURN v.variant_id AS id",
            {**params, "sample": filters.carried_by},
            self._parts_for(filters, self.graph.sample_layers[filters.carried_by]),
        )
        return {row["id"] for row in rows}

    def _lance_filter(self, filters: Filters):
        af_scan = filters.needs_af and self.af_column is not None and self.lance.af_scan(filters.af_min, filters.af_max)
        return lance_filter(
            filters, max_span=self.max_span, af_column=self.af_column, held=self.graph.vocabulary, af_scan=af_scan
        )

    def _parts_for(self, filters: Filters, layers: Sequence[int] | None = None) -> list[int]:
        """The partitions (of these layers, else of all) a query with these filters needs: a
        region's, else every one."""
        if filters.region is None:
            return self.graph.parts_of_layers(layers)
        end = filters.region.end if filters.region.end is not None else MAX_POSITION
        return self.graph.parts_of_region(filters.region.chrom, filters.region.start, end, layers)

    def _walk(self, cypher: str, params: dict, limit: int, filters: Filters, layers: Sequence[int]) -> list[dict]:
        """The first `limit` rows of `cypher` (ordered by v.chrom, v.pos, v.variant_id; its WHERE
        includes `v.chrom IN $walk_chroms`): each layer's partitions asked in that order until
        `limit` are found, the layers' rows merged in that order."""
        chrom = filters.region.chrom if filters.region is not None else None
        found: list[list[dict]] = []
        for steps in self.graph.walks(self._parts_for(filters, layers), chrom):
            rows: list[dict] = []
            for part, chroms in steps:
                if len(rows) >= limit:
                    break
                rows += self.graph.query(cypher, {**params, "walk_chroms": chroms, "limit": limit - len(rows)}, part)
            found.append(rows)
        if len(found) == 1:
            return found[0]
        return sorted((row for rows in found for row in rows), key=_row_order)[:limit]

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
        indexed = self._indexed_variants(ids, max(carriers, 1))
        if indexed is not None:
            rows, genes = self._indexed_context(indexed)
        else:
            rows = self._per_variant(ids, _CARRIERS_OF, _CARRIERS_OF_ALL, self._first_of(max(carriers, 1)))
            genes = self._per_variant(ids, _GENES_OF, _GENES_OF_ALL) if self._has_genes else {}
        context = {}
        for vid in ids:
            found = rows.get(vid, [])
            count = sum(row["n"] for _, row in found)
            carried = [names[i] for i in self._in_store_order(found)[:carriers]]
            annotated = {row["gene"] for _, row in genes.get(vid, [])}
            context[vid] = (count, carried, sorted(annotated))
        return context

    def _indexed_variants(self, ids: list[str], first: int) -> dict | None:
        """The partitions' variant indexes' entries of these variants (GraphPool.indexed_variants);
        None when a partition holding one has none, or with READ_VARIANT_INDEX off: ask the databases."""
        return self.graph.indexed_variants(ids, first) if READ_VARIANT_INDEX else None

    @staticmethod
    def _indexed_context(indexed: dict) -> tuple[dict, dict]:
        """`_per_variant`'s rows of the carriers (count n, first offsets) and genes of the variants
        found in the variant indexes."""
        rows: dict[str, list[tuple[int, dict]]] = {}
        genes: dict[str, list[tuple[int, dict]]] = {}
        for vid, found in indexed.items():
            rows[vid] = [(part, {"n": entry.carriers, "first": entry.first}) for part, entry in found]
            genes[vid] = [(part, {"gene": gene}) for part, entry in found for gene in entry.genes]
        return rows, genes

    def _first_of(self, first: int):
        """$first of a partition's carrier list: `first` where the layer's sample order is the store's,
        else all its samples (its first by offset need not be the first of the store)."""
        return lambda part: {
            "first": first if self.graph.layer(part).in_store_order else len(self.graph.layer(part).samples)
        }

    def _in_store_order(self, found: list[tuple[int, dict]]) -> list[int]:
        """The store-wide sample indexes of the carrier offsets (`first`) of each partition's row, in order."""
        indexes = [
            self.graph.layer(part).names_at[np.asarray(_or_empty(row["first"]), np.int64)] for part, row in found
        ]
        return sorted(int(i) for i in np.concatenate(indexes)) if indexes else []

    def _per_variant(self, ids: list[str], one: str, all_of: str, params_of=None) -> dict[str, list[tuple[int, dict]]]:
        """variant_id -> (partition, row) of each row of query `one` for it ($id), or of `all_of` for
        them all ($ids) when that pays, in each partition (one per layer) that may hold it;
        `params_of(partition)`: more parameters. A variant that a query finds no row for has no
        entry of that partition (an aggregating query gives one row per variant and partition).
        """

        def ask(group: tuple[int, list[str]]) -> list[tuple[str, dict]]:
            part, here = group
            params = params_of(part) if params_of else {}
            if len(here) * KEY_LOOKUP_SECONDS > self.graph.edges(part) * JOIN_SECONDS_PER_EDGE:
                return [(row["id"], row) for row in self.graph.query(all_of, {"ids": here, **params}, part)]
            return [(vid, row) for vid in here for row in self.graph.query(one, {"id": vid, **params}, part)]

        groups = list(self.graph.parts_of_ids(ids).items())  # each id asks its own partitions only
        found: dict[str, list[tuple[int, dict]]] = {}
        for (part, _), rows in zip(groups, self._fan_out(ask, groups), strict=True):
            for vid, row in rows:
                found.setdefault(vid, []).append((part, row))
        return found

    def _fan_out(self, call, items: list) -> list:
        """`call` of each item, the partitions' queries on FAN_OUT_THREADS threads: Kuzu runs a query
        outside the GIL and each partition has its own handles, so one request's queries over
        several partitions run side by side (search's hits lie in ~8 of the full-size store's 28)."""
        if len(items) < 2 or FAN_OUT_THREADS < 2:
            return [call(item) for item in items]
        return list(self._fan_out_executor().map(call, items))

    def _fan_out_executor(self) -> ThreadPoolExecutor:
        with self._fan_out_lock:
            if self._fan_out_pool is None:
                self._fan_out_pool = ThreadPoolExecutor(FAN_OUT_THREADS, thread_name_prefix="partition-query")
            return self._fan_out_pool

    def sample_names(self) -> list[str]:
        """Every sample name once, in config order (each VCF's header order, a sample at its first VCF)."""
        return self.graph.sample_names

    # ------------------------------------------------------------ one variant

    def variant(self, variant_id: str, *, carriers: int | None = None) -> VariantRecord:
        """The record, its INFO values, annotations, files and carriers (all, or the first `carriers`)."""
        variant_id = _plain_text(variant_id, "variant id", _ID_MAX)
        if carriers is not None:
            _limit(carriers, "carriers")
        columns = [name for name in self.schema.names if name != "vector"]
        # the partitions from the id itself, so that its carriers are read while LanceDB reads its row
        parts = self.graph.parts_of_id(variant_id)
        reading = self._fan_out_executor().submit(self._rows_by_id, [variant_id], columns) if parts else None
        graph = self._variant_graph(variant_id, carriers, parts) if parts else None
        table = reading.result() if reading is not None else self._rows_by_id([variant_id], columns)
        if table.num_rows == 0:  # another spelling (an rsID, chr1 for 1): resolved, then asked again
            variant_id, graph = self._resolve_one(variant_id), None
            table = self._rows_by_id([variant_id], columns)
        row = table.slice(0, 1).to_pylist()[0]
        if graph is None:
            graph = self._variant_graph(variant_id, carriers, self.graph.parts_at(row["chrom"], row["pos"]))
        counts, found, files, annotations = graph
        info = {name: row.pop(name) for name in list(row) if name.startswith("info_")}
        core = {name: row.get(name) for name in VariantRecord.model_fields if name in row}
        return VariantRecord(
            **core,
            info={name: value for name, value in info.items() if value is not None},
            files=files,
            annotations=[Annotation(**a) for a in annotations],
            counts=counts,
            carriers=found,
            carriers_truncated=counts.carriers > len(found),
        )

    def _variant_graph(
        self, variant_id: str, first: int | None, parts: Sequence[int]
    ) -> tuple[Counts, list[Carrier], list[str], list[dict]]:
        """A variant's zygosity counts, carriers (all, or the first ones), files and annotations,
        from the variant indexes of its partitions (no database opened), else from the databases."""
        records = self.graph.indexed_records(variant_id, parts, first) if READ_VARIANT_INDEX else None
        if records is None:
            counts, found = self._carriers_of(variant_id, first, parts)
            files = sorted({r["name"] for r in self.graph.each(_FILES_OF, {"id": variant_id}, parts)})
            # annotations are on the canonical node only (each once over the layers)
            return counts, found, files, self.graph.each(_ANNOTATIONS_OF, {"id": variant_id}, parts)
        counts, names = Counts(), self.sample_names()
        found: list[tuple[int, Carrier]] = []
        for part, record in records:
            for (gt, phased, alt, ploidy), n in record.kind_counts:
                tally(counts, gt, alt, ploidy, phased, n)
            source = self.graph.layer(part).source
            at = self.graph.layer(part).names_at[record.first].tolist()
            dp, gq = (values or [None] * len(at) for values in (record.dp, record.gq))
            for i, (gt, phased, alt, ploidy), depth, quality in zip(at, record.kinds, dp, gq, strict=True):
                kind = zygosity(gt, alt, ploidy)
                carrier = Carrier(
                    sample=names[i], gt=gt, phased=phased, zygosity=kind, alt_count=alt,
                    ploidy=ploidy, dp=depth, gq=quality, source=source,
                )  # fmt: skip
                found.append((i, carrier))
        found.sort(key=lambda pair: pair[0])
        carriers = [carrier for _, carrier in found]
        files = sorted({name for _, record in records for name in record.files})
        annotations = [note for _, record in records for note in record.annotations]
        return counts, carriers if first is None else carriers[:first], files, annotations

    def _carriers_of(
        self, variant_id: str, first: int | None = None, parts: Sequence[int] = ()
    ) -> tuple[Counts, list[Carrier]]:
        """Zygosity counts and the carriers in store sample order (all, or the first ones), from the
        partitions (one per layer) that may hold the variant. A partition's counts are tallied from its
        carriers where they all came back, else counted by one aggregate query."""
        counts = Counts()
        names = self.sample_names()
        found: list[tuple[int, Carrier]] = []
        for part in parts:
            layer = self.graph.layer(part)
            cypher, params = _genotypes_of(self.graph.carrier_properties(part)), {"id": variant_id}
            if first is not None and layer.in_store_order:
                cypher, params = cypher + " LIMIT $first", {"id": variant_id, "first": first}
            table = self.graph.query_arrow(cypher, params, part)
            cut_short = "first" in params and table.num_rows == first
            if cut_short:
                counted(self.graph.query(_ZYGOSITY_OF, {"id": variant_id}, part), counts)
            if table.num_rows == 0:
                continue
            at = layer.names_at[table.column("o").to_numpy()].tolist()
            columns = [table.column(name).to_pylist() for name in CARRIER_PROPERTIES]
            source = layer.source
            here = [
                (
                    i,
                    Carrier(
                        sample=names[i],
                        gt=gt,
                        phased=phased,
                        zygosity=zygosity(gt, alt, ploidy),
                        alt_count=alt,
                        ploidy=ploidy,
                        dp=dp,
                        gq=gq,
                        source=source,
                    ),
                )
                for i, gt, phased, alt, ploidy, dp, gq in zip(at, *columns, strict=True)
            ]
            if not cut_short:  # all its carriers came back: tallied here
                tally_carriers(counts, (carrier for _, carrier in here))
            found += here
        found.sort(key=lambda pair: pair[0])
        carriers = [carrier for _, carrier in found]
        return counts, carriers if first is None else carriers[:first]

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
        conditions, params = graph_conditions(filters.without("carried_by"))
        params["sample"] = sample
        layers = self.graph.sample_layers[sample]
        other = filters.carried_by if filters.carried_by not in (None, sample) else None
        if other is not None and self.graph.sample_layers[other] != layers:
            counts, page = self._sample_with_other(sample, other, filters, limit)
        else:
            counts, page = self._sample_in_its_layers(filters, conditions, params, other, limit)
        for r in page:
            r["zygosity"] = zygosity(r["gt"], r["alt_count"], r["ploidy"])
        return SampleResult(
            sample=sample,
            files=sorted(self.graph.layers[i].source for i in layers),
            filters=filters.describe(),
            counts=counts,
            variants=self._row_table(page, ("gt", "phased", "zygosity")),
            truncated=counts.carriers > len(page),
        )

    def _sample_in_its_layers(
        self, filters: Filters, conditions: list[str], params: dict, other: str | None, limit: int
    ) -> tuple[Counts, list[dict]]:
        """Counts and first page of a sample in the partitions of its layers; with `other`, a sample
        of the same layers, so that both genotypes of a variant are in one partition (the first VCF
        of those layers holding it)."""
        layers = self.graph.sample_layers[params["sample"]]
        match, extra = "MATCH (s:Sample)-[c:CARRIES]->(v:Variant)", ["s.id = $sample"]
        if other is not None:
            match += ", (o:Sample)-[:CARRIES]->(v)"
            extra.append("o.id = $other")
            params = {**params, "other": other}
        # Counts add up over the partitions the filters need (without filters, from the sample
        # indexes: no database opened); the page walks them in order.
        parts = self._parts_for(filters, layers)
        if not conditions and other is None and self.graph.indexed(parts):
            counts = Counts(**self.graph.indexed_counts(params["sample"], parts))
        else:
            grouped = f"{match} {_where([*extra, *conditions])} RETURN {_ZYGOSITY_GROUPS}"
            counts = counted(self.graph.each(grouped, params, parts))
        walked = _where([*extra, *conditions, "v.chrom IN $walk_chroms"])
        columns = _graph_row_columns(GENOTYPE_ROW_COLUMNS)
        ordered = f"{match} {walked} RETURN {columns} ORDER BY v.chrom, v.pos, v.variant_id LIMIT $limit"
        return counts, self._walk(ordered, params, limit, filters, layers)

    def _sample_with_other(self, sample: str, other: str, filters: Filters, limit: int) -> tuple[Counts, list[dict]]:
        """Counts and first page of the variants `sample` carries that `other`, a sample of other
        layers, carries too (their genotypes may be in different layers: joined by variant id)."""
        import pyarrow.compute as pc

        conditions, params = graph_conditions(filters.without("carried_by"))
        both = self._carried_by_all([sample, other], filters, conditions, params).column("id")
        where = _where(["s.id = $sample", *conditions])
        cypher = (
            f"MATCH (s:Sample)-[c:CARRIES]->(v:Variant) {where} RETURN v.variant_id AS id,"
            " c.gt CONTAINS '.' AS missing, c.alt_count AS alt_count, c.ploidy AS ploidy, c.phased AS phased"
        )
        parts = self._parts_for(filters, self.graph.sample_layers[sample])
        genotypes = _concat([self.graph.query_arrow(cypher, {**params, "sample": sample}, part) for part in parts])
        groups = []
        if genotypes is not None:
            kept = genotypes.filter(pc.is_in(genotypes.column("id"), value_set=both.combine_chunks()))
            keys = ["missing", "alt_count", "ploidy", "phased"]
            groups = kept.group_by(keys).aggregate([("id", "count")]).rename_columns([*keys, "n"]).to_pylist()
        page = []
        for vid in both.slice(0, limit).to_pylist():
            parts = [
                p for p in self.graph.parts_of_id(vid) if self.graph.layer_of[p] in self.graph.sample_layers[sample]
            ]
            page += self.graph.each(_SAMPLE_ROW_OF, {"id": vid, "sample": sample}, parts)
        return counted(groups), page

    def _carried_by_all(self, samples: list[str], filters: Filters, conditions: list[str], params: dict) -> pa.Table:
        """(id, chrom, pos) of the variants every one of `samples` carries, in the order of
        `ORDER BY v.chrom, v.pos, v.variant_id`, when their genotypes may be in different layers:
        each (sample, variant) genotype is in one layer only, so the carriers counted per
        partition add up to the carriers of each variant."""
        import pyarrow.compute as pc

        layers = sorted({i for name in samples for i in self.graph.sample_layers[name]})
        where = _where(["s.id IN $samples", *conditions])
        cypher = (
            f"MATCH (s:Sample)-[:CARRIES]->(v:Variant) {where}"
            " RETURN v.variant_id AS id, v.chrom AS chrom, v.pos AS pos, count(DISTINCT s.id) AS k"
        )
        params = {**params, "samples": samples}
        table = _concat([self.graph.query_arrow(cypher, params, part) for part in self._parts_for(filters, layers)])
        if table is None:
            return pa.table(
                {"id": pa.array([], pa.string()), "chrom": pa.array([], pa.string()), "pos": pa.array([], pa.int64())}
            )
        summed = table.group_by(["id", "chrom", "pos"]).aggregate([("k", "sum")])
        kept = summed.filter(pc.equal(summed.column("k_sum"), len(samples))).select(["id", "chrom", "pos"])
        return kept.sort_by([("chrom", "ascending"), ("pos", "ascending"), ("id", "ascending")])

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
        conditions, params = graph_conditions(filters.without("carried_by"))
        wanted = [*names, *([filters.carried_by] if filters.carried_by and filters.carried_by not in names else [])]
        layers = {tuple(self.graph.sample_layers[name]) for name in wanted}
        if len(layers) == 1:  # every genotype of a variant for these samples is in one partition
            total, page = self._shared_in_layers(wanted, list(layers.pop()), filters, conditions, params, limit)
        else:
            found = self._carried_by_all(wanted, filters, conditions, params)
            total, page = found.num_rows, self._rows_of(found.column("id").slice(0, limit).to_pylist())
        genotypes = self._genotypes([r["variant_id"] for r in page if "genotypes" not in r], names)
        for r in page:
            if "genotypes" not in r:
                r["genotypes"] = [genotypes.get((r["variant_id"], name)) for name in names]
            r["genotypes"] = r["genotypes"][: len(names)]  # not the carried_by sample's
        return SharedResult(
            samples=names,
            filters=filters.describe(),
            total=total,
            variants=self._row_table(page, ("genotypes",)),
            truncated=total > len(page),
        )

    def _shared_in_layers(
        self, wanted: list[str], layers: list[int], filters: Filters, conditions: list[str], params: dict, limit: int
    ) -> tuple[int, list[dict]]:
        """Total and first page of the variants every one of `wanted` (samples of the same layers) carries."""
        params = {**params, "samples": wanted, "n": len(wanted)}
        parts = self._parts_for(filters, layers)
        # Kuzu 0.11.3 aborts the process on collect() after a grouping WITH, so with many samples
        # the genotypes of the page come from a second query (`shared`).
        base = "MATCH (s:Sample)-[:CARRIES]->(v:Variant) {where} WITH v, count(DISTINCT s.id) AS k WHERE k = $n"
        if not conditions and self.graph.indexed(parts):
            total = self.graph.indexed_shared(wanted, parts)
        else:
            everywhere = base.format(where=_where(["s.id IN $samples", *conditions]))
            total = sum(row["n"] for row in self.graph.each(f"{everywhere} RETURN count(*) AS n", params, parts))
        if len(wanted) > JOINED_SAMPLES:
            walked = base.format(where=_where(["s.id IN $samples", *conditions, "v.chrom IN $walk_chroms"]))
            ordered = f"{walked} RETURN {_graph_row_columns()} ORDER BY v.chrom, v.pos, v.variant_id LIMIT $limit"
            return total, self._walk(ordered, params, limit, filters, layers)
        # A few samples: one pattern per sample, joined on the variant, which also reads their
        # genotypes (22 ms against 31 ms for the first 100 of two samples, 1 M variants).
        patterns = ", ".join(f"(s{i}:Sample)-[c{i}:CARRIES]->(v)" for i in range(len(wanted)))
        named = [f"s{i}.id = $s{i}" for i in range(len(wanted))]
        genotypes = ", ".join(f"c{i}.gt AS gt{i}" for i in range(len(wanted)))
        ordered = (
            f"MATCH (v:Variant), {patterns} {_where([*named, *conditions, 'v.chrom IN $walk_chroms'])}"
            f" RETURN {_graph_row_columns()}, {genotypes} ORDER BY v.chrom, v.pos, v.variant_id LIMIT $limit"
        )
        named_params = {key: value for key, value in params.items() if key not in ("samples", "n")}
        named_params.update({f"s{i}": name for i, name in enumerate(wanted)})
        page = self._walk(ordered, named_params, limit, filters, layers)
        for row in page:
            row["genotypes"] = [row.pop(f"gt{i}") for i in range(len(wanted))]
        return total, page

    def _rows_of(self, ids: list[str]) -> list[dict]:
        """The page rows of these variants (from any node of each: every layer's node has its properties)."""
        rows = []
        for vid in ids:
            for part in self.graph.parts_of_id(vid):
                found = self.graph.query(_ROW_OF, {"id": vid}, part)
                if found:
                    rows.append(found[0])
                    break
        return rows

    def _genotypes(self, ids: list[str], samples: list[str]) -> dict[tuple[str, str], str]:
        """(variant_id, sample) -> GT for the given variants and samples (one key look-up per variant
        and partition of the samples' layers that may hold it)."""
        layers = {i for name in samples for i in self.graph.sample_layers[name]}
        found = {}
        for part, here in self.graph.parts_of_ids(ids).items():
            if self.graph.layer_of[part] not in layers:
                continue
            for vid in here:
                for row in self.graph.query(_GENOTYPES_OF, {"id": vid, "samples": samples}, part):
                    found[(vid, row["sample"])] = row["gt"]
        return found

    # ------------------------------------------------------------ regions

    def region(self, region: Region | str, filters: Filters | None = None, *, limit: int = 100) -> RegionResult:
        """Variants overlapping `region` (and matching the filters), by position, with carrier counts."""
        region = Region.parse(region) if isinstance(region, str) else region
        filters = self.check((filters or NO_FILTERS).replace(region=region))
        limit = _limit(limit)
        if filters.carried_by is not None:
            found = self.sample(filters.carried_by, filters.without("carried_by"), limit=limit)
            rows = found.variants.drop_columns(["gt", "phased", "zygosity"]).to_pylist()
            total = found.counts.carriers
        else:
            expression = self._lance_filter(filters)
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
        """variant_id -> its carriers, added up over the layers (each genotype is in one)."""
        indexed = self._indexed_variants(ids, 0)
        if indexed is not None:
            return {vid: sum(entry.carriers for _, entry in entries) for vid, entries in indexed.items()}
        rows = self._per_variant(ids, _CARRIER_COUNT_OF, _CARRIER_COUNTS_OF_ALL)
        return {vid: sum(row["n"] for _, row in found) for vid, found in rows.items()}

    # ------------------------------------------------------------ stats

    def stats(self) -> Stats:
        """What the stores hold (computed once: the stores are read-only)."""
        if self._stats is None:
            lance_manifest, kuzu_manifest = self.manifests[LANCE_MANIFEST], self.manifests[KUZU_MANIFEST]
            self._stats = Stats(
                results=str(self.results),
                files=sorted(layer.source for layer in self.graph.layers),
                samples=len(self.graph.sample_names),
                variants=self.lance.rows,
                graph_variants=self.graph.total("Variant"),
                genotypes=self.graph.total("CARRIES"),
                genes=kuzu_manifest.get("counts", {}).get("Gene", 0),
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
    return ROW_COLUMNS + extra


def _row_order(row: dict) -> tuple:
    """The order of `ORDER BY v.chrom, v.pos, v.variant_id`."""
    return row["chrom"], row["pos"], row["variant_id"]


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    """The non-empty tables as one (None when all are empty)."""
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables, promote_options="default") if tables else None


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


def _or_empty(values):
    """A carrier list from Kuzu (a list, or None without carriers) or a variant index (an array)."""
    return [] if values is None else values
