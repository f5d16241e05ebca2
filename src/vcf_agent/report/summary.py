"""The per-run summary: records in and out of every stage, samples and shards, checked for losses.

Each input's counts are its own; the totals count what the stores hold, each variant and each
(sample, variant) genotype once however many VCFs hold it (`across_files`: stores.GENOTYPE_RULE).

What the VCFs share is not compared again here: each partition of the graph compared its VCF's
variants and genotypes with those of the earlier VCFs as it loaded (rule load_kuzu_partition) and
wrote the figures into its record. The summary adds up those records, so adding a VCF costs it
what the new partitions wrote (small JSON files), not a read of every shard of every VCF.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vcf_agent.errors import fail
from vcf_agent.files import read_json
from vcf_agent.stores.build import merged_overlaps

#: The figures of `across_files` that add up over partitions (stores.build.genotype_overlap).


def summarize_run(
    normalize_stats: list[Path],
    shard_stats: list[Path],
    embedding_stats: list[Path] = (),
    *,
    partitions: Sequence[Path] = (),
) -> dict:
    """Combine the stage statistics; raise when a stage lost or invented records.

    With several VCFs, `partitions` are the records of the graph's partitions (rule
    load_kuzu_partition): their `across_files` figures and CARRIES counts give what the VCFs
    share and how many carrier rows the stores leave out. `normalize_stats` come in config order.
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
    records = [read_json(p) for p in partitions] if len(sources) > 1 else []
    overlap = merged_overlaps([r.get("across_files", {}) for r in records], list(sources))
    totals["variants"] -= overlap["duplicate_variant_rows"]
    totals["genotypes"] -= _set_aside_genotypes(records, totals["genotypes"], partitions)
    return {"sources": sources, "totals": totals, "across_files": overlap}


def _set_aside_genotypes(records: list[dict], genotypes: int, partitions: Sequence[Path]) -> int:
    """Carrier rows of the shards that the graph leaves out (a later VCF's call of a genotype an
    earlier one gives): the shards' rows less the CARRIES edges the partitions hold."""
    if not records:
        return 0
    stored = sum(r["counts"]["CARRIES"] for r in records)
    if stored > genotypes:
        raise fail(partitions[0], f"the graph's partitions hold {stored} genotypes, the shards only {genotypes}")
    return genotypes - stored


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
