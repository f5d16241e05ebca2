"""The arguments every query takes: regions, filters, limits, checked before they reach a store."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from vcf_agent.errors import VcfAgentError
from vcf_agent.schema import info_column_name

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
