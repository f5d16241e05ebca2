"""The LanceDB table and the Kuzu graph built by the workflow's last rules, checked against bcftools.

One workflow run on a real annotated file (cyvcf2's haploid chrX: 777 records,
3 samples, VEP CSQ) is shared by the module; the failure and the second-VCF runs
work on copies of it. Expected counts come from bcftools (tests/helpers.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vcf_agent import runtime
from vcf_agent.errors import VcfAgentError
from vcf_agent.ingest.header import read_header
from vcf_agent.schema import LANCE_SCALAR_INDEXES, LANCE_TABLE
from vcf_agent.stores import kuzu as kuzu_store
from vcf_agent.stores import lance
from vcf_agent.stores.build import ShardExtent, StoreBuild, hold_build, load_in_progress, plan_partitions
from vcf_agent.stores.kuzu import load_kuzu, open_graph
from vcf_agent.stores.lance import ann_parameters, common_type, convert, load_lancedb, open_table

from helpers import (
    ROOT,
    TREE_RSS_WATCHER,
    bcftools_lines,
    data_file,
    nonref_genotypes,
    query,
    run_workflow,
    split_records,
)

VCF = "edge/cyvcf2/test-haploidX.vcf"
# Small shards, so that the stores are built from several files per kind.
CONFIG = {"vcfs": {"hx": None}, "reference": None, "shard": {"records": 400}}


def config_for(**vcfs: Path) -> dict:
    return {**CONFIG, "vcfs": {name: str(path) for name, path in vcfs.items()}}


@pytest.fixture(scope="module")
def vcf() -> Path:
    return data_file(VCF)


@pytest.fixture(scope="module")
def built(tmp_path_factory, vcf) -> Path:
    workdir = tmp_path_factory.mktemp("stores")
    run_workflow(workdir, config_for(hx=vcf))
    return workdir


def copy_of(workdir: Path, target: Path) -> Path:
    """A copy of a finished run (symlinks kept as links, so the stores stay swappable)."""
    shutil.copytree(workdir, target, symlinks=True)
    return target


def lance_rows(workdir: Path) -> int:
    return open_table(workdir / "results" / "lancedb").count_rows()


def graph_counts(workdir: Path) -> dict[str, int]:
    with open_graph(workdir / "results" / "kuzu") as graph:
        nodes = {t: graph.count(t) for t in ("Sample", "Variant", "Gene", "File")}
        rels = {t: graph.count(t, rel=True) for t in ("CARRIES", "IN_GENE", "VARIANT_IN_FILE", "SAMPLE_IN_FILE")}
    return nodes | rels


def parquet_rows(workdir: Path, kind: str) -> int:
    pattern = workdir / "results" / "parquet" / kind / "*" / "*.parquet"
    return query(f"SELECT count(*) FROM read_parquet('{pattern}')")[0][0]


def normalized_ids(vcf: Path) -> set[str]:
    """CHROM:POS:REF:ALT of every record after bcftools norm -m -any (the variant ids of a file)."""
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", str(vcf)], capture_output=True, check=True)
    listed = subprocess.run(
        ["bcftools", "query", "-f", "%CHROM:%POS:%REF:%ALT\\n"], input=norm.stdout, capture_output=True, check=True
    )
    return set(listed.stdout.decode().split())


# ---------------------------------------------------------------- one VCF


def test_counts_equal_bcftools(built, vcf):
    records, carriers = split_records(vcf), nonref_genotypes(vcf)
    samples = bcftools_lines("query", "-l", vcf)
    counts = graph_counts(built)
    assert lance_rows(built) == counts["Variant"] == parquet_rows(built, "variants") == records == 777
    assert counts["CARRIES"] == carriers == 1439
    assert counts["Sample"] == counts["SAMPLE_IN_FILE"] == len(samples) == 3
    assert counts["VARIANT_IN_FILE"] == records and counts["File"] == 1
    assert counts["IN_GENE"] == parquet_rows(built, "annotations") > 0


def test_manifests_describe_the_stores(built):
    lance = json.loads((built / "results" / "lancedb.json").read_text())
    kuzu = json.loads((built / "results" / "kuzu.json").read_text())
    assert lance["rows"] == 777 and lance["vector_dim"] == 384 and lance["model"].startswith("all-MiniLM-L6-v2")
    assert lance["sources"] == {"hx": {"shards": 2, "variant_rows": 777}}
    assert {i["column"] for i in lance["indexes"]} == set(LANCE_SCALAR_INDEXES)  # 777 rows: no ANN index
    assert 0 < lance["seconds"]["rows_writer"] <= lance["seconds"]["rows"] <= lance["seconds"]["total"]
    assert kuzu["counts"]["CARRIES"] == 1439 and kuzu["samples"] == {"hx": 3}
    assert kuzu["properties_left_out"] == {"hx": {"CARRIES": []}}  # it declares integer DP and GQ
    assert kuzu["layout"] == "layers" and kuzu["partitions_per_layer"] == {"hx": kuzu["partitions"]}
    for manifest, link in ((lance, "lancedb"), (kuzu, "kuzu")):
        assert os.readlink(built / "results" / link) == manifest["build"]


def test_table_holds_parquet_columns_text_and_vectors(built):
    table = open_table(built / "results" / "lancedb")
    variants = pq.read_schema(next((built / "results" / "parquet" / "variants" / "hx").glob("*.parquet")))
    assert table.schema.names == [*variants.names, "text", "vector"]
    assert str(table.schema.field("vector").type) == "fixed_size_list<item: float>[384]"
    # Record chrX:2700157 G>A, read by hand in the VCF: its four CSQ entries are XG missense_variant.
    row = table.search().where("variant_id = 'chrX:2700157:G:A'").limit(2).to_list()
    assert len(row) == 1 and row[0]["gene"] == "XG" and row[0]["consequence"] == "missense_variant"
    assert "XG" in row[0]["text"] and len(row[0]["vector"]) == 384


def test_graph_answers_with_bound_parameters(built):
    with open_graph(built / "results" / "kuzu") as graph:
        rows = graph.query(
            "MATCH (s:Sample)-[c:CARRIES]->(v:Variant)-[:IN_GENE]->(g:Gene {symbol: $gene}) "
            "RETURN DISTINCT s.id AS sample, v.variant_id AS variant, v.`end` AS last, c.gt AS gt ORDER BY variant",
            {"gene": "XG"},
        )
    # bcftools: carriers of the records whose CSQ names XG (13 calls at 9 records).
    lines = bcftools_lines(
        "query", "-i", 'GT="alt" && INFO/CSQ~"[|]XG[|]"', "-f", "[%SAMPLE %CHROM:%POS:%REF:%ALT\\n]",
        data_file(VCF),
    )  # fmt: skip
    assert {(r["sample"], r["variant"]) for r in rows} == {tuple(line.split()) for line in lines}
    assert len(rows) == len(lines) == 13
    assert all(r["last"] >= int(r["variant"].split(":")[1]) for r in rows)
    with open_graph(built / "results" / "kuzu") as graph:
        assert graph.properties("CARRIES") == ["gt", "phased", "alt_count", "ploidy", "dp", "gq"]


def test_rerun_rebuilds_nothing(built):
    links = {name: os.readlink(built / "results" / name) for name in ("lancedb", "kuzu")}
    again = run_workflow(built, config_for(hx=data_file(VCF)))
    assert "Nothing to be done" in again.stderr
    assert links == {name: os.readlink(built / "results" / name) for name in ("lancedb", "kuzu")}


def test_ann_index_finds_each_vector_first(built, tmp_path):
    results = built / "results"
    variants = sorted((results / "parquet" / "variants" / "hx").glob("*.parquet"))
    embeddings = [results / "embeddings" / "hx" / p.name for p in variants]
    manifest = load_lancedb(variants, embeddings, tmp_path / "lancedb", tmp_path / "lancedb.json", ann_min_rows=0)
    (ann,) = [i for i in manifest["indexes"] if i["type"] == "IVF_PQ"]
    assert ann["metric"] == "cosine" and ann["num_sub_vectors"] == 48 and ann["num_bits"] == 4
    table = open_table(tmp_path / "lancedb")
    assert {i.name for i in table.list_indices()} >= {"vector_idx", "variant_id_idx", "pos_idx"}
    probe = pq.read_table(embeddings[1]).slice(7, 1)
    vector = np.asarray(probe.column("vector")[0].as_py(), dtype=np.float32)
    hits = table.search(vector).distance_type("cosine").refine_factor(10).limit(3).to_list()
    # Several variants share a description (and so a vector): the probe is among the exact matches.
    exact = [h["variant_id"] for h in hits if h["_distance"] < 1e-5]
    assert probe.column("variant_id")[0].as_py() in exact or hits[0]["text"] == probe.column("text")[0].as_py()


def test_ann_parameters_follow_rows_and_distinct_vectors():
    assert ann_parameters(1_000_000, 900_000, 384) == {"num_partitions": 61, "num_sub_vectors": 48, "num_bits": 4}
    # Repetitive descriptions: k-means cannot form more partitions than there are distinct vectors.
    assert ann_parameters(1_000_000, 325, 384)["num_partitions"] == 20
    assert ann_parameters(300, 300, 384)["num_partitions"] == 1


def test_rows_written_by_a_child_process_equal_those_written_here(built, tmp_path, monkeypatch):
    results = built / "results"
    variants = sorted((results / "parquet" / "variants" / "hx").glob("*.parquet"))
    embeddings = [results / "embeddings" / "hx" / p.name for p in variants]
    here = load_lancedb(variants, embeddings, tmp_path / "here", tmp_path / "here.json")
    monkeypatch.setattr(lance, "CHILD_PROCESS_MIN_ROWS", 0)  # the path of a large store
    monkeypatch.setattr(lance, "ROWS_PER_CHILD", 1)  # a child per shard, each appending to the table
    children = []

    def counted(function, *args, **kwargs):
        children.append(function)
        return runtime.run_in_child(function, *args, **kwargs)

    monkeypatch.setattr(lance, "run_in_child", counted)
    child = load_lancedb(variants, embeddings, tmp_path / "child", tmp_path / "child.json")
    assert len(children) == len(variants) > 1
    assert child["rows"] == here["rows"] == lance_rows(built)
    columns = ["variant_id", "text", "vector"]
    assert (
        open_table(tmp_path / "child")
        .to_arrow()
        .select(columns)
        .sort_by("variant_id")
        .equals(open_table(tmp_path / "here").to_arrow().select(columns).sort_by("variant_id"))
    )
    # an error in the child comes back as the job's one line: a shard's embeddings cut short
    short = tmp_path / "embeddings" / "hx" / embeddings[0].name
    short.parent.mkdir(parents=True)
    table = pq.read_table(embeddings[0])
    pq.write_table(table.slice(0, table.num_rows - 1), short)
    with pytest.raises(VcfAgentError, match=str(short)):
        load_lancedb(variants, [short, *embeddings[1:]], tmp_path / "bad", tmp_path / "bad.json")
    assert not (tmp_path / "bad").exists()


def test_a_graph_prepared_in_a_child_process_equals_one_prepared_here(built, tmp_path, monkeypatch):
    results = built / "results" / "parquet"
    variants = sorted((results / "variants" / "hx").glob("*.parquet"))
    genotypes = [results / "genotypes" / "hx" / p.name for p in variants]
    annotations = [results / "annotations" / "hx" / p.name for p in variants]
    samples = {"hx": read_header(built / "results" / "normalized" / "hx.bcf").samples}

    def load(name: str) -> dict:
        return load_kuzu(variants, genotypes, annotations, tmp_path / name, tmp_path / f"{name}.json", samples=samples)

    here = load("here")
    monkeypatch.setattr(kuzu_store, "CHILD_PROCESS_MIN_ROWS", 0)  # the path of a large store
    child = load("child")
    assert child["counts"] == here["counts"]
    assert child["counts"]["CARRIES"] == graph_counts(built)["CARRIES"]


def test_info_fields_typed_differently_by_two_vcfs_share_a_column():
    # 1000 Genomes phase 3 declares SVLEN Number=., the high-coverage release Number=1.
    assert common_type(pa.int32(), pa.list_(pa.int32())) == pa.list_(pa.int32())
    assert common_type(pa.int32(), pa.float64()) == pa.float64()
    assert common_type(pa.string(), pa.list_(pa.int32())) == pa.string()
    assert convert(pa.array([5, None], pa.int32()), pa.list_(pa.int32())).to_pylist() == [[5], None]
    assert convert(pa.array([[1, 2], None], pa.list_(pa.int32())), pa.string()).to_pylist() == ["1,2", None]


# ---------------------------------------------------------------- graph partitions


def test_partitions_take_whole_shards_and_keep_each_position_in_one():
    shard = ShardExtent
    shards = [  # (VCF, shard, contig, first, last position, variants, genotypes), as two VCFs' plans give them
        shard("a", "00001", "1", 1, 100, 100, 40), shard("a", "00002", "1", 101, 200, 100, 40),
        shard("a", "00003", "2", 1, 50, 50, 40), shard("a", "00004", "3", 1, 10, 10, 30),
        shard("a", "00005", "3", 11, 20, 10, 30), shard("a", "00006", "3", 21, 30, 10, 30),
        shard("b", "00001", "1", 50, 150, 100, 40), shard("b", "00002", "2", 10, 20, 10, 200),
    ]  # fmt: skip
    plan = plan_partitions(shards, 60)
    # Contig 1: b/00001 reaches into both of a's shards, so no cut fits between them (120 genotypes
    # in one partition); contig 2: b/00002 (200 genotypes) lies inside a/00003; contig 3 is cut at 60.
    assert [(p["ranges"], sorted(p["shards"]), p["genotypes"]) for p in plan] == [
        ([["1", 1, 200]], ["a/00001", "a/00002", "b/00001"], 120),
        ([["2", 1, 50]], ["a/00003", "b/00002"], 240),
        ([["3", 1, 20]], ["a/00004", "a/00005"], 60),
        ([["3", 21, 30]], ["a/00006"], 30),
    ]
    assert [p["name"] for p in plan] == ["p00001", "p00002", "p00003", "p00004"]
    assert len(plan_partitions(shards, 10**9)) == 1  # all contigs in one partition
    with pytest.raises(VcfAgentError, match="partition_edges"):
        plan_partitions(shards, 0)


# ---------------------------------------------------------------- atomic swap


def test_a_failed_load_keeps_the_previous_stores(built, tmp_path):
    work = copy_of(built, tmp_path / "w")
    before = graph_counts(work), lance_rows(work)
    links = {name: os.readlink(work / "results" / name) for name in ("lancedb", "kuzu")}
    for kind in ("embeddings", "parquet/genotypes"):
        damaged = next((work / "results" / kind / "hx").glob("*.parquet"))
        damaged.write_bytes(damaged.read_bytes()[:300])  # cut short, as by a full disk
    result = run_workflow(work, config_for(hx=data_file(VCF)), extra=("--keep-going",), check=False)
    assert result.returncode != 0
    for rule in ("load_lancedb", "plan_kuzu_partitions"):  # the graph's plan reads the genotypes first
        (log,) = (work / "results" / "logs" / rule).glob("*.log")
        last = log.read_text().strip().splitlines()[-1]
        assert "ERROR" in last and ".parquet" in last and "Traceback" not in log.read_text(), last
    assert (graph_counts(work), lance_rows(work)) == before
    assert links == {name: os.readlink(work / "results" / name) for name in ("lancedb", "kuzu")}
    assert sorted(p.name for p in (work / "results").glob(".*")) == sorted(links.values())


def test_an_abandoned_build_is_removed_and_the_live_store_kept(tmp_path):
    link = tmp_path / "store"
    with StoreBuild(link) as first:
        (first.path / "data").write_text("v1")
        first.commit()
    abandoned = tmp_path / ".store-20000101T000000000000Z-1"
    abandoned.mkdir()
    with pytest.raises(VcfAgentError), StoreBuild(link) as second:
        assert not abandoned.exists()  # a killed load's folder goes when the next one starts
        (second.path / "data").write_text("half")
        raise VcfAgentError("load failed")
    assert (link / "data").read_text() == "v1" and not second.path.exists()


HOLDING_READER = """
import sys
from vcf_agent.stores.build import hold_build
hold = hold_build(sys.argv[1])
print(hold.path, flush=True)
sys.stdin.read()  # holds the build until the test closes our stdin
"""


def test_a_build_a_reader_holds_is_kept_until_it_lets_go(tmp_path):
    link = tmp_path / "store"
    with StoreBuild(link) as first:
        (first.path / "data").write_text("v1")
        first.commit()
    reader = subprocess.Popen(
        [sys.executable, "-c", HOLDING_READER, str(link)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert Path(reader.stdout.readline().strip()) == first.path
        with StoreBuild(link) as second:
            (second.path / "data").write_text("v2")
            second.commit()
        # published, and the reader's build still whole beside it
        assert (link / "data").read_text() == "v2" and (first.path / "data").read_text() == "v1"
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    with StoreBuild(link) as third:
        (third.path / "data").write_text("v3")
        third.commit()
    assert not first.path.exists() and not second.path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["store", third.path.name])
    mine = hold_build(link)  # in this process too: a reader's lock is held against the loads
    with StoreBuild(link) as fourth:
        fourth.commit()
    assert (third.path / "data").read_text() == "v3"
    mine.release()


def test_a_load_under_way_is_seen_from_outside(tmp_path):
    link = tmp_path / "store"
    assert not load_in_progress(link)
    with StoreBuild(link) as build:
        assert load_in_progress(link)  # a server waits for it before it switches
        build.commit()
    assert not load_in_progress(link)


# ---------------------------------------------------------------- a second VCF


@pytest.fixture(scope="module")
def two_vcfs(built, tmp_path_factory, vcf) -> tuple[Path, Path]:
    """The finished run with a second VCF added: the first half of the same records (shared variants)."""
    work = copy_of(built, tmp_path_factory.mktemp("two") / "w")
    positions = [int(p) for p in bcftools_lines("query", "-f", "%POS\\n", vcf)]
    half = work / "hx_first_half.vcf"
    subprocess.run(
        ["bcftools", "view", "-t", f"chrX:1-{positions[len(positions) // 2]}", "-o", str(half), str(vcf)], check=True
    )
    run_workflow(work, config_for(hx=vcf, hx_half=half))
    return work, half


def test_a_second_vcf_adds_each_variant_and_genotype_once(two_vcfs, vcf):
    work, half = two_vcfs
    distinct = normalized_ids(vcf) | normalized_ids(half)
    counts = graph_counts(work)
    assert lance_rows(work) == counts["Variant"] == len(distinct) == 777
    assert counts["VARIANT_IN_FILE"] == split_records(vcf) + split_records(half) == parquet_rows(work, "variants")
    # hx_half is the first half of hx: every genotype it holds is one of hx's, kept once (from hx)
    assert counts["CARRIES"] == nonref_genotypes(vcf) < nonref_genotypes(vcf) + nonref_genotypes(half)
    samples = set(bcftools_lines("query", "-l", vcf)) | set(bcftools_lines("query", "-l", half))
    assert counts["Sample"] == len(samples) == 3 and counts["SAMPLE_IN_FILE"] == 6 and counts["File"] == 2
    with open_graph(work / "results" / "kuzu") as graph:
        calls = graph.query("MATCH (s:Sample)-[c:CARRIES]->(v:Variant) RETURN s.id AS s, v.variant_id AS v")
        assert "source" not in graph.properties("CARRIES")  # a call's file is its layer
        assert [layer["source"] for layer in graph.index["layers"]] == ["hx", "hx_half"]
    assert len(calls) == len({(c["s"], c["v"]) for c in calls}) == counts["CARRIES"]


def test_a_shared_variant_is_one_row_and_one_canonical_node_in_two_files(two_vcfs):
    work, half = two_vcfs
    shared = sorted(normalized_ids(half))[0]
    table = open_table(work / "results" / "lancedb")
    assert len(table.search().where(f"variant_id = '{shared}'").limit(5).to_list()) == 1
    with open_graph(work / "results" / "kuzu") as graph:
        files = graph.query(
            "MATCH (v:Variant {variant_id: $id})-[:VARIANT_IN_FILE]->(f:File) RETURN f.name AS name ORDER BY name",
            {"id": shared},
        )
        carriers = graph.query_by_partition(
            "MATCH (s:Sample)-[c:CARRIES]->(v:Variant {variant_id: $id}) RETURN s.id AS sample", {"id": shared}
        )
        nodes = graph.query("MATCH (v:Variant {variant_id: $id}) RETURN v.canonical AS canonical", {"id": shared})
    assert [f["name"] for f in files] == ["hx", "hx_half"]
    assert {part["layer"] for part, rows in carriers if rows} == {"hx"}  # the first VCF holding the genotype
    assert sorted(n["canonical"] for n in nodes) == [False, True]  # a node per layer, hx's canonical


# ---------------------------------------------------------------- memory


@pytest.fixture(scope="module")
def hundred_variants(built, tmp_path_factory) -> tuple[list[Path], list[Path]]:
    """The first 100 variants of a real shard and their embeddings, and one load already done (warm-up)."""
    folder = tmp_path_factory.mktemp("hundred")
    files = []
    for kind in ("parquet/variants", "embeddings"):
        source = next((built / "results" / kind / "hx").glob("*.parquet"))
        target = folder / kind / "hx" / "00001.parquet"
        target.parent.mkdir(parents=True)
        pq.write_table(pq.read_table(source).slice(0, 100), target)
        files.append([target])
    load_lancedb(*files, folder / "warm", folder / "warm.json")  # Lance starts its runtime once per process
    return files[0], files[1]


@pytest.fixture
def memray_on(request):
    if not request.config.pluginmanager.hasplugin("memray") or not request.config.getoption("memray", False):
        pytest.skip("memory limits are only measured under `pytest --memray`")


# Lance gives every file it writes a buffer of LANCE_INITIAL_UPLOAD_SIZE bytes, 5 MiB at
# least (a smaller value is ignored): 5.0 MiB of the peak is that buffer, the rest (~0.2
# MiB) is the load itself. The predecessor allocated 135.3 MiB for the same 100 variants.
@pytest.mark.limit_memory("5.5 MB")
def test_inserting_100_variants_with_vectors_allocates_little(memray_on, hundred_variants, tmp_path):
    variants, embeddings = hundred_variants
    manifest = load_lancedb(variants, embeddings, tmp_path / "lancedb", tmp_path / "lancedb.json")
    assert manifest["rows"] == 100


KUZU_RSS_CHILD = TREE_RSS_WATCHER + textwrap.dedent(
    """
    from vcf_agent.stores.kuzu import load_kuzu, open_graph

    with open_graph(Path(job["out"]) / "warm.kuzu", read_only=False):
        pass  # Kuzu's library and first database: a fixed cost, not the load's
    before = tree_rss()
    watcher = threading.Thread(target=watch)
    watcher.start()
    manifest = load_kuzu(job["variants"], job["genotypes"], job["annotations"], Path(job["out"]) / "kuzu",
                         Path(job["out"]) / "kuzu.json", samples=job["samples"], mem_mb=1024)
    done.append(1)
    watcher.join()
    print(json.dumps({"increase_mb": (peak[0] - before) / 2**20, "counts": manifest["counts"]}))
    """
)


def kuzu_rss_increase(built: Path, folder: Path, vcf: Path, variants: int) -> dict:
    """Load the first `variants` variants of a shard with their genotypes and annotations in a child process."""
    results = built / "results" / "parquet"
    first = {kind: next((results / kind / "hx").glob("*.parquet")) for kind in ("variants", "genotypes", "annotations")}
    chosen = pq.read_table(first["variants"]).slice(0, variants)
    ids = chosen.column("variant_id").to_numpy(zero_copy_only=False)
    job = {"out": str(folder), "samples": {"hx": bcftools_lines("query", "-l", vcf)}}
    for kind, path in first.items():
        table = chosen
        if kind != "variants":
            table = pq.read_table(path)
            table = table.filter(np.isin(table.column("variant_id").to_numpy(zero_copy_only=False), ids))
        target = folder / kind / "hx" / "00001.parquet"
        target.parent.mkdir(parents=True)
        pq.write_table(table, target)
        job[kind] = [str(target)]
    child = subprocess.run(
        [sys.executable, "-c", KUZU_RSS_CHILD, json.dumps(job)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    assert measured["counts"]["Variant"] == chosen.num_rows
    assert measured["counts"]["CARRIES"] == pq.read_metadata(job["genotypes"][0]).num_rows > 0
    return measured


def test_kuzu_rss_increase_of_loading_50_variants(built, tmp_path, vcf):
    fifty = kuzu_rss_increase(built, tmp_path / "fifty", vcf, 50)["increase_mb"]
    shard = kuzu_rss_increase(built, tmp_path / "shard", vcf, 10**9)["increase_mb"]  # the whole first shard
    print(f"Kuzu: RSS increase of loading 50 variants with their genotypes: {fifty:.1f} MiB (a shard: {shard:.1f})")
    # A fixed cost, not per row: DuckDB's first queries (~80 MB) and Kuzu's column buffers
    # for a whole node group per table (~30-50 MB for Sample and Variant), measured.
    assert fifty < 250 and abs(shard - fifty) < 80  # ±40 MB between runs of the same load


def test_lancedb_connects_to_the_symlinked_store(built):
    db = lancedb.connect(str(built / "results" / "lancedb"))
    assert db.open_table(LANCE_TABLE).count_rows() == 777
