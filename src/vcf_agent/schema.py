"""The one definition of every table the workflow writes and the queries read.

Parquet shards, the embedding files, the LanceDB table and the Kuzu graph all
take their column names and types from here, so a loader and a query can never
disagree about what a column is called or holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from vcf_agent.vocabulary import IMPACTS, VARIANT_CLASSES, joined

#: Embedding width of the default model (all-MiniLM-L6-v2).
DEFAULT_VECTOR_DIM = 384

#: INFO tag that the normalize step adds to the 2nd, 3rd, ... record carrying
#: the same CHROM:POS:REF:ALT in one file (real call sets have such records,
#: e.g. Platinum Genomes' OverlapConflict calls from several callers).
DUPLICATE_TAG = "VCFAGENT_DUP"

#: INFO tags that the normalize step adds to the records of a multiallelic site before
#: `bcftools norm` splits it: the site's REF and, Number=A, each ALT as written. The split
#: and left-alignment may trim an indel (REF ACC, ALT A,AC: the second becomes AC>A), while
#: the ANN/CSQ entries still name the ALT as written, so annotations are matched through these.
ORIGINAL_REF_TAG = "VCFAGENT_REF"
ORIGINAL_ALT_TAG = "VCFAGENT_ALT"
#: Tags of our own: never INFO columns.
INTERNAL_TAGS = frozenset({DUPLICATE_TAG, ORIGINAL_REF_TAG, ORIGINAL_ALT_TAG})

#: Separator between an allele key and its duplicate ordinal in variant_id.
DUPLICATE_SEPARATOR = "#"

#: Prefix of the typed columns made from INFO fields (avoids clashes with the
#: core columns: an INFO field may well be called END, ID or FILTER).
INFO_PREFIX = "info_"


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True

    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable)


VARIANT_COLUMNS: tuple[Column, ...] = (
    Column("variant_id", pa.string(), "chrom:pos:ref:alt, '#n' appended to the n-th duplicate record", False),
    Column("source", pa.string(), "name of the input VCF in the config", False),
    Column("chrom", pa.string(), "contig as in the VCF", False),
    Column("pos", pa.int64(), "1-based position after normalisation", False),
    Column("end", pa.int64(), "1-based last reference base (INFO/END for symbolic alleles)", False),
    Column("ref", pa.string(), "reference allele", False),
    Column("alt", pa.string(), "the one ALT allele of this biallelic record", False),
    Column("id", pa.string(), "VCF ID column (rsID), null when '.'"),
    Column("qual", pa.float64(), "QUAL, null when '.'"),
    Column("filter", pa.string(), "FILTER as in the VCF ('PASS', 'q10;s50'), null when '.'"),
    Column("variant_class", pa.string(), joined(VARIANT_CLASSES) + " (vocabulary.VARIANT_CLASS_MEANINGS)", False),
    Column("gene", pa.string(), "gene symbol of the most severe annotation of this ALT (ANN/CSQ)"),
    Column("consequence", pa.string(), "consequence of the most severe annotation (SO terms joined by '&')"),
    Column("impact", pa.string(), joined(IMPACTS) + " of that annotation"),
)
"""Core columns of results/parquet/variants; typed INFO columns follow them."""

GENOTYPE_COLUMNS: tuple[Column, ...] = (
    Column("sample", pa.string(), "sample name from the VCF header", False),
    Column("variant_id", pa.string(), "the variant this genotype belongs to", False),
    Column("source", pa.string(), "name of the input VCF in the config", False),
    Column("gt", pa.string(), "genotype after the split, as bcftools writes it (0|1, ./1, 1)", False),
    Column("phased", pa.bool_(), "true when the alleles are separated by '|'", False),
    Column("alt_count", pa.int8(), "copies of this ALT allele in the genotype", False),
    Column("ploidy", pa.int8(), "number of alleles called or missing in the genotype", False),
    Column("dp", pa.int32(), "FORMAT/DP where the VCF declares it"),
    Column("gq", pa.int32(), "FORMAT/GQ where the VCF declares it"),
)
"""Columns of results/parquet/genotypes: one row per sample carrying the ALT."""

ANNOTATION_COLUMNS: tuple[Column, ...] = (
    Column("variant_id", pa.string(), "the annotated variant", False),
    Column("source", pa.string(), "name of the input VCF in the config", False),
    Column("gene", pa.string(), "gene symbol (ANN Gene_Name, CSQ SYMBOL)", False),
    Column("gene_id", pa.string(), "gene identifier (ANN Gene_ID, CSQ Gene)"),
    Column("consequence", pa.string(), "SO consequence terms joined by '&'"),
    Column("impact", pa.string(), joined(IMPACTS)),
    Column("feature_id", pa.string(), "transcript or feature identifier"),
    Column("hgvs_c", pa.string(), "HGVS coding notation"),
    Column("hgvs_p", pa.string(), "HGVS protein notation"),
)
"""Columns of results/parquet/annotations: one row per annotation of the ALT."""

EMBEDDING_COLUMNS_NO_VECTOR: tuple[Column, ...] = (
    Column("variant_id", pa.string(), "the embedded variant", False),
    Column("text", pa.string(), "the description that was embedded", False),
)


def vector_type(dim: int = DEFAULT_VECTOR_DIM) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


def embedding_schema(dim: int = DEFAULT_VECTOR_DIM) -> pa.Schema:
    fields = [c.field() for c in EMBEDDING_COLUMNS_NO_VECTOR]
    fields.append(pa.field("vector", vector_type(dim), nullable=False))
    return pa.schema(fields)


def schema_of(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([c.field() for c in columns])


VARIANT_CORE_NAMES = tuple(c.name for c in VARIANT_COLUMNS)

_UNSAFE_CHARS = re.compile(r"[^0-9A-Za-z_]")


def info_column_name(info_id: str) -> str:
    """Column name for an INFO field: prefixed and safe as an SQL/Cypher identifier."""
    return INFO_PREFIX + _UNSAFE_CHARS.sub("_", info_id)


def is_number(kind: pa.DataType) -> bool:
    """Whether a column of this Arrow type holds plain numbers (an AF that filters compare)."""
    return pa.types.is_floating(kind) or pa.types.is_integer(kind)


def allele_key(chrom: str, pos: int, ref: str, alt: str) -> str:
    return f"{chrom}:{pos}:{ref}:{alt}"


def variant_id(chrom: str, pos: int, ref: str, alt: str, duplicate: int | None = None) -> str:
    """Stable id of a biallelic record; duplicate is the ordinal (>= 2) of a repeated record."""
    key = allele_key(chrom, pos, ref, alt)
    return key if not duplicate or duplicate < 2 else f"{key}{DUPLICATE_SEPARATOR}{duplicate}"


# ---------------------------------------------------------------- stores: LanceDB table and Kuzu graph
# What the load rules write (vcf_agent.stores.lance, vcf_agent.stores.kuzu) and the
# query layer reads. Column types come from the Parquet definitions above.

#: The LanceDB table: every variant Parquet column (core columns, then the union of
#: the typed INFO columns of all VCFs, null where a VCF lacks one), then `text` and
#: `vector` from the embedding files.
LANCE_TABLE = "variants"
LANCE_TEXT_COLUMN = "text"
LANCE_VECTOR_COLUMN = "vector"
#: Metric of the ANN index (vectors are L2-normalised, so cosine = 1 - dot product).
LANCE_METRIC = "cosine"
#: Scalar indexes and their kinds: BTREE for high-cardinality columns and ranges,
#: BITMAP for the few distinct values of chrom, consequence, filter and variant_class.
LANCE_SCALAR_INDEXES: dict[str, str] = {
    "variant_id": "BTREE",
    "chrom": "BITMAP",
    "pos": "BTREE",
    "gene": "BTREE",
    "consequence": "BITMAP",
    # search's filter hints (PASS, a variant class): 1 ms against 38 ms for a scan of 1 M rows
    "filter": "BITMAP",
    "variant_class": "BITMAP",
    # INFO/AF where it is numeric: a selective range (AF >= 0.05, 7.6 % of 1.1 M rows) takes 24 ms
    # prefiltered against 40 ms for a scan; the query side writes a broad one as a scan
    # (vcf_agent.query.vectors.AF_INDEX_MAX_SHARE), which the index would slow down
    info_column_name("AF"): "BTREE",
}


@dataclass(frozen=True)
class NodeTable:
    """A Kuzu node table; `columns[0]` is its primary key."""

    name: str
    columns: tuple[Column, ...]

    @property
    def key(self) -> str:
        return self.columns[0].name


@dataclass(frozen=True)
class RelTable:
    """A Kuzu rel table from `source` to `target` nodes, with properties `columns`.

    Kuzu keeps an adjacency list on both sides (its default storage_direction), so a
    pattern is matched as fast from either end.
    """

    name: str
    source: str
    target: str
    columns: tuple[Column, ...] = ()


def _variant_columns(*names: str) -> tuple[Column, ...]:
    by_name = {c.name: c for c in VARIANT_COLUMNS}
    return tuple(by_name[n] for n in names)


def _genotype_columns(*names: str) -> tuple[Column, ...]:
    by_name = {c.name: c for c in GENOTYPE_COLUMNS}
    return tuple(by_name[n] for n in names)


def _annotation_columns(*names: str) -> tuple[Column, ...]:
    by_name = {c.name: c for c in ANNOTATION_COLUMNS}
    return tuple(by_name[n] for n in names)


SAMPLE_NODE = NodeTable(
    "Sample", (Column("id", pa.string(), "sample name; one node per name in each layer (VCF) holding it", False),)
)
_VARIANT_NODE_PROPERTIES = (
    "variant_id", "chrom", "pos", "end", "ref", "alt", "id", "qual", "filter",
    "variant_class", "gene", "consequence", "impact",
)  # fmt: skip
#: INFO/AF on the graph's Variant nodes, so that AF filters run in the graph (null without a numeric AF).
VARIANT_AF = Column("af", pa.float64(), "INFO/AF of this ALT when the VCF declares a numeric AF, else null")
#: The graph is built in layers, one per VCF (vcf_agent.stores.kuzu): a variant several VCFs hold has a
#: node in each of their layers, and only the first VCF's (config order) is canonical.
VARIANT_CANONICAL = Column(
    "canonical", pa.bool_(), "true in the layer of the first VCF of the config holding this variant", False
)
VARIANT_NODE = NodeTable("Variant", (*_variant_columns(*_VARIANT_NODE_PROPERTIES), VARIANT_AF, VARIANT_CANONICAL))
GENE_NODE = NodeTable("Gene", (Column("symbol", pa.string(), "gene symbol of an ANN/CSQ annotation", False),))
FILE_NODE = NodeTable(
    "File",
    (
        Column("name", pa.string(), "name of the input VCF in the config (the `source` column)", False),
        Column("path", pa.string(), "the input VCF as configured"),
    ),
)
# CARRIES keeps adjacency on both sides (Kuzu's default), so the carriers of a
# variant are read as directly as the variants of a sample (3 ms against 150 ms
# for a scan of 10,000,000 edges stored on the Sample side only). The price is at
# load time: Kuzu's COPY holds every edge once per stored direction (about 60 bytes
# per edge and direction, 30 more per string property); see kuzu_mem_mb in
# workflow/rules/common.smk.
# dp and gq exist only in the layers where some genotype holds one: see CARRIES_OPTIONAL.
# No source property: an edge's VCF is the layer of the database holding it.
CARRIES_REL = RelTable(
    "CARRIES",
    "Sample",
    "Variant",
    _genotype_columns("gt", "phased", "alt_count", "ploidy", "dp", "gq"),
)
#: Properties of CARRIES that a layer may lack (see above); check with Graph.properties.
CARRIES_OPTIONAL = frozenset({"dp", "gq"})
IN_GENE_REL = RelTable(
    "IN_GENE",
    "Variant",
    "Gene",
    _annotation_columns("consequence", "impact", "feature_id", "hgvs_c", "hgvs_p", "gene_id", "source"),
)
#: A variant's annotations as `variant` shows them (vcf_agent.query.results.Annotation), in Cypher
#: over (v:Variant)-[a:IN_GENE]->(g:Gene): read by the variant index's build and by queries without one.
ANNOTATION_FIELDS = (
    "g.symbol AS gene, a.consequence AS consequence, a.impact AS impact,"
    " a.feature_id AS feature_id, a.hgvs_c AS hgvs_c, a.hgvs_p AS hgvs_p, a.source AS source"
)
VARIANT_IN_FILE_REL = RelTable("VARIANT_IN_FILE", "Variant", "File")
SAMPLE_IN_FILE_REL = RelTable("SAMPLE_IN_FILE", "Sample", "File")

KUZU_NODE_TABLES: tuple[NodeTable, ...] = (SAMPLE_NODE, VARIANT_NODE, GENE_NODE, FILE_NODE)
KUZU_REL_TABLES: tuple[RelTable, ...] = (CARRIES_REL, IN_GENE_REL, VARIANT_IN_FILE_REL, SAMPLE_IN_FILE_REL)

#: Property names that are Cypher keywords: write them in backticks, e.g. v.`end`.
KUZU_KEYWORD_PROPERTIES = frozenset({"end"})

_KUZU_TYPES = {
    pa.string(): "STRING",
    pa.int64(): "INT64",
    pa.int32(): "INT32",
    pa.int8(): "INT8",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
}


def kuzu_type(arrow_type: pa.DataType) -> str:
    return _KUZU_TYPES[arrow_type]


def kuzu_property(name: str) -> str:
    """A property name as Cypher needs it (backticks around keywords such as `end`)."""
    return f"`{name}`" if name in KUZU_KEYWORD_PROPERTIES else name


def kuzu_ddl(omit: dict[str, set[str]] | None = None) -> list[str]:
    """CREATE statements of every node and rel table; `omit` maps a rel table to properties left out."""
    omit = omit or {}
    statements = []
    for node in KUZU_NODE_TABLES:
        props = ", ".join(f"{kuzu_property(c.name)} {kuzu_type(c.type)}" for c in node.columns)
        statements.append(f"CREATE NODE TABLE {node.name}({props}, PRIMARY KEY ({node.key}))")
    for rel in KUZU_REL_TABLES:
        columns = [c for c in rel.columns if c.name not in omit.get(rel.name, set())]
        props = "".join(f", {kuzu_property(c.name)} {kuzu_type(c.type)}" for c in columns)
        statements.append(f"CREATE REL TABLE {rel.name}(FROM {rel.source} TO {rel.target}{props})")
    return statements
