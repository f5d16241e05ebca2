"""Scaled test data: a real cohort's shards repeated at shifted positions, in the workflow's layout.

    from scaled_data import build_scaled_shards          # with benchmarks/ on sys.path
    data = build_scaled_shards("/tmp/scaled", variants=1_000_000, genotypes=10_000_000)
    data.variants, data.embeddings, data.genotypes, data.annotations  # lists of shard files

The base is the 2,504-sample 1000 Genomes chr22 cohort (6,139 variants after the
split, 495,959 carrier genotypes) run through the project's own steps
(normalize, convert, embed with the real model). Copy k of it moves every
position by k x `shift` (a round number above the cohort's span), which gives
new variant ids; texts and vectors are those of the original record.
Genotypes are taken copy after copy until `genotypes` rows are reached, so
they belong to the first copies; later copies have none. The files follow the
workflow's paths under `out_dir/results` (source name `scaled` by default):
``parquet/{variants,genotypes,annotations}/<source>/<shard>.parquet`` and
``embeddings/<source>/<shard>.parquet``, one shard per group of whole copies.

The base (about 20 s, the model is loaded once) is kept in `out_dir/base` and
reused by later calls; the scaled shards are rewritten when the sizes change.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VCF_TEST_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_COHORT = DATA / "cohorts" / "1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"
KINDS = ("variants", "genotypes", "annotations", "embeddings")


@dataclass
class ScaledShards:
    """What build_scaled_shards wrote: shard files in matching order, and their totals."""

    results: Path
    source: str
    variants: list[Path] = field(default_factory=list)
    genotypes: list[Path] = field(default_factory=list)
    annotations: list[Path] = field(default_factory=list)
    embeddings: list[Path] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    n_variants: int = 0
    n_genotypes: int = 0
    model: str = ""
    dim: int = 0

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: [str(p) for p in v] if k in KINDS else str(v) if k == "results" else v for k, v in data.items()}


def build_scaled_shards(
    out_dir: Path | str,
    variants: int = 1_000_000,
    genotypes: int = 10_000_000,
    *,
    shard_records: int = 100_000,
    source: str = "scaled",
    cohort: Path | str = DEFAULT_COHORT,
    threads: int = 2,
) -> ScaledShards:
    """Write `variants` variants (with vectors) and `genotypes` carrier genotypes under out_dir/results."""
    out_dir = Path(out_dir)
    base = _base_shards(out_dir / "base", Path(cohort), threads)
    results = out_dir / "results"
    done = results / f"scaled-{source}.json"
    wanted = {"variants": variants, "genotypes": genotypes, "shard_records": shard_records, "cohort": str(cohort)}
    if done.exists():
        previous = json.loads(done.read_text())
        if previous.get("wanted") == wanted:
            return _from_dict(previous["shards"])
    shards = _write_scaled(base, results, source, variants, genotypes, shard_records)
    done.write_text(json.dumps({"wanted": wanted, "shards": shards.to_dict()}, indent=2))
    return shards


# ---------------------------------------------------------------- the real base


def _base_shards(base: Path, cohort: Path, threads: int) -> dict:
    """The cohort as one shard of each kind, made by the project's own steps (cached in `base`)."""
    info_file = base / "base.json"
    if info_file.exists():
        return json.loads(info_file.read_text())
    from vcf_agent.embedding.embed import embed_shard
    from vcf_agent.ingest.header import read_header
    from vcf_agent.ingest.pipeline import convert_vcf
    from vcf_agent.ingest.shards import ShardSize

    base.mkdir(parents=True, exist_ok=True)
    converted = convert_vcf(
        cohort, base, source="base", shard_size=ShardSize(records=10**9), threads=threads, mem_mb=1200
    )
    bcf = converted.bcf
    files = {kind: str(paths[0]) for kind, paths in converted.parquet.items()}  # one shard: one contig
    files["embeddings"] = str(base / "embeddings.parquet")
    embedded = embed_shard(
        files["variants"], files["embeddings"], cache_dir=base / "cache", mem_mb=1280, threads=threads, device="cpu"
    )
    info = {"files": files, "samples": read_header(bcf).samples, "model": embedded.model}
    info_file.write_text(json.dumps(info, indent=2))
    return info


# ---------------------------------------------------------------- repeating it


