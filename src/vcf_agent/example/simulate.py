"""The bundled example: a coalescent simulation written out as a realistic, annotated call set.

`simulate_example` writes a bgzipped, tabix-indexed VCF and the matching
reference FASTA (with its .fai). Everything comes from one seed:

* **genealogy** - msprime 1.4.4, one independent simulation per contig with
  human-like parameters (ancestral Ne 10,000 growing to 100,000 over the last
  400 generations, recombination 1e-8, mutation 1.5e-8 per bp per generation
  under HKY with a transition/transversion ratio of about 2, plus hypermutable
  single-base hotspots where recurrent mutations make multiallelic sites);
* **reference** - random bases (41% GC) with toy protein-coding genes written
  into it (ATG ... stop open reading frames, GT/AG splice sites), so REF alleles,
  codons and amino-acid changes are all read from one sequence;
* **alleles** - each site's ancestral state is mapped onto the reference base
  (by a mapping that keeps transitions transitions); some sites become
  insertions and deletions, a few of them written at the right end of a
  homopolymer or short tandem repeat (not left-aligned, as some callers emit
  them) so that `bcftools norm -f` has records to realign, and a few
  multiallelic sites become repeat-length polymorphisms;
* **annotations** - SnpEff-style ANN entries from the toy genes (one or more
  per ALT allele: missense, synonymous, stop_gained, frameshift, splice,
  intron, UTR, upstream/downstream, intergenic) and a ClinVar-like CLNSIG on a
  share of the genic variants;
* **call-set mess** - phased genotypes with some unphased heterozygotes,
  missing calls (`./.`, some with the trailing fields dropped) and half-missing
  ones (`./1`), FORMAT DP/GQ, QUAL and a LowQual filter.

Files are written under temporary names and renamed into place at the end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msprime
import numpy as np
import pysam

from vcf_agent.errors import fail
from vcf_agent.files import atomic_files

#: Contigs and their lengths (bp).
CONTIGS = (("chr1", 1_000_000), ("chr2", 800_000))
#: Toy genes per contig (about 10 per Mb).
GENES_PER_CONTIG = {"chr1": 10, "chr2": 8}

# Human-like demography and rates.
ANCESTRAL_SIZE = 10_000
PRESENT_SIZE = 100_000
GROWTH_GENERATIONS = 400
RECOMBINATION_RATE = 1e-8
MUTATION_RATE = 1.5e-8
TS_TV_KAPPA = 4.5  # HKY kappa; with these base frequencies Ts/Tv is about 2
BASES = "ACGT"
BASE_FREQUENCIES = (0.295, 0.205, 0.205, 0.295)
#: One hypermutable base per this many bp, mutating this many times faster (recurrent hits).
HOTSPOT_SPACING = 5_000
HOTSPOT_FOLD = 300

#: Sites closer than this to another site stay SNVs (indels and repeats need room to move).
CLEARANCE = 25
#: Longest repeat tract written around a site (< CLEARANCE, so realigned records keep their order).
MAX_TRACT = 18
#: Share of eligible biallelic sites per kind (cumulative thresholds on one uniform draw).
INDEL_KINDS = (
    ("deletion", 0.08),
    ("insertion", 0.125),
    ("deletion_rightmost", 0.14),
    ("insertion_rightmost", 0.15),
)
#: Share of eligible multiallelic sites that become repeat-length polymorphisms.
REPEAT_MULTIALLELIC_SHARE = 0.4

# Genotype mess.
DEPTH_RANGE = (18, 40)  # per-sample mean read depth
MISSING_RATE_RANGE = (0.0005, 0.01)  # per-sample share of ./. calls
HALF_MISSING_RATE = 0.003  # share of carrier genotypes written ./1
UNPHASED_HET_RATE = 0.01
LOW_QUAL = 30.0
CLNSIG_SHARE = 0.6

UPSTREAM_DISTANCE = 5_000
FASTA_LINE = 60

ANN_DESCRIPTION = (
    "Functional annotations: 'Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID | Feature_Type | "
    "Feature_ID | Transcript_BioType | Rank | HGVS.c | HGVS.p | cDNA.pos / cDNA.length | CDS.pos / CDS.length | "
    "AA.pos / AA.length | Distance | ERRORS / WARNINGS / INFO'"
)
IMPACT_ORDER = {"HIGH": 0, "MODERATE": 1, "LOW": 2, "MODIFIER": 3}
CLINICAL = {
    "HIGH": ("Pathogenic", "Likely_pathogenic", "Pathogenic/Likely_pathogenic"),
    "MODERATE": (
        "Uncertain_significance",
        "Uncertain_significance",
        "Likely_pathogenic",
        "Conflicting_interpretations_of_pathogenicity",
        "Likely_benign",
    ),
    "LOW": ("Likely_benign", "Benign", "Benign/Likely_benign"),
}

_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_CODONS = [a + b + c for a in "TCAG" for b in "TCAG" for c in "TCAG"]
_CODON_TABLE = dict(zip(_CODONS, "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG", strict=True))
_SENSE_CODONS = [codon for codon in _CODONS if _CODON_TABLE[codon] != "*"]
_STOP_CODONS = ("TAA", "TAG", "TGA")
_AA_NAMES = "AlaCysAspGluPheGlyHisIleLysLeuMetAsnProGlnArgSerThrValTrpTyr"
_AA3 = {**{aa: _AA_NAMES[3 * i : 3 * i + 3] for i, aa in enumerate("ACDEFGHIKLMNPQRSTVWY")}, "*": "*"}
#: Base permutations that keep transitions (A<->G, C<->T) transitions: one maps any base onto any other.
_KLEIN = (
    {},
    {"A": "G", "G": "A", "C": "T", "T": "C"},
    {"A": "C", "C": "A", "G": "T", "T": "G"},
    {"A": "T", "T": "A", "C": "G", "G": "C"},
)


def simulate_example(vcf_path: Path | str, fasta_path: Path | str, seed: int = 42, samples: int = 60) -> dict:
    """Write the example VCF (+ .tbi) and reference FASTA (+ .fai); return a summary of what is in them."""
    if samples < 1:
        raise fail("example.samples", f"need at least one sample, not {samples}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    cohort = Cohort.draw(samples, rng)
    contigs = [simulate_contig(name, length, cohort, rng) for name, length in CONTIGS]
    vcf_path, fasta_path = Path(vcf_path), Path(fasta_path)
    header = vcf_header(contigs, cohort, fasta_path.name, seed)
    _write_outputs(vcf_path, fasta_path, header, contigs)
    return _summary(contigs, cohort, seed, time.perf_counter() - started)


# --- samples and genotypes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cohort:
    names: list[str]
    mean_depth: np.ndarray
    missing_rate: np.ndarray

    @classmethod
    def draw(cls, samples: int, rng: np.random.Generator) -> Cohort:
        width = max(2, len(str(samples)))
        return cls(
            names=[f"sample{i:0{width}d}" for i in range(1, samples + 1)],
            mean_depth=rng.uniform(*DEPTH_RANGE, samples),
            missing_rate=rng.uniform(*MISSING_RATE_RANGE, samples),
        )

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Calls:
    """One record's genotypes: allele indices per haplotype (-1 missing) and the FORMAT values."""

    first: np.ndarray
    second: np.ndarray
    phased: np.ndarray
    depth: np.ndarray
    quality: np.ndarray
    missing: np.ndarray  # ./.

    def columns(self) -> list[str]:
        return [self._one(i) for i in range(len(self.first))]

    def genotype_text(self) -> str:
        """The GT-only sample columns, tab-separated (built in numpy: a 2,504-sample cohort has 10^9 of them)."""
        if max(int(self.first.max()), int(self.second.max())) > 9:  # allele indices of two digits
            return "\t".join(column.split(":")[0] for column in self.columns())
        text = np.empty((len(self.first), 4), dtype=np.uint8)
        text[:, 0] = np.where(self.first < 0, ord("."), self.first + ord("0"))
        text[:, 1] = np.where(self.phased, ord("|"), ord("/"))
        text[:, 2] = np.where(self.second < 0, ord("."), self.second + ord("0"))
        text[:, 3] = ord("\t")
        return text.tobytes()[:-1].decode("ascii")

    def _one(self, i: int) -> str:
        if self.missing[i]:
            return "./." if self.depth[i] == 0 else f"./.:{self.depth[i]}:."
        first = "." if self.first[i] < 0 else self.first[i]
        separator = "|" if self.phased[i] else "/"
        return f"{first}{separator}{self.second[i]}:{self.depth[i]}:{self.quality[i]}"

    def allele_counts(self, alts: int) -> tuple[list[int], int]:
        called = np.concatenate([self.first, self.second])
        called = called[called >= 0]
        return [int(np.count_nonzero(called == a)) for a in range(1, alts + 1)], int(called.size)


