"""What the query operations return: carriers, variant records, hits, sample/shared/region results, stats."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import fields, is_dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, Field, PlainSerializer, PlainValidator

from vcf_agent.vocabulary import IMPACTS, ZYGOSITIES, ZYGOSITY_MEANINGS, joined

# ---------------------------------------------------------------- results


class Result(BaseModel):
    """A result model; also built positionally, in field order (as the dataclasses were)."""

    def __init__(self, *values: Any, **named: Any) -> None:
        if values:
            named.update(zip(_field_names(type(self)), values, strict=False))
        super().__init__(**named)


@functools.cache
def _field_names(model: type[BaseModel]) -> tuple[str, ...]:
    # pydantic's model_fields is a computed property: reading it for each of a variant's ~2,000
    # carriers cost 4 ms of a 34 ms look-up
    return tuple(model.model_fields)


class Counts(Result):
    """Carriers of a variant (or variants of a sample) by zygosity (vocabulary.ZYGOSITIES)."""

    carriers: int = 0
    het: int = Field(0, description=ZYGOSITY_MEANINGS["het"])
    hom_alt: int = Field(0, description=ZYGOSITY_MEANINGS["hom_alt"])
    hemizygous: int = Field(0, description=ZYGOSITY_MEANINGS["hemizygous"])
    partial: int = Field(0, description=ZYGOSITY_MEANINGS["partial"])
    phased: int = 0


def zygosity(gt: str, alt_count: int, ploidy: int) -> str:
    """het, hom_alt, hemizygous or partial (./1) for a genotype that carries the ALT."""
    if ploidy <= 1:
        return "hemizygous"
    if alt_count >= ploidy:
        return "hom_alt"
    return "partial" if "." in gt else "het"


def tally(counts: Counts, gt: str, alt_count: int, ploidy: int, phased: bool, n: int = 1) -> None:
    _add(counts, zygosity(gt, alt_count, ploidy), n, n if phased else 0)


def tally_carriers(counts: Counts, carriers: Iterable[Carrier]) -> None:
    """`tally` of each carrier, grouped first: a field set on a model costs ~1 us, and a common
    variant has thousands of carriers but at most eight (zygosity, phased) groups."""
    groups: dict[tuple[str, bool], int] = {}
    for carrier in carriers:
        key = (carrier.zygosity, carrier.phased)
        groups[key] = groups.get(key, 0) + 1
    for (kind, phased), n in groups.items():
        _add(counts, kind, n, n if phased else 0)


def _add(counts: Counts, kind: str, n: int, phased: int) -> None:
    setattr(counts, kind, getattr(counts, kind) + n)
    counts.carriers += n
    counts.phased += phased


def counted(groups: Iterable[dict], counts: Counts | None = None) -> Counts:
    """Counts from genotype groups (missing, alt_count, ploidy, phased, n) of a Kuzu aggregate
    (added to `counts` where given)."""
    counts = Counts() if counts is None else counts
    for g in groups:
        tally(counts, "." if g["missing"] else "", g["alt_count"], g["ploidy"], g["phased"], g["n"])
    return counts


Zygosity = Literal[ZYGOSITIES]  # type: ignore[valid-type]


class Carrier(Result):
    sample: str
    gt: str
    phased: bool
    zygosity: Zygosity
    alt_count: int
    ploidy: int
    dp: int | None
    gq: int | None
    source: str | None


class Annotation(Result):
    gene: str
    consequence: str | None
    impact: str | None = Field(description=joined(IMPACTS))
    feature_id: str | None
    hgvs_c: str | None
    hgvs_p: str | None
    source: str | None


class VariantRecord(Result):
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
    carriers_truncated: bool = Field(
        False, description="True when `carriers` was cut at the requested limit (counts are always complete)"
    )


class Hit(Result):
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
    distance: float = Field(description="cosine distance to the query (0 = same direction)")
    similarity: float
    carriers: int
    carrier_samples: list[str] = Field(description="the first carriers by sample name (at most the requested number)")
    genes: list[str] = Field(description="genes of all annotations of the variant (IN_GENE)")


class VariantRow(BaseModel):
    """A row of the `variants` table of a sample, shared or region result."""

    variant_id: str
    chrom: str
    pos: int
    end: int | None = None
    ref: str
    alt: str
    variant_class: str
    gene: str | None = None
    consequence: str | None = None
    impact: str | None = None
    filter: str | None = None
    af: float | None = None


class SampleRow(VariantRow):
    gt: str
    phased: bool
    zygosity: Zygosity


class SharedRow(VariantRow):
    genotypes: list[str | None] = Field(description="each sample's GT, in the order of `samples`")


class RegionRow(VariantRow):
    carriers: int


def _arrow_table(value: Any) -> pa.Table:
    if not isinstance(value, pa.Table):
        raise ValueError("variants: not an Arrow table")
    return value


def _rows_as(row: type[BaseModel]) -> Callable[[pa.Table], list]:
    def rows(table: pa.Table) -> list:
        return [row.model_construct(**values) for values in table.to_pylist()]

    return rows


def _rows(row: type[BaseModel]) -> Any:
    """An Arrow table in Python (`.variants.to_pandas()`), a list of `row` objects in JSON."""
    return Annotated[
        pa.Table,
        PlainValidator(_arrow_table, json_schema_input_type=list[row]),
        PlainSerializer(_rows_as(row), return_type=list[row]),
    ]


SampleRows = _rows(SampleRow)
SharedRows = _rows(SharedRow)
RegionRows = _rows(RegionRow)


class SampleResult(Result):
    sample: str
    files: list[str]
    filters: dict[str, Any]
    counts: Counts = Field(description="variants matching the filters, by zygosity (complete, whatever the limit)")
    variants: SampleRows = Field(
        description="the first `limit` of them in contig/position order, with the sample's genotype"
    )
    truncated: bool


class SharedResult(Result):
    samples: list[str]
    filters: dict[str, Any]
    total: int = Field(description="variants carried by every one of the samples")
    variants: SharedRows = Field(
        description="the first `limit` of them; column `genotypes` holds each sample's GT in `samples` order"
    )
    truncated: bool


class RegionResult(Result):
    region: str
    filters: dict[str, Any]
    total: int
    variants: RegionRows = Field(description="the first `limit` variants by position, with their carrier counts")
    truncated: bool


class Contig(Result):
    name: str
    variants: int
    first: int
    last: int


class Stats(Result):
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
    """Plain JSON values: result models and dataclasses -> dicts, Arrow tables -> lists of rows, NaN -> null."""
    if isinstance(value, BaseModel):
        return to_jsonable(value.model_dump())
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
