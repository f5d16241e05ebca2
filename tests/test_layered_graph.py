"""A layered graph (one layer of partitions per VCF, vcf_agent.stores.kuzu) answers as the graph of
one VCF holding their union; the expected values come from bcftools.

A real annotated call set (189 samples, 115 records, half-missing genotypes) is cut with bcftools
into VCFs that together hold it again: three by samples, two by region. A fourth store holds an
overlapping pair: `p` (samples 1-120, the first 81 records) and `q` (samples 61-189 in reverse
order, records 41-115), so that samples and variants of both layers meet and `q`'s sample order
is not the store's. Each store is built with `load_kuzu` (small partitions, several per layer)
and `load_lancedb` from the shards one workflow run converted; the one-VCF store of the whole
file is the reference the split stores must equal (but for the file names they report).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_overlaps import Expected, calls

from vcf_agent import query
from vcf_agent.query import Filters, Region, Stores, to_jsonable
from vcf_agent.query.graph import _GraphPool
from vcf_agent.stores.kuzu import load_kuzu, open_graph, samples_from_headers
from vcf_agent.stores.lance import load_lancedb

from helpers import bcftools_lines, data_file, run_workflow

pytestmark = [pytest.mark.slow, pytest.mark.extended]

SOURCE = "edge/cyvcf2/test.vcf.gz"
#: Records per shard (partitions take whole shards: each layer has two or more).
SHARD_RECORDS = 30
#: Genotypes per partition: each layer of this file gets several partitions.
SMALL_PARTITIONS = 150
#: The stores: their VCFs in config order (the names of `inputs`).
STORES = {
    "whole": ["whole"],
    "by_samples": ["s1", "s2", "s3"],
    "by_region": ["r1", "r2"],
    "overlap": ["p", "q"],
}
#: The stores that hold the whole file again (their answers equal the whole file's).
UNIONS = ("by_samples", "by_region")


@dataclass
class Layered:
    """One store, and what bcftools says it must hold (the first-VCF-wins rule applied)."""

    stores: Stores
    names: list[str]
    expected: Expected
    samples: list[str]  # every sample once, config order
    files_of_sample: dict[str, list[str]]
    ids_of_file: dict[str, set[str]]
    carriers: dict[str, dict[str, str]] = field(default_factory=dict)  # variant -> sample -> GT
    carried: dict[str, set[str]] = field(default_factory=dict)  # sample -> variants

    def __post_init__(self) -> None:
        for (sample, variant_id), gt in self.expected.carriers().items():
            self.carriers.setdefault(variant_id, {})[sample] = gt
            self.carried.setdefault(sample, set()).add(variant_id)

    def kept_file(self, sample: str, variant_id: str) -> str:
        return self.expected.kept[(sample, variant_id)][0]


def by_position(variant_id: str) -> tuple:
    """The order of `ORDER BY v.chrom, v.pos, v.variant_id`."""
    chrom, pos, _ = variant_id.split(":", 2)
    return chrom, int(pos), variant_id


def neutral(value):
    """A result without the names of the files (a split store names its parts, the whole file one)."""
    if isinstance(value, dict):
        return {k: neutral(v) for k, v in value.items() if k not in ("source", "files")}
    if isinstance(value, list):
        return [neutral(v) for v in value]
    return value


def make_inputs(work: Path) -> dict[str, Path]:
    whole = data_file(SOURCE)
    samples = bcftools_lines("query", "-l", whole)
    positions = [int(p) for p in bcftools_lines("query", "-f", "%POS\\n", whole)]
    chrom = bcftools_lines("query", "-f", "%CHROM\\n", whole)[0]
    middle = positions[57]
    assert positions[58] > middle  # the cut between r1 and r2 splits no position
    cuts: dict[str, tuple[list[str], str | None]] = {
        "s1": (samples[:63], None),
        "s2": (samples[63:126], None),
        "s3": (samples[126:], None),
        "r1": (samples, f"{chrom}:1-{middle}"),
        "r2": (samples, f"{chrom}:{middle + 1}-"),
        "p": (samples[:120], f"{chrom}:1-{positions[80]}"),
        "q": (samples[60:][::-1], f"{chrom}:{positions[40]}-"),
    }
    inputs = {"whole": whole}
    for name, (chosen, region) in cuts.items():
        out = work / f"{name}.vcf.gz"
        where = ["-t", region] if region else []
        # --no-update: INFO/AC and AN stay those of the whole file (the parts' records are its records)
        subprocess.run(
            ["bcftools", "view", "--no-update", "-s", ",".join(chosen), *where, "-Oz", "-o", out, whole], check=True
        )
        inputs[name] = out
    return inputs


def build(results: Path, names: list[str], inputs: dict[str, Path], out: Path, partition_edges: int) -> Stores:
    """Both stores of these VCFs (config order) from the workflow's shards, as one-call loads."""
    shards = lambda kind: [p for n in names for p in sorted((results / kind / n).glob("*.parquet"))]  # noqa: E731
    variants = shards("parquet/variants")
    samples = samples_from_headers([results / "normalized" / f"{n}.bcf" for n in names])
    load_kuzu(
        variants, shards("parquet/genotypes"), shards("parquet/annotations"), out / "kuzu", out / "kuzu.json",
        samples=samples, files={n: str(inputs[n]) for n in names}, threads=1, partition_edges=partition_edges,
    )  # fmt: skip
    load_lancedb(variants, shards("embeddings"), out / "lancedb", out / "lancedb.json", threads=1)
    return Stores.open(out)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Layered]:
    work = tmp_path_factory.mktemp("layered")
    inputs = make_inputs(work)
    config = {"vcfs": {k: str(v) for k, v in inputs.items()}, "reference": None, "shard": {"records": SHARD_RECORDS}}
    run_workflow(work, config, "results/lancedb.json")  # shards and embeddings of every input
    listed = {name: calls(path) for name, path in inputs.items()}
    headers = {name: bcftools_lines("query", "-l", path) for name, path in inputs.items()}
    stores = {}
    try:
        for store, names in STORES.items():
            edges = 10**9 if store == "whole" else SMALL_PARTITIONS  # the reference: one partition
            expected = Expected()
            for name in names:
                expected.add(name, listed[name])
            files_of_sample: dict[str, list[str]] = {}
            for name in names:
                for sample in headers[name]:
                    files_of_sample.setdefault(sample, []).append(name)
            stores[store] = Layered(
                build(work / "results", names, inputs, work / store, edges),
                names,
                expected,
                list(dict.fromkeys(s for name in names for s in headers[name])),
                {s: sorted(f) for s, f in files_of_sample.items()},
                {name: {v for _, v in listed[name]} for name in names},
            )
        yield stores
    finally:
        for layered in stores.values():
            layered.stores.close()


