"""The layered Kuzu graph (one layer per VCF): counts as bcftools gives them, and a store that grows by adding.

Inputs are slices of the real 1000 Genomes high-coverage cohort made with bcftools: split by
samples of one file, by region, and overlapping ones that share samples and sites (one with
three genotypes and every QUAL edited, one repeated under a second name). The expected answers
apply the duplicate rule (stores.build.GENOTYPE_RULE) to every genotype bcftools lists from each
input, in config order (tests/test_overlaps.py's Expected).
"""

from __future__ import annotations

import ast
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from test_overlaps import COHORT, Expected, calls, edit_genotypes, is_carrier

from vcf_agent.ingest.header import read_header
from vcf_agent.ingest.pipeline import convert_vcf
from vcf_agent.ingest.shards import ShardSize
from vcf_agent.stores.kuzu import load_kuzu, open_graph

from helpers import TREE_RSS_WATCHER, bcftools_lines, data_file, nonref_genotypes, run_workflow, split_records

TABLES = ("Sample", "Variant", "Gene", "File")
RELS = ("CARRIES", "IN_GENE", "VARIANT_IN_FILE", "SAMPLE_IN_FILE")


class Cohort:
    """Slices of the cohort by samples (index range) and records (index range), as bcftools writes them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.vcf = data_file(COHORT)
        self.samples = bcftools_lines("query", "-l", self.vcf)
        self.positions = [int(p) for p in bcftools_lines("query", "-f", "%POS\\n", self.vcf)]

    def slice(self, name: str, samples: slice, records: slice) -> Path:
        out = self.folder / f"{name}.vcf.gz"
        chosen = ",".join(self.samples[samples])
        first, last = self.positions[records][0], self.positions[records][-1]
        command = ["bcftools", "view", "-s", chosen, "-t", f"chr1:{first}-{last}", "-Oz", "-o", out, self.vcf]
        subprocess.run(command, check=True)
        return out

    def edited(self, name: str, samples: slice, records: slice, qual: str) -> tuple[Path, list[tuple[str, str]]]:
        """A slice with three genotypes that now disagree with the cohort's, and every QUAL set to `qual`."""
        full = self.slice(f"{name}_unedited", samples, records)
        listed = sorted(calls(full).items())
        het = next(key for key, gt in listed if gt in ("0|1", "1|0"))
        ref = next(key for key, gt in listed if gt == "0|0")
        other = next(key for key, gt in listed if gt in ("0|1", "1|0") and key != het)
        edits = {het: "1|1", ref: "0|1", other: "0|0"}
        plain = self.folder / f"{name}_gt.vcf"
        edit_genotypes(full, {(s, int(v.split(":")[1])): gt for (s, v), gt in edits.items()}, plain)
        out = self.folder / f"{name}.vcf"
        with plain.open() as source, out.open("w") as target:
            for line in source:
                if not line.startswith("#"):
                    fields = line.split("\t")
                    fields[5] = qual
                    line = "\t".join(fields)
                target.write(line)
        return out, sorted(edits)


def expected_of(inputs: dict[str, Path]) -> Expected:
    result = Expected()
    for name, path in inputs.items():  # config order
        result.add(name, calls(path))
    return result


def layered_counts(store: Path) -> dict[str, int]:
    with open_graph(store) as graph:
        return {t: graph.count(t) for t in TABLES} | {t: graph.count(t, rel=True) for t in RELS}


def carriers_by_layer(store: Path) -> list[tuple[str, str, str, str]]:
    """(sample, variant_id, layer, gt) of every CARRIES edge of the store."""
    with open_graph(store) as graph:
        found = graph.query_by_partition(
            "MATCH (s:Sample)-[c:CARRIES]->(v:Variant) RETURN s.id AS s, v.variant_id AS v, c.gt AS gt"
        )
    return [(r["s"], r["v"], part["layer"], r["gt"]) for part, rows in found for r in rows]


def snapshot(store: Path) -> dict:
    """What the checks read of a store: its counts (StoreGraph), every CARRIES edge with its layer,
    every canonical node with its layer."""
    with open_graph(store) as graph:
        nodes = graph.query_by_partition("MATCH (v:Variant) RETURN v.variant_id AS v, v.canonical AS canonical")
    return {
        "counts": layered_counts(store),
        "carriers": carriers_by_layer(store),
        "canonical": [(r["v"], part["layer"]) for part, rows in nodes for r in rows if r["canonical"]],
    }


