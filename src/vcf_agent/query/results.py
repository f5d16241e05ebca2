"""What the query operations return: carriers, variant records, hits, sample/shared/region results, stats."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np
import pyarrow as pa

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
