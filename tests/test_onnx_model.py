"""The light embedding runtime (vcf_agent.embedding.onnx_model): the bundled model exported to ONNX by our own
code and run by ONNX Runtime, against sentence-transformers (the reference) on real descriptions.

The module runs the real workflow once on a small real file (its rule export_onnx_model makes the
export every other test here reuses) and makes its descriptions from the variants of real files of
$VCF_TEST_DATA, converted by the project's converter and described by vcf_agent.embedding.describe.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vcf_agent.embedding.describe import Describer
from vcf_agent.embedding.embed import embed_texts, load_model, model_id, resolve_model_path, resolve_runtime
from vcf_agent.embedding.onnx_model import MIN_COSINE, OnnxEncoder, is_exported
from vcf_agent.errors import VcfAgentError

from helpers import TEST_FILES, data_file, run_workflow

pytestmark = pytest.mark.slow  # a workflow run and the model exported and compared on real cohorts

#: Real files whose variants give, together, over a thousand distinct descriptions.
SOURCES = (
    "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz",
    "cohorts/platinum_NA12878_hg19_chr21.vcf.gz",
    "cohorts/1kgp_high_coverage_chr1_3202samples_head.vcf.gz",
    "edge/cyvcf2/test.vcf.gz",
    "edge/hail/sample.gnomad.exomes.r2.1.1.sites.chr1.vcf.gz",
    "edge/vcflib/grch38_chr8_36353854-36453166.pangenome.vcf",
)
#: Modules the light path must not import (torch and what sentence-transformers pulls in).
HEAVY = ("torch", "sentence_transformers", "transformers", "sklearn", "scipy")
#: The issue's figure for an embed job on CPU (sentence-transformers: ~690 MB before its first batch).
JOB_PEAK_MB = 400
SMALL = {"vcfs": {"small": str(TEST_FILES / "genotypes.vcf")}, "reference": None}


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory) -> Path:
    """The default workflow on a small real file: its export and its embed job."""
    workdir = tmp_path_factory.mktemp("onnx-workflow")
    run_workflow(workdir, SMALL, "results/summary.json")
    return workdir


@pytest.fixture(scope="module")
def models_dir(workflow_run) -> Path:
    return workflow_run / "resources" / "models"


@pytest.fixture(scope="module")
def real_descriptions(tmp_path_factory) -> list[str]:
    """Distinct descriptions of every variant of SOURCES (converted, then described, by our code)."""
    from vcf_agent.ingest.pipeline import convert_vcf
    from vcf_agent.ingest.shards import ShardSize

    out = tmp_path_factory.mktemp("descriptions")
    texts: dict[str, None] = {}
    for number, source in enumerate(SOURCES):
        converted = convert_vcf(
            data_file(source), out, source=str(number), shard_size=ShardSize(records=10**9), threads=2, mem_mb=2000
        )
        for variants in converted.parquet["variants"]:
            texts.update(dict.fromkeys(Describer().describe(pq.read_table(variants))))
    return list(texts)


def test_the_light_path_equals_sentence_transformers_on_a_thousand_real_descriptions(real_descriptions, models_dir):
    assert len(real_descriptions) >= 1000
    light = load_model(models_dir=models_dir, threads=2)
    assert isinstance(light, OnnxEncoder)
    reference = load_model(runtime="sentence-transformers", device="cpu")
    expected = reference.encode(real_descriptions, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    got = embed_texts(real_descriptions, loaded=light)
    cosines = np.sum(expected * got, axis=1)
    worst = int(np.argmin(cosines))
    assert cosines[worst] >= MIN_COSINE, f"cosine {cosines[worst]:.6f} for {real_descriptions[worst]!r}"
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # One text alone (the query side) gets the vector it gets in a batch, padding or not.
    np.testing.assert_allclose(embed_texts(real_descriptions[:1], loaded=light)[0], got[0], atol=1e-5)


def test_a_text_beyond_the_models_length_is_truncated_as_sentence_transformers_does(models_dir):
    texts = ["insertion of 300 bp " + " ".join(f"A{i}C" for i in range(400)), "SNV " * 600]
    light = embed_texts(texts, loaded=load_model(models_dir=models_dir))
    reference = load_model(runtime="sentence-transformers", device="cpu")
    assert np.all(np.sum(light * reference.encode(texts, normalize_embeddings=True), axis=1) >= MIN_COSINE)


LIGHT_JOB = """
import json, sys
from vcf_agent.embedding.embed import embed_shard, embed_texts, load_model
stats = embed_shard(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3], mem_mb=640, threads=2, models_dir=sys.argv[4])
embed_texts(["a query"], loaded=load_model(models_dir=sys.argv[4]))
print(json.dumps({"runtime": stats.runtime, "modules": sorted(m for m in sys.modules if m.split(".")[0] in %r)}))
"""


def test_the_light_path_imports_no_torch(workflow_run, models_dir, tmp_path):
    shard = next((workflow_run / "results" / "parquet" / "variants" / "small").glob("*.parquet"))
    command = [sys.executable, "-c", LIGHT_JOB % (HEAVY,), shard, tmp_path / "e.parquet", tmp_path / "c", models_dir]
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == {"runtime": "onnx", "modules": []}


def test_the_workflow_exports_once_and_its_embed_jobs_use_the_light_path_in_under_400_mb(workflow_run, models_dir):
    export = json.loads((models_dir / "onnx_export.json").read_text())
    folder = workflow_run / export["folder"]  # relative to the workflow's folder
    assert folder == models_dir / model_id(None) and is_exported(folder)
    assert export["worst_cosine_vs_sentence_transformers"] >= MIN_COSINE
    assert [p.name for p in models_dir.iterdir() if p.name.endswith(".tmp")] == []  # built aside, renamed in
    jobs = sorted((workflow_run / "results" / "embedding_stats" / "small").glob("*.json"))
    assert jobs
    for stats in map(json.loads, (job.read_text() for job in jobs)):
        assert (stats["runtime"], stats["device"], stats["model"]) == ("onnx", "cpu", model_id(None))
    # Snakemake's own measurement of each job (its benchmark file): under the figure.
    for benchmark in (workflow_run / "results" / "benchmarks" / "embed_shard" / "small").glob("*.tsv"):
        header, values = (line.split("\t") for line in benchmark.read_text().splitlines()[:2])
        assert float(dict(zip(header, values, strict=True))["max_rss"]) < JOB_PEAK_MB, benchmark
    again = run_workflow(workflow_run, SMALL, "results/summary.json")
    assert "Nothing to be done" in again.stderr  # the export included


def test_an_export_is_reused_and_a_missing_one_is_made_on_first_use_under_a_lock(models_dir, tmp_path):
    folder = models_dir / model_id(None)
    made = (folder / "model.onnx").stat().st_mtime_ns
    load_model(models_dir=models_dir)
    assert (folder / "model.onnx").stat().st_mtime_ns == made
    # Two fresh processes on an empty folder: one exports, the other waits for it and loads it.
    code = "from vcf_agent.embedding.embed import load_model; import sys; load_model(models_dir=sys.argv[1])"
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, text=True)]
    runs.append(subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stderr=subprocess.PIPE, text=True))
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert sum("exporting" in error and "to ONNX once" in error for error in errors) == 1, errors
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{model_id(None)}.lock", model_id(None)]


def test_the_runtime_is_onnx_for_the_bundled_model_on_cpu_and_sentence_transformers_otherwise(tmp_path):
    copy = shutil.copytree(resolve_model_path(None), tmp_path / "copy")
    assert resolve_runtime("auto", None, "cpu") == "onnx"
    assert resolve_runtime("auto", copy, "cpu") == "sentence-transformers"
    assert resolve_runtime("auto", None, "cuda") == "sentence-transformers"
    assert resolve_runtime("onnx", copy, "cpu") == "onnx"  # same pipeline: the light path can run it
    with pytest.raises(VcfAgentError, match=r"embedding\.runtime: onnx runs on the CPU only, not cuda:0"):
        resolve_runtime("onnx", None, "cuda:0")
    with pytest.raises(VcfAgentError, match=r"embedding\.runtime: unknown runtime 'tensorflow'"):
        resolve_runtime("tensorflow")
    # A model whose pipeline ends without Normalize: the light path would give other vectors.
    modules = json.loads((copy / "modules.json").read_text())
    (copy / "modules.json").write_text(json.dumps(modules[:2]))
    with pytest.raises(VcfAgentError, match=r"embedding\.runtime: .*copy is not a Transformer -> mean Pooling"):
        resolve_runtime("onnx", copy, "cpu")


def test_a_broken_export_is_named_in_a_one_line_error(models_dir, tmp_path):
    broken = shutil.copytree(models_dir / model_id(None), tmp_path / model_id(None))
    data = broken / "model.onnx.data"
    data.write_bytes(data.read_bytes()[: 1 << 20])  # cut short, as a full disk would leave it
    with pytest.raises(VcfAgentError, match=r"model\.onnx: cannot be loaded by ONNX Runtime .*delete the folder") as e:
        OnnxEncoder(resolve_model_path(None), broken)
    assert "\n" not in str(e.value)
