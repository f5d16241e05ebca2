"""The scale benchmark's cohort: a chromosome-sized coalescent call set of 2,504 samples, made once and cached.

    python benchmarks/scale_cohort.py --size 0.01      # 1/100: ~10,600 sites over 500 kb, ~1 min
    python benchmarks/scale_cohort.py --size 0.1       # 1/10: 106,873 sites over 5 Mb, ~100 s of CPU
    python benchmarks/scale_cohort.py --size 1         # ~1.07 M sites over 50 Mb (a 1000 Genomes chromosome)
    python benchmarks/scale_cohort.py --size 0.1 --out /scratch/cohorts --force

Size 1 is one contig `chr22` of 50 Mb with 2,504 diploid samples; a size s
keeps the samples and scales the length (and so the sites) by s. The files,
`cohort.vcf.gz` (+ .tbi), `cohort.fa` (+ .fai) and `cohort.json` (what was
written and how long it took), go to `<out>/scale-<size>/`, where <out> is
$VCF_AGENT_BENCH_DATA or benchmarks/data/ (ignored by git); an existing set is
reused unless --force.

It is the bundled example's generator (vcf_agent.example.simulate: reference
with toy genes, alleles, indels and repeat polymorphisms, SnpEff-style ANN,
missing and unphased calls) with three changes for size and realism:

* **a frequency spectrum like 1000 Genomes'**: Ne 10,000 growing exponentially
  to 2,000,000 over the last 500 generations gives 85-96 carriers per site,
  over half of the sites with 5 carriers or fewer, and ~21,400 sites per Mb
  (the real 2,504-sample cohort: 81 carriers per site; a constant Ne 10,000
  gives ~400 and 5,000 sites per Mb);
* **independent 2 Mb blocks**: each block is its own msprime simulation (no LD
  across a block border), so time grows linearly with the length and memory
  is one block's tree sequence;
* **streamed**: sites are turned into records and written in chunks, and only
  GT is written per sample (as in 1000 Genomes releases), so memory stays
  bounded whatever the size (peak RSS 373 MB at 1/10, one block's worth).

Time grows linearly: the 1/10 cohort takes ~100 s of CPU (and the VCF is
22 MB), so the full size is ~17 min of CPU and ~220 MB.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vcf_agent.example.simulate import (
    CLEARANCE,
    Cohort,
    Contig,
    Gene,
    _clinical_significance,
    _segregating_sites,
    _write_outputs,
    annotate,
    coalescent,
    draw_calls,
    exonic_mask,
    make_records,
    place_genes,
    random_sequence,
    vcf_header,
    vcf_line,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(os.environ.get("VCF_AGENT_BENCH_DATA", ROOT / "benchmarks" / "data"))

CHROM = "chr22"
SAMPLES = 2_504
FULL_LENGTH = 50_000_000
#: Recent exponential growth (see the module doc): tuned for ~95 carriers per site.
PRESENT_SIZE = 2_000_000
GROWTH_GENERATIONS = 500
#: Each block is one msprime simulation; msprime's time grows faster than linearly with the length.
BLOCK_LENGTH = 2_000_000
#: Sites made into records and written at a time.
CHUNK_SITES = 2_000
GENES_PER_MB = 10
SEED = 2504


def cohort_dir(size: float, out: Path = DEFAULT_OUT) -> Path:
    return Path(out) / f"scale-{size:g}"


def cohort_files(size: float, out: Path = DEFAULT_OUT) -> dict[str, Path]:
    folder = cohort_dir(size, out)
    return {"vcf": folder / "cohort.vcf.gz", "fasta": folder / "cohort.fa", "summary": folder / "cohort.json"}


def ensure_cohort(size: float, out: Path = DEFAULT_OUT, seed: int = SEED, force: bool = False) -> dict:
    """The cohort of this size (made now unless a complete one is cached): its paths and summary."""
    files = cohort_files(size, out)
    index_files = (Path(f"{files['vcf']}.tbi"), Path(f"{files['fasta']}.fai"))
    if force or not all(p.exists() for p in (*files.values(), *index_files)):
        files["vcf"].parent.mkdir(parents=True, exist_ok=True)
        files["summary"].unlink(missing_ok=True)  # written last: its presence marks a complete set
        summary = write_cohort(files["vcf"], files["fasta"], size, seed)
        files["summary"].write_text(json.dumps(summary, indent=1) + "\n")
    return {**{k: str(v) for k, v in files.items()}, **json.loads(files["summary"].read_text())}


def write_cohort(vcf: Path, fasta: Path, size: float, seed: int = SEED) -> dict:
    """Simulate and write the cohort (VCF + .tbi, FASTA + .fai, each renamed into place at the end)."""
    if not 0 < size <= 1:
        raise SystemExit(f"--size must be in (0, 1], not {size}")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    length = round(FULL_LENGTH * size)
    cohort = Cohort.draw(SAMPLES, rng)
    sequence = random_sequence(length, rng)
    gene_count = length * GENES_PER_MB // 1_000_000  # a gene needs ~100 kb: none below that
    genes = place_genes(sequence, gene_count, 1, rng) if gene_count else []
    contig = Contig(CHROM, sequence, genes, [])
    header = vcf_header([contig], cohort, fasta.name, seed, gt_only=True)
    counts = {"sites": 0, "multiallelic": 0, "indels": 0, "carriers": 0}
    body = _vcf_body(contig, cohort, rng, counts)
    _write_outputs(vcf, fasta, header, [contig], body=body)
    seconds = time.perf_counter() - started
    return {
        "size": size,
        "seed": seed,
        "chrom": CHROM,
        "length": length,
        "samples": SAMPLES,
        "genes": len(genes),
        **counts,
        "mean_carriers_per_site": round(counts["carriers"] / max(1, counts["sites"]), 1),
        "seconds": round(seconds, 1),
        "vcf_bytes": vcf.stat().st_size,
    }


def _vcf_body(contig: Contig, cohort: Cohort, rng: np.random.Generator, counts: dict) -> Iterator[str]:
    """The VCF lines, one chunk of sites at a time (counting what they hold into `counts`)."""
    sequence, genes = contig.sequence, contig.genes
    protected = exonic_mask(genes, len(sequence))
    starts = [gene.start for gene in genes]
    previous = -CLEARANCE
    for chunk, following in _chunks_with_next(_sites(len(sequence), len(cohort), rng)):
        after = following if following is not None else len(sequence) + CLEARANCE
        records = make_records(chunk, sequence, protected, rng, before=previous, after=after)
        previous = chunk[-1][0]
        lines = []
        for record in records:
            record.calls = draw_calls(record.haplotypes, cohort, rng, reads=False)
            nearby = _nearby_genes(genes, starts, record.pos)
            record.annotations = [annotate(nearby, sequence, record.pos, record.ref, alt) for alt in record.alts]
            record.clnsig = _clinical_significance(record, rng)
            lines.append(vcf_line(contig.name, record, gt_only=True))
            counts["multiallelic"] += len(record.alts) > 1
            counts["indels"] += record.kind != "snv"
            counts["carriers"] += int(((record.calls.first > 0) | (record.calls.second > 0)).sum())
        counts["sites"] += len(records)
        yield "".join(lines)


def _sites(length: int, samples: int, rng: np.random.Generator) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """Segregating sites of the whole contig, block after block, at contig positions."""
    for block_start in range(0, length, BLOCK_LENGTH):
        block_length = min(BLOCK_LENGTH, length - block_start)
        tree_sequence = coalescent(block_length, samples, rng, PRESENT_SIZE, GROWTH_GENERATIONS)
        for pos, alleles, haplotypes in _segregating_sites(tree_sequence):
            yield block_start + pos, alleles, haplotypes


def _chunks_with_next(sites: Iterator) -> Iterator[tuple[list, int | None]]:
    """Chunks of CHUNK_SITES sites, each with the position of the site after it (None after the last)."""
    chunk = list(itertools.islice(sites, CHUNK_SITES))
    while chunk:
        following = list(itertools.islice(sites, CHUNK_SITES))
        yield chunk, following[0][0] if following else None
        chunk = following


def _nearby_genes(genes: list[Gene], starts: list[int], pos: int) -> list[Gene]:
    """The genes around `pos` (genes are placed in order without overlaps): all `annotate` needs of them."""
    index = bisect.bisect_right(starts, pos)
    return genes[max(0, index - 2) : index + 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=float, required=True, help="share of the full size: 0.01, 0.1, 1, ...")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="cache folder (env VCF_AGENT_BENCH_DATA)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--force", action="store_true", help="make it again even if cached")
    args = parser.parse_args()
    print(json.dumps(ensure_cohort(args.size, args.out, args.seed, args.force), indent=1))


if __name__ == "__main__":
    sys.exit(main())
