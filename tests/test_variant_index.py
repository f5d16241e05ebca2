"""The partitions' variant index file (vcf_agent.stores.variant_index), written and read back.

Expected answers come from the pairs given, by Python sets; the stores' answers through the
index are checked against bcftools in test_query.py and test_layered_graph.py.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.stores import variant_index
from vcf_agent.stores.variant_index import (
    FENCE,
    NULL_INT,
    CarrierLists,
    GenotypeKinds,
    VariantIndex,
    is_current,
    variant_index_path,
    write_variant_index,
)

SAMPLES = 40


#: Genotype kinds (gt, phased, alt_count, ploidy) the made partitions' carriers draw from.
KINDS = [("0/1", False, 1, 2), ("1|1", True, 2, 2), ("./1", False, 1, 2), ("1", False, 1, 1)]


def made_partition(variants: int, seed: int = 5):
    """Variant ids, each variant's carriers (sample offset -> (kind, DP, GQ)) and its genes, at random."""
    rng = random.Random(seed)
    ids = [f"chr1:{1000 + 7 * i}:A:{'CGT'[i % 3]}" for i in range(variants)]
    carriers = {
        v: {
            s: (rng.choice(KINDS), rng.choice([None, rng.randrange(200)]), rng.choice([None, rng.randrange(99)]))
            for s in rng.sample(range(SAMPLES), rng.randrange(0, SAMPLES // 2))
        }
        for v in range(variants)
    }
    genes = {v: {f"GENE{rng.randrange(6)}" for _ in range(rng.randrange(0, 3))} for v in range(variants)}
    return ids, carriers, genes


def written(tmp_path, ids, carriers, genes, chunk: int = 7) -> VariantIndex:
    columns = {"kind": np.uint16, "dp": np.int32, "gq": np.int32}
    lists = CarrierLists(np.array([len(carriers[v]) for v in range(len(ids))]), columns)
    kinds = GenotypeKinds()

    def chunks():  # ascending sample ranges, in no order within one, as Kuzu returns them
        for first in range(0, SAMPLES, chunk):
            pairs = [(s, v, *held[s]) for v, held in carriers.items() for s in held if first <= s < first + chunk]
            random.Random(first).shuffle(pairs)
            gt, phased, alt, ploidy = ([kind[i] for _, _, kind, _, _ in pairs] for i in range(4))
            values = {
                "kind": kinds.codes(gt, phased, alt, ploidy),
                "dp": np.array([NULL_INT if p[3] is None else p[3] for p in pairs], np.int32),
                "gq": np.array([NULL_INT if p[4] is None else p[4] for p in pairs], np.int32),
            }
            yield np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64), values

    assert sum(len(s) for s, _ in lists.tee(chunks())) == sum(len(c) for c in carriers.values())
    # each annotation of a gene once per transcript: the pairs repeat
    annotations = [(v, g) for v, held in genes.items() for g in sorted(held) for _ in range(2)]
    random.Random(1).shuffle(annotations)
    notes = {v: [{"gene": g, "feature_id": f"T{v}"} for g in sorted(held)] for v, held in genes.items() if held}
    files = [(v, name) for v in range(len(ids)) for name in (["b.vcf", "a.vcf"] if v % 3 == 0 else ["a.vcf"])]
    path = tmp_path / "p00001.variants"
    write_variant_index(path, ids, lists, annotations, kinds=kinds.kinds, files=files, annotations=notes)
    return VariantIndex(path)


def test_carriers_and_genes_of_every_variant_read_back(tmp_path):
    ids, carriers, genes = made_partition(variants=3 * FENCE + 17)  # keys over several fences
    index = written(tmp_path, ids, carriers, genes)
    assert (index.variants, index.edges) == (len(ids), sum(len(c) for c in carriers.values()))
    found = index.find(ids)
    assert list(found) == ids
    for v, vid in enumerate(ids):
        assert found[vid].carriers == len(carriers[v]) and found[vid].first.tolist() == sorted(carriers[v])
        assert found[vid].genes == sorted(genes[v])


def test_each_variant_whole_reads_back_with_its_genotypes_files_and_annotations(tmp_path):
    ids, carriers, genes = made_partition(variants=2 * FENCE + 3)
    index = written(tmp_path, ids, carriers, genes)
    assert index.holds == {"kinds", "dp", "gq"} and len(index.kinds) == len(KINDS)
    for v, vid in enumerate(ids):
        record = index.record(vid)
        held = carriers[v]
        order = sorted(held)
        assert record.carriers == len(held) and record.first.tolist() == order
        assert record.kinds == [held[s][0] for s in order]
        assert (record.dp, record.gq) == ([held[s][1] for s in order], [held[s][2] for s in order])
        assert sorted(record.kind_counts) == sorted(Counter(kind for kind, _, _ in held.values()).items())
        assert record.files == (["a.vcf", "b.vcf"] if v % 3 == 0 else ["a.vcf"])
        assert record.annotations == [{"gene": g, "feature_id": f"T{v}"} for g in sorted(genes[v])]
        first = index.record(vid, first=2)  # the first carriers only, every one still counted
        assert first.first.tolist() == order[:2] and first.kinds == record.kinds[:2] and first.dp == record.dp[:2]
        assert first.kind_counts == record.kind_counts
    assert index.record("chr2:1:A:C") is None


def test_an_index_without_depths_holds_none(tmp_path):
    lists = CarrierLists(np.array([1, 0]), {"kind": np.uint16})
    kinds = GenotypeKinds()
    lists.add(np.array([3]), np.array([0]), {"kind": kinds.codes(["0|1"], [True], [1], [2])})
    path = tmp_path / "p00002.variants"
    write_variant_index(path, ["1:5:A:C", "1:6:A:C"], lists, kinds=kinds.kinds)
    index = VariantIndex(path)
    assert index.holds == {"kinds"}
    record = index.record("1:5:A:C")
    assert (record.kinds, record.dp, record.gq, record.files, record.annotations) == (
        [("0|1", True, 1, 2)],
        None,
        None,
        [],
        [],
    )
    assert index.record("1:6:A:C").carriers == 0


def test_the_first_carriers_only_when_asked_and_ids_not_held_left_out(tmp_path):
    ids, carriers, genes = made_partition(variants=200)
    index = written(tmp_path, ids, carriers, genes)
    wanted = [ids[3], "chr1:1003:A:C", ids[150], "2:1000:A:C"]  # two ids the partition does not hold
    found = index.find(wanted, first=2)
    assert list(found) == [ids[3], ids[150]]
    for v in (3, 150):
        assert found[ids[v]].carriers == len(carriers[v]) and found[ids[v]].first.tolist() == sorted(carriers[v])[:2]
    assert [entry.first.tolist() for entry in index.find([ids[3]], first=0).values()] == [[]]


def test_ids_sharing_a_key_are_told_apart_by_the_stored_id(tmp_path, monkeypatch):
    # ids differing in their last character only share a key here: the stored id decides
    real_key = variant_index.key
    monkeypatch.setattr(variant_index, "key", lambda vid: real_key(vid[:-1]))
    ids = [f"chr1:{1000 + i // 3}:A:{'CGT'[i % 3]}" for i in range(2 * FENCE)]
    carriers = {v: {v % SAMPLES: (KINDS[0], None, None)} for v in range(len(ids))}
    index = written(tmp_path, ids, carriers, {v: set() for v in range(len(ids))})
    found = index.find([*ids, "chr1:1000:A:N"])
    assert list(found) == ids and all(found[vid].first.tolist() == [v % SAMPLES] for v, vid in enumerate(ids))


def test_an_empty_partition_holds_no_variant(tmp_path):
    index = written(tmp_path, [], {}, {})
    assert index.variants == 0 and index.find(["chr1:1:A:C"]) == {}


def test_carriers_not_matching_the_counts_fail_and_leave_no_file(tmp_path):
    lists = CarrierLists(np.array([2, 1]))
    lists.add(np.array([0, 3]), np.array([0, 1]))  # variant 0 lacks one carrier
    with pytest.raises(ValueError, match="carrier values"):
        lists.add(np.array([1]), np.array([0]), {"kind": np.array([0])})  # values it was not made for
    path = tmp_path / "p00001.variants"
    with pytest.raises(VcfAgentError, match=r"p00001\.variants: variant offset 0: 1 carriers of 2"):
        write_variant_index(path, ["1:5:A:C", "1:6:A:C"], lists, [])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="more carrier genotypes than counted"):
        CarrierLists(np.array([1])).add(np.array([0, 1]), np.array([0, 0]))


def test_a_file_that_is_not_an_index_is_refused_in_one_line(tmp_path):
    path = tmp_path / "p00001.variants"
    path.write_bytes(b"not an index at all, but long enough to hold a header")
    with pytest.raises(VcfAgentError, match=r"^.*p00001\.variants: not a variant index \(bad header\); rebuild"):
        VariantIndex(path)


def test_an_index_of_the_first_layout_is_not_current(tmp_path):
    # builds made before genotypes were indexed: their queries ask Kuzu (query.graph.variant_index)
    path = tmp_path / "p00001.variants"
    path.write_bytes(b"VCFAVIX1" + bytes(40))
    assert not is_current(path)
    ids, carriers, genes = made_partition(variants=3)
    assert is_current(written(tmp_path, ids, carriers, genes).path)


def test_the_index_is_named_after_its_partition():
    assert variant_index_path("results/kuzu_parts/kg/p00007.kuzu").name == "p00007.variants"
