"""The LanceDB store grows by adding: appended VCFs, removed VCFs, re-runs, failures and ANN recall.

A real cohort (1000 Genomes 30x, chr1 head: 889 records, 3,202 samples) is split with
bcftools by samples and by region into three VCFs that share variants; each is converted
and embedded by the project's own steps (one shard each). Expected variant ids come from
bcftools (norm -m -any, then CHROM:POS:REF:ALT), never from the stores. Converting and embedding
the three VCFs takes about a minute (the model is exported to ONNX first): the module is `slow`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.query import vectors
from vcf_agent.query.vectors import _LanceTable
from vcf_agent.schema import LANCE_VECTOR_COLUMN
from vcf_agent.stores import lance
from vcf_agent.stores.build import live_build
from vcf_agent.stores.lance import BUILD_RECORD, load_lancedb, open_table

from helpers import bcftools_lines, data_file, run_workflow, variant, whole_vcf_as_one_shard

COHORT = "cohorts/1kgp_high_coverage_chr1_3202samples_head.vcf.gz"
MIDDLE = 39_071  # the position of the 445th of the 889 records

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split_vcfs(tmp_path_factory) -> dict[str, Path]:
    """a: the first half of the samples, first half of the region; b: the other samples, the whole
    region, sites where they carry an ALT; c: every sample, second half of the region."""
    vcf = data_file(COHORT)
    folder = tmp_path_factory.mktemp("split")
    samples = bcftools_lines("query", "-l", vcf)
    (folder / "first.txt").write_text("\n".join(samples[:1600]) + "\n")
    (folder / "second.txt").write_text("\n".join(samples[1600:]) + "\n")
    views = {
        "a": ["-S", folder / "first.txt", "-t", f"chr1:1-{MIDDLE}"],
        "b": ["-S", folder / "second.txt", "-c", "1"],
        "c": ["-t", f"chr1:{MIDDLE + 1}-"],
    }
    files = {}
    for name, args in views.items():
        files[name] = folder / f"{name}.vcf.gz"
        subprocess.run(["bcftools", "view", *map(str, args), "-Oz", "-o", str(files[name]), str(vcf)], check=True)
    return files


def bcftools_ids(vcf: Path) -> list[str]:
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", str(vcf)], capture_output=True, check=True)
    listed = subprocess.run(
        ["bcftools", "query", "-f", "%CHROM:%POS:%REF:%ALT\\n"], input=norm.stdout, capture_output=True, check=True
    )
    return listed.stdout.decode().split()


@pytest.fixture(scope="module")
def shards(split_vcfs, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each VCF's variant shard and embedding file, made by the project's converter and model."""
    from vcf_agent.embedding.embed import embed_shard

    folder = tmp_path_factory.mktemp("shards")
    made = {}
    for name, vcf in split_vcfs.items():
        variants = whole_vcf_as_one_shard(vcf, folder, name)
        embeddings = folder / "embeddings" / name / variants.name
        embeddings.parent.mkdir(parents=True)
        embed_shard(variants, embeddings, cache_dir=folder / "cache", mem_mb=2048, threads=1, device="cpu")
        made[name] = (variants, embeddings)
    return made


def load(shards: dict, names: str, folder: Path, **options) -> dict:
    """load_lancedb of the VCFs `names` (config order) into folder/lancedb."""
    variants = [shards[n][0] for n in names]
    embeddings = [shards[n][1] for n in names]
    return load_lancedb(variants, embeddings, folder / "lancedb", folder / "lancedb.json", **options)


def table_ids(folder: Path) -> list[tuple[str, str]]:
    rows = open_table(folder / "lancedb").search().select(["variant_id", "source"]).limit(None).to_arrow()
    return list(zip(rows.column("variant_id").to_pylist(), rows.column("source").to_pylist(), strict=True))


