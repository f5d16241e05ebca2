"""Questions to the two stores: the Python API behind the CLI and the HTTP server.

The modules: filters.py (the arguments every query takes), results.py (what it returns),
graph.py (Kuzu side), vectors.py (LanceDB side), stores.py (`Stores`, every operation),
listing.py (what the stores hold, ids in any spelling). Names are re-exported here on first
use, so ``from vcf_agent.query import Filters`` does not import LanceDB or Kuzu.

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

import importlib

#: Where each re-exported name lives (loaded on first use: PEP 562).
_HOMES = {
    "filters": (
        "AF_COLUMN", "BadQuery", "CORE_ROW_COLUMNS", "Filters", "MAX_LIMIT", "MAX_POSITION", "NO_FILTERS",
        "NotFound", "Region", "StoreMissing", "VARIANT_CLASSES", "_plain_text", "one_line",
    ),
    "results": (
        "Annotation", "Carrier", "Contig", "Counts", "Hit", "RegionResult", "SampleResult", "SharedResult",
        "Stats", "VariantRecord", "VariantRow", "SampleRow", "SharedRow", "RegionRow", "counted", "to_jsonable",
        "zygosity",
    ),
    "stores": (
        "KUZU_DIR", "KUZU_GRAPH", "KUZU_MANIFEST", "LANCE_DIR", "LANCE_MANIFEST", "Stores", "complete_builds",
    ),
    "graph": ("GRAPH_HANDLES", "OPEN_PARTITIONS", "graph_conditions"),
    "vectors": ("PREFILTER_IN_MAX", "TABLE_NAME", "lance_filter"),
}  # fmt: skip
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str):
    if name in _HOME_OF:
        return getattr(importlib.import_module(f"{__name__}.{_HOME_OF[name]}"), name)
    if name in {"listing", "filters", "results", "stores", "graph", "vectors", "hints"}:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