def _write_scaled(base: dict, results: Path, source: str, variants: int, genotypes: int, shard_records: int):
    files = base["files"]
    base_variants = pq.read_table(files["variants"]).replace_schema_metadata(None)
    base_vectors = pq.read_table(files["embeddings"])
    base_genotypes = pq.read_table(files["genotypes"])
    base_annotations = pq.read_table(files["annotations"])
    base_variants = _replace(base_variants, "source", pa.array([source] * base_variants.num_rows, pa.string()))
    base_genotypes = _replace(base_genotypes, "source", pa.array([source] * base_genotypes.num_rows, pa.string()))
    rows = base_variants.num_rows
    copies = -(-variants // rows)
    shift = _shift(base_variants)
    per_shard = max(1, shard_records // rows)
    genotype_rows = base_genotypes.column("variant_id")
    genotype_index = pc.index_in(genotype_rows, value_set=base_variants.column("variant_id"))
    suffix = pc.replace_substring_regex(base_variants.column("variant_id"), r"^[^#]*", "")
    dim = base_vectors.schema.field("vector").type.list_size
    shards = ScaledShards(results, source, samples=base["samples"], model=base["model"], dim=dim)
    folders = {kind: _folder(results, kind, source) for kind in KINDS}
    left_variants, left_genotypes = variants, genotypes
    for number, first in enumerate(range(0, copies, per_shard), start=1):
        paths = {kind: folders[kind] / f"{number:05d}.parquet" for kind in KINDS}
        writers = _writers(paths, base_variants, base_genotypes, base_vectors, base_annotations)
        try:
            for k in range(first, min(first + per_shard, copies)):
                take = min(rows, left_variants)
                moved = _moved_variants(base_variants, k * shift, suffix)
                writers["variants"].write_table(moved.slice(0, take))
                ids = moved.column("variant_id")
                writers["embeddings"].write_table(_replace(base_vectors, "variant_id", ids).slice(0, take))
                left_variants -= take
                if left_genotypes and take == rows:
                    calls = _replace(base_genotypes, "variant_id", ids.take(genotype_index))
                    calls = calls.slice(0, min(calls.num_rows, left_genotypes))
                    writers["genotypes"].write_table(calls)
                    left_genotypes -= calls.num_rows
        finally:
            for writer in writers.values():
                writer.close()
        for kind in KINDS:
            getattr(shards, kind).append(paths[kind])
    shards.n_variants = variants - left_variants
    shards.n_genotypes = genotypes - left_genotypes
    return shards


def _moved_variants(table: pa.Table, offset: int, suffix: pa.ChunkedArray) -> pa.Table:
    pos = pc.add(table.column("pos"), offset)
    end = pc.add(table.column("end"), offset)
    key = pc.binary_join_element_wise(
        table.column("chrom"), pc.cast(pos, pa.string()), table.column("ref"), table.column("alt"), ":"
    )
    ids = pc.binary_join_element_wise(key, suffix, "")
    return _replace(_replace(_replace(table, "pos", pos), "end", end), "variant_id", ids)


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    """`table` with column `name` replaced, keeping its field (type and nullability)."""
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(index), values)


def _shift(table: pa.Table) -> int:
    span = pc.max(table.column("end")).as_py() - pc.min(table.column("pos")).as_py()
    return (span // 100_000 + 1) * 100_000


def _folder(results: Path, kind: str, source: str) -> Path:
    folder = results / ("embeddings" if kind == "embeddings" else f"parquet/{kind}") / source
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    return folder


def _writers(paths: dict, variants: pa.Table, genotypes: pa.Table, vectors: pa.Table, annotations: pa.Table) -> dict:
    schemas = {"variants": variants, "genotypes": genotypes, "embeddings": vectors, "annotations": annotations}
    return {kind: pq.ParquetWriter(paths[kind], table.schema, compression="zstd") for kind, table in schemas.items()}


def _from_dict(data: dict) -> ScaledShards:
    values = {k: [Path(p) for p in v] if k in KINDS else v for k, v in data.items()}
    values["results"] = Path(values["results"])
    return ScaledShards(**values)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--genotypes", type=int, default=10_000_000)
    parser.add_argument("--shard-records", type=int, default=100_000)
    args = parser.parse_args()
    built = build_scaled_shards(args.out_dir, args.variants, args.genotypes, shard_records=args.shard_records)
    print(json.dumps({k: v for k, v in built.to_dict().items() if k not in (*KINDS, "samples")}, indent=2))