def draw_calls(haplotypes: np.ndarray, cohort: Cohort, rng: np.random.Generator, reads: bool = True) -> Calls:
    """Turn true haplotypes into calls with depth, genotype quality, missing and unphased genotypes.

    `reads=False` (for GT-only output, where no call's DP or GQ is written) draws no read
    depths: each sample's mean depth stands in, which saves most of the time per record.
    """
    n = len(cohort)
    first, second = haplotypes[0::2].astype(np.int16), haplotypes[1::2].astype(np.int16)
    depth = rng.poisson(cohort.mean_depth) if reads else np.rint(cohort.mean_depth).astype(int)
    missing = rng.random(n) < cohort.missing_rate
    carrier = (first > 0) | (second > 0)
    half = carrier & ~missing & (rng.random(n) < HALF_MISSING_RATE)
    # ./1: the ALT read is seen, the other allele is not: keep the non-reference allele second.
    second = np.where(half, np.maximum(first, second), np.where(missing, -1, second))
    first = np.where(half | missing, -1, first)
    het = (first != second) & (first >= 0)
    phased = ~half & ~(het & (rng.random(n) < UNPHASED_HET_RATE))
    noise = rng.normal(0.0, 4.0, n) if reads else 0.0
    quality = np.where(het, 2.2 * depth + noise, 3.0 * depth + noise)
    quality = np.where(half, np.minimum(depth, 15), quality)
    quality = np.clip(quality, 0, 99).astype(int)
    depth = np.where(missing, rng.poisson(1.0, n) if reads else 0, np.where(half, np.minimum(depth, 4), depth))
    return Calls(first, second, phased, depth, quality, missing)


