"""Find your way in the stores: what they hold (samples, genes, contigs, files) and variant ids in any spelling.

`Stores.list_samples()`, `list_genes()`, `list_contigs()`, `list_files()` and
`Stores.resolve_variant()` call these; the planner of `vcf-agent ask` uses them
to check the names a question holds against the stores. Every listing is
computed once (the stores are read-only) and comes from the Kuzu graph, whose
queries are constant strings with bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vcf_agent.query import Contig, Stores

#: What `vcf-agent list` lists.
LISTINGS = ("samples", "genes", "contigs", "files")

#: rs123, RS123 (dbSNP ids as VCF ID columns hold them).
RSID = re.compile(r"[rR][sS]\d{1,12}")
#: chrom:pos:ref:alt spelled with ':' '-' '_' or '/' between the parts, or `chrom:pos ref>alt`.
SPELLED_ID = re.compile(
    r"(?P<chrom>[A-Za-z0-9_.]+?)[:\-_/ ](?P<pos>\d[\d,]*)[:\-_/ ](?P<ref>[ACGTNacgtn*]+)"
    r"[:\-_/ >](?P<alt>[ACGTNacgtn*]+|<[^<>]+>)"
)


@dataclass
class SampleEntry:
    sample: str
    #: genotypes carrying an ALT (as `sample` counts them)
    variants: int
    files: list[str]


@dataclass
class GeneEntry:
    gene: str
    #: variants whose most severe annotation is in this gene (what the `gene` filter selects)
    variants: int
    #: variants with any annotation in this gene
    annotated: int
    contigs: list[str]


@dataclass
class FileEntry:
    name: str
    path: str | None
    samples: int
    variants: int


_SAMPLES = "MATCH (s:Sample) OPTIONAL MATCH (s)-[c:CARRIES]->(:Variant) RETURN s.id AS sample, count(c) AS variants"
_SAMPLE_FILES = "MATCH (s:Sample)-[:SAMPLE_IN_FILE]->(f:File) RETURN s.id AS sample, f.name AS name ORDER BY name"
_FILES = "MATCH (f:File) RETURN f.name AS name, f.path AS path ORDER BY name"
_FILE_SAMPLES = "MATCH (s:Sample)-[:SAMPLE_IN_FILE]->(f:File) RETURN f.name AS name, count(*) AS n"
_BY_RSID = (
    "MATCH (v:Variant) WHERE v.canonical"
    " AND (v.id = $id OR (v.id CONTAINS ';' AND list_contains(string_split(v.id, ';'), $id)))"
    " RETURN v.variant_id AS id, v.chrom AS chrom, v.pos AS pos ORDER BY chrom, pos, id"
)
_BY_ID = "MATCH (v:Variant {variant_id: $id}) RETURN v.variant_id AS id"
_BY_ALLELES = (
    "MATCH (v:Variant) WHERE v.chrom = $chrom AND v.pos = $pos AND v.ref = $ref AND v.alt = $alt"
    " RETURN v.variant_id AS id ORDER BY id"
)


# The graph is layered and partitioned (vcf_agent.stores.kuzu): counts over variants and
# genotypes add up over the partitions (a variant is canonical in one layer, a genotype in one
# layer); each layer's partitions hold its VCF's samples and File node (`per_layer`).


def list_samples(stores: Stores) -> list[SampleEntry]:
    files: dict[str, list[str]] = {}
    for row in stores.graph.shared(_SAMPLE_FILES):
        files.setdefault(row["sample"], []).append(row["name"])
    if stores.graph.indexed(range(len(stores.graph.partitions))):  # no partition opened
        carried = stores.graph.indexed_carriers()
    else:
        carried = dict.fromkeys(stores.sample_names(), 0)
        for row in stores.graph.query(_SAMPLES):
            carried[row["sample"]] += row["variants"]
    return [SampleEntry(name, n, sorted(files.get(name, []))) for name, n in carried.items()]


def list_genes(stores: Stores) -> list[GeneEntry]:
    if stores.graph.gene_counts is not None:  # from the store's index: no partition opened
        held = stores.graph.gene_counts
        return [
            GeneEntry(name, sum(held[name]["variants"].values()), held[name]["annotated"],
                      sorted(held[name]["variants"], key=_natural_key))
            for name in sorted(held, key=str.casefold)
        ]  # fmt: skip
    from vcf_agent.stores.kuzu import ANNOTATED_CYPHER, MOST_SEVERE_CYPHER  # imports Kuzu

    genes: dict[str, GeneEntry] = {}  # a build whose index has no gene counts: ask every partition
    for row in stores.graph.query(ANNOTATED_CYPHER):
        genes.setdefault(row["gene"], GeneEntry(row["gene"], 0, 0, [])).annotated += row["n"]
    for row in stores.graph.query(MOST_SEVERE_CYPHER):
        entry = genes.setdefault(row["gene"], GeneEntry(row["gene"], 0, 0, []))
        entry.variants += row["n"]
        if row["chrom"] not in entry.contigs:
            entry.contigs.append(row["chrom"])
    for entry in genes.values():
        entry.contigs.sort(key=_natural_key)
    return [genes[name] for name in sorted(genes, key=str.casefold)]


def list_contigs(stores: Stores) -> list[Contig]:
    return list(stores.stats().contigs)


def list_files(stores: Stores) -> list[FileEntry]:
    samples = {r["name"]: r["n"] for r in stores.graph.shared(_FILE_SAMPLES)}
    variants: dict[str, int] = {}  # from the index's counts (a layer's File is its VCF's), no partition opened
    for part, entry in enumerate(stores.graph.partitions):
        name = stores.graph.layer(part).source
        variants[name] = variants.get(name, 0) + int(entry["counts"].get("VARIANT_IN_FILE", 0))
    paths = {r["name"]: r["path"] for r in stores.graph.shared(_FILES)}
    return [
        FileEntry(name, paths.get(name), samples.get(name, 0), variants.get(name, 0))
        for name in sorted(layer.source for layer in stores.graph.layers)
    ]


def resolve_variant(stores: Stores, text: str) -> list[str]:
    """The stored variant ids that `text` names: the id itself, an rsID (every split record
    carrying it), or chrom:pos:ref:alt spelled with '-', '_', '/', or 'chr' added or left out.
    Empty when none."""
    text = text.strip()
    if RSID.fullmatch(text):
        return with_id_column(stores, "rs" + text[2:])  # any partition may hold it
    if any(stores.graph.query(_BY_ID, {"id": text}, part) for part in stores.graph.parts_of_id(text)):
        return [text]
    match = SPELLED_ID.fullmatch(text)
    if match is None:
        return []
    pos = int(match["pos"].replace(",", ""))
    ref, alt = match["ref"].upper(), match["alt"] if match["alt"].startswith("<") else match["alt"].upper()
    for chrom in contig_spellings(stores, match["chrom"]):
        params = {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt}
        found = stores.graph.each(_BY_ALLELES, params, stores.graph.parts_at(chrom, pos))
        if found:  # the variant's node in each layer holding it
            return sorted({r["id"] for r in found})
    return []


def with_id_column(stores: Stores, text: str) -> list[str]:
    """The stored variant ids whose ID column holds `text` (one of its ';'-separated ids), each once
    (a variant of several VCFs has a node in each layer: its canonical one is asked)."""
    rows = stores.graph.query(_BY_RSID, {"id": text})
    return [r["id"] for r in sorted(rows, key=lambda r: (r["chrom"], r["pos"], r["id"]))]


def contig_spellings(stores: Stores, name: str) -> list[str]:
    """The stored contigs `name` may mean: itself, with or without 'chr', any case (chrX = X = x)."""
    held = {c.name.casefold(): c.name for c in stores.stats().contigs}
    bare = name[3:] if name.casefold().startswith("chr") else name
    found = []
    for candidate in (name, bare, "chr" + bare):
        stored = held.get(candidate.casefold())
        if stored is not None and stored not in found:
            found.append(stored)
    return found


def _natural_key(name: str) -> tuple:
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name))
