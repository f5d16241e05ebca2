"""`vcf-agent ask`: a question in plain words -> calls of the query operations -> an answer built from their results.

The planner is offline, deterministic and needs no language model:

1. It finds the entities the question names and checks each against the stores:
   variant ids in any common spelling (``chr20:1000341:C:A``, ``20-1000341-C-A``,
   ``rs6054257``), regions (``chr22:16.05-16.1Mb``, ``22:16,050,000-16,060,000``,
   ``chromosome 22``), sample names, gene symbols (case and one typo forgiven).
2. It reads the vocabulary of the filters (vcf_agent.vocabulary's CONSEQUENCE_WORDS,
   CLASS_WORDS, PASS_WORDS and AF_WORDS, shared with the search's filter hints; AF
   bounds, failed filters, het/hom) and of the intent
   (:data:`INTENT_WORDS`: carriers, similar, shared, counts, listings, totals).
3. Rules, in a fixed order (:func:`plan`), turn these into calls of the query
   operations (:data:`OPERATIONS`, with the argument names of the CLI and the HTTP
   API); the calls run and the answer is a few sentences made only from their
   results. Every figure the answer states is also listed in ``figures`` with the
   call it comes from.

A question it cannot map is answered with the operations and arguments it could
have used. Only a semantic search loads the sentence model.

AF words (INFO/AF of the record; bounds from vcf_agent.vocabulary): rare = AF <= 0.01,
very rare / ultra-rare = AF <= 0.001, low-frequency = 0.01 <= AF <= 0.05, common = AF >= 0.05,
singleton = AF <= 1.5 / (2 N) with N the samples of the largest input file (one ALT copy among N diploid samples,
below two copies).
"""

from __future__ import annotations

import difflib
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vcf_agent.errors import VcfAgentError
from vcf_agent.query.listing import RSID, SPELLED_ID, with_id_column
from vcf_agent.vocabulary import AF_WORDS, CLASS_WORDS, CONSEQUENCE_WORDS, PASS_WORDS, SINGLETON_ALT_COPIES

if TYPE_CHECKING:
    from vcf_agent.query import Stores

# ---------------------------------------------------------------- the operations

#: Arguments of each operation besides the filters (name -> JSON type), as the CLI and HTTP name them.
OPERATIONS: dict[str, dict[str, Any]] = {
    "search": {"text": "string", "limit": "integer", "carriers": "integer"},
    "similar": {"variant_id": "string", "limit": "integer", "carriers": "integer"},
    "variant": {"variant_id": "string", "carriers": "integer"},
    "sample": {"sample": "string", "limit": "integer"},
    "shared": {"samples": "array", "limit": "integer"},
    "region": {"region": "string", "limit": "integer"},
    "stats": {},
    "list": {"what": "string"},
}
REQUIRED = {
    "search": ("text",),
    "similar": ("variant_id",),
    "variant": ("variant_id",),
    "sample": ("sample",),
    "shared": ("samples",),
    "region": ("region",),
    "list": ("what",),
}
#: Operations that take the filters (region, gene, consequence, filter, af_min, af_max, variant_class, carried_by).
FILTERED = ("search", "similar", "sample", "shared", "region")
DESCRIPTIONS = {
    "search": "semantic search: variants whose description is nearest to the text",
    "similar": "nearest neighbours of a stored variant (id or rsID), each with carriers and genes",
    "variant": "one variant (id or rsID): record, annotations, carriers with zygosity",
    "sample": "the variants one sample carries, with het/hom-alt counts",
    "shared": "variants carried by every one of two or more samples",
    "region": "variants overlapping a region chrom:start-end, with carrier counts",
    "stats": "what the stores hold: files, samples, variants, genotypes, genes, contigs",
    "list": "list samples (with their variant counts), genes, contigs or files",
}
#: Rows an answer that sums up a whole result (the genes of a sample's variants) asks for.
WHOLE = 10_000


@dataclass
class Call:
    operation: str
    arguments: dict[str, Any]


@dataclass
class Figure:
    """A number the answer states, and where it comes from."""

    name: str
    value: int | float
    #: index of the call in `calls` (-1: a sum over all of them)
    call: int
    #: the variant (or sample) the figure is about, when it is about one
    about: str | None = None


@dataclass
class Answer:
    question: str
    calls: list[Call]
    answer: str
    results: list[Any]
    figures: list[Figure] = field(default_factory=list)
    planner: str = "offline"
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class AskError(VcfAgentError):
    """A question the planner could not turn into calls."""


# ---------------------------------------------------------------- vocabulary