def check_store_against_bcftools(store: dict, manifest: dict, inputs: dict[str, Path], expected: Expected) -> None:
    """Counts (StoreGraph and the manifest), every carrier with its VCF and GT, one canonical node per
    variant (`store`: its snapshot)."""
    samples = {name: bcftools_lines("query", "-l", path) for name, path in inputs.items()}
    truth = {
        "Variant": len(expected.variants),
        "CARRIES": len(expected.carriers()),
        "Sample": len({s for names in samples.values() for s in names}),
        "File": len(inputs),
        "SAMPLE_IN_FILE": sum(len(names) for names in samples.values()),
        "VARIANT_IN_FILE": sum(split_records(path) for path in inputs.values()),
    }
    counts = store["counts"]
    assert {t: counts[t] for t in truth} == truth
    assert {t: manifest["counts"][t] for t in truth} == truth
    assert manifest["counts"] == counts
    edges = store["carriers"]
    got = {(s, v): (layer, gt) for s, v, layer, gt in edges}
    assert len(got) == len(edges)  # no (sample, variant) twice over the layers
    assert got == {key: kept for key, kept in expected.kept.items() if is_carrier(kept[1])}
    holders = {}  # variant -> the first VCF (config order) listing it
    for name, path in inputs.items():
        for variant_id in bcftools_lines("query", "-f", "%CHROM:%POS:%REF:%ALT\\n", path):
            holders.setdefault(variant_id, name)
    assert sorted(store["canonical"]) == sorted(holders.items())  # split records: the cohort has no multiallelic site
    overlap = manifest["across_files"]
    assert overlap["duplicate_genotypes"] == expected.duplicates
    assert overlap["conflicting_genotypes"] == len(expected.conflicts)
    examples = {
        (e["sample"], e["variant_id"]): (e["kept"]["file"], e["kept"]["gt"], e["other"]["file"], e["other"]["gt"])
        for e in overlap["conflict_examples"]
    }
    assert examples == expected.conflicts


# ---------------------------------------------------------------- the one-call API


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> tuple[Path, dict, dict[str, Path], list]:
    """A store from seven VCFs, loaded by load_kuzu: (folder, manifest, inputs, edited pairs)."""
    work = tmp_path_factory.mktemp("layers")
    cohort = Cohort(work)
    b, edited = cohort.edited("b", slice(20, 60), slice(200, 500), qual="7")
    inputs = {
        "a": cohort.slice("a", slice(0, 40), slice(0, 300)),
        "b": b,  # shares samples 21-40 and records 201-300 with a, three calls differ, every QUAL differs
        "a_again": cohort.slice("a", slice(0, 40), slice(0, 300)),
        "s1": cohort.slice("s1", slice(100, 120), slice(0, 889)),  # one file split by samples
        "s2": cohort.slice("s2", slice(120, 140), slice(0, 889)),
        "r1": cohort.slice("r1", slice(200, 220), slice(0, 450)),  # one file split by region
        "r2": cohort.slice("r2", slice(200, 220), slice(450, 889)),
    }
    shards: dict[str, list[Path]] = {"variants": [], "genotypes": [], "annotations": []}
    samples = {}
    for name, path in inputs.items():
        converted = convert_vcf(path, work / "converted", source=name, shard_size=ShardSize(records=100))
        for kind, files in shards.items():
            files += converted.parquet[kind]
        samples[name] = read_header(converted.bcf).samples
    manifest = load_kuzu(
        shards["variants"], shards["genotypes"], shards["annotations"], work / "kuzu", work / "kuzu.json",
        samples=samples, files={name: str(path) for name, path in inputs.items()}, partition_edges=50,
    )  # fmt: skip
    return work / "kuzu", manifest, inputs, edited


def test_a_store_of_many_vcfs_counts_as_bcftools_under_the_duplicate_rule(many):
    store, manifest, inputs, edited = many
    expected = expected_of(inputs)
    assert sorted(expected.conflicts) == edited and expected.duplicates > 0
    check_store_against_bcftools(snapshot(store), manifest, inputs, expected)
    assert manifest["sources"] == list(inputs)
    assert all(n > 1 for n in manifest["partitions_per_layer"].values()), manifest["partitions_per_layer"]