@pytest.fixture(params=[*STORES])
def layered(request, built) -> Layered:
    return built[request.param]


# ---------------------------------------------------------------- the store


def test_each_vcf_is_a_layer_of_several_partitions(built):
    for store, names in STORES.items():
        graph = built[store].stores.graph
        assert [layer.source for layer in graph.layers] == names, store
        if store != "whole":
            assert all(len(layer.parts) >= 2 for layer in graph.layers), store
        # a layer's Sample nodes: its VCF's samples, in the order the index lists them
        with open_graph(graph.path) as whole_store:
            for part, database in zip(graph.partitions, whole_store.parts, strict=True):
                layer = graph.layers[[la.source for la in graph.layers].index(part["layer"])]
                rows = database.query("MATCH (s:Sample) RETURN offset(id(s)) AS o, s.id AS id ORDER BY o")
                assert [r["id"] for r in rows] == layer.samples, (store, part["name"])


def test_stats_count_what_bcftools_counts(layered):
    stats, expected = layered.stores.stats(), layered.expected
    assert stats.files == sorted(layered.names)
    assert stats.samples == len(layered.samples)
    assert stats.variants == stats.graph_variants == len(expected.variants)
    assert stats.genotypes == len(expected.carriers())
    chroms: dict[str, int] = {}
    for variant_id in expected.variants:
        chroms[variant_id.split(":")[0]] = chroms.get(variant_id.split(":")[0], 0) + 1
    assert {c.name: c.variants for c in stats.contigs} == chroms
    assert layered.stores.sample_names() == layered.samples