def expected_rows(split_vcfs: dict, names: str) -> dict[str, str]:
    """variant_id -> the first VCF of `names` holding it (bcftools' ids of each file)."""
    first: dict[str, str] = {}
    for name in names:
        for variant_id in bcftools_ids(split_vcfs[name]):
            first.setdefault(variant_id, name)
    return first


def build_digests(build: Path) -> dict[str, str]:
    return {
        str(p.relative_to(build)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(build.rglob("*"))
        if p.is_file() and p.name != ".readers.lock"
    }


def test_the_split_vcfs_share_variants(split_vcfs):
    a, b, c = (set(bcftools_ids(split_vcfs[n])) for n in "abc")
    assert a & b and b & c and not a & c  # b overlaps both halves; a and c are disjoint
    assert len(a | b | c) == 889


def test_adding_and_removing_vcfs_keeps_the_ids_of_the_union(split_vcfs, shards, tmp_path):
    steps = [("a", "rebuilt"), ("ab", "appended"), ("abc", "appended"), ("bc", "removed"), ("c", "removed")]
    for names, mode in steps:
        manifest = load(shards, names, tmp_path)
        assert manifest["mode"] == mode, names
        rows = table_ids(tmp_path)
        ids = [variant_id.split("#")[0] for variant_id, _ in rows]
        expected = expected_rows(split_vcfs, names)
        assert len(ids) == len(set(ids)) == len(expected) == manifest["rows"], names  # each variant once
        assert dict(zip(ids, (source for _, source in rows), strict=True)) == expected, names  # from its first VCF
    rebuilt = load(shards, "bc", tmp_path / "full")
    grown = load(shards, "bc", tmp_path)  # from [c]: b comes before c, so a full rebuild
    assert grown["mode"] == "rebuilt" and sorted(table_ids(tmp_path)) == sorted(table_ids(tmp_path / "full"))
    assert rebuilt["rows"] == grown["rows"] == len(expected_rows(split_vcfs, "bc"))


def test_overlapping_vcfs_written_or_appended_by_a_child_per_shard_hold_each_variant_once(split_vcfs, shards, tmp_path,
                                                                               monkeypatch):  # fmt: skip
    monkeypatch.setattr(lance, "CHILD_PROCESS_MIN_ROWS", 0)  # the path of a large store: the rows of
    monkeypatch.setattr(lance, "ROWS_PER_CHILD", 1)  # each shard appended by its own child process
    expected = expected_rows(split_vcfs, "abc")
    for folder, steps in ((tmp_path / "rebuilt", ["abc"]), (tmp_path / "grown", ["ab", "abc"])):
        for names in steps:
            manifest = load(shards, names, folder)
        assert manifest["mode"] == ("rebuilt" if len(steps) == 1 else "appended")
        ids = [variant_id.split("#")[0] for variant_id, _ in table_ids(folder)]
        assert len(ids) == len(set(ids)) == len(expected) == manifest["rows"]
        assert manifest["duplicates_dropped"] == sum(len(bcftools_ids(split_vcfs[n])) for n in "abc") - len(expected)


def test_removing_a_vcf_adds_back_the_rows_it_shadowed(split_vcfs, shards, tmp_path):
    load(shards, "ab", tmp_path)
    manifest = load(shards, "b", tmp_path)
    assert manifest["mode"] == "removed"
    assert {source for _, source in table_ids(tmp_path)} == {"b"}
    assert manifest["rows"] == len(bcftools_ids(split_vcfs["b"]))
    table = open_table(tmp_path / "lancedb")
    shared = sorted(set(bcftools_ids(split_vcfs["a"])) & set(bcftools_ids(split_vcfs["b"])))[0]
    assert table.search().where(f"variant_id = '{shared}'").select(["source"]).to_list()[0]["source"] == "b"


def test_removing_one_vcf_and_adding_another_at_once(split_vcfs, shards, tmp_path):
    load(shards, "ab", tmp_path)
    manifest = load(shards, "bc", tmp_path)
    assert manifest["mode"] == "changed"
    rows = table_ids(tmp_path)
    assert (
        dict((i.split("#")[0], s) for i, s in rows) == expected_rows(split_vcfs, "bc") and len(rows) == manifest["rows"]
    )


def test_an_append_writes_what_it_adds(shards, tmp_path):
    full = load(shards, "abc", tmp_path / "full")
    load(shards, "ab", tmp_path)
    before = open_table(tmp_path / "lancedb").count_rows()
    grown = load(shards, "abc", tmp_path)
    added = grown["rows"] - before
    assert grown["mode"] == "appended" and 0 < added < grown["rows"] / 2
    # bytes per row added within a factor 2 of a full build's (files new to the build, hard links aside)
    per_row_full = full["bytes_written"] / full["rows"]
    assert 0.5 * per_row_full * added < grown["bytes_written"] < 2 * per_row_full * added
    assert grown["bytes_linked"] > grown["bytes_written"]
    build = live_build(tmp_path / "lancedb")
    assert (build / BUILD_RECORD).is_file()


def test_a_rerun_with_the_same_inputs_writes_nothing(shards, tmp_path):
    first = load(shards, "ab", tmp_path)
    build = live_build(tmp_path / "lancedb")
    files = build_digests(build)
    again = load(shards, "ab", tmp_path)
    assert again["mode"] == "unchanged" and again["bytes_written"] == 0
    assert again["build"] == first["build"] == build.name and live_build(tmp_path / "lancedb") == build
    assert build_digests(build) == files
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".lancedb-")] == [build.name]


