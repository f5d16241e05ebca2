"""Stores that grow by adding (issue 16): a cohort added to the config VCF by VCF, then one VCF removed.

The 2,504-sample 1000 Genomes cohort is cut with bcftools into a1 (its first 1,504 samples), a2
and a3 (500 samples each) over chr22:16.05-16.20 Mb, each keeping the sites its samples carry, and
r2: every sample over 16.18-16.26 Mb, a second region that overlaps the first by 20 kb (there an
a-file gives the genotype, r2's call is a duplicate). One workflow folder runs on a1, a1+a2,
a1+a2+a3, then +r2, then without a2. After each step:

* every store's counts equal bcftools' on the union of the configured files, under the duplicate
  rule (stores.build.GENOTYPE_RULE, worked out here from bcftools' output of each file);
* an addition rewrites nothing already loaded: the graph's partition files keep their inode and
  mtime, and the LanceDB build keeps the previous build's data files (hard links);
* the bytes it writes follow the size of what it adds, against what a full build holds;
* the removal rebuilds only the layers after the VCF removed, and of those only the partitions
  whose positions it held; an unchanged re-run runs no job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vcf_agent.query.stores import Stores
from vcf_agent.stores.lance import open_table

from helpers import data_file, run_workflow

pytestmark = pytest.mark.slow  # five workflow runs on one folder

COHORT = "cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz"
A_REGION = "22:16050000-16200000"
R2_REGION = "22:16180000-16260000"
SAMPLE_GROUPS = {"a1": (0, 1504), "a2": (1504, 2004), "a3": (2004, 2504)}
# Shards and partitions small enough that a1 and r2 (~100,000 genotypes each) are several of each,
# and few jobs per step (each job is a Python start).
CONFIG = {"reference": None, "shard": {"records": 600}, "kuzu": {"partition_edges": 40_000}}
# The VCFs configured at each step (names sort in config order: the config is written sorted).
STEPS = {
    "a1": ("a1",),
    "add_a2": ("a1", "a2"),
    "add_a3": ("a1", "a2", "a3"),
    "add_r2": ("a1", "a2", "a3", "r2"),
    "remove_a2": ("a1", "a3", "r2"),
}
ADDITIONS = ["add_a2", "add_a3", "add_r2"]
VCF_AGENT = Path(sys.executable).with_name("vcf-agent")
# Whatever records how the run went, not what it made.
NOT_DATA = ("logs", "benchmarks", "report")


# ---------------------------------------------------------------- the truth, from bcftools


@dataclass(frozen=True)
class FileTruth:
    """One input as bcftools reads it after `norm -m -any`: samples, variant ids, carrier pairs."""

    samples: tuple[str, ...]
    ids: frozenset[str]
    carriers: frozenset[tuple[str, str]]  # (sample, variant_id) whose GT holds an ALT

    @property
    def rows(self) -> int:
        return len(self.ids) + len(self.carriers)


def bcftools_truth(vcf: Path) -> FileTruth:
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", str(vcf)], capture_output=True, check=True)

    def query(*args: str) -> list[str]:
        run = subprocess.run(["bcftools", "query", *args, "-"], input=norm.stdout, capture_output=True, check=True)
        return run.stdout.decode().splitlines()

    samples = subprocess.run(["bcftools", "query", "-l", str(vcf)], capture_output=True, text=True, check=True)
    ids = query("-f", "%CHROM:%POS:%REF:%ALT\\n")
    pairs = query("-i", 'GT="alt"', "-f", "[%SAMPLE\\t%CHROM:%POS:%REF:%ALT\\n]")
    return FileTruth(
        tuple(samples.stdout.split()), frozenset(ids), frozenset(tuple(p.split("\t")) for p in pairs)
    )  # fmt: skip


@dataclass(frozen=True)
class Expected:
    """What the stores must hold for the VCFs of one step, in config order."""

    variants: frozenset[str]
    carriers: dict[tuple[str, str], str]  # (sample, variant_id) -> the VCF it comes from
    samples: tuple[str, ...]
    files: tuple[str, ...]


def expected(truths: dict[str, FileTruth], vcfs: tuple[str, ...]) -> Expected:
    """The union of the files under GENOTYPE_RULE: a (sample, variant) comes from the first VCF
    holding both; it is a genotype when that VCF's call holds an ALT."""
    holders = {name: (set(truths[name].samples), truths[name].ids) for name in vcfs}
    carriers = {}
    for pair in set().union(*(truths[name].carriers for name in vcfs)):
        sample, variant_id = pair
        first = next(n for n in vcfs if sample in holders[n][0] and variant_id in holders[n][1])
        if pair in truths[first].carriers:
            carriers[pair] = first
    samples = tuple(dict.fromkeys(s for name in vcfs for s in truths[name].samples))
    return Expected(frozenset().union(*(truths[n].ids for n in vcfs)), carriers, samples, vcfs)


