"""The arguments every query takes: regions, filters, limits, checked before they reach a store."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    InstanceOf,
    ValidationError,
    model_validator,
)

from vcf_agent.errors import VcfAgentError
from vcf_agent.vocabulary import VARIANT_CLASSES, joined

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


def __getattr__(name: str) -> Any:
    # AF_COLUMN comes from vcf_agent.schema, which imports pyarrow: read on first use, so that the
    # CLI's parser (built from these models) and a --server client do not load pyarrow
    if name == "AF_COLUMN":
        from vcf_agent.schema import info_column_name

        return info_column_name("AF")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


#: Checks of the filters' text fields: the pattern (also the HTTP/CLI check) and, in words, what it allows.
_PATTERNS = {"gene": (_GENE.pattern, _ALLOWED["gene"]), "consequence": (_TERM.pattern, _ALLOWED["consequence"])}
_PATTERNS["filter"] = (_TERM.pattern, _ALLOWED["filter"])


def _region_of(value: Any) -> Any:
    return Region.parse(value) if isinstance(value, str) else value


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("not a number")
    return value


def _sample_name(value: str | None) -> str | None:
    return None if value is None else _plain_text(value, "sample")


def _text_field(name: str, description: str) -> Any:
    pattern, allowed = _PATTERNS[name]
    return Field(None, pattern=f"^{pattern}$", description=f"{description} (letters, digits and {allowed})")


_AF = Annotated[Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None, BeforeValidator(_no_bool)]


class Filters(BaseModel):
    """Structured filters shared by every operation (None = no condition).

    The CLI options (``--af-min``) and the HTTP query parameters (``af_min``) are generated
    from these fields, their checks and their descriptions (vcf_agent.interfaces.operations):
    a field added here is a filter of both. Invalid values raise BadQuery (one line).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: Annotated[InstanceOf[Region] | None, BeforeValidator(_region_of)] = Field(
        None,
        description="variants overlapping chrom, chrom:pos or chrom:start-end (1-based, inclusive; 16.1M, 20k allowed)",
    )
    gene: str | None = _text_field("gene", "gene symbol of the variant's most severe annotation")
    consequence: str | None = _text_field(
        "consequence", "one SO term among the variant's consequences, e.g. missense_variant"
    )
    filter: str | None = _text_field("filter", "FILTER value: PASS or one filter name among the record's")
    af_min: _AF = Field(None, description="lowest INFO/AF (0-1)")
    af_max: _AF = Field(None, description="highest INFO/AF (0-1)")
    variant_class: Literal[VARIANT_CLASSES] | None = Field(  # type: ignore[valid-type]
        None, description=f"variant class: {joined(VARIANT_CLASSES)}"
    )
    carried_by: Annotated[str | None, AfterValidator(_sample_name)] = Field(
        None, max_length=_NAME_MAX, description="only variants this sample carries (through the Kuzu graph)"
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise BadQuery(one_line(error)) from None

    @model_validator(mode="after")
    def _af_in_order(self) -> Filters:
        if self.af_min is not None and self.af_max is not None and self.af_min > self.af_max:
            raise ValueError(f"af_min {self.af_min} is above af_max {self.af_max}")
        return self

    @property
    def needs_af(self) -> bool:
        return self.af_min is not None or self.af_max is not None

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}

    def without(self, *names: str) -> Filters:
        """The same filters less `names` (None is always valid: nothing to check again)."""
        return self.model_copy(update=dict.fromkeys(names))

    def replace(self, **changes: Any) -> Filters:
        """The same filters with `changes`, checked."""
        return type(self)(**{**self.values(), **changes})

    def describe(self) -> dict[str, Any]:
        return {name: str(value) if isinstance(value, Region) else value for name, value in _items(self)}


def _items(filters: Filters) -> Iterator[tuple[str, Any]]:
    for name, value in filters.values().items():
        if value is not None:
            yield name, value


def value_type(annotation: Any) -> Any:
    """What a field holds, less None and Annotated: float, str, a Literal, list[str], Region (typed as text)."""
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [value_type(option) for option in typing.get_args(annotation) if option is not type(None)]
        annotation = options[0] if len(options) == 1 else annotation
    if isinstance(annotation, InstanceOf):
        return annotation.type
    return annotation


_BOUNDS = {
    "less_than_equal": "at most {le}",
    "greater_than_equal": "at least {ge}",
    "too_short": "at least {min_length} values",
    "too_long": "at most {max_length} values",
}


def one_line(error: ValidationError) -> str:
    """The first problem of a pydantic ValidationError, as one line naming the argument and its value."""
    first = error.errors(include_url=False)[0]
    name = ".".join(str(part) for part in first["loc"]) or "arguments"
    value = first.get("input")
    if first["type"] == "value_error":
        cause = str(first["ctx"]["error"])
        return cause if not first["loc"] or cause.startswith(name) else f"{name}: {cause}"
    if first["type"] == "string_pattern_mismatch" and name in _PATTERNS:
        return f"{name} {value!r}: not a valid {name} (letters, digits and {_PATTERNS[name][1]} only)"
    if first["type"] in _BOUNDS:
        shown = f" {value!r}" if isinstance(value, int | float) else ""
        return f"{name}{shown}: must be {_BOUNDS[first['type']].format(**first['ctx'])}"
    if first["type"] == "literal_error":
        return f"{name} {value!r}: use one of {first['ctx']['expected']}"
    shown = f" {value!r}" if isinstance(value, str | int | float) else ""
    return f"{name}{shown}: {first['msg'][0].lower()}{first['msg'][1:]}".replace("\n", " ")


NO_FILTERS = Filters()


def _limit(limit: int, what: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"{what}: {limit!r} must be a whole number from 1 to {MAX_LIMIT}")
    return limit
