"""The one definition of every table the workflow writes and the queries read.

Parquet shards, the embedding files, the LanceDB table and the Kuzu graph all
take their column names and types from here, so a loader and a query can never
disagree about what a column is called or holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

#: Embedding width of the default model (all-MiniLM-L6-v2).
DEFAULT_VECTOR_DIM = 384

#: INFO tag that the normalize step adds to the 2nd, 3rd, ... record carrying
#: the same CHROM:POS:REF:ALT in one file (real call sets have such records,
#: e.g. Platinum Genomes' OverlapConflict calls from several callers).
DUPLICATE_TAG = "VCFAGENT_DUP"

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
    Column(
        "variant_class",
        pa.string(),
        "snv, mnp, insertion, deletion, indel, symbolic, breakend, overlap or non_ref",
        False,
    ),
    Column("gene", pa.string(), "gene symbol of the most severe annotation of this ALT (ANN/CSQ)"),
    Column("consequence", pa.string(), "consequence of the most severe annotation (SO terms joined by '&')"),
    Column("impact", pa.string(), "HIGH, MODERATE, LOW or MODIFIER of that annotation"),
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
    Column("impact", pa.string(), "HIGH, MODERATE, LOW or MODIFIER"),
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


def allele_key(chrom: str, pos: int, ref: str, alt: str) -> str:
    return f"{chrom}:{pos}:{ref}:{alt}"


def variant_id(chrom: str, pos: int, ref: str, alt: str, duplicate: int | None = None) -> str:
    """Stable id of a biallelic record; duplicate is the ordinal (>= 2) of a repeated record."""
    key = allele_key(chrom, pos, ref, alt)
    return key if not duplicate or duplicate < 2 else f"{key}{DUPLICATE_SEPARATOR}{duplicate}"
