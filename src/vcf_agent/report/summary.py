"""The per-run summary: records in and out of every stage, samples and shards, checked for losses.

Each input's counts are its own; the totals count what the stores hold, each variant and each
(sample, variant) genotype once however many VCFs hold it (`across_files`: stores.GENOTYPE_RULE).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from vcf_agent.errors import fail
from vcf_agent.files import read_json
from vcf_agent.ingest.header import read_header
from vcf_agent.ingest.parquet import duckdb_connect
from vcf_agent.resources import duckdb_limit_mb
from vcf_agent.stores.build import genotype_overlap, later_genotype_rows


def summarize_run(
    normalize_stats: list[Path],
    shard_stats: list[Path],
    embedding_stats: list[Path] = (),
    *,
    variants: Sequence[Path] = (),
    genotypes: Sequence[Path] = (),
    bcfs: Sequence[Path] = (),
    mem_mb: int = 400,
) -> dict:
    """Combine the stage statistics; raise when a stage lost or invented records.

    With several VCFs, `variants` and `genotypes` (their shard files) and `bcfs` (the normalized
    BCFs, for the samples of each) are compared across the VCFs, by DuckDB within `mem_mb`.
    """
    shards_by_source: dict[str, list[dict]] = {}
    for path in shard_stats:
        stats = read_json(path)
        shards_by_source.setdefault(stats["source"], []).append(stats)
    embedded_by_source: dict[str, list[dict]] = {}
    for path in embedding_stats:
        # results/embedding_stats/<source>/<shard>.json
        embedded_by_source.setdefault(Path(path).parent.name, []).append(read_json(path))
    sources = {}
    for path in normalize_stats:
        norm = read_json(path)
        sources[norm["source"]] = _source_summary(norm, shards_by_source.get(norm["source"], []))
        if embedding_stats:
            sources[norm["source"]]["embedding"] = _embedding_summary(norm, embedded_by_source.get(norm["source"], []))
    totals = {
        key: sum(s[key] for s in sources.values())
        for key in ("records_in", "records_normalized", "variants", "genotypes", "annotations", "shards")
    }
    overlap, set_aside = _across_files(variants, genotypes, bcfs, mem_mb)
    totals["variants"] -= overlap["duplicate_variant_rows"]
    totals["genotypes"] -= set_aside
    return {"sources": sources, "totals": totals, "across_files": overlap}


def _across_files(
    variants: Sequence[Path], genotypes: Sequence[Path], bcfs: Sequence[Path], mem_mb: int
) -> tuple[dict, int]:
    """What the VCFs share (stores.genotype_overlap), and how many carrier rows the stores leave out."""
    samples = {Path(bcf).name.removesuffix(".bcf"): read_header(bcf).samples for bcf in bcfs}
    with tempfile.TemporaryDirectory(prefix="vcf-agent-summary-") as scratch:
        con = duckdb_connect(Path(scratch), 1, duckdb_limit_mb(mem_mb))
        try:
            overlap = genotype_overlap(con, [Path(p) for p in variants], [Path(p) for p in genotypes], samples)
            return overlap, later_genotype_rows(con)
        finally:
            con.close()


def _embedding_summary(norm: dict, jobs: list[dict]) -> dict:
    records = sum(j["records"] for j in jobs)
    if records != norm["records_out"]:
        raise fail(norm["input"], f"{norm['records_out']} normalised records but {records} embedded")
    lookups = sum(j["cache_lookups"] for j in jobs)
    return {
        "records": records,
        "distinct_texts_per_shard": sum(j["distinct_texts"] for j in jobs),
        "newly_embedded": sum(j["embedded"] for j in jobs),
        "cache_hit_share": round(sum(j["cache_hits"] for j in jobs) / lookups, 4) if lookups else None,
        "model": jobs[0]["model"] if jobs else None,
        "device": jobs[0]["device"] if jobs else None,
    }


def _source_summary(norm: dict, shards: list[dict]) -> dict:
    variants = sum(s["variants"] for s in shards)
    if variants != norm["records_out"]:
        raise fail(
            norm["input"],
            f"{norm['records_out']} records after normalisation but {variants} variants in the Parquet shards",
        )
    return {
        "input": norm["input"],
        "samples": norm["samples"],
        "records_in": norm["records_in"],
        "records_normalized": norm["records_out"],
        "multiallelic_split": norm["split"],
        "realigned": norm["realigned"],
        "excluded_by_ref_check": norm["skipped"],
        "ref_mismatches": norm["ref_mismatches"],
        "duplicate_records": norm["duplicate_records"],
        "alleles_upper_cased": norm.get("alleles_upper_cased", 0),
        "header_lines_added": norm["header_lines_added"],
        "records_per_contig": norm["records_per_contig"],
        "shards": len(shards),
        "variants": variants,
        "genotypes": sum(s["genotypes"] for s in shards),
        "annotations": sum(s["annotations"] for s in shards),
    }
