"""The intent of a question the planner's rules cannot map, by phrasing similarity.

The question is compared with example phrasings of each operation (:data:`PHRASINGS`)
by the sentence model the stores already use for searches (the same vectors, cosine
similarity). The nearest phrasing gives the operation when its similarity reaches
:data:`THRESHOLD`; below it the question stays unmapped. An operation whose required
argument the question does not name (a sample, a variant, a region) is not run: the
answer says which argument it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vcf_agent.query import Stores

#: Cosine similarity (all-MiniLM-L6-v2) a question needs to its nearest phrasing. Unrelated
#: requests ("book me a flight to Boston") stay below 0.3; paraphrases of these reach 0.5-0.8.
THRESHOLD = 0.5

#: intent -> example phrasings. An intent is an operation, or `list WHAT` for the listings.
PHRASINGS: dict[str, tuple[str, ...]] = {
    "stats": (
        "what is in this database",
        "give me an overview of the data",
        "how big is this call set",
        "what has been loaded",
        "summarise the cohort",
        "what does this dataset contain",
        "basic numbers about the study",
    ),
    "list samples": (
        "who is in this study",
        "which individuals were sequenced",
        "name the participants",
        "which people are in the cohort",
        "what subjects were genotyped",
        "enumerate the patients",
    ),
    "list genes": (
        "which genes are annotated",
        "what genes are covered",
        "name the genes with variation",
        "which loci have gene annotations",
    ),
    "list contigs": (
        "which chromosomes are covered",
        "what contigs does the data span",
        "on which sequences are there calls",
        "which chromosomes have variation",
    ),
    "list files": (
        "which VCF files were loaded",
        "what inputs went in",
        "which call sets are there",
        "where does the data come from",
    ),
    "search": (
        "find variants that may be damaging",
        "variants likely to break a protein",
        "look for variants that could cause disease",
        "mutations predicted to be deleterious",
        "variants in repetitive sequence",
        "variants that change the reading frame of a transcript",
    ),
    "variant": (
        "what do we know about this variant",
        "describe this mutation",
        "who has this allele",
        "what is the allele frequency of this site",
    ),
    "similar": (
        "what looks like this variant",
        "variants resembling this one",
        "neighbours of this variant in embedding space",
    ),
    "sample": (
        "what does this person carry",
        "the genotype profile of one individual",
        "how many alternate alleles does this subject have",
    ),
    "shared": (
        "what do these people have in common",
        "variants both individuals carry",
        "overlap between two genomes",
    ),
    "region": (
        "what variation is there in this interval",
        "variants in this window of the chromosome",
        "calls between two positions",
    ),
}
#: What an intent needs from the question (Parsed attribute, the argument it becomes, how to say it).
NEEDS = {
    "variant": ("variants", "variant_id", "a variant id or rsID"),
    "similar": ("variants", "variant_id", "a variant id or rsID"),
    "sample": ("samples", "sample", "a sample name"),
    "shared": ("samples", "samples", "two or more sample names"),
    "region": ("region", "region", "a region such as chr1:10000-20000"),
}


@dataclass
class Nearest:
    intent: str
    #: the phrasing nearest to the question, and its cosine similarity
    phrasing: str
    similarity: float

    @property
    def mapped(self) -> bool:
        return self.similarity >= THRESHOLD


def phrasing_vectors(stores: Stores) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(intent, phrasing) pairs and their vectors, computed once per Stores (one forward pass: a server
    may call this at warm-up, once its model is loaded, so that no question waits for it)."""
    from vcf_agent.embedding.embed import embed_texts

    cache = stores.__dict__.setdefault("_listings", {})
    if "phrasings" not in cache:
        pairs = [(intent, text) for intent, texts in PHRASINGS.items() for text in texts]
        with stores._model_lock:  # one forward pass over all of them (a query's lock, as Stores.embed takes)
            vectors = embed_texts([text for _, text in pairs], loaded=stores._model())
        cache["phrasings"] = pairs, vectors
    return cache["phrasings"]


def nearest_intent(stores: Stores, question: str) -> Nearest:
    """The intent whose example phrasing is nearest to `question` (vectors are normalised: dot = cosine)."""
    pairs, vectors = phrasing_vectors(stores)
    scores = vectors @ stores.embed(question)
    best = int(np.argmax(scores))
    intent, phrasing = pairs[best]
    return Nearest(intent, phrasing, round(float(scores[best]), 4))
