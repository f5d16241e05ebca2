"""The LanceDB side of the queries: typed filter expressions and the variants table on one event loop."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from vcf_agent.query.filters import AF_COLUMN, BadQuery, Filters, StoreMissing
from vcf_agent.schema import LANCE_TABLE, LANCE_VECTOR_COLUMN

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
):
    """The filters LanceDB can evaluate, as a typed expression (None when there are none).

    `max_span` is the longest variant of the store (end - pos): a region keeps the
    index-friendly `pos >= start - max_span` bound and also `end >= start`, so it
    returns the variants overlapping the region, as `bcftools view -r` does.
    `held`: the distinct values the store holds of the multi-valued columns (consequence
    terms joined by '&', FILTER names by ';'; vcf_agent.stores.kuzu's index vocabulary): a
    term then becomes `column IN (the values holding it)`, which their BITMAP index answers
    (1 ms against 60 ms for the substring test over 1,000,000 rows).
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