#: Single words the fuzzy match may correct (misspelt "misense", "synonimous", "frameshfit").
FUZZY_CONSEQUENCES = {
    "missense": "missense",
    "synonymous": "synonymous",
    "frameshift": "frameshift",
    "nonsense": "nonsense",
    "intronic": "intronic",
    "intergenic": "intergenic",
    "upstream": "upstream",
    "downstream": "downstream",
}
FUZZY_CLASSES = {"deletion": "deletion", "insertion": "insertion", "deletions": "deletions", "insertions": "insertions"}
#: "not PASS": a record whose FILTER names a failed filter (one call per filter name the stores hold).
FAILED_WORDS = (
    r"(?:did ?n[o']t|do ?n[o']t|does ?n[o']t|not|never|non|fail(?:ed|ing|s)?(?: to)?)[- ]pass(?:ed|ing)?"
    r"(?: (?:all |the )*filters?)?|fail(?:ed|ing|s)? (?:the |any |a )*filters?|filtered[- ]out|non[- ]?pass"
    r"|low[- ]quality|fail(?:ed|ing|s)?"
)
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)\s*(%)?"
AF_BOUND = re.compile(
    r"\b(?:af|maf|allele[- ]frequency|frequency|freq)\s*(?:of\s*|is\s*)?"
    r"(<=|>=|<|>|=<|=>|below|under|less than|lower than|at most"
    r"|above|over|greater than|higher than|at least|more than)\s*" + _NUMBER,
    re.IGNORECASE,
)
_UPPER = ("<", "<=", "=<", "below", "under", "less than", "lower than", "at most")
ZYGOSITY_WORDS = {
    "het": r"het(?:erozygous|erozygote|s)?",
    "hom_alt": r"hom(?:ozygous|ozygote)?(?:[- ]alt(?:ernate)?)?|hom[- ]?alt",
    "hemizygous": r"hemizygous|hemi",
}
INTENT_WORDS = {
    "carriers": r"who carries|who has|who have|which (?:samples|individuals|people|subjects)|carriers?|carried"
    r"|carry|carrying|have it|has it|present in",
    "similar": r"similar|(?:most|variants?|ones|those|something|anything|thisvariant) like|like thisvariant|resembl\w*"
    r"|neighbou?rs?|nearest|closest|look[- ]?alikes?|related to|close to",
    "shared": r"share[ds]?|sharing|in common|both|also|overlap\w* between|common to|jointly",
    "count": r"how many|number of|count|total",
    "genes": r"genes|(?:which|what) genes?|gene (?:names?|symbols?)",
    "samples": r"samples?|individuals?|people|subjects|persons?",
    "contigs": r"contigs?|chromosomes?|chroms?|sequences",
    "files": r"files?|inputs?|vcfs?|call ?sets?|cohorts?",
    "list": r"list|which|what|show|names?|all|enumerate|give me",
    "stats": r"summary|summari[sz]e|overview|statistics|stats|what(?:'s| is) in|how big"
    r"|describe the (?:store|data(?:set|base)?|cohort)|what(?:'s| is) (?:loaded|here|stored)",
    "search": r"search|find|look(?:ing)? for|described as|involving|about",
    "describe": r"tell me about|what is|what's|describe|details?|info(?:rmation)?|annotations?|record",
}
#: Words that say nothing about which variants: left over, they do not make a question a search.
FILLER = set(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "to",
        "for",
        "from",
        "by",
        "with",
        "and",
        "or",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "me",
        "my",
        "our",
        "we",
        "you",
        "i",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "which",
        "what",
        "who",
        "whom",
        "whose",
        "how",
        "many",
        "much",
        "show",
        "list",
        "give",
        "find",
        "get",
        "tell",
        "all",
        "any",
        "some",
        "each",
        "every",
        "variant",
        "variants",
        "mutation",
        "mutations",
        "site",
        "sites",
        "call",
        "calls",
        "record",
        "records",
        "store",
        "stores",
        "data",
        "dataset",
        "please",
        "can",
        "could",
        "would",
        "should",
        "will",
        "let",
        "see",
        "number",
        "count",
        "total",
        "there's",
        "what's",
        "where",
        "when",
        "than",
        "then",
        "also",
        "only",
        "just",
        "carried",
        "carry",
        "carries",
        "carriers",
        "carrier",
        "sample",
        "samples",
        "genotype",
        "genotypes",
        "region",
        "regions",
        "chromosome",
        "chromosome",
        "contig",
        "between",
        "from",
        "to",
        "about",
        "per",
        "most",
        "more",
        "less",
        "top",
        "first",
        "many",
        "does",
        "doesn't",
        "not",
        "no",
        "yes",
        "one",
        "two",
        "three",
        "both",
        "either",
        "other",
        "another",
        "are",
        "they",
        "them",
        "their",
        "his",
        "her",
        "within",
        "inside",
        "across",
        "over",
        "under",
        "along",
        "near",
        "around",
        "have",
        "has",
        "having",
        "rows",
        "results",
        "result",
        "hits",
        "hit",
        "kb",
        "mb",
        "bp",
        "k",
        "m",
        "position",
        "positions",
        "thisvariant",
    ]
)

STOP_GENE_WORDS = set(
    [
        "A",
        "AN",
        "THE",
        "OF",
        "IN",
        "ON",
        "AT",
        "TO",
        "FOR",
        "BY",
        "AND",
        "OR",
        "IS",
        "ARE",
        "WHO",
        "HAS",
        "HAVE",
        "ALL",
        "ANY",
        "SET",
        "MAX",
        "REST",
        "CAT",
        "CAR",
        "SHE",
        "HE",
        "IT",
        "CAN",
        "CALL",
        "NOT",
        "NO",
        "YES",
        "TOP",
        "HIT",
        "HITS",
        "MOST",
        "RARE",
        "COMMON",
        "PASS",
        "LIST",
        "SHOW",
        "GENE",
        "GENES",
        "TOTAL",
        "IMPACT",
        "HIGH",
        "LOW",
        "WAS",
        "ONE",
        "TWO",
    ]
)


# ---------------------------------------------------------------- what a question names


@dataclass
class Parsed:
    question: str
    variants: list[str] = field(default_factory=list)
    #: variant-like strings the stores do not hold
    unknown_variants: list[str] = field(default_factory=list)
    #: rsID -> its records, where it names several
    several: dict[str, list[str]] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    genes: list[str] = field(default_factory=list)
    region: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    zygosity: str | None = None
    intents: set[str] = field(default_factory=set)
    limit: int | None = None
    notes: list[str] = field(default_factory=list)
    #: words that look like sample names or gene symbols the stores do not hold
    unknown_names: list[str] = field(default_factory=list)
    #: the failed-filter names the stores hold, when the question asks for records that did not PASS
    failed: list[str] = field(default_factory=list)
    #: a name several samples end with (HG02024: C1046::HG02024, C1048::HG02024) -> those samples
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    #: the question asks for what the stores cannot hold (failed records where none failed)
    unanswerable: bool = False
    #: bases either side of the named variant the question asks about ("within 5 kb of rs123")
    window: int | None = None
    #: the intent nearest by phrasing (ask/intents.py), when the rules found none
    nearest: Any = None


class Vocabulary:
    """What the stores hold, for checking the names of a question (loaded once per Stores)."""

    def __init__(self, stores: Stores) -> None:
        from vcf_agent.query.listing import contig_spellings

        self.stores = stores
        self.contig_spellings = lambda name: contig_spellings(stores, name)
        self.samples = {name.casefold(): name for name in stores.sample_names()}
        #: samples named without their prefix (HG02024 for C1046::HG02024 and C1048::HG02024)
        self.sample_aliases = _sample_aliases(self.samples)
        self.genes = {entry.gene.casefold(): entry for entry in stores.list_genes()}
        self.gene_names = [entry.gene for entry in stores.list_genes()]
        held = stores.graph.vocabulary or {}  # the store index's terms (vcf_agent.stores.kuzu): nothing opened
        self.consequences = set(held.get("consequences", ()))
        self.filters = set(held.get("filters", ()))
        largest = max((entry.samples for entry in stores.list_files()), default=0)
        self.singleton_af = round(SINGLETON_ALT_COPIES / (2 * largest), 8) if largest else None
        self.contigs = [c.name for c in stores.stats().contigs]


def _sample_aliases(samples: dict[str, str]) -> dict[str, list[str]]:
    named: dict[str, list[str]] = {}
    for name in samples.values():
        if "::" in name:
            named.setdefault(name.rsplit("::", 1)[1].casefold(), []).append(name)
    return {alias: names for alias, names in named.items() if alias not in samples}