# --- the reference and its genes ------------------------------------------------------------------------------


def random_sequence(length: int, rng: np.random.Generator) -> bytearray:
    alphabet = np.frombuffer(BASES.encode(), dtype=np.uint8)
    return bytearray(rng.choice(alphabet, size=length, p=BASE_FREQUENCIES).tobytes())


def reverse_complement(bases: str) -> str:
    return bases.translate(_COMPLEMENT)[::-1]


@dataclass(frozen=True)
class Gene:
    """A one-transcript protein-coding gene. Exons are in transcript coordinates (0 = first transcribed base)."""

    number: int
    start: int  # genomic span [start, end), 0-based
    end: int
    strand: int  # +1 or -1
    exons: tuple[tuple[int, int], ...]  # transcript order, half-open
    cds_start: int  # mRNA coordinates, half-open
    cds_end: int

    @property
    def name(self) -> str:
        return f"SIMG{self.number}"

    @property
    def gene_id(self) -> str:
        return f"SIMGENE{self.number:05d}"

    @property
    def transcript_id(self) -> str:
        return f"SIMTX{self.number:05d}.1"

    @property
    def span(self) -> int:
        return self.end - self.start

    @property
    def mrna_length(self) -> int:
        return sum(b - a for a, b in self.exons)

    def offset(self, genomic: int) -> int:
        """Transcript-oriented offset of a genomic position (negative upstream, >= span downstream)."""
        return genomic - self.start if self.strand > 0 else self.end - 1 - genomic

    def genomic(self, offset: int) -> int:
        return self.start + offset if self.strand > 0 else self.end - 1 - offset

    def exon_starts_in_mrna(self) -> list[int]:
        starts, total = [], 0
        for a, b in self.exons:
            starts.append(total)
            total += b - a
        return starts

    def mrna_to_offset(self, position: int) -> int:
        for (a, b), first in zip(self.exons, self.exon_starts_in_mrna(), strict=True):
            if position < first + b - a:
                return a + position - first
        raise ValueError(f"{position} is beyond the mRNA of {self.name}")

    def locate(self, offset: int) -> tuple[str, int, int, int]:
        """('exon', exon index, mRNA position, 0) or ('intron', intron index, bases after exon, bases before next)."""
        for index, ((a, b), first) in enumerate(zip(self.exons, self.exon_starts_in_mrna(), strict=True)):
            if a <= offset < b:
                return "exon", index, first + offset - a, 0
            if offset < a:
                return "intron", index - 1, offset - self.exons[index - 1][1] + 1, a - offset
        raise ValueError(f"offset {offset} is outside {self.name}")

    def near(self, genomic: int) -> bool:
        return self.start - UPSTREAM_DISTANCE <= genomic < self.end + UPSTREAM_DISTANCE


def place_genes(sequence: bytearray, count: int, first_number: int, rng: np.random.Generator) -> list[Gene]:
    """Spread `count` genes evenly along the contig and write their exons and splice sites into `sequence`."""
    slot = len(sequence) // count
    margin = UPSTREAM_DISTANCE + 1_000
    genes = []
    for i in range(count):
        gene = _draw_gene(first_number + i, i * slot + margin, (i + 1) * slot - margin, rng)
        _write_gene(sequence, gene, rng)
        genes.append(gene)
    return genes


def _draw_gene(number: int, low: int, high: int, rng: np.random.Generator) -> Gene:
    exon_count = int(rng.integers(6, 14))
    lengths = rng.integers(80, 300, exon_count)
    lengths[0], lengths[-1] = rng.integers(150, 400, 2)
    span = int(rng.integers(15_000, min(60_000, high - low)))
    intron_room = span - int(lengths.sum()) - 100 * (exon_count - 1)
    introns = 100 + np.floor(rng.dirichlet(np.ones(exon_count - 1)) * intron_room).astype(int)
    exons, offset = [], 0
    for index, length in enumerate(lengths):
        exons.append((offset, offset + int(length)))
        offset += int(length) + (int(introns[index]) if index < exon_count - 1 else 0)
    start = int(rng.integers(low, high - offset))
    mrna_length = int(lengths.sum())
    utr5 = int(rng.integers(30, 120))
    cds_length = (mrna_length - utr5 - int(rng.integers(60, 200))) // 3 * 3
    strand = 1 if rng.random() < 0.5 else -1
    return Gene(number, start, start + offset, strand, tuple(exons), utr5, utr5 + cds_length)