def test_a_failed_append_leaves_the_live_build_intact(shards, tmp_path):
    load(shards, "ab", tmp_path)
    build = live_build(tmp_path / "lancedb")
    files = build_digests(build)
    rows = open_table(tmp_path / "lancedb").count_rows()
    variants, embeddings = shards["c"]
    shuffled = tmp_path / "bad" / "embeddings" / "c" / embeddings.name  # rows no longer match the variants
    shuffled.parent.mkdir(parents=True)
    table = pq.read_table(embeddings)
    pq.write_table(table.take(np.roll(np.arange(table.num_rows), 1)), shuffled)
    with pytest.raises(VcfAgentError, match="does not match"):
        load_lancedb([*(shards[n][0] for n in "ab"), variants], [*(shards[n][1] for n in "ab"), shuffled],
                     tmp_path / "lancedb", tmp_path / "lancedb.json")  # fmt: skip
    assert live_build(tmp_path / "lancedb") == build and build_digests(build) == files
    assert open_table(tmp_path / "lancedb").count_rows() == rows
    assert load(shards, "abc", tmp_path)["mode"] == "appended"  # the next load grows it as usual


def test_a_changed_shard_rebuilds(shards, tmp_path):
    load(shards, "ab", tmp_path)
    changed = dict(shards)
    variants, embeddings = shards["a"]
    copy = tmp_path / "copy" / "embeddings" / "a" / embeddings.name
    copy.parent.mkdir(parents=True)
    table = pq.read_table(embeddings)
    pq.write_table(table, copy, compression="gzip")  # same rows, other bytes
    changed["a"] = (variants, copy)
    assert load(changed, "ab", tmp_path)["mode"] == "rebuilt"


# ---------------------------------------------------------------- ANN recall after an append

DIM = 384
CLUSTERS = 400
#: Spread of the vectors around their (unit) centre, per dimension: a spread of about 0.8 in all,
#: so neighbours lie in and across clusters, none a near copy of another.
NOISE = 0.04