def vocabulary(stores: Stores) -> Vocabulary:
    cache = stores.__dict__.setdefault("_listings", {})
    if "vocabulary" not in cache:
        cache["vocabulary"] = Vocabulary(stores)
    return cache["vocabulary"]


_REGION_TEXT = re.compile(
    r"(?<![\w:])(?P<chrom>(?:chr)?[A-Za-z0-9_.]+):(?P<start>\d[\d,_]*(?:\.\d+)?)\s*(?P<su>[kKmM][bB]?|bp)?"
    r"(?:\s*(?:-|\.\.|to)\s*(?P<end>\d[\d,_]*(?:\.\d+)?)\s*(?P<eu>[kKmM][bB]?|bp)?)?(?![\w:])"
)
_CHROMOSOME = re.compile(
    r"\b(?:chromosome|chrom|contig)\s+(?P<name>[A-Za-z0-9_.]+)\b|(?<![\w:])(?P<chr>chr(?:[XYMxym]|MT|mt|\d[A-Za-z0-9_.]*|Un[A-Za-z0-9_.]*))(?![\w:])",
    re.IGNORECASE,
)
#: "between 20:13,000,000 and 20:14,000,000", "from chr1:10000 to chr1:20000": one region.
_POSITION_PAIR = re.compile(
    r"(?:\bbetween|\bfrom)?\s*(?<![\w:])(?P<chrom>(?:chr)?[A-Za-z0-9_.]+):(?P<start>\d[\d,_]*)\s+(?:and|to|-|until)\s+"
    r"(?P=chrom):(?P<end>\d[\d,_]*)(?![\w:])",
    re.IGNORECASE,
)
_BARE_CONTIG = re.compile(r"\b(?:on|in)\s+(?P<name>X|Y|M|MT|\d{1,2})\s+(?=(?:from|between)\s+\d)", re.IGNORECASE)
_RANGE_WORDS = re.compile(
    r"\b(?:from|between)\s+(?P<start>\d[\d,]*(?:\.\d+)?)\s*(?P<su>[kKmM][bB]?)?\s*(?:-|to|and)\s*"
    r"(?P<end>\d[\d,]*(?:\.\d+)?)\s*(?P<eu>[kKmM][bB]?)?",
    re.IGNORECASE,
)
_LIMIT = re.compile(
    r"\b(?:top|first|best|nearest|closest)\s+(\d{1,5})\b"
    r"|\b(\d{1,5})\s+(?:(?:variants?|hits?|results?|neighbou?rs?)\s+)?(?:most|nearest|closest|best|similar|like)\b",
    re.IGNORECASE,
)
_TOKEN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]|::)*[A-Za-z0-9]|[A-Za-z0-9]")


def _coordinate(number: str, unit: str | None) -> str:
    """'16.05', 'Mb' -> '16.05M' (Region.parse reads k/M suffixes exactly)."""
    unit = (unit or "").lower()
    suffix = {"k": "k", "kb": "k", "m": "M", "mb": "M"}.get(unit, "")
    return number.replace(",", "").replace("_", "") + suffix


def parse(stores: Stores, question: str) -> Parsed:
    """The entities, filter words and intent words of `question`, checked against the stores."""
    words = vocabulary(stores)
    parsed = Parsed(question=question)
    rest = " " + question.strip() + " "
    rest = _find_variants(stores, parsed, rest)
    rest = _find_window(parsed, rest)
    rest = _find_region(words, parsed, rest)
    lowered = rest.lower()
    lowered = _find_filters(words, parsed, lowered)
    for name, pattern in INTENT_WORDS.items():
        if re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", lowered):
            parsed.intents.add(name)
    for name, pattern in ZYGOSITY_WORDS.items():
        if re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", lowered):
            parsed.zygosity = name
            lowered = re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", " ", lowered)
    limit = _LIMIT.search(lowered)
    if limit:
        parsed.limit = int(limit.group(1) or limit.group(2))
    _find_names(words, parsed, rest, lowered)
    return parsed


def _find_variants(stores: Stores, parsed: Parsed, text: str) -> str:
    written = text  # the offsets of the matches are those of the question as written
    for match in list(RSID.finditer(written)) + list(SPELLED_ID.finditer(written)):
        if not _whole_word(written, match) or match.group(0) not in text:
            continue
        spelled = match.group(0)
        found = stores.resolve_variant(spelled)
        if not found and not RSID.fullmatch(spelled):
            # an ID column may hold ids of another normalisation (1kGP: ID 1:10399:C:A at chr1:10397)
            found = sorted(with_id_column(stores, spelled))  # each variant once over the layers
            if found:
                parsed.notes.append(f"{spelled} is the ID column of {', '.join(found)}")
        if not found:
            parsed.unknown_variants.append(spelled)
        else:
            if len(found) > 1:
                parsed.several[spelled] = found
            parsed.variants.extend(vid for vid in found if vid not in parsed.variants)
        text = text.replace(spelled, " thisvariant ")
    return text


#: "within 10 kb of rs123", "variants near rs123" (NEAR_BP either side), "5kb around 1-10440-C-A".
_WINDOW = re.compile(
    r"\b(?:(?:within|\+/-|±)\s*)?(?P<size>\d+(?:\.\d+)?)\s*(?P<unit>kb|mb|bp|k|m)?\s*(?:of|around|from|either side of)"
    r"\s+thisvariant\b"
    r"|\b(?P<near>near(?:by)?|around|surrounding|flanking|next to|in the neighbou?rhood of)\s+thisvariant\b",
    re.IGNORECASE,
)
#: Bases either side of a variant a question calls "near" without a distance.
NEAR_BP = 10_000


def _find_window(parsed: Parsed, text: str) -> str:
    match = _WINDOW.search(text)
    if match is None or not parsed.variants:
        return text
    if match["near"]:
        parsed.window = NEAR_BP
        parsed.notes.append(f"near: within {NEAR_BP // 1000}kb either side")
    else:
        scale = {"kb": 1_000, "k": 1_000, "mb": 1_000_000, "m": 1_000_000}.get((match["unit"] or "").lower(), 1)
        parsed.window = int(float(match["size"]) * scale)
    return text.replace(match.group(0), " thisvariant ")


def _around(variant_id: str, window: int) -> str:
    chrom, pos, _, _ = variant_id.rsplit(":", 3)
    return f"{chrom}:{max(1, int(pos) - window)}-{int(pos) + window}"


def _whole_word(text: str, match: re.Match) -> bool:
    before = text[match.start() - 1] if match.start() else " "
    after = text[match.end()] if match.end() < len(text) else " "
    return not (before.isalnum() or before in ":_") and not (after.isalnum() or after in ":_")