def _write_gene(sequence: bytearray, gene: Gene, rng: np.random.Generator) -> None:
    """An open reading frame (ATG, sense codons, stop) in the exons; GT...AG at every intron's ends."""
    premrna = bytearray(_read(sequence, gene, 0, gene.span).encode())
    codons = rng.choice(_SENSE_CODONS, (gene.cds_end - gene.cds_start) // 3 - 2)
    orf = "ATG" + "".join(codons) + str(rng.choice(_STOP_CODONS))
    mrna = bytearray(b"".join(premrna[a:b] for a, b in gene.exons))
    mrna[gene.cds_start : gene.cds_end] = orf.encode()
    for (a, b), first in zip(gene.exons, gene.exon_starts_in_mrna(), strict=True):
        premrna[a:b] = mrna[first : first + b - a]
    for (_, donor), (acceptor, _) in zip(gene.exons, gene.exons[1:], strict=False):
        premrna[donor : donor + 2] = b"GT"
        premrna[acceptor - 2 : acceptor] = b"AG"
    text = premrna.decode()
    sequence[gene.start : gene.end] = (text if gene.strand > 0 else reverse_complement(text)).encode()


def _read(sequence: bytearray, gene: Gene, offset: int, length: int) -> str:
    """`length` bases from transcript offset `offset`, in transcript orientation."""
    if gene.strand > 0:
        return sequence[gene.start + offset : gene.start + offset + length].decode()
    end = gene.end - offset
    return reverse_complement(sequence[end - length : end].decode())


def exonic_mask(genes: list[Gene], length: int, pad: int = 10) -> np.ndarray:
    """Exons (plus splice regions) that repeat tracts must not overwrite, so reading frames stay intact."""
    mask = np.zeros(length, dtype=bool)
    for gene in genes:
        for a, b in gene.exons:
            low, high = sorted((gene.genomic(a), gene.genomic(b - 1)))
            mask[max(0, low - pad) : high + pad + 1] = True
    return mask


# --- sites and alleles ----------------------------------------------------------------------------------------


@dataclass
class Record:
    pos: int  # 0-based
    kind: str  # snv, deletion, insertion, deletion_rightmost, insertion_rightmost, repeat_multiallelic
    ref: str
    alts: list[str]
    haplotypes: np.ndarray
    calls: Calls | None = None
    annotations: list[str] | None = None
    clnsig: str | None = None


@dataclass
class Contig:
    name: str
    sequence: bytearray
    genes: list[Gene]
    records: list[Record]


def simulate_contig(name: str, length: int, cohort: Cohort, rng: np.random.Generator) -> Contig:
    sequence = random_sequence(length, rng)
    first_number = 1 + sum(count for contig, count in GENES_PER_CONTIG.items() if contig < name)
    genes = place_genes(sequence, GENES_PER_CONTIG[name], first_number, rng)
    tree_sequence = coalescent(length, len(cohort), rng)
    records = make_records(list(_segregating_sites(tree_sequence)), sequence, exonic_mask(genes, length), rng)
    for record in records:
        record.calls = draw_calls(record.haplotypes, cohort, rng)
        record.annotations = [annotate(genes, sequence, record.pos, record.ref, alt) for alt in record.alts]
        record.clnsig = _clinical_significance(record, rng)
    return Contig(name, sequence, genes, records)


def coalescent(
    length: int,
    samples: int,
    rng: np.random.Generator,
    present_size: int = PRESENT_SIZE,
    growth_generations: int = GROWTH_GENERATIONS,
):
    """One msprime simulation: recent growth from Ne 10,000, HKY mutations with hypermutable hotspots."""
    demography = msprime.Demography()
    growth = math.log(present_size / ANCESTRAL_SIZE) / growth_generations
    demography.add_population(name="pop", initial_size=present_size, growth_rate=growth)
    demography.add_population_parameters_change(time=growth_generations, initial_size=ANCESTRAL_SIZE, growth_rate=0)
    ancestry = msprime.sim_ancestry(
        samples=samples,
        demography=demography,
        sequence_length=length,
        recombination_rate=RECOMBINATION_RATE,
        random_seed=int(rng.integers(1, 2**31 - 1)),
    )
    model = msprime.HKY(kappa=TS_TV_KAPPA, equilibrium_frequencies=list(BASE_FREQUENCIES))
    return msprime.sim_mutations(
        ancestry, rate=_mutation_map(length, rng), model=model, random_seed=int(rng.integers(1, 2**31 - 1))
    )


def _mutation_map(length: int, rng: np.random.Generator) -> msprime.RateMap:
    hotspots = np.sort(rng.choice(length // 10 - 2, length // HOTSPOT_SPACING, replace=False) + 1) * 10
    positions, rates = [0], []
    for hotspot in hotspots:
        positions += [int(hotspot), int(hotspot) + 1]
        rates += [MUTATION_RATE, MUTATION_RATE * HOTSPOT_FOLD]
    return msprime.RateMap(position=[*positions, length], rate=[*rates, MUTATION_RATE])


def _segregating_sites(tree_sequence) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """(0-based position, [ancestral, observed derived states...], allele index per haplotype)."""
    for variant in tree_sequence.variants():
        counts = np.bincount(variant.genotypes, minlength=len(variant.alleles))
        observed = [i for i in range(1, len(variant.alleles)) if counts[i]]
        if not observed:  # back mutations can leave only the ancestral state
            continue
        index = np.zeros(len(variant.alleles), dtype=np.int8)
        index[observed] = np.arange(1, len(observed) + 1)
        alleles = [variant.alleles[0], *(variant.alleles[i] for i in observed)]
        yield int(variant.site.position), alleles, index[variant.genotypes]


def make_records(
    sites,
    sequence: bytearray,
    protected: np.ndarray,
    rng: np.random.Generator,
    before: int = -CLEARANCE,
    after: int | None = None,
) -> list[Record]:
    """Give every site its alleles: SNVs from the reference base, some indels and repeat polymorphisms.

    `before` and `after` are the positions of the sites next to these ones, when
    the sites come in chunks (by default, none: the contig's ends).
    """
    positions = np.array([pos for pos, _, _ in sites])
    after = len(sequence) + CLEARANCE if after is None else after
    gaps = np.diff(positions, prepend=before, append=after)
    roomy = (gaps[:-1] >= CLEARANCE) & (gaps[1:] >= CLEARANCE) & (positions >= CLEARANCE)
    roomy &= positions < len(sequence) - CLEARANCE
    draws = rng.random(len(sites))
    records = []
    # The first base a site may write: past the bases of the records before it (a repeat tract and
    # its flank reach MAX_TRACT + 1 beyond its site), whose REF is already taken from the sequence.
    free_from = before + MAX_TRACT + 2
    for (pos, alleles, haplotypes), has_room, draw in zip(sites, roomy, draws, strict=True):
        near_exon = bool(protected[pos - MAX_TRACT - 2 : pos + MAX_TRACT + 3].any())
        kind = _kind(len(alleles), draw, near_exon) if has_room else "snv"
        ref, alts = _alleles(kind, pos, alleles, sequence, rng, free_from)
        records.append(Record(pos, kind, ref, alts, haplotypes))
        free_from = max(free_from, pos + len(ref) + 1)
    return records


def _kind(allele_count: int, draw: float, near_exon: bool) -> str:
    """What a site with room around it becomes; repeats are never written over exons (reading frames stay)."""
    if allele_count > 2:
        repeat = allele_count <= 4 and not near_exon and draw < REPEAT_MULTIALLELIC_SHARE
        return "repeat_multiallelic" if repeat else "snv"
    kind = next((kind for kind, threshold in INDEL_KINDS if draw < threshold), "snv")
    return "snv" if near_exon and kind.endswith("rightmost") else kind


def _alleles(kind: str, pos: int, alleles: list[str], sequence: bytearray, rng: np.random.Generator,
             free_from: int):  # fmt: skip
    """REF and ALTs of a site; a tract written leftwards of `pos` starts (with its flank) at `free_from` or later."""
    base = chr(sequence[pos])
    if kind == "snv":
        mapping = next(m for m in _KLEIN if m.get(alleles[0], alleles[0]) == base)
        return base, [mapping.get(a, a) for a in alleles[1:]]
    if kind == "deletion":
        size = min(int(rng.geometric(0.45)), 8)
        return sequence[pos : pos + size + 1].decode(), [base]
    if kind == "insertion":
        size = min(int(rng.geometric(0.45)), 8)
        return base, [base + "".join(rng.choice(list(BASES), size))]
    unit, copies = _repeat_unit(rng, at_least=3 if kind == "repeat_multiallelic" else 2)
    if kind == "deletion_rightmost":  # one unit deleted, anchored inside the tract at its right end
        end = pos + len(unit) + 1
        copies = _copies_that_fit(unit, copies, end - free_from - 1)
        _write_repeat(sequence, end - len(unit) * copies, unit, copies, rng)
        return sequence[pos:end].decode(), [chr(sequence[pos])]
    if kind == "insertion_rightmost":  # one unit inserted after the tract's last base
        copies = _copies_that_fit(unit, copies, pos - free_from)
        _write_repeat(sequence, pos + 1 - len(unit) * copies, unit, copies, rng)
        anchor = chr(sequence[pos])
        return anchor, [anchor + unit]
    _write_repeat(sequence, pos + 1, unit, copies, rng)  # repeat_multiallelic: -1, +1, -2 units
    anchor, tract = chr(sequence[pos]), unit * copies
    alts = [anchor + unit * (copies - 1), anchor + unit * (copies + 1), anchor + unit * (copies - 2)]
    return anchor + tract, alts[: len(alleles) - 1]


def _copies_that_fit(unit: str, copies: int, room: int) -> int:
    """At most `copies` units in `room` bases (at least one: CLEARANCE leaves room for it), so that a
    tract written leftwards does not overwrite an earlier record's tract, whose REF was already read."""
    return max(1, min(copies, room // len(unit)))


def _repeat_unit(rng: np.random.Generator, at_least: int) -> tuple[str, int]:
    size = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
    unit = "".join(rng.choice(list(BASES), size))
    while size > 1 and len(set(unit)) == 1:  # a unit like "AA" is a homopolymer: draw a real motif
        unit = "".join(rng.choice(list(BASES), size))
    copies = int(rng.integers(at_least, MAX_TRACT // size + 1))
    return unit, copies


def _write_repeat(sequence: bytearray, start: int, unit: str, copies: int, rng: np.random.Generator) -> None:
    """Write the tract and make sure it ends there: the flanking bases do not continue the repeat."""
    end = start + len(unit) * copies
    sequence[start:end] = (unit * copies).encode()
    others = [b for b in BASES if b not in (unit[-1], unit[0])]
    if chr(sequence[start - 1]) == unit[-1]:
        sequence[start - 1] = ord(rng.choice(others))
    if chr(sequence[end]) == unit[0]:
        sequence[end] = ord(rng.choice(others))


# --- annotation -----------------------------------------------------------------------------------------------


def _trim(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """The minimal representation (shared suffix, then shared prefix beyond one base, removed)."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0] and ref[1] == alt[1]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def annotate(genes: list[Gene], sequence: bytearray, pos: int, ref: str, alt: str) -> list[str]:
    """SnpEff-style ANN entries of one ALT allele, most severe first (an intergenic one when no gene is near)."""
    pos, small_ref, small_alt = _trim(pos, ref, alt)
    entries = [
        entry
        for gene in genes
        if gene.near(pos)
        for entry in [_gene_entry(gene, sequence, pos, small_ref, small_alt)]
        if entry
    ]
    if not entries:
        entries = [_intergenic_entry(genes, pos, small_ref, small_alt)]
    entries.sort(key=lambda fields: IMPACT_ORDER[fields[1]])
    return ["|".join([alt, *fields]) for fields in entries]


def _intergenic_entry(genes: list[Gene], pos: int, ref: str, alt: str) -> list[str]:
    left = [g for g in genes if g.end <= pos]
    right = [g for g in genes if g.start > pos]
    names = f"{left[-1].name if left else 'CHR_START'}-{right[0].name if right else 'CHR_END'}"
    ids = f"{left[-1].gene_id if left else 'CHR_START'}-{right[0].gene_id if right else 'CHR_END'}"
    hgvs = f"n.{pos + 1}{ref}>{alt}" if len(ref) == len(alt) == 1 else ""
    return ["intergenic_region", "MODIFIER", names, ids, "intergenic_region", ids, "", "", hgvs, "", "", "", "", ""]


def _gene_entry(gene: Gene, sequence: bytearray, pos: int, ref: str, alt: str) -> list[str] | None:
    """[Annotation, Impact, Gene_Name, ..., Distance, messages] of one ALT for one gene, or None when too far."""
    if len(ref) == len(alt) == 1:
        offset = gene.offset(pos)
    else:  # the first base after an indel's anchor, in transcript order
        offset = min(gene.offset(pos + 1), gene.offset(pos + max(1, len(ref) - 1)))
    fields = {"rank": "", "hgvs_c": _hgvs_c(gene, pos, ref, alt), "hgvs_p": "", "cdna": "", "cds": "", "aa": ""}
    fields["distance"] = ""
    if offset < 0 or offset >= gene.span:
        distance = -offset if offset < 0 else offset - gene.span + 1
        if distance > UPSTREAM_DISTANCE:
            return None
        consequence = "upstream_gene_variant" if offset < 0 else "downstream_gene_variant"
        impact, fields["distance"] = "MODIFIER", str(distance)
    else:
        where, index, a, b = gene.locate(offset)
        if where == "intron":
            consequence, impact = _intron_effect(a, b)
            fields["rank"], fields["distance"] = f"{index + 1}/{len(gene.exons) - 1}", str(min(a, b))
        else:
            fields["rank"], fields["cdna"] = f"{index + 1}/{len(gene.exons)}", f"{a + 1}/{gene.mrna_length}"
            consequence, impact = _exon_effect(gene, sequence, a, ref, alt, fields)
    return [
        consequence, impact, gene.name, gene.gene_id, "transcript", gene.transcript_id, "protein_coding",
        fields["rank"], fields["hgvs_c"], fields["hgvs_p"], fields["cdna"], fields["cds"], fields["aa"],
        fields["distance"], "",
    ]  # fmt: skip


def _intron_effect(after_exon: int, before_exon: int) -> tuple[str, str]:
    if after_exon <= 2:
        return "splice_donor_variant&intron_variant", "HIGH"
    if before_exon <= 2:
        return "splice_acceptor_variant&intron_variant", "HIGH"
    if min(after_exon, before_exon) <= 8:
        return "splice_region_variant&intron_variant", "LOW"
    return "intron_variant", "MODIFIER"


def _exon_effect(gene: Gene, sequence: bytearray, mrna_pos: int, ref: str, alt: str, fields: dict) -> tuple[str, str]:
    if mrna_pos < gene.cds_start:
        return "5_prime_UTR_variant", "MODIFIER"
    if mrna_pos >= gene.cds_end:
        return "3_prime_UTR_variant", "MODIFIER"
    coding = mrna_pos - gene.cds_start
    codon_index = coding // 3
    codon = _codon(gene, sequence, codon_index)
    amino = _CODON_TABLE[codon]
    protein_length = (gene.cds_end - gene.cds_start) // 3 - 1
    fields["cds"] = f"{coding + 1}/{gene.cds_end - gene.cds_start}"
    fields["aa"] = f"{codon_index + 1}/{protein_length}"
    if len(ref) == len(alt) == 1:
        return _codon_change(gene, codon, coding % 3, alt, codon_index + 1, fields)
    change = len(alt) - len(ref)
    name = _AA3[amino]
    if change % 3:
        fields["hgvs_p"] = f"p.{name}{codon_index + 1}fs"
        return "frameshift_variant", "HIGH"
    if change < 0:
        last = min(codon_index - change // 3, protein_length + 1)  # 1-based number of the last codon deleted
        last_name = _AA3[_CODON_TABLE[_codon(gene, sequence, last - 1)]]
        fields["hgvs_p"] = (
            f"p.{name}{codon_index + 1}del" if change == -3 else f"p.{name}{codon_index + 1}_{last_name}{last}del"
        )
        return "inframe_deletion", "MODERATE"
    following = _AA3[_CODON_TABLE[_codon(gene, sequence, min(codon_index + 1, protein_length))]]
    fields["hgvs_p"] = f"p.{name}{codon_index + 1}_{following}{codon_index + 2}ins{'Xaa' * (change // 3)}"
    return "inframe_insertion", "MODERATE"


def _codon(gene: Gene, sequence: bytearray, codon_index: int) -> str:
    first = gene.cds_start + 3 * codon_index
    return "".join(_read(sequence, gene, gene.mrna_to_offset(first + i), 1) for i in range(3))


def _codon_change(gene: Gene, codon: str, frame: int, alt: str, number: int, fields: dict) -> tuple[str, str]:
    alt_base = alt if gene.strand > 0 else alt.translate(_COMPLEMENT)
    new = _CODON_TABLE[codon[:frame] + alt_base + codon[frame + 1 :]]
    old = _CODON_TABLE[codon]
    if number == 1 and new != "M":
        fields["hgvs_p"] = "p.Met1?"
        return "start_lost", "HIGH"
    if old == "*":
        fields["hgvs_p"] = f"p.*{number}*" if new == "*" else f"p.*{number}{_AA3[new]}ext*?"
        return ("stop_retained_variant", "LOW") if new == "*" else ("stop_lost", "HIGH")
    fields["hgvs_p"] = f"p.{_AA3[old]}{number}{_AA3[new]}"
    if new == "*":
        return "stop_gained", "HIGH"
    return ("synonymous_variant", "LOW") if new == old else ("missense_variant", "MODERATE")


def _hgvs_c(gene: Gene, pos: int, ref: str, alt: str) -> str:
    """HGVS coding notation of a trimmed allele, in transcript orientation."""
    if len(ref) == len(alt) == 1:
        bases = (ref, alt) if gene.strand > 0 else (ref.translate(_COMPLEMENT), alt.translate(_COMPLEMENT))
        return f"c.{_c_position(gene, pos)}{bases[0]}>{bases[1]}"
    if len(alt) == 1:  # deletion of ref[1:]
        ends = sorted((gene.offset(pos + 1), gene.offset(pos + len(ref) - 1)))
        where = [_c_position(gene, gene.genomic(offset)) for offset in ends]
        return f"c.{where[0]}del" if ends[0] == ends[1] else f"c.{where[0]}_{where[1]}del"
    if len(ref) == 1:  # insertion of alt[1:] between pos and pos + 1
        ends = sorted((gene.offset(pos), gene.offset(pos + 1)))
        inserted = alt[1:] if gene.strand > 0 else reverse_complement(alt[1:])
        where = [_c_position(gene, gene.genomic(offset)) for offset in ends]
        return f"c.{where[0]}_{where[1]}ins{inserted}"
    return ""


def _c_position(gene: Gene, genomic: int) -> str:
    """A c. coordinate: 123, -45 (5' of the ATG), *67 (3' of the stop), 88+5 / 89-3 in introns."""
    offset = gene.offset(genomic)
    if offset < 0:
        return f"-{gene.cds_start - offset}"
    if offset >= gene.span:
        return f"*{gene.mrna_length - gene.cds_end + offset - gene.span + 1}"
    where, index, a, b = gene.locate(offset)
    if where == "exon":
        return _c_coordinate(gene, a)
    if a <= b:
        return f"{_c_coordinate(gene, gene.exon_starts_in_mrna()[index + 1] - 1)}+{a}"
    return f"{_c_coordinate(gene, gene.exon_starts_in_mrna()[index + 1])}-{b}"


def _c_coordinate(gene: Gene, mrna_pos: int) -> str:
    if mrna_pos < gene.cds_start:
        return f"-{gene.cds_start - mrna_pos}"
    if mrna_pos < gene.cds_end:
        return str(mrna_pos - gene.cds_start + 1)
    return f"*{mrna_pos - gene.cds_end + 1}"


def _clinical_significance(record: Record, rng: np.random.Generator) -> str | None:
    """A ClinVar-like assertion on a share of the biallelic variants with a genic effect beyond MODIFIER."""
    if len(record.alts) != 1:
        return None
    impact = record.annotations[0][0].split("|")[2]
    if impact not in CLINICAL or rng.random() >= CLNSIG_SHARE:
        return None
    return str(rng.choice(CLINICAL[impact]))


# --- writing --------------------------------------------------------------------------------------------------


_FORMAT_LINES = (
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
    '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
    '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
)


def vcf_header(contigs: list[Contig], cohort: Cohort, reference_name: str, seed: int, gt_only: bool = False) -> str:
    """The header; `gt_only` declares GT as the only FORMAT field (as in 1000 Genomes releases)."""
    formats = ("GT",) if gt_only else ("GT", "DP", "GQ")
    lines = [
        "##fileformat=VCFv4.2",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        f'##FILTER=<ID=LowQual,Description="Low quality: QUAL below {LOW_QUAL:g}">',
        f"##source=vcf-agent simulate_example (msprime {msprime.__version__}; seed {seed}; "
        f"{len(cohort)} diploid samples; toy genes and annotations)",
        f"##reference={reference_name}",
        *(f"##contig=<ID={c.name},length={len(c.sequence)}>" for c in contigs),
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count in genotypes, for each ALT allele">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency, for each ALT allele">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Total number of alleles in called genotypes">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Combined read depth across samples">',
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance (simulated, ClinVar-like)">',
        f'##INFO=<ID=ANN,Number=.,Type=String,Description="{ANN_DESCRIPTION}">',
        *(line for line in _FORMAT_LINES if line.split(",")[0][len("##FORMAT=<ID=") :] in formats),
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *cohort.names]),
    ]
    return "\n".join(lines) + "\n"


def vcf_line(chrom: str, record: Record, gt_only: bool = False) -> str:
    calls = record.calls
    counts, called = calls.allele_counts(len(record.alts))
    depth = int(calls.depth.sum())
    info = [
        f"AC={','.join(map(str, counts))}",
        f"AF={','.join(f'{c / called:.4g}' if called else '.' for c in counts)}",
        f"AN={called}",
        f"DP={depth}",
    ]
    if record.clnsig:
        info.append(f"CLNSIG={record.clnsig}")
    info.append("ANN=" + ",".join(entry for entries in record.annotations for entry in entries))
    qual = _quality(calls)
    fixed = [chrom, str(record.pos + 1), ".", record.ref, ",".join(record.alts), f"{qual:.2f}"]
    fixed += ["LowQual" if qual < LOW_QUAL else "PASS", ";".join(info), "GT" if gt_only else "GT:DP:GQ"]
    if gt_only:
        return "\t".join(fixed) + "\t" + calls.genotype_text() + "\n"
    return "\t".join(fixed + calls.columns()) + "\n"


def _quality(calls: Calls) -> float:
    """Phred-like: grows with the depth behind the ALT calls; lowest for singletons with few reads."""
    alt_copies = (calls.first > 0).astype(int) + (calls.second > 0).astype(int)
    support = float((alt_copies * np.where(calls.missing, 0, calls.depth)).sum())
    return round(support * (0.5 + 0.9 * (calls.quality.mean() / 99.0)) ** 2, 2)


def _write_outputs(
    vcf_path: Path, fasta_path: Path, header: str, contigs: list[Contig], body: Iterable[str] | None = None
) -> None:
    """Write every file under a temporary name, then rename them all (each data file before its index).

    `body` streams the VCF lines in pieces (by default, those of the contigs' records);
    the FASTA is written after it, so `body` may still write repeat tracts into the sequences.
    """
    if body is None:
        body = ("".join(vcf_line(contig.name, r) for r in contig.records) for contig in contigs)
    vcf_index, fasta_index = Path(f"{vcf_path}.tbi"), Path(f"{fasta_path}.fai")
    with atomic_files(fasta_path, fasta_index, vcf_path, vcf_index) as (fasta_tmp, fai_tmp, vcf_tmp, tbi_tmp):
        with pysam.BGZFile(str(vcf_tmp), "wb") as out:
            out.write(header.encode())
            for piece in body:
                out.write(piece.encode())
        faidx_output = Path(f"{fasta_tmp}.fai")  # faidx names the index after the FASTA
        try:
            _write_fasta(fasta_tmp, contigs)  # after the body: it may write repeat tracts into the sequences
            pysam.faidx(str(fasta_tmp))
            faidx_output.replace(fai_tmp)
        finally:
            faidx_output.unlink(missing_ok=True)
        pysam.tabix_index(str(vcf_tmp), preset="vcf", index=str(tbi_tmp), force=True)


def _write_fasta(path: Path, contigs: list[Contig]) -> None:
    with path.open("w") as out:
        for contig in contigs:
            text = contig.sequence.decode()
            out.write(f">{contig.name}\n")
            out.writelines(text[i : i + FASTA_LINE] + "\n" for i in range(0, len(text), FASTA_LINE))


def _summary(contigs: list[Contig], cohort: Cohort, seed: int, seconds: float) -> dict:
    records = [r for c in contigs for r in c.records]
    kinds = {}
    for record in records:
        kinds[record.kind] = kinds.get(record.kind, 0) + 1
    return {
        "seed": seed,
        "samples": len(cohort),
        "records": len(records),
        "records_per_contig": {c.name: len(c.records) for c in contigs},
        "multiallelic": sum(len(r.alts) > 1 for r in records),
        "indels": sum(r.kind != "snv" for r in records),
        "not_left_aligned": kinds.get("deletion_rightmost", 0) + kinds.get("insertion_rightmost", 0),
        "kinds": kinds,
        "genes": sum(len(c.genes) for c in contigs),
        "clnsig": sum(r.clnsig is not None for r in records),
        "missing_genotypes": int(sum(r.calls.missing.sum() for r in records)),
        "half_missing_genotypes": int(sum((r.calls.first < 0).sum() - r.calls.missing.sum() for r in records)),
        "seconds": round(seconds, 2),
    }
