"""The whole chain for one input in one process: normalise -> index -> shards -> Parquet.

The workflow runs these steps as separate rules; `convert_vcf` runs the same
library calls in order, for tests and benchmarks that need files through the
chain without Snakemake's start-up per job (the one place that assembles it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vcf_agent.ingest.normalize import NormalizeStats, index_bcf, normalize_vcf
from vcf_agent.ingest.parquet import ShardStats, convert_shard
from vcf_agent.ingest.shards import ShardSize, plan_shards

KINDS = ("variants", "genotypes", "annotations")


@dataclass
class Converted:
    """What one input became: its normalisation stats and the Parquet files of its shards."""

    normalized: NormalizeStats
    #: the normalised, indexed BCF
    bcf: Path
    shards: list[ShardStats] = field(default_factory=list)
    parquet: dict[str, list[Path]] = field(default_factory=lambda: {kind: [] for kind in KINDS})

    @property
    def variants(self) -> int:
        return sum(s.variants for s in self.shards)

    @property
    def genotypes(self) -> int:
        return sum(s.genotypes for s in self.shards)


def convert_vcf(
    vcf: Path | str,
    workdir: Path | str,
    *,
    source: str | None = None,
    reference: Path | str | None = None,
    ref_check: str = "error",
    shard_size: ShardSize | None = None,
    info_fields: list[str] | None = None,
    threads: int = 1,
    mem_mb: int = 1024,
) -> Converted:
    """Convert `vcf` into Parquet under `workdir` (normalized/<source>.bcf, parquet/<kind>/<source>/
    <shard>.parquet); raise VcfAgentError (one line) on bad input. `threads` and `mem_mb`: each
    step's budget, as its rule would give it."""
    vcf, workdir = Path(vcf), Path(workdir)
    source = source or vcf.name
    bcf = workdir / "normalized" / f"{source}.bcf"
    bcf.parent.mkdir(parents=True, exist_ok=True)
    stats = normalize_vcf(vcf, bcf, source=source, reference=reference, ref_check=ref_check, threads=threads)
    index_bcf(bcf, threads)
    converted = Converted(stats, bcf)
    for shard in plan_shards(bcf, shard_size or ShardSize(records=100_000), stats.samples):
        paths = {kind: workdir / "parquet" / kind / source / f"{shard.shard}.parquet" for kind in KINDS}
        shard_stats = convert_shard(
            bcf,
            shard,
            source=source,
            info_fields=info_fields,
            input_path=vcf,
            threads=threads,
            mem_mb=mem_mb,
            **{f"{kind}_out": path for kind, path in paths.items()},
        )
        converted.shards.append(shard_stats)
        for kind, path in paths.items():
            converted.parquet[kind].append(path)
    return converted