def _find_region(words: Vocabulary, parsed: Parsed, text: str) -> str:
    text = _POSITION_PAIR.sub(r"\g<chrom>:\g<start>-\g<end>", text)
    for match in _REGION_TEXT.finditer(text):
        contigs = words.contig_spellings(match["chrom"])
        if not contigs:
            continue
        start_unit, end_unit = _shared_unit(match), match["eu"]
        start = _coordinate(match["start"], start_unit)
        region = f"{contigs[0]}:{start}" + (f"-{_coordinate(match['end'], end_unit)}" if match["end"] else "")
        parsed.region = _checked_region(parsed, region)
        return text.replace(match.group(0), " ")
    for match in [*_CHROMOSOME.finditer(text), *_BARE_CONTIG.finditer(text)]:
        name = match.groupdict().get("chr") or match["name"]
        contigs = words.contig_spellings(name)
        if not contigs:
            if re.fullmatch(r"(?:chr)?(?:\d{1,2}|[XYM]|MT)", name, re.IGNORECASE):
                parsed.region = parsed.region or name  # an unknown contig: the operation names the stored ones
            continue
        text = text.replace(match.group(0), " ")
        span = _RANGE_WORDS.search(text)
        region = contigs[0]
        if span:
            start_unit, end_unit = span["su"] or _shared_unit(span), span["eu"]
            region += f":{_coordinate(span['start'], start_unit)}-{_coordinate(span['end'], end_unit)}"
            text = text.replace(span.group(0), " ")
        parsed.region = _checked_region(parsed, region)
        return text
    return text


def _shared_unit(match: re.Match) -> str | None:
    """The end's unit for a start written without one when the start is below the end as written:
    chr20:1-2Mb is 1-2 Mb, while chr1:1-1Mb is 1 bp to 1 Mb."""
    if not match["end"] or not match["eu"] or match["su"]:
        return match["su"]
    as_written = [float(match[name].replace(",", "").replace("_", "")) for name in ("start", "end")]
    return match["eu"] if as_written[0] < as_written[1] else None


def _checked_region(parsed: Parsed, text: str) -> str | None:
    from vcf_agent.query import BadQuery, Region

    try:
        return str(Region.parse(text))
    except BadQuery as error:
        parsed.notes.append(str(error))
        return None


def _find_filters(words: Vocabulary, parsed: Parsed, lowered: str) -> str:
    for match in AF_BOUND.finditer(lowered):
        value = float(match.group(2)) / (100 if match.group(3) else 1)
        parsed.filters["af_max" if match.group(1) in _UPPER else "af_min"] = value
    lowered = AF_BOUND.sub(" ", lowered)
    if re.search(r"\bsingletons?\b", lowered) and words.singleton_af is not None:
        parsed.filters["af_max"] = words.singleton_af
        lowered = re.sub(r"\bsingletons?\b", " ", lowered)
    for pattern, bounds in AF_WORDS:
        if re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", lowered):
            for name, value in bounds.items():
                parsed.filters.setdefault(name, value)
            lowered = re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", " ", lowered)
            break
    lowered = _fuzzy_words(lowered, {**FUZZY_CONSEQUENCES, **FUZZY_CLASSES})
    for pattern, terms in CONSEQUENCE_WORDS:
        if re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", lowered):
            parsed.filters["consequence"] = next((t for t in terms if t in words.consequences), terms[0])
            lowered = re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", " ", lowered, count=1)
            break
    for pattern, classes in CLASS_WORDS:  # "snps and indels": every class named, one call each
        if re.search(rf"(?<![\w-])(?:{pattern})(?![\w-])", lowered):
            parsed.classes += tuple(name for name in classes if name not in parsed.classes)
            lowered = re.sub(rf"(?<![\w-])(?:{pattern})(?![\w-])", " ", lowered, count=1)
    failed = re.search(rf"(?<![\w-])(?:{FAILED_WORDS})(?![\w-])", lowered)
    lowered = re.sub(rf"(?<![\w-])(?:{FAILED_WORDS})(?![\w-])", " ", lowered)
    if re.search(rf"(?<![\w-])(?:{PASS_WORDS})(?![\w-])", lowered):
        parsed.filters["filter"] = "PASS"
        lowered = re.sub(rf"(?<![\w-])(?:{PASS_WORDS})(?![\w-])", " ", lowered)
    for name in sorted(words.filters):
        if re.search(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", lowered) and len(name) > 2:
            parsed.filters["filter"] = name
            lowered = re.sub(rf"(?<![\w-]){re.escape(name.lower())}(?![\w-])", " ", lowered)
    if failed and "filter" not in parsed.filters:
        parsed.failed = sorted(words.filters)
        if not parsed.failed:
            parsed.notes.append("no record of the stores failed a filter (every FILTER is PASS or missing)")
            parsed.unanswerable = True
    return lowered


def _fuzzy_words(lowered: str, known: dict[str, str]) -> str:
    """Correct one misspelt word of the vocabulary (4+ letters, ratio >= 0.8) in place."""

    def fix(match: re.Match) -> str:
        word = match.group(0)
        if word in known or len(word) < 6:
            return word
        close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.8)
        return known[close[0]] if close else word

    return re.sub(r"[a-z]+", fix, lowered)


def _find_names(words: Vocabulary, parsed: Parsed, text: str, lowered: str) -> None:
    """Samples and genes among the words (samples exactly, any case; genes also with one typo)."""
    for token in _TOKEN.findall(text):
        folded = token.casefold()
        sample = words.samples.get(folded)
        if sample is None and folded in words.sample_aliases:
            (sample, *others) = words.sample_aliases[folded]
            if others:  # the same person in two families (hail: C1046::HG02024, C1048::HG02024): ask which
                parsed.notes.append(f"{token} names several samples: {', '.join([sample, *others])}")
                parsed.ambiguous[token] = [sample, *others]
                continue
            parsed.notes.append(f"read {token!r} as sample {sample}")
        if sample is not None and sample not in parsed.samples:
            parsed.samples.append(sample)
            continue
        gene = words.genes.get(folded)
        # a gene symbol that is also a word (SET, MAX, REST) counts only when written as the symbol
        plain_word = token.upper() in STOP_GENE_WORDS or token.lower() in FILLER
        if gene is not None and (token == gene.gene or not plain_word):
            if gene.gene not in parsed.genes:
                parsed.genes.append(gene.gene)
            continue
        name = _close_gene(words, token) if _looks_like_gene(token) else None
        if name is not None:
            if name not in parsed.genes:
                parsed.genes.append(name)
                parsed.notes.append(f"read {token!r} as gene {name}")
            continue
        if _looks_like_name(token) and not _known_word(words, token):
            parsed.unknown_names.append(token)


