"""The words the stores use, each defined once: variant classes, zygosities, impacts, AF bands,
and the words of questions and search texts that name them.

Stdlib only: the ingest SQL, the schema's column docs, the query filters, the CLI and HTTP
parameters, the ask planner, the search's filter hints and the README all take them from here.
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

# ---------------------------------------------------------------- words of questions and search texts
# The ask planner (vcf_agent.ask.planner) and the search's filter hints (vcf_agent.query.hints) read
# the same words; each pattern is matched as whole words, case-insensitively.

#: Frequency words -> AF bounds, most specific first (the first that matches is used). "in common",
#: "most common" and "common to" say shared or frequent among the samples, not a population AF.
AF_WORDS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"ultra[- ]?rare|very rare|extremely rare", {"af_max": VERY_RARE_AF_MAX}),
    (r"low[- ]frequency", dict(zip(("af_min", "af_max"), LOW_FREQUENCY_AF, strict=True))),
    (r"rare", {"af_max": RARE_AF_MAX}),
    (r"(?<!in )(?<!most )common(?! to)|frequent", {"af_min": COMMON_AF_MIN}),
)
#: Words for FILTER = PASS.
PASS_WORDS = r"pass(?:ed|es|ing)?(?: (?:all |the )*filters?)?|filter(?:ed)? pass|high[- ]quality"
#: Words -> SO terms, most specific first (the first term the stores hold is used; else the first).
CONSEQUENCE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"in[- ]?frame del\w*", ("inframe_deletion",)),
    (r"in[- ]?frame ins\w*", ("inframe_insertion",)),
    (r"frame[- ]?shift\w*", ("frameshift_variant",)),
    (r"missense|non[- ]?synonymous|amino[- ]acid chang\w*", ("missense_variant",)),
    (r"synonymous|silent", ("synonymous_variant",)),
    (r"stop[- ]?gain\w*|nonsense|premature stop", ("stop_gained",)),
    (r"stop[- ]?lo(?:st|ss)", ("stop_lost",)),
    (r"start[- ]?lo(?:st|ss)", ("start_lost",)),
    (r"splice[- ]?donor", ("splice_donor_variant",)),
    (r"splice[- ]?acceptor", ("splice_acceptor_variant",)),
    (r"splice[- ]?region|splic\w*", ("splice_region_variant",)),
    (r"5'? ?(?:prime )?utr|five prime utr", ("5_prime_UTR_variant",)),
    (r"3'? ?(?:prime )?utr|three prime utr", ("3_prime_UTR_variant",)),
    (r"intron\w*", ("intron_variant",)),
    (r"intergenic", ("intergenic_region", "intergenic_variant")),
    (r"upstream", ("upstream_gene_variant",)),
    (r"downstream", ("downstream_gene_variant",)),
    (r"non[- ]?coding (?:transcript )?exon\w*", ("non_coding_transcript_exon_variant",)),
)
#: Words -> the variant classes they name (VARIANT_CLASSES), most specific first: "structural
#: deletion" is a symbolic allele before it is a deletion; "indel" names three classes.
CLASS_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        r"structural (?:variants?|deletions?|duplications?|inversions?|insertions?|events?)|svs?"
        r"|symbolic(?: alleles?)?",
        ("symbolic",),
    ),
    (r"breakends?|bnds?|translocations?", ("breakend",)),
    (
        r"snvs?|snps?|single[- ]nucleotide (?:variants?|polymorphisms?|changes?)|point mutations?|substitutions?",
        ("snv",),
    ),
    (r"mnps?|mnvs?|multi[- ]nucleotide \w+", ("mnp",)),
    (r"indels?", ("insertion", "deletion", "indel")),
    (r"deletions?|deleted", ("deletion",)),
    (r"insertions?|inserted", ("insertion",)),
)


def joined(words: tuple[str, ...], last: str = "or") -> str:
    """'a, b, c or d' (for docs and help text)."""
    return f"{', '.join(words[:-1])} {last} {words[-1]}" if len(words) > 1 else "".join(words)
