"""The words the stores use, each defined once: variant classes, zygosities, impacts, AF bands.

Stdlib only: the ingest SQL, the schema's column docs, the query filters, the CLI and HTTP
parameters, the ask planner and the README all take them from here.
"""

from __future__ import annotations

#: variant_class of each record (ingest/parquet.py assigns them from REF and ALT), with what it means.
VARIANT_CLASS_MEANINGS: dict[str, str] = {
    "snv": "one base replaced by another",
    "mnp": "several bases replaced, REF and ALT of equal length",
    "insertion": "ALT adds bases to REF",
    "deletion": "ALT removes bases of REF",
    "indel": "REF and ALT of different length, neither contained in the other",
    "symbolic": "a symbolic ALT such as <DEL> or <DUP> (structural variant)",
    "breakend": "a breakend ALT (G]17:198982], .A)",
    "overlap": "ALT * (allele overlapping an upstream deletion)",
    "non_ref": "ALT <NON_REF>, <*> or <X> (gVCF reference block)",
    "no_alt": "ALT . (reference-only record)",
}
VARIANT_CLASSES: tuple[str, ...] = tuple(VARIANT_CLASS_MEANINGS)

#: How a genotype that carries the ALT carries it (query.results.zygosity decides).
ZYGOSITY_MEANINGS: dict[str, str] = {
    "het": "one ALT copy in a diploid (or polyploid) genotype",
    "hom_alt": "every allele is the ALT",
    "hemizygous": "one ALT copy in a haploid genotype (chrX in males, chrM, haploid callers)",
    "partial": "an ALT with a missing allele beside it (./1)",
}
ZYGOSITIES: tuple[str, ...] = tuple(ZYGOSITY_MEANINGS)

#: Impacts of an ANN/CSQ annotation, most severe first (the order picks a variant's annotation).
IMPACTS: tuple[str, ...] = ("HIGH", "MODERATE", "LOW", "MODIFIER")

#: INFO/AF bands named in questions: rare and very rare are upper bounds, common a lower bound.
RARE_AF_MAX = 0.01
VERY_RARE_AF_MAX = 0.001
COMMON_AF_MIN = 0.05
LOW_FREQUENCY_AF = (RARE_AF_MAX, COMMON_AF_MIN)
#: A singleton's AF is at most this many ALT copies over 2 N alleles (one copy, below two).
SINGLETON_ALT_COPIES = 1.5


def joined(words: tuple[str, ...], last: str = "or") -> str:
    """'a, b, c or d' (for docs and help text)."""
    return f"{', '.join(words[:-1])} {last} {words[-1]}" if len(words) > 1 else "".join(words)