def _close_gene(words: Vocabulary, token: str) -> str | None:
    """The one gene symbol a misspelt `token` stands for: similar (difflib ratio >= 0.8) with the same
    digits (SIMG19 is not SIMG9, ABCD2 not ABCD1: those are other genes)."""
    if not words.gene_names or token.upper() in STOP_GENE_WORDS:
        return None
    digits = re.sub(r"\D", "", token)
    candidates = [g for g in words.gene_names if re.sub(r"\D", "", g) == digits]
    scored = sorted(
        ((difflib.SequenceMatcher(None, token.upper(), g.upper()).ratio(), g) for g in candidates), reverse=True
    )
    if not scored or scored[0][0] < 0.8 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return scored[0][1]


#: Names of assemblies and projects: not samples or genes a question asks about.
_ASSEMBLIES = re.compile(r"(?:grch|hg|b|ncbi|t2t-?chm)\d+(?:\.\d+)?|chm13|1kgp?\d*|gnomad\w*|clinvar\d*", re.IGNORECASE)


def _known_word(words: Vocabulary, token: str) -> bool:
    """A FILTER name, a contig or an assembly: a name of the question the planner already read or ignores."""
    return token in words.filters or bool(words.contig_spellings(token)) or bool(_ASSEMBLIES.fullmatch(token))


def _looks_like_name(token: str) -> bool:
    """Letters and digits, as sample names and gene symbols are (not 16M, 5kb, 30x or 0.5)."""
    return (
        len(token) >= 4
        and any(c.isalpha() for c in token)
        and any(c.isdigit() for c in token)
        and not re.fullmatch(r"[\d.,]+(?:[kKmMgG][bB]?|bp|x|X|%)?", token)
    )


def _looks_like_gene(token: str) -> bool:
    """An upper-case symbol with a digit or 4+ letters (BRCA2, TP53, DDX11L1), not a number or a plain word."""
    return len(token) >= 4 and token.upper() == token and any(c.isalpha() for c in token) and not token.isdigit()


# ---------------------------------------------------------------- rules


def plan(stores: Stores, question: str, limit: int | None = None) -> tuple[list[Call], Parsed]:
    """The calls that answer `question` (empty when it cannot be mapped), and what was read from it:
    by the rules (:func:`plan_by_rules`), else by the phrasing nearest to the question
    (:func:`plan_by_phrasing`). A name the stores lack stops both (the answer names it)."""
    calls, parsed = plan_by_rules(stores, question, limit)
    if calls or parsed.unknown_names or parsed.ambiguous or parsed.unanswerable:
        return calls, parsed
    return plan_by_phrasing(stores, question, parsed), parsed


def plan_by_phrasing(stores: Stores, question: str, parsed: Parsed) -> list[Call]:
    """The call of the operation whose example phrasings are nearest to the question (ask/intents.py),
    with the filters the question names; none below the threshold or without a required argument."""
    from vcf_agent.ask.intents import NEEDS, nearest_intent

    nearest = parsed.nearest = nearest_intent(stores, question)
    if not nearest.mapped:
        return []
    intent = nearest.intent
    if intent in NEEDS:  # the rules would have used the sample, variant or region had the question named one
        return []
    parsed.notes.append(f"planned by phrasing: the question reads like {intent!r} ({nearest.phrasing!r})")
    if intent.startswith("list "):
        return [Call("list", {"what": intent.split(" ", 1)[1]})]
    if intent == "stats":
        return [Call("stats", {})]
    region = {"region": parsed.region} if parsed.region else {}
    limit = {"limit": parsed.limit} if parsed.limit else {}
    one_class = {"variant_class": parsed.classes[0]} if len(parsed.classes) == 1 else {}
    return [Call("search", {"text": _search_text(question), **region, **parsed.filters, **one_class, **limit})]


def plan_by_rules(stores: Stores, question: str, limit: int | None = None) -> tuple[list[Call], Parsed]:
    """The calls the rules make for `question` (empty when none applies), and what was read from it.

    The rules, first match wins: named variants (-> similar when the question asks for
    look-alikes, else variant); two or more samples (-> shared); one sample (-> search
    carried by it when the question describes variants in words the filters cannot
    express, else sample); a listing (-> list samples/genes/contigs/files); totals (->
    stats); a description (-> search); a region (-> region); genes or filters alone (->
    region over each contig that holds them). A variant class word naming several
    classes ("indels") makes one call per class.
    """
    parsed = parse(stores, question)
    if limit is not None:
        parsed.limit = limit
    if (parsed.unknown_names or parsed.ambiguous or parsed.unanswerable) and not parsed.variants:
        # a sample or gene the stores lack, or a name of several samples: answering without it would answer
        # another question (a variant's answer says how each of the samples carries it)
        return [], parsed
    filters = dict(parsed.filters)
    region = {"region": parsed.region} if parsed.region else {}
    limit_args = {"limit": parsed.limit} if parsed.limit else {}
    intents = parsed.intents
    if parsed.variants and parsed.window and "similar" not in intents:
        # the variants around a named one: a region (one per distinct position of its records)
        regions = list(dict.fromkeys(_around(vid, parsed.window) for vid in parsed.variants))
        filters.update({"gene": parsed.genes[0]} if parsed.genes else {})
        if len(parsed.samples) >= 2:
            op, named = "shared", {"samples": parsed.samples}
        elif parsed.samples:
            op, named = "sample", {"sample": parsed.samples[0]}
        else:
            op, named = "region", {}
        calls = [Call(op, {**named, "region": r, **filters, **limit_args}) for r in regions[:3]]
        return [c for call in calls for c in _per_class(call, parsed)], parsed
    if parsed.variants or parsed.unknown_variants:
        ids = parsed.variants or parsed.unknown_variants
        if "similar" in intents:
            if parsed.ambiguous:
                return [], parsed  # carried_by needs one sample
            if parsed.genes:
                filters["gene"] = parsed.genes[0]
            if len(parsed.samples) == 1:
                filters["carried_by"] = parsed.samples[0]
            return [Call("similar", {"variant_id": vid, **region, **filters, **limit_args}) for vid in ids[:3]], parsed
        return [Call("variant", {"variant_id": vid}) for vid in ids[:10]], parsed
    if parsed.genes:
        filters["gene"] = parsed.genes[0]
    whole = {"limit": WHOLE} if "genes" in intents and "list" in intents and not limit_args else limit_args
    if len(parsed.samples) >= 2:
        return _per_class(Call("shared", {"samples": parsed.samples, **region, **filters, **whole}), parsed), parsed
    if parsed.samples:
        sample = parsed.samples[0]
        if _is_search(stores, parsed):
            text = _search_text(question)
            return [Call("search", {"text": text, **region, **filters, "carried_by": sample, **limit_args})], parsed
        return _per_class(Call("sample", {"sample": sample, **region, **filters, **whole}), parsed), parsed
    narrowed = bool(region or filters or parsed.classes or parsed.failed)
    listing = _listing(parsed)
    if listing and not narrowed:
        return [Call("list", {"what": listing})], parsed
    if "stats" in intents and not narrowed:
        return [Call("stats", {})], parsed
    if _is_search(stores, parsed):
        one_class = {"variant_class": parsed.classes[0]} if len(parsed.classes) == 1 else {}
        text = _search_text(question)
        return [Call("search", {"text": text, **region, **filters, **one_class, **limit_args})], parsed
    if parsed.region:
        return _per_class(Call("region", {"region": parsed.region, **filters, **whole}), parsed), parsed
    if filters or parsed.classes or parsed.failed:
        words = vocabulary(stores)
        calls = []
        for gene in parsed.genes or [None]:
            contigs = words.genes[gene.casefold()].contigs if gene else words.contigs
            gene_filter = {"gene": gene} if gene else {}
            for contig in contigs or words.contigs:
                call = Call("region", {"region": contig, **filters, **gene_filter, **whole})
                calls += _per_class(call, parsed)
        return calls, parsed
    if "count" in intents and DOMAIN.search(question):
        return [Call("stats", {})], parsed
    return [], parsed