def test_a_node_of_a_later_vcf_has_the_first_holders_properties(many):
    store, _, inputs, _ = many
    qual_in_a = dict(
        line.split() for line in bcftools_lines("query", "-f", "%CHROM:%POS:%REF:%ALT %QUAL\\n", inputs["a"])
    )
    with open_graph(store) as graph:
        nodes = graph.query_by_partition("MATCH (v:Variant) RETURN v.variant_id AS v, v.qual AS qual, v.canonical AS c")
    in_b = {r["v"]: (r["qual"], r["c"]) for part, rows in nodes if part["layer"] == "b" for r in rows}
    shared = set(in_b) & set(qual_in_a)
    assert len(shared) == 100  # records 201-300
    qual = lambda text: None if text == "." else float(text)  # noqa: E731 -- QUAL '.' is null
    assert {v: in_b[v] for v in shared} == {v: (qual(qual_in_a[v]), False) for v in shared}
    assert {in_b[v] for v in set(in_b) - shared} == {(7.0, True)}  # b's own QUAL where it is first


def test_each_layer_holds_its_own_samples_and_file(many):
    store, _, inputs, _ = many
    index = json.loads((store / "partitions.json").read_text())
    assert index["layout"] == "layers" and [layer["source"] for layer in index["layers"]] == list(inputs)
    with open_graph(store) as graph:
        files = graph.query_by_partition("MATCH (f:File) RETURN f.name AS name, f.path AS path")
        samples = graph.query_by_partition("MATCH (s:Sample) RETURN s.id AS id")
    for part, rows in files:
        assert rows == [{"name": part["layer"], "path": str(inputs[part["layer"]])}]
    for part, rows in samples:
        assert sorted(r["id"] for r in rows) == sorted(bcftools_lines("query", "-l", inputs[part["layer"]]))
    # a layer's partitions are disjoint; the index lists them layer by layer in config order
    order = [part["layer"] for part in index["partitions"]]
    assert order == sorted(order, key=list(inputs).index)


@pytest.mark.parametrize("order", [("empty", "giab"), ("giab", "empty")])
def test_a_vcf_without_records_is_a_layer_of_its_samples_and_file(tmp_path, order):
    from test_invalid_inputs import GIAB, without_records

    inputs = {"empty": without_records(tmp_path), "giab": data_file(GIAB)}
    inputs = {name: inputs[name] for name in order}
    shards: dict[str, list[Path]] = {"variants": [], "genotypes": [], "annotations": []}
    samples = {}
    for name, path in inputs.items():
        converted = convert_vcf(path, tmp_path / "converted", source=name)
        for kind, files in shards.items():
            files += converted.parquet[kind]
        samples[name] = read_header(converted.bcf).samples
    manifest = load_kuzu(*shards.values(), tmp_path / "kuzu", tmp_path / "kuzu.json", samples=samples)
    counts = layered_counts(tmp_path / "kuzu")
    giab = data_file(GIAB)
    assert counts["Variant"] == counts["VARIANT_IN_FILE"] == split_records(giab) == 222
    assert counts["CARRIES"] == nonref_genotypes(giab)  # the empty VCF holds no variant: it gives no genotype
    assert (counts["File"], counts["Sample"]) == (2, len(set(bcftools_lines("query", "-l", giab))))
    assert manifest["counts"] == counts and manifest["partitions_per_layer"]["empty"] == 1


# ---------------------------------------------------------------- a store that grows in the workflow

JOB = re.compile(r"rule load_kuzu_partition:\n(?:[ \t]+.*\n)*?[ \t]+wildcards: vcf=(\S+), part=(p\d{5})")


def partition_jobs(stderr: str) -> set[tuple[str, str]]:
    """The (vcf, partition) of every load_kuzu_partition job a Snakemake run started."""
    return set(JOB.findall(stderr))