def test_split_stores_count_as_the_whole_file(built):
    whole = built["whole"].stores
    where = ("results", "lancedb_built", "kuzu_built")  # the folder and time of each build
    stats = lambda s: {k: v for k, v in neutral(to_jsonable(s.stats())).items() if k not in where}  # noqa: E731
    for store in UNIONS:
        split = built[store].stores
        assert stats(split) == stats(whole), store
        counts, one = dict(split.manifests["kuzu.json"]["counts"]), dict(whole.manifests["kuzu.json"]["counts"])
        # a File node per layer, and an edge to it from each of the layer's variants
        names = built[store].names
        assert counts.pop("File") == len(names) and one.pop("File") == 1
        assert counts.pop("VARIANT_IN_FILE") == sum(len(built[store].ids_of_file[n]) for n in names)
        assert one.pop("VARIANT_IN_FILE") == len(built["whole"].expected.variants)
        # and an edge from each of its samples (a sample of two layers has two)
        assert counts.pop("SAMPLE_IN_FILE") == sum(len(f) for f in built[store].files_of_sample.values())
        assert one.pop("SAMPLE_IN_FILE") == len(built["whole"].samples)
        assert counts == one, store


# ---------------------------------------------------------------- one variant


def test_variant_carriers_sources_and_files(layered):
    order = {s: i for i, s in enumerate(layered.samples)}
    for variant_id in sorted(layered.expected.variants):
        record = layered.stores.variant(variant_id)
        expected = layered.carriers.get(variant_id, {})
        assert {c.sample: c.gt for c in record.carriers} == expected, variant_id
        assert record.counts.carriers == len(expected)
        assert record.counts.partial == sum("." in gt for gt in expected.values())
        assert [c.sample for c in record.carriers] == sorted(expected, key=order.__getitem__)  # store order
        assert all(c.source == layered.kept_file(c.sample, variant_id) for c in record.carriers), variant_id
        assert record.files == sorted(n for n in layered.names if variant_id in layered.ids_of_file[n])
        first = layered.stores.variant(variant_id, carriers=3)
        assert [c.sample for c in first.carriers] == [c.sample for c in record.carriers][:3]
        assert first.carriers_truncated == (len(expected) > 3)


def test_variants_of_split_stores_equal_the_whole_files(built):
    whole = built["whole"]
    for variant_id in sorted(whole.expected.variants):
        want = neutral(to_jsonable(whole.stores.variant(variant_id, carriers=5)))
        for store in UNIONS:
            assert neutral(to_jsonable(built[store].stores.variant(variant_id, carriers=5))) == want, store
    assert any(whole.stores.variant(v).annotations for v in whole.expected.variants)  # annotations compared


# ---------------------------------------------------------------- samples, shared


def test_sample_counts_and_first_page(layered):
    for sample in layered.samples[::4]:
        carried = sorted(layered.carried.get(sample, ()), key=by_position)
        result = layered.stores.sample(sample, limit=7)
        assert result.counts.carriers == len(carried), sample
        assert result.variants.column("variant_id").to_pylist() == carried[:7], sample
        assert result.files == layered.files_of_sample[sample]
        genotypes = dict(
            zip(result.variants.column("variant_id").to_pylist(), result.variants.column("gt").to_pylist(), strict=True)
        )
        assert genotypes == {v: layered.carriers[v][sample] for v in carried[:7]}


def pairs_across_layers(layered: Layered, most: int = 3) -> list[tuple[str, str]]:
    """Pairs of samples of different layer sets sharing the most variants (the joins across layers)."""
    layers = {s: tuple(layered.stores.graph.sample_layers[s]) for s in layered.samples}
    pairs = [
        (len(layered.carried.get(a, set()) & layered.carried.get(b, set())), a, b)
        for i, a in enumerate(layered.samples[::3])
        for b in layered.samples[i * 3 + 1 :: 5]
        if layers[a] != layers[b] or len(layered.names) == 1
    ]
    return [(a, b) for n, a, b in sorted(pairs, reverse=True)[:most] if n > 0]