def _per_class(call: Call, parsed: Parsed) -> list[Call]:
    """One call per variant class the question names ("indels": insertion, deletion, indel), and per
    failed filter when it asks for records that did not PASS (the filters have no negation)."""
    calls = [call]
    if parsed.failed and "filter" not in call.arguments:
        calls = [Call(call.operation, {**call.arguments, "filter": name}) for name in parsed.failed]
    if parsed.classes:
        calls = [Call(c.operation, {**c.arguments, "variant_class": name}) for c in calls for name in parsed.classes]
    return calls


def _listing(parsed: Parsed) -> str | None:
    """samples/genes/contigs/files when the question asks for a list, a count or a ranking of one of them,
    or names nothing else ("input files")."""
    intents = parsed.intents
    ranking = re.search(r"\b(?:most|fewest|least|rank\w*|each|every|per)\b", parsed.question, re.IGNORECASE)
    if "carriers" in intents and not ranking:
        return None
    for what in ("samples", "genes", "contigs", "files"):
        if what in intents:
            return what
    return None


#: Words that ask for a semantic search, and descriptions no filter expresses (the sentence model knows them).
SEARCH_WORDS = re.compile(
    r"\b(?:search(?:es|ing)?|semantic(?:ally)?|described as|descriptions?|resembl\w*|look(?:s|ing)? like|similar to"
    r"|such as|akin to|reminiscent of)\b",
    re.IGNORECASE,
)
DESCRIPTIVE = re.compile(
    r"\b(?:pathogenic|benign|damaging|deleterious|loss[- ]of[- ]function|lof|truncating|protein[- ]\w+"
    r"|(?:high|moderate|low|modifier)[- ]impact|impactful|coding|regulatory|clinvar|disease|cancer|tumou?r\w*"
    r"|harmful|severe|disruptive|clinical\w*|significan\w*|homopolymer|repeats?|transitions?|transversions?|[ACGT]>[ACGT])\b",
    re.IGNORECASE,
)
DOMAIN = re.compile(
    r"\b(?:variants?|variations?|mutations?|alleles?|snps?|snvs?|indels?|polymorphisms?|loci|sites?|calls?|genotypes?)\b",
    re.IGNORECASE,
)


def _is_search(stores: Stores, parsed: Parsed) -> bool:
    """A semantic search: asked for ("search", "described as", "similar to"), or a description
    in words no filter expresses ("damaging", "loss of function", "high impact")."""
    return bool(SEARCH_WORDS.search(parsed.question) or DESCRIPTIVE.search(parsed.question))


def _search_text(question: str) -> str:
    """The question without its request words and the names the filters already hold."""
    text = re.sub(
        r"^\s*(?:please\s+)?(?:(?:semantic )?search(?: for)?|find(?: me)?|show(?: me)?|look for|list|give me)\s+",
        "",
        question,
        flags=re.IGNORECASE,
    )
    return text.strip().rstrip("?.!").strip() or question.strip()


# ---------------------------------------------------------------- running the calls


def filters_of(arguments: dict[str, Any]):
    from vcf_agent.query import Filters

    return Filters(**{name: value for name, value in arguments.items() if name in Filters.model_fields})


def run_call(stores: Stores, call: Call) -> Any:
    """Run one call; the result of the query operation (a NotFound/BadQuery propagates)."""
    a = call.arguments
    op = call.operation
    if op == "search":
        return stores.search(a["text"], filters_of(a), limit=a.get("limit", 10), carriers=a.get("carriers", 10))
    if op == "similar":
        return stores.similar(a["variant_id"], filters_of(a), limit=a.get("limit", 10), carriers=a.get("carriers", 10))
    if op == "variant":
        return stores.variant(a["variant_id"], carriers=a.get("carriers"))
    if op == "sample":
        return stores.sample(a["sample"], filters_of(a), limit=a.get("limit", 100))
    if op == "shared":
        return stores.shared(a["samples"], filters_of(a), limit=a.get("limit", 100))
    if op == "region":
        return stores.region(a["region"], filters_of(a).without("region"), limit=a.get("limit", 100))
    if op == "stats":
        return stores.stats()
    if op == "list":
        return stores.listing(a["what"])
    raise AskError(f"unknown operation {op!r}")


def ask(
    stores: Stores, question: str, *, llm: str | None = None, llm_model: str = "local", limit: int | None = None
) -> Answer:
    """Plan (offline, or through the model at `llm` with an offline fallback), run, answer."""
    from vcf_agent.query import BadQuery, NotFound, _plain_text

    started = time.perf_counter()
    question = _plain_text(question, "question", 10_000)
    notes: list[str] = []
    planner = "offline"
    calls: list[Call] = []
    if llm:
        from vcf_agent.ask.llm import LlmRejected, plan_with_llm

        try:
            calls = plan_with_llm(stores, question, llm, model=llm_model)
            planner = "llm"
        except LlmRejected as error:
            notes.append(f"the language model's plan was not used ({error}); planned offline")
    offline, parsed = plan(stores, question, limit)
    if not calls:
        calls = offline
    notes.extend(parsed.notes)
    if not calls:
        return Answer(question, [], cannot_map(parsed), [], planner="offline", notes=notes,
                      seconds=round(time.perf_counter() - started, 4))  # fmt: skip
    results, errors = [], {}
    for i, call in enumerate(calls):
        try:
            results.append(run_call(stores, call))
        except (NotFound, BadQuery) as error:
            results.append({"error": str(error)})
            errors[i] = str(error)
    text, figures = compose(parsed, calls, results, errors)
    if parsed.notes:
        text = f"({'; '.join(parsed.notes)}.) {text}"
    return Answer(
        question, calls, text, results, figures, planner, notes, seconds=round(time.perf_counter() - started, 4)
    )