def synthetic_shard(
    folder: Path, source: str, rows: int, offset: int, centers: np.ndarray, seed: int, failing_every: int = 0
):
    """`rows` variants of VCF `source` with distinct vectors around shared centres (a stand-in for
    descriptions: similar, not identical), as a variant shard and its embedding file. With
    `failing_every`, that row and every such one after it fails FILTER LowQual, the others PASS."""
    rng = np.random.default_rng(seed)
    positions = np.arange(offset, offset + rows) * 10 + 1
    ids = [f"1:{p}:A:G" for p in positions.tolist()]
    filters = [None if not failing_every else "LowQual" if i % failing_every == 0 else "PASS" for i in range(rows)]
    records = [
        variant(source=source, pos=int(p), variant_id=i, filter=f)
        for p, i, f in zip(positions.tolist(), ids, filters, strict=True)
    ]
    variants = folder / "parquet" / "variants" / source / "00001.parquet"
    variants.parent.mkdir(parents=True)
    from vcf_agent.schema import VARIANT_COLUMNS

    schema = pa.schema([c.field() for c in VARIANT_COLUMNS])
    pq.write_table(pa.Table.from_pylist(records, schema=schema), variants)
    vectors = centers[rng.integers(0, len(centers), rows)] + rng.normal(0, NOISE, (rows, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = folder / "embeddings" / source / "00001.parquet"
    embeddings.parent.mkdir(parents=True)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), DIM)
    pq.write_table(
        pa.table({"variant_id": ids, "text": [f"description {i}" for i in ids], LANCE_VECTOR_COLUMN: column}),
        embeddings,
    )
    return variants, embeddings


def recall_at_10(folder: Path, queries: np.ndarray) -> float:
    """Share of the exact top 10 (a flat search, the index bypassed) that the query layer's search finds."""
    manifest = json.loads((folder / "lancedb.json").read_text())
    table = open_table(folder / "lancedb")
    searcher = _LanceTable(live_build(folder / "lancedb"), manifest["indexes"])
    try:
        assert searcher.partitions > 1  # the ANN index is there and searched
        found = 0
        for vector in queries:
            exact = table.search(vector).distance_type("cosine").bypass_vector_index().select(["variant_id"])
            truth = set(exact.limit(10).to_arrow().column("variant_id").to_pylist())
            hits = searcher.nearest(vector, None, ["variant_id"], 10, True).column("variant_id").to_pylist()
            found += len(truth & set(hits))
    finally:
        searcher.close()
    return found / (10 * len(queries))