# ---------------------------------------------------------------- what each step left on disk


@dataclass
class Step:
    name: str
    vcfs: tuple[str, ...]
    files: dict[str, tuple[int, int, int]]  # path under results/ -> (inode, mtime_ns, size)
    lance_data: set[tuple[int, int]]  # (inode, mtime_ns) of the live LanceDB build's data files
    index: dict  # the published graph's partitions.json
    builds: dict[str, str]  # store -> the build folder its symlink points at
    counts: dict[str, int] = field(default_factory=dict)
    lance_ids: list[str] = field(default_factory=list)
    cli: dict = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)  # a few samples' carrier counts (query layer)
    carriers_of: dict[str, dict[str, str | None]] = field(default_factory=dict)  # variant -> sample -> source


def snapshot(results: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under results/ (the live builds' folders included, the symlinks to them not)."""
    files = {}
    for folder, dirs, names in os.walk(results):
        dirs[:] = [d for d in dirs if not (Path(folder) == results and d in NOT_DATA)]
        for name in names:
            path = Path(folder, name)
            if path.is_symlink():
                continue
            info = path.stat()
            files[str(path.relative_to(results))] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return files


def lance_data_files(results: Path) -> set[tuple[int, int]]:
    data = (results / "lancedb").resolve() / "variants.lance" / "data"
    return {(p.stat().st_ino, p.stat().st_mtime_ns) for p in data.glob("*.lance")}


def read_step(name: str, results: Path, samples: list[str], variants: list[str]) -> Step:
    """The files and the stores' answers right after a step (the next one replaces the stores)."""
    step = Step(
        name, STEPS[name], snapshot(results), lance_data_files(results),
        json.loads(((results / "kuzu").resolve() / "partitions.json").read_text()),
        {store: os.readlink(results / store) for store in ("kuzu", "lancedb")},
    )  # fmt: skip
    kuzu, lance = (json.loads((results / f"{m}.json").read_text()) for m in ("kuzu", "lancedb"))
    summary = json.loads((results / "summary.json").read_text())
    step.counts = {
        **{f"kuzu.json {t}": kuzu["counts"][t] for t in ("Variant", "CARRIES", "Sample", "File")},
        "lancedb.json rows": lance["rows"],
        "summary variants": summary["totals"]["variants"],
        "summary genotypes": summary["totals"]["genotypes"],
    }
    step.lance_ids = open_table(results / "lancedb").to_arrow().column("variant_id").to_pylist()
    with Stores.open(results) as stores:
        stats = stores.stats()
        step.counts |= {
            "stats samples": stats.samples, "stats variants (LanceDB)": stats.variants,
            "stats variants (Kuzu)": stats.graph_variants, "stats genotypes": stats.genotypes,
            "stats files": len(stats.files),
        }  # fmt: skip
        names = set(stores.sample_names())
        step.samples = {s: stores.sample(s, limit=1).counts.carriers for s in samples if s in names}
        for variant_id in variants:
            record = stores.variant(variant_id, carriers=10_000)
            step.carriers_of[variant_id] = {c.sample: c.source for c in record.carriers}
    cli = subprocess.run([VCF_AGENT, "stats", "--results", str(results), "--json"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    step.cli = json.loads(cli.stdout)
    return step


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """a1, a2, a3 (samples of one region) and r2 (all samples, a second region), cut by bcftools."""
    folder = tmp_path_factory.mktemp("inputs")
    cohort = folder / "cohort.bcf"
    subprocess.run(["bcftools", "view", "-Ob", "-o", cohort, data_file(COHORT)], check=True)
    subprocess.run(["bcftools", "index", cohort], check=True)
    names = subprocess.run(["bcftools", "query", "-l", cohort], capture_output=True, text=True, check=True)
    samples = names.stdout.split()
    files = {}
    for name, (first, last) in SAMPLE_GROUPS.items():
        listed = folder / f"{name}.samples"
        listed.write_text("\n".join(samples[first:last]) + "\n")
        files[name] = folder / f"{name}.vcf.gz"
        subprocess.run(
            ["bcftools", "view", "-r", A_REGION, "--regions-overlap", "pos", "-S", listed, "--min-ac", "1",
             "-Oz", "-o", files[name], cohort],
            check=True,
        )  # fmt: skip
    files["r2"] = folder / "r2.vcf.gz"
    view = ["bcftools", "view", "-r", R2_REGION, "--regions-overlap", "pos", "-Oz", "-o", files["r2"], cohort]
    subprocess.run(view, check=True)
    return files


@pytest.fixture(scope="module")
def truths(inputs) -> dict[str, FileTruth]:
    return {name: bcftools_truth(path) for name, path in inputs.items()}


@pytest.fixture(scope="module")
def probes(truths) -> dict:
    """Samples of each group, and variants of the overlap that r2 and the a-files share with carriers."""
    samples = [truths[n].samples[i] for n in SAMPLE_GROUPS for i in (0, -1)]
    shared = sorted(
        {v for _, v in truths["r2"].carriers} & {v for n in SAMPLE_GROUPS for _, v in truths[n].carriers}
    )  # fmt: skip
    return {"samples": samples, "variants": shared[:3]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("incremental")


@pytest.fixture(scope="module")
def steps(workdir, inputs, truths, probes) -> dict[str, Step]:
    """The steps run one after the other in one folder, each read before the next."""
    done = {}
    for name, vcfs in STEPS.items():
        run_workflow(workdir, step_config(inputs, vcfs))
        held = expected(truths, vcfs).variants
        variants = [v for v in probes["variants"] if v in held]
        done[name] = read_step(name, workdir / "results", probes["samples"], variants)
    return done


def step_config(inputs: dict[str, Path], vcfs: tuple[str, ...]) -> dict:
    return {**CONFIG, "vcfs": {name: str(inputs[name]) for name in vcfs}}


def previous(name: str) -> str:
    names = list(STEPS)
    return names[names.index(name) - 1]


# ---------------------------------------------------------------- counts


@pytest.mark.parametrize("name", list(STEPS))
def test_every_store_counts_what_bcftools_counts(steps, truths, name):
    step, want = steps[name], expected(truths, STEPS[name])
    variants, genotypes = len(want.variants), len(want.carriers)
    assert step.counts == {
        "kuzu.json Variant": variants, "kuzu.json CARRIES": genotypes, "kuzu.json Sample": len(want.samples),
        "kuzu.json File": len(want.files), "lancedb.json rows": variants, "summary variants": variants,
        "summary genotypes": genotypes, "stats samples": len(want.samples), "stats variants (LanceDB)": variants,
        "stats variants (Kuzu)": variants, "stats genotypes": genotypes, "stats files": len(want.files),
    }  # fmt: skip
    assert len(step.lance_ids) == len(set(step.lance_ids)) and set(step.lance_ids) == want.variants
    cli = step.cli
    assert (cli["samples"], cli["variants"], cli["graph_variants"], cli["genotypes"]) == (
        len(want.samples), variants, variants, genotypes,
    )  # fmt: skip
    assert sorted(cli["files"]) == sorted(want.files)


@pytest.mark.parametrize("name", list(STEPS))
def test_samples_and_variants_read_through_the_query_layer(steps, truths, probes, name):
    step, want = steps[name], expected(truths, STEPS[name])
    configured = set(want.samples)
    carried = {s: sum(1 for sample, _ in want.carriers if sample == s) for s in probes["samples"] if s in configured}
    assert step.samples == carried
    assert list(step.carriers_of) == [v for v in probes["variants"] if v in want.variants]
    for variant_id in step.carriers_of:
        sources = {sample: source for (sample, v), source in want.carriers.items() if v == variant_id}
        # one VCF alone: the carriers name no file (CARRIES has no source)
        got = step.carriers_of[variant_id]
        if len(want.files) == 1:
            got = {sample: want.files[0] for sample in got}
        assert got == sources, variant_id


# ---------------------------------------------------------------- nothing already loaded is rewritten


@pytest.mark.parametrize("name", ADDITIONS)
def test_an_addition_rewrites_nothing_already_loaded(steps, name):
    before, after = steps[previous(name)], steps[name]
    graph = {p: f for p, f in before.files.items() if p.startswith("kuzu_parts/")}
    assert graph, "no graph partition files under results/kuzu_parts"
    rewritten = sorted(p for p, (ino, mtime, _) in graph.items() if after.files.get(p, (0, 0))[:2] != (ino, mtime))
    assert not rewritten, f"{name} rewrote {len(rewritten)} of {len(graph)} partition files: {rewritten[:4]}"
    for layer in before.vcfs:  # each earlier layer: its own folder of partitions, all published unchanged
        assert any(p.startswith(f"kuzu_parts/{layer}/") for p in graph), f"no partition of layer {layer}"
    dropped = before.lance_data - after.lance_data
    assert not dropped, f"{name}: {len(dropped)} of {len(before.lance_data)} LanceDB data files not kept"
    published = {(p["layer"], p["name"]) for p in after.index.get("partitions", [])}
    assert {(p["layer"], p["name"]) for p in before.index["partitions"]} <= published


def test_a_removal_rebuilds_only_what_the_vcf_touched(steps):
    before, after = steps["add_r2"], steps["remove_a2"]
    assert after.index.get("layout") == "layers", "the graph is not layered"
    assert {p["layer"] for p in after.index["partitions"]} == {"a1", "a3", "r2"}
    a1 = {p: f for p, f in before.files.items() if p.startswith("kuzu_parts/a1/")}
    assert a1 and all(after.files.get(p) == f for p, f in a1.items()), "a layer before the removed VCF changed"
    # r2's partitions beyond every position a2 held stay as they were
    held = [c for p in before.index["partitions"] if p["layer"] == "a2" for c in p["chroms"].items()]
    untouched = [
        p["name"] for p in before.index["partitions"] if p["layer"] == "r2"
        and not any(c in p["chroms"] and p["chroms"][c]["first"] <= e["end"] and e["first"] <= p["chroms"][c]["end"]
                    for c, e in held)
    ]  # fmt: skip
    assert untouched, "r2 should have partitions outside a2's positions (partition_edges too large?)"
    for part in untouched:
        files = [p for p in before.files if p.startswith(f"kuzu_parts/r2/{part}.")]
        assert files and all(after.files.get(p) == before.files[p] for p in files), part


# ---------------------------------------------------------------- bytes


def written(before: Step, after: Step, prefix: str = "") -> tuple[int, int]:
    """Bytes of files new or changed since `before` and bytes of all files (each inode once) under
    `prefix` after the step: what the step wrote, and what a full build of its config writes."""
    old = {(ino, mtime) for ino, mtime, _ in before.files.values()}
    inodes = {(ino, mtime): size for path, (ino, mtime, size) in after.files.items() if path.startswith(prefix)}
    return sum(size for key, size in inodes.items() if key not in old), sum(inodes.values())


@pytest.mark.parametrize("name", ADDITIONS)
def test_an_addition_writes_what_it_adds(steps, truths, name):
    before, after = steps[previous(name)], steps[name]
    (added,) = set(after.vcfs) - set(before.vcfs)
    share = truths[added].rows / sum(truths[n].rows for n in after.vcfs)
    old, new = expected(truths, before.vcfs), expected(truths, after.vcfs)
    new_rows = 1 - len(old.variants) / len(new.variants)
    figures = {
        "results": (written(before, after), share),
        "graph": (written(before, after, "kuzu_parts/"), share),
        "lancedb": (written(before, after, after.builds["lancedb"] + "/"), new_rows),
    }
    for what, ((wrote, full), expected_share) in figures.items():
        print(f"{name} {what}: wrote {wrote:,} of {full:,} bytes ({wrote / full:.2f}); added {expected_share:.2f}")
        # fixed costs (a database's first pages, indexes) allowed beside what was added
        assert wrote <= (1.5 * expected_share + 0.1) * full, (
            f"{name}: {what} wrote {wrote:,} of {full:,} bytes ({wrote / full:.2f}); {added} is {expected_share:.2f}"
        )


# ---------------------------------------------------------------- re-runs


def test_an_unchanged_rerun_runs_no_job(steps, workdir, inputs):
    again = run_workflow(workdir, step_config(inputs, STEPS["remove_a2"]))
    assert "Nothing to be done" in again.stderr, again.stderr[-3000:]