def cannot_map(parsed: Parsed) -> str:
    from vcf_agent.ask.intents import NEEDS

    lines = ["I could not map this question to the query operations."]
    if parsed.notes:
        lines.append("; ".join(note[0].upper() + note[1:] for note in parsed.notes) + ".")
    if parsed.ambiguous:
        lines.append("Name one sample.")
    if parsed.unknown_names:
        lines.append(f"The stores hold no sample or gene named {', '.join(parsed.unknown_names)}.")
    nearest = parsed.nearest
    if nearest is not None and nearest.mapped and nearest.intent in NEEDS:
        _, argument, what = NEEDS[nearest.intent]
        lines.append(
            f"It reads like {nearest.intent} ({nearest.phrasing!r}), which needs {what} (argument {argument})."
        )
    lines.append("I can run:")
    for name, description in DESCRIPTIONS.items():
        arguments = [*OPERATIONS[name]] + (
            ["region, gene, consequence, filter, af_min, af_max, variant_class, carried_by"] if name in FILTERED else []
        )
        lines.append(f"{name} ({', '.join(arguments) or 'no arguments'}): {description}.")
    lines.append(
        'For instance: "variants of HG00096 shared with HG00097", "who carries rs587697622",'
        ' "rare missense variants in chr22:16-17Mb".'
    )
    return " ".join(lines)


# ---------------------------------------------------------------- answers


def compose(parsed: Parsed, calls: list[Call], results: list[Any], errors: dict[int, str]) -> tuple[str, list[Figure]]:
    """A few sentences from the results; every number in them is a Figure of one call."""
    sentences: list[str] = []
    figures: list[Figure] = []

    def figure(name: str, value: int | float, call: int, about: str | None = None) -> str:
        figures.append(Figure(name, value, call, about))
        return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"

    for rsid, ids in parsed.several.items():
        sentences.append(f"{rsid} names {figure('records', len(ids), 0)} split records: {', '.join(ids)}.")
    counted_ops = {c.operation for c in calls}
    if (len(calls) > 1 and counted_ops == {"region"}) or (len(calls) > 1 and counted_ops <= {"sample", "shared"}):
        sentences.extend(_summed(calls, results, errors, figure, parsed))
    else:
        for i, (call, result) in enumerate(zip(calls, results, strict=True)):
            if i in errors:
                sentences.append(errors[i][0].upper() + errors[i][1:] + ".")
                continue
            sentences.extend(
                ANSWERS[call.operation](parsed, call, result, lambda n, v, about=None, i=i: figure(n, v, i, about))
            )
    return " ".join(sentences), figures


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _conditions(arguments: dict[str, Any], skip: tuple[str, ...] = ()) -> str:
    parts = []
    for name in ("consequence", "variant_class", "gene", "filter", "af_min", "af_max", "region", "carried_by"):
        if name in arguments and name not in skip:
            value = arguments[name]
            label = {
                "af_min": "AF >=",
                "af_max": "AF <=",
                "variant_class": "class",
                "filter": "FILTER",
                "carried_by": "carried by",
            }.get(name, name)
            parts.append(f"{label} {value}")
    return f" ({', '.join(parts)})" if parts else ""


_LABELS = {"variant_class": "class", "filter": "FILTER"}
#: The arguments several calls of one question differ in (one call per contig, class or failed filter).
_VARYING = ("region", "variant_class", "filter")


def _summed(calls, results, errors, figure, parsed) -> list[str]:
    """Several calls of one operation (one per contig, or per class): each one's total, and their sum."""
    varies = [name for name in _VARYING if len({c.arguments.get(name) for c in calls}) > 1]
    parts, total = [], 0
    for i, (call, result) in enumerate(zip(calls, results, strict=True)):
        label = " ".join(f"{_LABELS.get(name, name)} {call.arguments.get(name)}" for name in varies)
        if i in errors:
            parts.append(f"{label}: {errors[i]}")
            continue
        n = result.total if hasattr(result, "total") else result.counts.carriers
        total += n
        parts.append(f"{label}: {figure('variants', n, i)}")
    first = calls[0].arguments
    what = {
        "region": "variants",
        "sample": f"variants carried by {first.get('sample')}",
        "shared": f"variants carried by all of {', '.join(first.get('samples', []))}",
    }[calls[0].operation]
    classes = sorted({c.arguments["variant_class"] for c in calls if "variant_class" in c.arguments})
    kinds = f" of class {' or '.join(classes)}" if classes else ""
    if "filter" in varies:
        kinds += " that failed a filter (counted once per filter it failed)"
    where = _conditions(first, skip=("variant_class", *varies))
    return [f"{figure('total', total, -1)} {what}{kinds}{where} in all ({'; '.join(parts)})."]


def _answer_variant(parsed: Parsed, call: Call, record, figure) -> list[str]:
    c, vid = record.counts, record.variant_id

    def count(name: str) -> str:
        return figure(name, getattr(c, name), vid)

    where = ", ".join(x for x in (record.gene, record.consequence, record.variant_class) if x)
    af = record.info.get("info_AF")
    head = f"{vid}" + (f" ({record.id})" if record.id else "") + (f" [{where}]" if where else "")
    if isinstance(af, float):
        head += f", AF {figure('af', af, vid)},"
    zygosities = [f"{count('het')} het", f"{count('hom_alt')} hom-alt"]
    zygosities += [f"{count('hemizygous')} hemizygous"] if c.hemizygous else []
    zygosities += [f"{count('partial')} partial (./1)"] if c.partial else []
    text = [f"{head} is carried by {count('carriers')} sample{_s(c.carriers)}: {', '.join(zygosities)}."]
    carriers = {carrier.sample: carrier for carrier in record.carriers}
    for sample in parsed.samples + [name for names in parsed.ambiguous.values() for name in names]:
        found = carriers.get(sample)
        text.append(
            f"{sample} carries it (GT {found.gt}, {found.zygosity})." if found else f"{sample} does not carry it."
        )
    if not parsed.samples and record.carriers and ("carriers" in parsed.intents or parsed.zygosity):
        chosen = [x for x in record.carriers if parsed.zygosity in (None, x.zygosity)]
        kind = f"{parsed.zygosity} " if parsed.zygosity else ""
        more = ", ..." if len(chosen) > 20 else ""
        shown = ", ".join(x.sample for x in chosen[:20])
        text.append(f"The first {kind}carriers: {shown}{more}." if chosen else f"None of them is {parsed.zygosity}.")
    if record.annotations and "describe" in parsed.intents:
        text.append(f"Annotated in {', '.join(sorted({a.gene for a in record.annotations}))}.")
    return text