def test_shared_and_carried_by_across_layers(layered):
    pairs = pairs_across_layers(layered)
    if layered.names != ["r1", "r2"]:  # in by_region every sample is in both layers
        assert pairs, "no pair of samples of different layers shares a variant"
    pairs += [(layered.samples[0], layered.samples[2]), (layered.samples[-1], layered.samples[-3])]
    for a, b in pairs:
        both = sorted(layered.carried.get(a, set()) & layered.carried.get(b, set()), key=by_position)
        result = layered.stores.shared([a, b], limit=4)
        assert result.total == len(both), (a, b)
        assert result.variants.column("variant_id").to_pylist() == both[:4]
        assert result.variants.column("genotypes").to_pylist() == [
            [layered.carriers[v][a], layered.carriers[v][b]] for v in both[:4]
        ]
        mine = layered.stores.sample(a, Filters(carried_by=b), limit=4)
        assert mine.counts.carriers == len(both)
        assert mine.counts.partial == sum("." in layered.carriers[v][a] for v in both)
        assert mine.variants.column("variant_id").to_pylist() == both[:4]
        ids = {h.variant_id for h in layered.stores.search("variant", Filters(carried_by=b), limit=50)}
        assert ids <= layered.carried.get(b, set()) and len(ids) == min(50, len(layered.carried.get(b, ())))
    three = layered.samples[:: max(1, len(layered.samples) // 3)][:3]
    everywhere = set.intersection(*(layered.carried.get(s, set()) for s in three))
    assert layered.stores.shared(three, limit=1000).total == len(everywhere)


def test_samples_and_shared_of_split_stores_equal_the_whole_files(built):
    whole = built["whole"]
    calls_of: list[Callable[[Stores], object]] = [
        lambda s: s.sample(whole.samples[5], limit=1000),
        lambda s: s.sample(whole.samples[70], Filters(region=Region.parse("1:1-30000000")), limit=3),
        lambda s: s.sample(whole.samples[10], Filters(carried_by=whole.samples[150]), limit=3),
        lambda s: s.shared([whole.samples[1], whole.samples[100], whole.samples[180]], limit=5),
        lambda s: s.shared([whole.samples[3], whole.samples[4]], Filters(variant_class="snv"), limit=5),
    ]
    for call in calls_of:
        want = neutral(to_jsonable(call(whole.stores)))
        for store in UNIONS:
            assert neutral(to_jsonable(call(built[store].stores))) == want, store


# ---------------------------------------------------------------- regions, search


@pytest.mark.parametrize("read_index", [True, False], ids=["variant_index", "kuzu"])
def test_region_carrier_counts_add_up_over_layers(layered, monkeypatch, read_index):
    monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", read_index)
    result = layered.stores.region("1:1-250000000", limit=1000)
    counted = dict(
        zip(
            result.variants.column("variant_id").to_pylist(),
            result.variants.column("carriers").to_pylist(),
            strict=True,
        )
    )
    assert counted == {v: len(layered.carriers.get(v, {})) for v in layered.expected.variants}
    assert result.total == len(layered.expected.variants)


def context(stores: Stores, variant_id: str) -> list[tuple]:
    """What the graph adds to each hit of a search: carriers, first carriers, genes."""
    return [
        (h.variant_id, h.carriers, h.carrier_samples, h.genes) for h in stores.similar(variant_id, limit=8, carriers=4)
    ]


@pytest.mark.parametrize("read_index", [True, False], ids=["variant_index", "kuzu"])
def test_search_context_is_the_whole_files(built, monkeypatch, read_index):
    monkeypatch.setattr(query.stores, "READ_VARIANT_INDEX", read_index)
    whole = built["whole"]
    ids = sorted(whole.expected.variants)[::20]
    for store in (*UNIONS, "overlap"):
        layered = built[store]
        order = {s: i for i, s in enumerate(layered.samples)}
        for variant_id in ids:
            hits = layered.stores.similar(variant_id, limit=8, carriers=4)
            for hit in hits:
                expected = sorted(layered.carriers.get(hit.variant_id, {}), key=order.__getitem__)
                assert (hit.carriers, hit.carrier_samples) == (len(expected), expected[:4]), (store, hit.variant_id)
            if store in UNIONS:
                assert context(layered.stores, variant_id) == context(whole.stores, variant_id), store


def test_region_and_hits_of_split_stores_equal_the_whole_files(built):
    whole = built["whole"].stores
    for call in (
        lambda s: s.region("1:1-250000000", limit=30),
        lambda s: s.region("1:1-250000000", Filters(carried_by=built["whole"].samples[8]), limit=30),
        lambda s: [to_jsonable(h) for h in s.search("missense variant", limit=5)],
    ):
        want = neutral(to_jsonable(call(whole)))
        for store in UNIONS:
            assert neutral(to_jsonable(call(built[store].stores))) == want, store


# ---------------------------------------------------------------- listings, ask


def test_listings_count_what_bcftools_counts(layered):
    listed = {e.sample: e for e in layered.stores.list_samples()}
    assert list(listed) == layered.samples
    assert {s: e.variants for s, e in listed.items()} == {s: len(layered.carried.get(s, ())) for s in layered.samples}
    assert {s: e.files for s, e in listed.items()} == layered.files_of_sample
    files = {f.name: (f.samples, f.variants) for f in layered.stores.list_files()}
    assert files == {
        n: (sum(n in f for f in layered.files_of_sample.values()), len(layered.ids_of_file[n])) for n in layered.names
    }
    assert [f.name for f in layered.stores.list_files()] == sorted(layered.names)


def test_listings_and_answers_of_split_stores_equal_the_whole_files(built):
    whole = built["whole"]
    a, b = whole.samples[20], whole.samples[160]
    for call in (
        lambda s: s.list_genes(),
        lambda s: s.list_contigs(),
        lambda s: [(e.sample, e.variants) for e in s.list_samples()],
        lambda s: s.resolve_variant(sorted(whole.expected.variants)[7].replace(":", "-")),
        lambda s: to_jsonable(s.ask(f"which variants do {a} and {b} share?").results),
        lambda s: to_jsonable(s.ask(f"how many variants does {a} carry?").results),
    ):
        want = neutral(to_jsonable(call(whole.stores)))
        for store in UNIONS:
            assert neutral(to_jsonable(call(built[store].stores))) == want, store
    assert whole.stores.list_genes()  # genes compared


# ---------------------------------------------------------------- routing


def test_a_variant_opens_only_the_partitions_covering_it(built):
    layered = built["by_region"]
    for variant_id in sorted(layered.expected.variants)[::10]:
        with Stores.open(layered.stores.results) as fresh:
            opened_at_start = set(fresh.graph._open)
            chrom, pos = variant_id.split(":")[:2]
            covering = set(fresh.graph.parts_at(chrom, int(pos)))
            fresh.variant(variant_id)
            assert set(fresh.graph._open) <= opened_at_start | covering, variant_id
            assert len(covering) <= len(fresh.graph.layers)


def test_open_partitions_stay_under_the_cap(built):
    graph = built["by_samples"].stores.graph
    pool = _GraphPool(graph.path, max_open=2)
    try:
        for part in range(len(pool.partitions)):
            pool.query("MATCH (v:Variant) RETURN count(*) AS n", None, part)
            assert len(pool._open) <= 2
    finally:
        pool.close()


def test_answers_hold_with_one_partition_open_at_a_time(built):
    # every routed query closes the partition before, so each opens its own again
    layered = built["by_region"]
    with Stores.open(layered.stores.results, open_partitions=1) as capped:
        for variant_id in sorted(layered.expected.variants)[::7]:
            record = capped.variant(variant_id)
            assert {c.sample: c.gt for c in record.carriers} == layered.carriers.get(variant_id, {}), variant_id
            assert len(capped.graph._open) <= 1
