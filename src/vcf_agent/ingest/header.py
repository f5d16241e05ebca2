"""What a VCF header declares: samples, contigs, INFO/FORMAT fields and annotation layouts.

Parsed with pysam (htslib's own parser), so we read a header exactly as
bcftools does.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pysam

from vcf_agent.errors import fail
from vcf_agent.ingest.bcftools import bcftools, run

#: SnpEff's fixed ANN layout (the header repeats it; we read it from there when present).
SNPEFF_ANN_FIELDS = (
    "Allele", "Annotation", "Annotation_Impact", "Gene_Name", "Gene_ID", "Feature_Type",
    "Feature_ID", "Transcript_BioType", "Rank", "HGVS.c", "HGVS.p", "cDNA.pos / cDNA.length",
    "CDS.pos / CDS.length", "AA.pos / AA.length", "Distance", "ERRORS / WARNINGS / INFO",
)  # fmt: skip


@dataclass(frozen=True)
class FieldDef:
    """One ##INFO or ##FORMAT definition."""

    id: str
    number: str  # '1', '2', 'A', 'R', 'G' or '.'
    type: str  # Integer, Float, Flag, Character or String
    description: str = ""

    @property
    def single_value_after_split(self) -> bool:
        """After `bcftools norm -m -any` a Number=A field holds one value, like Number=1."""
        return self.number in ("1", "A") or self.type == "Flag"


@dataclass(frozen=True)
class AnnotationLayout:
    """Where the allele, gene, consequence... sit in an ANN (SnpEff) or CSQ (VEP) entry."""

    tag: str  # ANN or CSQ
    fields: tuple[str, ...]

    def index(self, *names: str) -> int | None:
        """1-based position of the first of `names` present (DuckDB lists are 1-based)."""
        lowered = [f.lower() for f in self.fields]
        for name in names:
            if name.lower() in lowered:
                return lowered.index(name.lower()) + 1
        return None


@dataclass
class VcfHeader:
    samples: list[str]
    contigs: dict[str, int | None]
    info: dict[str, FieldDef] = field(default_factory=dict)
    formats: dict[str, FieldDef] = field(default_factory=dict)

    @property
    def annotation(self) -> AnnotationLayout | None:
        """The annotation field to read genes and consequences from (ANN preferred over CSQ)."""
        for tag in ("ANN", "CSQ"):
            layout = _annotation_layout(self.info.get(tag))
            if layout:
                return layout
        return None


def read_header(path: Path | str) -> VcfHeader:
    """Parse the header of any VCF/BCF htslib reads (plain gzip included), as bcftools prints it."""
    text = run(bcftools("view", "--header-only", "--no-version", path), subject=path)
    return parse_header_text(text, subject=path)


def parse_header_text(text: str, *, subject: object = "header") -> VcfHeader:
    """Parse header text with htslib (through pysam) without opening the records."""
    pysam.set_verbosity(0)  # bcftools already printed htslib's remarks about this header
    with tempfile.NamedTemporaryFile("w", suffix=".vcf") as handle:
        handle.write(text)
        handle.flush()
        try:
            with pysam.VariantFile(handle.name) as vcf:
                return _from_pysam(vcf.header)
        except (OSError, ValueError) as error:
            raise fail(subject, f"cannot parse the VCF header ({error})") from error


def _from_pysam(header: pysam.VariantHeader) -> VcfHeader:
    return VcfHeader(
        samples=list(header.samples),
        contigs={name: contig.length for name, contig in header.contigs.items()},
        info={name: _field_def(name, meta) for name, meta in header.info.items()},
        formats={name: _field_def(name, meta) for name, meta in header.formats.items()},
    )


def _field_def(name: str, meta) -> FieldDef:
    # The raw header values: pysam 0.24 cannot map VCF 4.4's Number=P and raises on it.
    record = meta.record
    return FieldDef(name, record.get("Number") or ".", record.get("Type") or "String", meta.description or "")


_CSQ_FORMAT = re.compile(r"Format:\s*(?P<fields>[^\s\"']+)")
_ANN_FORMAT = re.compile(r"'(?P<fields>[^']+)'")


def _annotation_layout(definition: FieldDef | None) -> AnnotationLayout | None:
    if definition is None or definition.type != "String":
        return None
    if definition.id == "ANN":
        match = _ANN_FORMAT.search(definition.description)
        names = [f.strip() for f in match["fields"].split("|")] if match else SNPEFF_ANN_FIELDS
        return AnnotationLayout("ANN", tuple(names))
    match = _CSQ_FORMAT.search(definition.description)
    if match is None:
        return None
    return AnnotationLayout("CSQ", tuple(match["fields"].split("|")))