def _answer_hits(parsed: Parsed, call: Call, hits, figure) -> list[str]:
    if not hits:
        return [f"No variants match{_conditions(call.arguments)}."]
    subject = call.arguments.get("variant_id") or repr(call.arguments.get("text"))
    head = f"The {figure('hits', len(hits))} variants nearest to {subject}{_conditions(call.arguments)}: "
    items = []
    for h in hits[:10]:
        where = ", ".join(x for x in (h.gene, h.consequence) if x)
        carriers = f"{figure('carriers', h.carriers, h.variant_id)} carrier{_s(h.carriers)}"
        if "carriers" in parsed.intents and h.carrier_samples:
            carriers += f" ({', '.join(h.carrier_samples[:5])}{', ...' if h.carriers > 5 else ''})"
        items.append(f"{h.variant_id}" + (f" [{where}]" if where else "") + f", {carriers}")
    return [head + "; ".join(items) + "."]


def _answer_sample(parsed: Parsed, call: Call, result, figure) -> list[str]:
    c = result.counts
    where = _conditions(call.arguments)
    kinds = f"{figure('het', c.het)} het, {figure('hom_alt', c.hom_alt)} hom-alt"
    text = f"{result.sample} carries {figure('variants', c.carriers)} variants{where}: {kinds}"
    text += (
        (f", {figure('hemizygous', c.hemizygous)} hemizygous" if c.hemizygous else "")
        + (f", {figure('partial', c.partial)} partial (./1)" if c.partial else "")
        + "."
    )
    sentences = [text]
    if parsed.zygosity and not parsed.samples[1:]:
        sentences.append(f"Of these, {figure(parsed.zygosity, getattr(c, parsed.zygosity))} are {parsed.zygosity}.")
    sentences += _genes_of(parsed, result.variants, result.truncated, figure)
    return sentences


def _genes_of(parsed: Parsed, table, truncated: bool, figure) -> list[str]:
    if "genes" not in parsed.intents:
        return []
    genes = sorted({g for g in table.column("gene").to_pylist() if g}) if "gene" in table.column_names else []
    if not genes:
        return ["None of them has a gene annotation."]
    shown = ", ".join(genes[:30]) + (" and more" if len(genes) > 30 else "")
    return [
        f"They fall in {figure('genes', len(genes))} genes{' (of the rows returned)' if truncated else ''}: {shown}."
    ]


def _answer_shared(parsed: Parsed, call: Call, result, figure) -> list[str]:
    text = [
        f"{figure('variants', result.total)} variants{_conditions(call.arguments)}"
        f" are carried by all of {', '.join(result.samples)}."
    ]
    ids = result.variants.column("variant_id").to_pylist()
    if ids:
        text.append(f"The first: {', '.join(ids[:5])}.")
    return text + _genes_of(parsed, result.variants, result.truncated, figure)


def _answer_region(parsed: Parsed, call: Call, result, figure) -> list[str]:
    text = [
        f"{figure('variants', result.total)} variants{_conditions(call.arguments, skip=('region',))}"
        f" overlap {result.region}."
    ]
    rows = result.variants.to_pylist()
    if rows and "genes" not in parsed.intents:
        shown = ", ".join(
            f"{r['variant_id']} ({figure('carriers', r['carriers'], r['variant_id'])} carrier{_s(r['carriers'])})"
            for r in rows[:5]
        )
        text.append(f"The first by position: {shown}.")
    return text + _genes_of(parsed, result.variants, result.truncated, figure)


def _answer_stats(parsed: Parsed, call: Call, stats, figure) -> list[str]:
    return [
        f"The stores hold {figure('variants', stats.variants)} variants of {figure('samples', stats.samples)} samples"
        f" in {figure('files', len(stats.files))} file{_s(len(stats.files))} ({', '.join(stats.files)}),"
        f" {figure('genotypes', stats.genotypes)} non-reference genotypes, {figure('genes', stats.genes)} genes"
        f" and {figure('contigs', len(stats.contigs))} contig{_s(len(stats.contigs))}."
    ]


def _answer_list(parsed: Parsed, call: Call, entries, figure) -> list[str]:
    what = call.arguments["what"]
    n = figure(what, len(entries))
    if what == "samples":
        top = sorted(entries, key=lambda e: -e.variants)[:3]
        names = ", ".join(e.sample for e in entries[:10]) + (" ..." if len(entries) > 10 else "")
        most = "; ".join(f"sample {e.sample}: {figure('variants', e.variants, e.sample)}" for e in top)
        return [f"The stores hold {n} samples: {names}. Most variants carried: {most}."]
    if what == "genes":
        names = ", ".join(e.gene for e in entries[:20]) + (" ..." if len(entries) > 20 else "")
        return [f"The stores hold {n} genes: {names}."]
    if what == "contigs":
        return [
            f"The stores hold {n} contig{_s(len(entries))}: "
            + "; ".join(f"contig {c.name}: {figure('variants', c.variants, c.name)} variants" for c in entries[:25])
            + "."
        ]
    return [
        f"The stores hold {n} input file{_s(len(entries))}: "
        + "; ".join(
            f"{e.name} ({figure('samples', e.samples, e.name)} samples,"
            f" {figure('variants', e.variants, e.name)} variants)"
            for e in entries
        )
        + "."
    ]


ANSWERS = {
    "variant": _answer_variant,
    "similar": _answer_hits,
    "search": _answer_hits,
    "sample": _answer_sample,
    "shared": _answer_shared,
    "region": _answer_region,
    "stats": _answer_stats,
    "list": _answer_list,
}


def answer_jsonable(answer: Answer) -> dict[str, Any]:
    from vcf_agent.query import to_jsonable

    return {
        "question": answer.question,
        "calls": [{"operation": c.operation, "arguments": c.arguments} for c in answer.calls],
        "answer": answer.answer,
        "results": [to_jsonable(r) for r in answer.results],
        "figures": [to_jsonable(f) for f in answer.figures],
        "planner": answer.planner,
        "notes": answer.notes,
        "seconds": answer.seconds,
    }