def partition_files(results: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime (ns) of every partition database and record on disk."""
    found = {}
    for path in sorted((results / "kuzu_parts").glob("*/*")):
        info = path.stat()
        found[f"{path.parent.name}/{path.name}"] = (info.st_ino, info.st_mtime_ns)
    return found


def shard_regions(results: Path, vcf: str) -> dict[str, tuple[str, int, int]]:
    """Shard id -> (contig, first, last position), from the VCF's shard plan."""
    with open(results / "shards" / f"{vcf}.tsv", newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {r["shard"]: (r["chrom"], int(r["start"]), int(r["end"])) for r in rows}


def layer_plan(results: Path, vcf: str) -> list[dict]:
    return json.loads((results / "kuzu_partitions" / f"{vcf}.json").read_text())["partitions"]


def meets(ranges: list, regions) -> bool:
    return any(c == chrom and a <= last and b >= first for c, a, b in regions for chrom, first, last in ranges)


@pytest.fixture(scope="module")
def growing(tmp_path_factory):
    """The workflow on a, b, c; then with d added at the end; then with b removed. Each step's
    inputs, partition files before it, stderr and results."""
    work = tmp_path_factory.mktemp("growing")
    cohort = Cohort(work)
    b, _ = cohort.edited("b", slice(20, 60), slice(200, 500), qual="7")
    vcfs = {
        "a": cohort.slice("a", slice(0, 40), slice(0, 300)),
        "b": b,
        "c": cohort.slice("c", slice(60, 80), slice(0, 889)),  # other samples, every site
        "d": cohort.slice("d", slice(0, 40), slice(600, 889)),  # a's samples, sites of c only
    }
    steps = []
    for names in (("a", "b", "c"), ("a", "b", "c", "d"), ("a", "c", "d")):
        inputs = {name: vcfs[name] for name in names}
        before = partition_files(work / "results") if (work / "results").exists() else {}
        config = {
            "vcfs": {k: str(v) for k, v in inputs.items()}, "reference": None,
            "shard": {"records": 100}, "kuzu": {"partition_edges": 100},
        }  # fmt: skip
        run = run_workflow(work, config, "results/kuzu.json")
        steps.append({"inputs": inputs, "before": before, "after": partition_files(work / "results"),
                      "stderr": run.stderr, "manifest": json.loads((work / "results" / "kuzu.json").read_text()),
                      "store": snapshot(work / "results" / "kuzu")})  # fmt: skip
    return work / "results", steps


@pytest.mark.slow
def test_each_step_counts_as_bcftools(growing):
    results, steps = growing
    for step in steps:
        check_store_against_bcftools(step["store"], step["manifest"], step["inputs"], expected_of(step["inputs"]))
    assert json.loads((results / "summary.json").read_text())["across_files"] == steps[-1]["manifest"]["across_files"]


@pytest.mark.slow
def test_adding_a_vcf_loads_only_its_layer(growing):
    results, steps = growing
    added = steps[1]
    new = {(p["name"]) for p in layer_plan(results, "d")}
    assert partition_jobs(added["stderr"]) == {("d", name) for name in new} and new
    untouched = dict(added["before"])
    assert {k: added["after"][k] for k in untouched} == untouched  # same inode and mtime: not rewritten


@pytest.mark.slow
def test_removing_a_vcf_reloads_only_the_later_partitions_that_met_it(growing):
    results, steps = growing
    removed = steps[2]
    b_regions = list(shard_regions(results, "b").values())
    expected = {("c", p["name"]) for p in layer_plan(results, "c") if meets(p["ranges"], b_regions)}
    expected |= {("d", p["name"]) for p in layer_plan(results, "d") if meets(p["ranges"], b_regions)}
    assert partition_jobs(removed["stderr"]) == expected
    assert expected and len(expected) < len(layer_plan(results, "c"))  # some of c's partitions met b, not all
    rebuilt = {f"{vcf}/{name}.{suffix}" for vcf, name in expected for suffix in ("kuzu", "samples", "variants", "json")}
    kept = {k: v for k, v in removed["before"].items() if k not in rebuilt and not k.startswith("b/")}
    assert {k: removed["after"][k] for k in kept} == kept
    assert all(removed["after"][k] != removed["before"][k] for k in rebuilt)


@pytest.mark.slow
def test_a_partition_job_reads_only_its_layer_and_the_earlier_shards_it_meets(growing):
    """From the jobs' benchmark files: their inputs (nothing an added VCF rewrites, nothing of a later
    VCF, of the earlier VCFs only the shards meeting the partition) and their peak memory (within the
    declared mem_mb)."""
    results, steps = growing
    order = list(steps[-1]["inputs"])
    for bench in sorted((results / "benchmarks" / "load_kuzu_partition").glob("*/*.tsv")):
        vcf, part = bench.parent.name, bench.stem
        if vcf not in order:
            continue  # b's layer, from before b was removed
        with bench.open(newline="") as handle:
            row = list(csv.DictReader(handle, delimiter="\t"))[-1]
        inputs = set(ast.literal_eval(row["input_size_mb"]))  # Snakemake writes the dicts as repr
        assert float(row["max_rss"]) <= ast.literal_eval(row["resources"])["mem_mb"], bench
        (partition,) = [p for p in layer_plan(results, vcf) if p["name"] == part]
        earlier = order[: order.index(vcf)]
        samples = {name: set(bcftools_lines("query", "-l", steps[-1]["inputs"][name])) for name in order}
        want = {f"results/kuzu_partitions/{vcf}.json", f"results/normalized/{vcf}.bcf"}
        want |= {f"results/parquet/{kind}/{label}.parquet" for label in partition["shards"]
                 for kind in ("variants", "genotypes", "annotations")}  # fmt: skip
        for other in earlier:
            met = [s for s, region in shard_regions(results, other).items() if meets(partition["ranges"], [region])]
            if met:
                want.add(f"results/normalized/{other}.bcf")
                want |= {f"results/parquet/variants/{other}/{s}.parquet" for s in met}
                if samples[other] & samples[vcf]:
                    want |= {f"results/parquet/genotypes/{other}/{s}.parquet" for s in met}
        assert inputs == want, bench


# ---------------------------------------------------------------- memory of a partition beside a large earlier VCF

PARTITION_RSS_CHILD = (
    TREE_RSS_WATCHER
    + """
from vcf_agent.stores.kuzu import load_partition

watcher = threading.Thread(target=watch)
watcher.start()
record = load_partition(job["name"], job["variants"], job["genotypes"], job["annotations"], job["graph"],
                        job["record"], samples=job["samples"], plan=job["plan"], threads=2, mem_mb=job["mem_mb"],
                        earlier_variants=job["earlier_variants"], earlier_genotypes=job["earlier_genotypes"])
done.append(1)
watcher.join()
print(json.dumps({"peak_mb": peak[0] / 2**20, "counts": record["counts"]}))
"""
)


@pytest.mark.slow
def test_a_small_partition_beside_a_large_earlier_vcf_stays_within_its_declared_memory(tmp_path):
    """A 10-sample slice of the 2,504-sample cohort, loaded after the whole cohort: its job reads the
    cohort's shard (495,959 genotypes) within the partition's range, for its own samples only."""
    from vcf_agent import resources
    from vcf_agent.stores.kuzu import plan_graph, shard_extents

    cohort = data_file("cohorts/1kg_phase3_chr22_16-16.5Mb_2504samples.vcf.gz")
    small = tmp_path / "small.vcf.gz"
    chosen = ",".join(bcftools_lines("query", "-l", cohort)[:10])
    subprocess.run(
        ["bcftools", "view", "-s", chosen, "-t", "22:16050000-16060000", "-Oz", "-o", small, cohort], check=True
    )
    converted = {
        name: convert_vcf(path, tmp_path / "converted", source=name, shard_size=ShardSize(records=10_000))
        for name, path in (("kg", cohort), ("small", small))
    }
    kg, own = (converted[n].parquet for n in ("kg", "small"))
    samples = {name: read_header(c.bcf).samples for name, c in converted.items()}
    plan = plan_graph(shard_extents(own["variants"], own["genotypes"]), own["genotypes"], {"small": samples["small"]})
    (partition,) = plan["partitions"]
    mem_mb = resources.kuzu_partition_mem_mb(
        resources.DEFAULT_RESOURCES["load_kuzu_partition"]["mem_mb"], partition | {"annotations": 0}, 1
    )

    def measured(earlier: bool, name: str) -> dict:
        job = {
            "name": partition["name"], "plan": plan, "samples": samples, "mem_mb": mem_mb,
            "graph": str(tmp_path / f"{name}.kuzu"), "record": str(tmp_path / f"{name}.json"),
            **{kind: [str(p) for p in own[kind]] for kind in ("variants", "genotypes", "annotations")},
            "earlier_variants": [str(p) for p in kg["variants"]] if earlier else [],
            "earlier_genotypes": [str(p) for p in kg["genotypes"]] if earlier else [],
        }  # fmt: skip
        child = subprocess.run(
            [sys.executable, "-c", PARTITION_RSS_CHILD, json.dumps(job)], capture_output=True, text=True, check=True
        )
        return json.loads(child.stdout.strip().splitlines()[-1])

    alone, after = measured(False, "alone"), measured(True, "after")
    print(f"partition alone {alone['peak_mb']:.0f} MiB, after the cohort {after['peak_mb']:.0f} MiB (mem_mb {mem_mb})")
    assert after["peak_mb"] <= mem_mb and alone["peak_mb"] <= mem_mb
    assert after["peak_mb"] - alone["peak_mb"] < 64  # the cohort's rows are not held, only joined
    # every site and sample of the slice is the cohort's: each genotype and variant comes from it
    assert (after["counts"]["canonical"], after["counts"]["CARRIES"]) == (0, 0)
    assert alone["counts"]["CARRIES"] == pq.read_metadata(own["genotypes"][0]).num_rows > 0