@pytest.mark.extended
def test_ann_recall_after_an_append_and_a_rebuild(tmp_path):
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    first = synthetic_shard(tmp_path, "first", 140_000, 0, centers, 1)
    added = synthetic_shard(tmp_path, "added", 14_000, 140_000, centers, 2)
    grown = tmp_path / "grown"
    load_lancedb([first[0]], [first[1]], grown / "lancedb", grown / "lancedb.json")
    manifest = load_lancedb([first[0], added[0]], [first[1], added[1]], grown / "lancedb", grown / "lancedb.json")
    assert manifest["mode"] == "appended" and manifest["index_update"]["action"] == "kept"
    queries = centers[rng.integers(0, CLUSTERS, 100)] + rng.normal(0, NOISE, (100, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    assert recall_at_10(grown, queries) >= 0.95
    full = tmp_path / "full"
    load_lancedb([first[0], added[0]], [first[1], added[1]], full / "lancedb", full / "lancedb.json")
    assert recall_at_10(full, queries) >= 0.95


def test_a_filter_most_rows_pass_is_checked_after_the_search_one_few_pass_is_an_exact_search(tmp_path, monkeypatch):
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(40, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    shard = synthetic_shard(tmp_path, "first", 36_000, 0, centers, 3, failing_every=10)
    load_lancedb([shard[0]], [shard[1]], tmp_path / "lancedb", tmp_path / "lancedb.json", ann_min_rows=1_000)
    manifest = json.loads((tmp_path / "lancedb.json").read_text())
    table = open_table(tmp_path / "lancedb")
    searcher = _LanceTable(live_build(tmp_path / "lancedb"), manifest["indexes"])
    from lancedb.expr import col

    filters = {"PASS": col("filter").isin(["PASS"]), "LowQual": col("filter").isin(["LowQual"])}
    queries = centers[rng.integers(0, len(centers), 20)] + rng.normal(0, NOISE, (20, DIM)).astype(np.float32)

    def recall(name: str) -> float:
        """Share of the hits at most as far as the exact 10th nearest row passing (ties count as found)."""
        found = 0
        for vector in queries:
            exact = table.search(vector).distance_type("cosine").bypass_vector_index()
            exact = exact.where(f"filter = '{name}'", prefilter=True).limit(10).to_arrow()
            tenth = exact.column("_distance").to_pylist()[-1] + 1e-5
            hits = searcher.nearest(vector, filters[name], ["filter", "_distance"], 10, True)
            assert hits.num_rows == 10 and set(hits.column("filter").to_pylist()) == {name}
            found += sum(d <= tenth for d in hits.column("_distance").to_pylist())
        return found / (10 * len(queries))

    try:
        assert searcher.partitions > 1
        assert searcher.share_passing(filters["PASS"]) == pytest.approx(0.9, abs=0.01)  # 32,400 of 36,000 rows
        assert searcher.share_passing(filters["LowQual"]) == pytest.approx(0.1, abs=0.01)
        assert searcher.plan(filters["PASS"])[0] == "postfilter" and searcher.plan(filters["LowQual"])[0] == "ann"
        after = recall("PASS")
        monkeypatch.setattr(vectors, "POSTFILTER_MIN_SHARE", 2.0)  # every filter checked before the search
        assert searcher.plan(filters["PASS"])[0] == "ann"
        assert after >= recall("PASS") - 0.02 and after >= 0.9
        # the first 600 rows (positions 1 to 5,991): an exact search over them
        few = col("pos") <= 6_000
        assert searcher.plan(few)[0] == "flat"
        for vector in queries:
            exact = table.search(vector).distance_type("cosine").bypass_vector_index().where("pos <= 6000")
            truth = exact.limit(10).to_arrow().column("_distance").to_pylist()
            hits = searcher.nearest(vector, few, ["pos", "_distance"], 10, True)
            assert max(hits.column("pos").to_pylist()) <= 6_000
            assert hits.column("_distance").to_pylist() == pytest.approx(truth, abs=1e-6)
    finally:
        searcher.close()


def test_appended_rows_are_found_by_their_indexed_columns(shards, tmp_path):
    load(shards, "a", tmp_path, ann_min_rows=0)
    manifest = load(shards, "ac", tmp_path, ann_min_rows=0)
    table = open_table(tmp_path / "lancedb")
    some = table.search().where("source = 'c'").select(["variant_id", "pos"]).limit(3).to_list()
    assert some and manifest["mode"] == "appended"
    for row in some:
        assert table.count_rows(f"variant_id = '{row['variant_id']}'") == 1
        assert table.count_rows(f"pos = {row['pos']}") >= 1
    assert os.path.samefile(live_build(tmp_path / "lancedb"), tmp_path / "lancedb")


# ---------------------------------------------------------------- through the workflow


@pytest.mark.extended
def test_the_workflow_appends_a_vcf_added_to_the_config(split_vcfs, tmp_path):
    config = {"reference": None, "shard": {"records": 300}, "vcfs": {"a": str(split_vcfs["a"])}}
    run_workflow(tmp_path, config, "results/lancedb.json")
    first = json.loads((tmp_path / "results" / "lancedb.json").read_text())
    config["vcfs"]["b"] = str(split_vcfs["b"])
    run_workflow(tmp_path, config, "results/lancedb.json")
    grown = json.loads((tmp_path / "results" / "lancedb.json").read_text())
    assert (first["mode"], grown["mode"]) == ("rebuilt", "appended")
    added = grown["rows"] - first["rows"]
    assert (
        grown["build"] != first["build"]
        and 0 < grown["bytes_written"] < 2 * added * first["bytes_written"] / first["rows"]
    )
    ids = [variant_id.split("#")[0] for variant_id, _ in table_ids(tmp_path / "results")]
    assert sorted(ids) == sorted(expected_rows(split_vcfs, "ab"))
