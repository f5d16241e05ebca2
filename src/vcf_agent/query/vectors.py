"""The LanceDB side of the queries: typed filter expressions and the variants table on one event loop."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from vcf_agent.query.filters import AF_COLUMN, BadQuery, Filters, StoreMissing
from vcf_agent.schema import LANCE_TABLE, LANCE_VECTOR_COLUMN, is_number

log = logging.getLogger("vcf_agent")

TABLE_NAME = LANCE_TABLE
#: A carried-by filter whose sample carries at most this many matching variants is applied
#: in LanceDB as `variant_id IN (...)` before the search; larger sets are checked after it.
PREFILTER_IN_MAX = 2_000
#: Ids per LanceDB `variant_id IN (...)` look-up.
LOOKUP_CHUNK = 2_000
LANCE_VECTOR = LANCE_VECTOR_COLUMN
#: An ANN search fetches this many times `limit` candidates by their compressed (PQ) codes and
#: re-ranks them with the full vectors, searching first this share of the IVF partitions (all of
#: them again when too few rows there pass the filters). Measured recall@10 against an exact
#: search (index bypassed), 100 queries, on 154,000 distinct vectors in 400 clusters
#: (tests/test_lance_incremental.py, 8-9 partitions), after an append of 14,000 rows (kept out of the
#: index, searched exhaustively) / after a full rebuild: share 1/8 and refine 5 (the settings before)
#: 0.45 / 0.43; 1/4 and 20: 0.85 / 0.85; 1/2 and 20: 0.88 / 0.86; 1/2 and 50: 0.96 / 0.99; all
#: partitions and 50: 1.00 / 1.00. Median latency of one query on the rebuilt table (2 busy cores):
#: 7.8 ms with 1/8 and 5, 14.9 ms with 1/2 and 50, 16.2 ms with all and 50. On real descriptions,
#: whose vectors repeat (a tie at the 10th distance counts as found), 1/8 and 5 already gave 0.98-1.00.
REFINE_FACTOR = 50
PROBE_SHARE = 1 / 2
#: A filter that most rows pass is checked after the ANN search instead of before it: LanceDB's
#: prefiltered search over 1.1 M rows took 37-76 ms for `filter = PASS` (98 % pass) and `AF <= 0.001`
#: (79 %), its post-filtered one 12-14 ms (benchmarks/out/scale-1, 2026-12-04). The share passing is
#: estimated on SAMPLE_ROWS evenly spaced rows (~2 ms a filter); from POSTFILTER_MIN_SHARE the
#: search fetches POSTFILTER_MARGIN x limit / share rows and keeps those passing; too few passing:
#: searched again, prefiltered. It re-ranks POSTFILTER_REFINE times the candidates of a prefiltered
#: search: with as many, recall@10 of `filter = PASS` (90 % pass) fell from 0.985-1.00 to 0.92-0.935;
#: with 1.5 times 0.98-0.99, twice 0.985-1.00 (tests/test_lance_incremental.py, 36,000 rows).
POSTFILTER_MIN_SHARE = 0.5
POSTFILTER_MARGIN = 2.0
POSTFILTER_REFINE = 2
SAMPLE_ROWS = 16_384
#: A filter at most this many rows pass (estimated) is an exact search over them: over 1,150 rows
#: 13.9 ms against 17.2 ms for the ANN search, over 262 rows 8.2 against 14.8, over 1,884 rows 19.8
#: against 15.3 (the same store); exact, where the ANN search can miss rows of partitions it skips.
FLAT_MAX_ROWS = 1_000
#: An AF range more rows pass (estimated) is a scan of the column, not a look-up in its B-tree:
#: `AF <= 0.001` (79 % of the rows) with missense prefiltered took 34 ms through the index, 20 ms
#: as a scan; `AF >= 0.05` (7.6 %) 24 ms through the index, 40 ms as a scan (the same store).
AF_INDEX_MAX_SHARE = 0.25
#: The columns `lance_filter` writes conditions on (with the AF column where there is one).
FILTER_COLUMNS = ("chrom", "pos", "end", "gene", "consequence", "filter", "variant_class", "variant_id")
#: Bytes of Lance's index and metadata caches (its defaults: 6 GiB and 1 GiB, filled as queries
#: touch the ANN, B-tree and bitmap indexes): a server holds at most this much of the table's
#: indexes whatever the table's size.
INDEX_CACHE_MB = 128
METADATA_CACHE_MB = 32
#: Partitions assumed when the manifest does not say (LanceDB's default for 1,000,000 rows is ~1,000).
DEFAULT_PARTITIONS = 256
#: Kuzu queries that may run at once (handles in the pool). Each handle is a database of its own


def lance_filter(
    filters: Filters,
    *,
    max_span: int = 0,
    af_column: str | None = AF_COLUMN,
    held: Mapping[str, Sequence[str]] | None = None,
    af_scan: bool = False,
):
    """The filters LanceDB can evaluate, as a typed expression (None when there are none).

    `max_span` is the longest variant of the store (end - pos): a region keeps the
    index-friendly `pos >= start - max_span` bound and also `end >= start`, so it
    returns the variants overlapping the region, as `bcftools view -r` does.
    `held`: the distinct values the store holds of the multi-valued columns (consequence
    terms joined by '&', FILTER names by ';'; vcf_agent.stores.kuzu's index vocabulary): a
    term then becomes `column IN (the values holding it)`, which their BITMAP index answers
    (1 ms against 60 ms for the substring test over 1,000,000 rows). `af_scan`: the AF bounds
    written so that LanceDB scans the column instead of asking its index (`_LanceTable.af_scan`).
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
    for column, value, separator in (("consequence", filters.consequence, "&"), ("filter", filters.filter, ";")):
        if value is None:
            continue
        if held is not None and f"{column}_values" in held:
            holding = [v for v in held[f"{column}_values"] if value in v.split(separator)]
            parts.append(col(column).isin(holding) if holding else lit(False))
        else:
            joined = func("concat", lit(separator), col(column), lit(separator))
            parts.append(joined.contains(lit(f"{separator}{value}{separator}")))
    if filters.variant_class is not None:
        parts.append(col("variant_class") == lit(filters.variant_class))
    if filters.needs_af:
        if af_column is None:
            raise BadQuery("af_min/af_max: the stores have no numeric info_AF column")
        af = col(af_column) + lit(0.0) if af_scan else col(af_column)  # an expression no index answers
        if filters.af_min is not None:
            parts.append(af >= lit(filters.af_min))
        if filters.af_max is not None:
            parts.append(af <= lit(filters.af_max))
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
        #: SAMPLE_ROWS evenly spaced rows of the filter columns (share_passing), read on first use
        self._sample, self._sample_rows = None, 0
        self._sample_af: np.ndarray | None = None  # their AF values (NaN where null)
        self.af_indexed = any(list(i.columns) == [AF_COLUMN] for i in self.indexes)
        self._sample_lock = threading.Lock()

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
        session = lancedb.Session(index_cache_size_bytes=INDEX_CACHE_MB << 20,
                                  metadata_cache_size_bytes=METADATA_CACHE_MB << 20)  # fmt: skip
        return await (await lancedb.connect_async(str(path), session=session)).open_table(TABLE_NAME)

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
        """Top `limit` rows by cosine distance, searched as `plan` says.

        With an ANN index: first the nearest PROBE_SHARE of the IVF partitions, re-ranked with
        the full vectors; when fewer than `limit` rows of those pass the filters, again over
        as many partitions as LanceDB's default search takes. A filter few rows pass is an
        exact search over them; one most rows pass is checked after the search first, and
        before it only if too few pass.
        """

        async def run(probes: int | None, after: bool = not prefilter, fetch: int = limit, refine: int = REFINE_FACTOR):
            query = self._table.query().nearest_to(vector).distance_type("cosine")
            if where is not None:
                query = query.where(where)
                if after:
                    query = query.postfilter()
            if probes == 0:
                query = query.bypass_vector_index()
            elif self.partitions:
                query = query.refine_factor(refine)
                if probes:
                    query = query.nprobes(probes)
            return await query.select(list(columns)).limit(fetch).to_arrow()

        plan, share = self.plan(where, prefilter)
        if plan in ("exact", "flat"):
            return self._run(run(0 if plan == "flat" else None))
        probes = max(1, math.ceil(self.partitions * PROBE_SHARE))
        if plan == "postfilter":
            fetch = min(self.rows, math.ceil(POSTFILTER_MARGIN * limit / share))
            refine = math.ceil(REFINE_FACTOR * POSTFILTER_REFINE * limit / fetch)
            result = self._run(run(probes, after=True, fetch=fetch, refine=refine))
            if result.num_rows >= limit:
                return result.slice(0, limit)
        result = self._run(run(probes))
        return result if result.num_rows >= limit else self._run(run(None))

    def plan(self, where, prefilter: bool = True) -> tuple[str, float | None]:
        """How a search with `where` runs, and the estimated share of rows passing it: "exact" (no
        ANN index: a scan of the rows that pass), "flat" (an exact search over the few rows that
        pass, FLAT_MAX_ROWS), "postfilter" (most rows pass, POSTFILTER_MIN_SHARE) or "ann" (the
        ANN search, filtered before it unless the caller asked for after)."""
        if not self.partitions:
            return "exact", None
        if where is None or not prefilter:
            return "ann", None  # unfiltered, or filtered after the search as the caller asked
        share = self.share_passing(where)
        if share is None:
            return "ann", None
        if share * self.rows <= FLAT_MAX_ROWS:
            return "flat", share
        return ("postfilter" if share >= POSTFILTER_MIN_SHARE else "ann"), share

    def share_passing(self, where) -> float | None:
        """The estimated share of the rows passing `where`, from SAMPLE_ROWS evenly spaced rows
        (None where it cannot be estimated: the search is then prefiltered, as without it)."""
        sample = self._filter_sample()
        if sample is None:
            return None
        try:
            return self._run(sample.count_rows(where.to_sql())) / max(1, self._sample_rows)
        except Exception:  # a column the sample lacks
            return None

    def af_scan(self, af_min: float | None, af_max: float | None) -> bool:
        """Whether an AF range is better scanned than looked up in the column's index
        (AF_INDEX_MAX_SHARE of the sample's rows or more within it)."""
        if not self.af_indexed or self._filter_sample() is None or self._sample_af is None:
            return False
        within = np.ones(len(self._sample_af), dtype=bool)
        if af_min is not None:
            within &= self._sample_af >= af_min
        if af_max is not None:
            within &= self._sample_af <= af_max
        return float(within.mean()) >= AF_INDEX_MAX_SHARE

    def _filter_sample(self):
        """The sample as an in-memory LanceDB table (None where it cannot be read: an empty table)."""
        with self._sample_lock:
            if self._sample is None:
                try:
                    self._sample = self._run(self._read_sample()) if self.rows else False
                except Exception as error:  # searches go on unestimated
                    log.warning("%s: no sample of the filter columns (%s)", self.path, error)
                    self._sample = False
            return self._sample or None

    async def _read_sample(self):
        import lancedb

        columns = [c for c in (*FILTER_COLUMNS, AF_COLUMN) if c in self.schema.names]
        offsets = np.linspace(0, self.rows - 1, min(self.rows, SAMPLE_ROWS)).astype(np.int64)
        rows = await self._table.take_offsets(np.unique(offsets).tolist()).select(columns).to_arrow()
        self._sample_rows = rows.num_rows
        if AF_COLUMN in rows.column_names and is_number(rows.schema.field(AF_COLUMN).type):
            af = rows.column(AF_COLUMN).cast(pa.float64())
            self._sample_af = af.to_numpy(zero_copy_only=False).astype(np.float64)
        memory = await lancedb.connect_async("memory://")
        return await memory.create_table("sample", rows)

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
