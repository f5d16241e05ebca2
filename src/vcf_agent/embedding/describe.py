"""Short descriptions of what a variant is, the text a sentence model embeds.

A sentence model knows words ("missense variant", "pathogenic", "rare"), not
coordinates or identifiers, so a description is built only from the columns
that say what the variant is. Coordinates and IDs stay as columns of the
variant table; two variants that differ only in position get the same
description, and therefore the same vector (and one cache entry).

The template
------------
The text comes from a template (config key ``embedding.template``) in
``str.format`` syntax. The fields are:

``{variant_class}``
    what kind of change: "single-nucleotide variant", "insertion",
    "structural variant", "breakend", ...
``{change}``
    the allele change: "C>T"; "of 1 bp (A)" for a short insertion or deletion;
    "of 12 bp"; "deletion (DEL) of 1-10 kb" for a symbolic SV; "joined to
    another chromosome" for a breakend
``{gene}``
    gene symbol of the most severe annotation
``{consequence}``
    its SO terms in words: "missense variant and splice region variant"
``{impact}``
    "high", "moderate" or "low"; empty for "modifier" (SnpEff/VEP's "no predicted effect on
    a protein", on most variants: the word only dilutes the rest)
``{effect}``
    "protein-truncating (loss of function)" when a consequence term is stop_gained,
    frameshift_variant, splice_donor_variant or splice_acceptor_variant (the predicted
    loss-of-function set of gnomAD's LOFTEE); empty otherwise
``{clinical_significance}``
    ClinVar CLNSIG in words: "pathogenic or likely pathogenic"; "conflicting
    interpretations" for Conflicting_interpretations_of_pathogenicity (without "of
    pathogenicity", which a sentence model reads as "pathogenic")
``{frequency}``
    a band of INFO/AF: "very rare (AF < 0.1%)", "rare (AF 0.1-1%)",
    "low-frequency (AF 1-5%)", "common (AF 5-50%)", "major allele (AF >= 50%)"
``{filter}``
    "passed filters", or "failed filters q10 and s50"

Text in square brackets is optional: it is kept only when every field inside it
has a value for the variant (so "in {gene}" disappears for a variant without a
gene). Brackets cannot be nested and cannot appear literally. Whitespace runs
are collapsed. The default template is :data:`DEFAULT_TEMPLATE`; for example::

    single-nucleotide variant C>T in BRCA2, missense variant, moderate impact,
    clinical significance pathogenic, rare (AF 0.1-1%), passed filters

Frequency and clinical significance come from the typed INFO columns
``info_AF`` and ``info_CLNSIG`` when the shard has them (other column names can
be passed to :class:`Describer`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vcf_agent.errors import fail
from vcf_agent.schema import info_column_name, is_number

DEFAULT_TEMPLATE = (
    "{variant_class}[ {change}][ in {gene}][, {consequence}][, {impact} impact][, {effect}]"
    "[, clinical significance {clinical_significance}][, {frequency}][, {filter}]"
)

FIELDS = (
    "variant_class",
    "change",
    "gene",
    "consequence",
    "impact",
    "effect",
    "clinical_significance",
    "frequency",
    "filter",
)

DEFAULT_FREQUENCY_COLUMN = info_column_name("AF")
DEFAULT_CLINICAL_COLUMN = info_column_name("CLNSIG")

#: Columns every variant shard must have to be described.
REQUIRED_COLUMNS = ("variant_class", "ref", "alt")
#: Columns used when present (gene/consequence/impact are null without ANN/CSQ).
OPTIONAL_COLUMNS = ("chrom", "pos", "end", "gene", "consequence", "impact", "filter")

#: Alleles up to this length are spelled out ("C>T", "of 2 bp (AT)"); longer
#: ones only by size, which a sentence model can relate, unlike a base string.
SPELLED_ALLELE_MAX = 3
#: Indels up to this length keep their exact size; longer ones get a size band
#: so that, like structural variants, they share descriptions.
EXACT_SIZE_MAX = 50
#: Descriptions remembered per Describer (bounded: the memo is cleared when full).
MEMO_MAX = 200_000

_CLASS_PHRASES = {
    "snv": "single-nucleotide variant",
    "mnp": "multi-nucleotide variant",
    "insertion": "insertion",
    "deletion": "deletion",
    "indel": "complex indel",
    "symbolic": "structural variant",
    "breakend": "breakend",
    "overlap": "allele overlapping an upstream deletion",
    "non_ref": "unspecified alternate allele (gVCF reference block)",
    "no_alt": "reference-only record without an alternate allele",
}

_SV_TYPES = {
    "DEL": "deletion",
    "DUP": "duplication",
    "INV": "inversion",
    "INS": "insertion",
    "CNV": "copy-number variant",
    "BND": "breakend",
    "TANDEM": "tandem",
    "ME": "mobile element",
}

_SIZE_BANDS = (  # (upper bound exclusive, words)
    (1_000, "51 bp-1 kb"),
    (10_000, "1-10 kb"),
    (100_000, "10-100 kb"),
    (1_000_000, "100 kb-1 Mb"),
)

_FREQUENCY_BANDS = (  # (upper bound exclusive, words)
    (0.001, "very rare (AF < 0.1%)"),
    (0.01, "rare (AF 0.1-1%)"),
    (0.05, "low-frequency (AF 1-5%)"),
    (0.5, "common (AF 5-50%)"),
)
_MAJOR_ALLELE = "major allele (AF >= 50%)"
_FREQUENCY_BOUNDS = np.array([upper for upper, _ in _FREQUENCY_BANDS])
_BAND_WORDS = (*(words for _, words in _FREQUENCY_BANDS), _MAJOR_ALLELE, "")

#: Consequence terms of a predicted loss of function (gnomAD LOFTEE's set).
LOSS_OF_FUNCTION_TERMS = frozenset(
    ("stop_gained", "frameshift_variant", "splice_donor_variant", "splice_acceptor_variant")
)
_CONFLICTING = re.compile(r"(conflicting[ _](?:interpretations|classifications))[ _]of[ _]pathogenicity", re.I)
_BREAKEND_MATE = re.compile(r"[\[\]](?P<chrom>[^:\[\]]+):\d+[\[\]]")
_OPTIONAL_GROUP = re.compile(r"\[([^\[\]]*)\]")


# ---------------------------------------------------------------- template


@dataclass(frozen=True)
class _Part:
    text: str
    fields: tuple[str, ...]
    optional: bool

    def render(self, values: dict[str, str]) -> str:
        if self.optional and not all(values[name] for name in self.fields):
            return ""
        return self.text.format_map(values)


class Template:
    """A description template: str.format fields, optional parts in [brackets]."""

    def __init__(self, text: str | None = None) -> None:
        self.text = DEFAULT_TEMPLATE if text is None else text
        self.parts = tuple(self._parse(self.text))

    def render(self, values: dict[str, str]) -> str:
        return " ".join("".join(part.render(values) for part in self.parts).split())

    def _parse(self, text: str) -> list[_Part]:
        parts, position = [], 0
        for match in _OPTIONAL_GROUP.finditer(text):
            parts.append(self._part(text[position : match.start()], optional=False))
            parts.append(self._part(match.group(1), optional=True))
            position = match.end()
        parts.append(self._part(text[position:], optional=False))
        return [part for part in parts if part.text]

    def _part(self, text: str, *, optional: bool) -> _Part:
        if "[" in text or "]" in text:
            raise fail("embedding.template", f"unbalanced or nested brackets in {self.text!r}")
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
        except ValueError as error:
            raise fail("embedding.template", f"{error} in {self.text!r}") from None
        for name in names:
            if name not in FIELDS:
                raise fail(
                    "embedding.template",
                    f"unknown field {{{name}}}; the fields are {', '.join(FIELDS)}",
                )
        if optional and not names:
            raise fail("embedding.template", f"optional part [{text}] names no field")
        return _Part(text, tuple(names), optional)


# ---------------------------------------------------------------- phrases


def class_phrase(variant_class: str) -> str:
    return _CLASS_PHRASES.get(variant_class, variant_class.replace("_", " "))


def size_words(length: int) -> str:
    """'12 bp' up to EXACT_SIZE_MAX, else a band such as '1-10 kb'."""
    if length <= EXACT_SIZE_MAX:
        return f"{length} bp"
    for upper, words in _SIZE_BANDS:
        if length < upper:
            return words
    return "over 1 Mb"


def change_phrase(variant_class: str, ref: str, alt: str, span: int | None, same_chrom: bool | None) -> str:
    """The allele change in words (see the module docstring)."""
    if variant_class in ("snv", "mnp"):
        if len(ref) <= SPELLED_ALLELE_MAX and len(alt) <= SPELLED_ALLELE_MAX:
            return f"{ref}>{alt}"
        return f"of {len(ref)} bp"
    if variant_class in ("insertion", "deletion"):
        return _indel_change(ref, alt)
    if variant_class == "indel":
        return f"replacing {size_words(len(ref))} with {size_words(len(alt))}"
    if variant_class == "symbolic":
        return _symbolic_change(alt, span)
    if variant_class == "breakend":
        if same_chrom is None:
            return "single breakend"
        return "joined elsewhere on the same chromosome" if same_chrom else "joined to another chromosome"
    return ""


def _indel_change(ref: str, alt: str) -> str:
    short, long_ = (ref, alt) if len(ref) < len(alt) else (alt, ref)
    # The changed bases: normalised indels share a first (or last) anchor base.
    changed = long_[len(short) :] if long_.startswith(short) else long_[: len(long_) - len(short)]
    size = size_words(len(changed))
    if len(changed) <= SPELLED_ALLELE_MAX:
        return f"of {size} ({changed})"
    return f"of {size}"


def _symbolic_change(alt: str, span: int | None) -> str:
    code = alt.strip("<>")
    words = " ".join(_SV_TYPES.get(part, part.lower()) for part in reversed(code.split(":")))
    phrase = f"{words} ({code})" if words != code.lower() else code
    if span and span > 1:
        phrase += f" of {size_words(span)}"
    return phrase


def consequence_phrase(consequence: str | None) -> str:
    if not consequence:
        return ""
    return " and ".join(term.replace("_", " ").strip() for term in consequence.split("&") if term)


def impact_phrase(impact: str | None) -> str:
    return "" if not impact or impact.upper() == "MODIFIER" else impact.lower()


def effect_phrase(consequence: str | None) -> str:
    if not consequence or not LOSS_OF_FUNCTION_TERMS.intersection(consequence.split("&")):
        return ""
    return "protein-truncating (loss of function)"


def clinical_phrase(clnsig: str | None) -> str:
    if not clnsig:
        return ""
    words = _CONFLICTING.sub(r"\1", clnsig).replace("_", " ").replace("/", " or ")
    return " and ".join(w.strip().lower() for w in re.split(r"[|,]", words) if w.strip())


def filter_phrase(filter_value: str | None) -> str:
    if not filter_value or filter_value == ".":
        return ""
    if filter_value == "PASS":
        return "passed filters"
    return "failed filters " + " and ".join(f for f in filter_value.split(";") if f)


# ---------------------------------------------------------------- batches


class Describer:
    """Builds the description of every row of a variant table (Arrow batches).

    Descriptions are memoised by the values they are built from, so a shard
    whose variants repeat (most do) costs one dictionary lookup per row.
    """

    def __init__(
        self,
        template: str | None = None,
        *,
        frequency_column: str = DEFAULT_FREQUENCY_COLUMN,
        clinical_column: str = DEFAULT_CLINICAL_COLUMN,
    ) -> None:
        self.template = Template(template)
        self.frequency_column = frequency_column
        self.clinical_column = clinical_column
        self._memo: dict[tuple, str] = {}

    def columns_needed(self, schema: pa.Schema, subject: object = "variants") -> list[str]:
        """The columns of `schema` to read (raises when a required one is missing)."""
        missing = [name for name in REQUIRED_COLUMNS if name not in schema.names]
        if missing:
            raise fail(subject, f"no column {', '.join(missing)}; is this a variant shard?")
        optional = (*OPTIONAL_COLUMNS, self.frequency_column, self.clinical_column)
        return [*REQUIRED_COLUMNS, *(name for name in optional if name in schema.names)]

    def describe(
        self, batch: pa.RecordBatch | pa.Table, *, subject: object = "variants", first_row: int = 0
    ) -> list[str]:
        """One description per row, in row order."""
        columns = _Columns(batch, subject, first_row)
        classes = columns.text("variant_class", required=True)
        refs = columns.text("ref", required=True)
        alts = columns.text("alt", required=True)
        extras = self._extras(batch, classes, alts)
        genes = columns.text("gene")
        consequences = columns.text("consequence")
        impacts = columns.text("impact")
        filters = columns.text("filter")
        clinical = columns.text(self.clinical_column)
        bands = self._bands(batch, subject)
        memo, build = self._memo, self._build
        if len(memo) > MEMO_MAX:
            memo.clear()
        texts = []
        keys = zip(classes, refs, alts, extras, genes, consequences, impacts, clinical, bands, filters, strict=True)
        for key in keys:
            text = memo.get(key)
            if text is None:
                text = memo[key] = build(*key)
            texts.append(text)
        return texts

    def _build(self, variant_class, ref, alt, extra, gene, consequence, impact, clnsig, band, filt) -> str:
        span, same_chrom = extra if extra is not None else (None, None)
        values = {
            "variant_class": class_phrase(variant_class),
            "change": change_phrase(variant_class, ref, alt, span, same_chrom),
            "gene": gene or "",
            "consequence": consequence_phrase(consequence),
            "impact": impact_phrase(impact),
            "effect": effect_phrase(consequence),
            "clinical_significance": clinical_phrase(clnsig),
            "frequency": band,
            "filter": filter_phrase(filt),
        }
        return self.template.render(values)

    def _extras(self, batch, classes: list[str], alts: list[str]) -> list[tuple | None]:
        """(span, same_chrom) for symbolic alleles and breakends, None for the rest."""
        extras: list[tuple | None] = [None] * len(classes)
        wanted = pc.is_in(batch.column("variant_class"), value_set=pa.array(["symbolic", "breakend"]))
        rows = pc.indices_nonzero(pc.fill_null(wanted, False)).to_pylist()
        if not rows:
            return extras
        names = batch.schema.names
        pos = batch.column("pos").to_pylist() if "pos" in names else None
        end = batch.column("end").to_pylist() if "end" in names else None
        chrom = batch.column("chrom").to_pylist() if "chrom" in names else None
        for row in rows:
            if classes[row] == "symbolic":
                span = end[row] - pos[row] + 1 if pos and end and end[row] and pos[row] else None
                extras[row] = (_span_band(span), None)
            else:
                mate = _BREAKEND_MATE.search(alts[row])
                same = None if mate is None or chrom is None else mate["chrom"] == chrom[row]
                extras[row] = (None, same)
        return extras

    def _bands(self, batch, subject) -> list[str]:
        """The frequency band of every row (vectorised: this runs for every variant)."""
        if self.frequency_column not in batch.schema.names:
            return [""] * batch.num_rows
        column = batch.column(self.frequency_column)
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = _first_values(column)
        if not is_number(column.type):
            raise fail(subject, f"column {self.frequency_column} holds {column.type}, not numbers")
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        band = np.searchsorted(_FREQUENCY_BOUNDS, values, side="right")
        band[np.isnan(values)] = len(_BAND_WORDS) - 1  # the empty band
        return [_BAND_WORDS[i] for i in band.tolist()]


def _span_band(span: int | None) -> int | None:
    """A representative length of the span's size band, so that the memo key repeats."""
    if span is None:
        return None
    if span <= EXACT_SIZE_MAX:
        return span
    for upper, _ in _SIZE_BANDS:
        if span < upper:
            return upper - 1
    return 2_000_000


def _first_values(column) -> pa.Array:
    """The first value of each list (Number=. fields), null for empty or missing lists."""
    return pa.array(
        [values[0] if values else None for values in column.to_pylist()],
        type=column.type.value_type,
    )


class _Columns:
    """Reads a batch's columns as Python lists, checking required ones have no nulls."""

    def __init__(self, batch, subject: object, first_row: int) -> None:
        self.batch, self.subject, self.first_row = batch, subject, first_row

    def text(self, name: str, *, required: bool = False) -> list:
        if name not in self.batch.schema.names:
            return [None] * self.batch.num_rows
        column = self.batch.column(name)
        if required and column.null_count:
            row = pc.indices_nonzero(pc.is_null(column))[0].as_py()
            raise fail(self.subject, f"row {self.first_row + row + 1}: column {name} is empty")
        if not _is_text(column.type):
            column = column.cast(pa.string())
        return column.to_pylist()


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)


def describe_rows(rows: Sequence[dict], template: str | None = None) -> list[str]:
    """Descriptions of rows given as dicts of column values (for tests and one-off use)."""
    return Describer(template).describe(pa.Table.from_pylist(list(rows)))
