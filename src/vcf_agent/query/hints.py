"""Filter hints: the words of a search text that name a condition the stores can check exactly.

A sentence model ranks by likeness of wording: "rare missense variant" brings up
missense variants of any frequency and rare variants of any consequence, in an
order that depends on the rest of their descriptions. Words that name a column's
value are better applied as filters before the vector search (prefilter), and the
rest of the text ranks what passes. :func:`filter_hints` is that translation, a
pure function of the text (and, optionally, of what the stores hold):

=====================================================  ==================================
words                                                  filter (vcf_agent.query.Filters)
=====================================================  ==================================
very rare, ultra-rare                                  ``af_max=0.001``
low-frequency                                          ``af_min=0.01, af_max=0.05``
rare                                                   ``af_max=0.01``
common, frequent (not "in common", "common to")        ``af_min=0.05``
singleton                                              ``af_max=1.5 / (2 N)``, N the samples
                                                       of the largest input file (one ALT
                                                       copy in diploid calls, below two)
passed filters, PASS, high quality                     ``filter="PASS"``
failed filter(s), filtered out, low quality            ``filter=`` the store's one non-PASS
                                                       filter (no hint when it has several)
a FILTER name of the store (LowQual, ...)              ``filter=`` that name
missense, synonymous, frameshift, stop gained,         ``consequence=`` its SO term (the
splice donor/acceptor/region, in-frame deletion, UTR,  first the store holds, see
intron, upstream, downstream, intergenic, ...          CONSEQUENCE_WORDS; none when
                                                       the store holds none of them)
SNV/SNP, MNP, insertion, deletion, structural          ``variant_class=`` snv, mnp,
variant/SV (also "structural deletion"), symbolic      insertion, deletion, symbolic,
allele, breakend                                       breakend
=====================================================  ==================================

The words (AF_WORDS, PASS_WORDS, CONSEQUENCE_WORDS, CLASS_WORDS) and the AF bounds are
vcf_agent.vocabulary's, shared with `vcf-agent ask` (vcf_agent.ask.planner); the bounds are
also the frequency bands of the descriptions (vcf_agent.embedding.describe): rare includes very rare;
common is AF >= 5 %. Words preceded by "not", "no" or "non-" are left alone, as are
words with no exact filter ("pathogenic": Filters has no clinical-significance
condition; "indel": three classes, Filters takes one). Filters the caller gave win:
:func:`merged` adds a hint only where the caller's filter is unset. Hints order, they do
not shrink: `Stores.search` returns the variants that pass the hinted filters first and
fills the rest of the page with the nearest others (a "rare deletion" search in a sample
without rare deletions still returns deletions).

The remaining text (the words that became filters taken out) is returned too, for
callers that show it; the search embeds the full text (what is left is often one word
or nothing). Frequency words give no hint on stores without a numeric ``info_AF``.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vcf_agent.vocabulary import AF_WORDS, CLASS_WORDS, CONSEQUENCE_WORDS, PASS_WORDS, SINGLETON_ALT_COPIES

if TYPE_CHECKING:
    from vcf_agent.query import Filters, Stores

SINGLETON_WORDS = r"singletons?"
FAILED_WORDS = (
    r"fail(?:ed|s|ing)? (?:the |a |any )*(?:quality )?filters?|filtered(?: out)?|not pass(?:ing|ed)?"
    r"|low[- ]quality|non[- ]?pass"
)
#: A match right after one of these is a negation ("not rare", "non-coding"): no hint.
_NEGATION = re.compile(r"\b(?:not|no|non|without)[\s-]*$", re.IGNORECASE)


@dataclass(frozen=True)
class Vocabulary:
    """What the stores hold, where a hint depends on it (all optional)."""

    #: SO terms found in the consequence column (None: not known, take the first term)
    consequences: Collection[str] | None = None
    #: FILTER names other than PASS
    filters: Collection[str] = ()
    #: samples of the largest input file (for "singleton"; 0: no singleton hint)
    samples: int = 0


def filter_hints(text: str, vocabulary: Vocabulary | None = None) -> tuple[dict[str, Any], str]:
    """(filters named by the words of `text`, as Filters keyword arguments; the text without those words)."""
    vocabulary = vocabulary or Vocabulary()
    found: dict[str, Any] = {}
    rest = text
    if vocabulary.samples and (match := _find(rest, SINGLETON_WORDS)):
        found["af_max"], rest = round(SINGLETON_ALT_COPIES / (2 * vocabulary.samples), 8), _cut(rest, match)
    for pattern, bounds in AF_WORDS if not found else ():
        if match := _find(rest, pattern):
            found.update(bounds)
            rest = _cut(rest, match)
            break
    names = sorted(vocabulary.filters)
    for name in names:
        if match := _find(rest, re.escape(name), case=True):
            found["filter"], rest = name, _cut(rest, match)
    if (match := _find(rest, FAILED_WORDS)) and len(names) == 1:
        found.setdefault("filter", names[0])
        rest = _cut(rest, match)
    if "filter" not in found and (match := _find(rest, PASS_WORDS)):
        found["filter"], rest = "PASS", _cut(rest, match)
    known = vocabulary.consequences
    for pattern, terms in CONSEQUENCE_WORDS:
        if match := _find(rest, pattern):
            held = [term for term in terms if known is None or term in known]
            if held:  # a term the stores lack would filter out everything: the words stay for the model
                found["consequence"], rest = held[0], _cut(rest, match)
            break
    for pattern, classes in CLASS_WORDS:
        if match := _find(rest, pattern):
            if len(classes) == 1:  # "indel" names three classes, Filters takes one: the word stays
                found["variant_class"], rest = classes[0], _cut(rest, match)
            break
    return found, " ".join(rest.split())


def _find(text: str, pattern: str, *, case: bool = False) -> re.Match | None:
    """The first match of `pattern` as whole words that no negation precedes."""
    flags = 0 if case else re.IGNORECASE
    for match in re.finditer(rf"(?<![\w-])(?:{pattern})(?![\w-])", text, flags):
        if not _NEGATION.search(text[: match.start()]):
            return match
    return None


def _cut(text: str, match: re.Match) -> str:
    return text[: match.start()] + " " + text[match.end() :]


def merged(filters: Filters, hints: dict[str, Any]) -> Filters:
    """`filters` with the hinted ones added where the caller set none (AF bounds only if neither is set)."""
    wanted = {name: value for name, value in hints.items() if getattr(filters, name) is None}
    if filters.af_min is not None or filters.af_max is not None:
        wanted.pop("af_min", None)
        wanted.pop("af_max", None)
    return filters.replace(**wanted) if wanted else filters


def store_vocabulary(stores: Stores) -> Vocabulary:
    """The consequence terms, FILTER names and sample count of the stores (read once per Stores)."""
    cache = stores.__dict__.setdefault("_listings", {})
    if "hint_vocabulary" not in cache:
        # from the store's index (rule load_kuzu), so that no partition is opened for it; a
        # build made before the index held it knows no terms (a hint then takes the first)
        held = stores.graph.vocabulary or {}
        consequences = frozenset(held["consequences"]) if held else None
        filters = frozenset(held.get("filters", ()))
        samples = max((entry.samples for entry in stores.list_files()), default=0)
        cache["hint_vocabulary"] = Vocabulary(consequences, filters, samples)
    return cache["hint_vocabulary"]


def hinted(stores: Stores, text: str, filters: Filters) -> Filters:
    """The filters of a search of `text` once its hints are added (what Stores.search(hints=True) uses)."""
    found, _ = filter_hints(text, store_vocabulary(stores))
    if stores.af_column is None:  # no numeric info_AF: frequency words stay words
        found = {name: value for name, value in found.items() if name not in ("af_min", "af_max")}
    return stores.check(merged(filters, found))
