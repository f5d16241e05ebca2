"""The partitions' sample index file (vcf_agent.stores.sample_index), written and read back.

Expected answers come from the pairs given, by Python sets; the stores' answers through the
index are checked against bcftools in test_query.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from vcf_agent.errors import VcfAgentError
from vcf_agent.stores.sample_index import COUNT_FIELDS, SampleIndex, index_path, write_index


def made_pairs(samples: int, variants: int, seed: int = 3) -> dict[int, set[int]]:
    rng = random.Random(seed)
    return {s: set(rng.sample(range(variants), rng.randrange(0, variants // 2))) for s in range(samples)}


def written(tmp_path, carried: dict[int, set[int]], chunk: int = 3):
    counts = np.zeros((len(carried), len(COUNT_FIELDS)), np.int64)
    for sample, variants in carried.items():
        counts[sample] = [len(variants), len(variants) // 2, 0, 0, 0, sample % 2]

    def chunks():
        for first in range(0, len(carried), chunk):
            pairs = [(s, v) for s in range(first, min(first + chunk, len(carried))) for v in carried[s]]
            random.Random(first).shuffle(pairs)  # in no order within a chunk, as Kuzu returns them
            yield np.array([s for s, _ in pairs], np.int64), np.array([v for _, v in pairs], np.int64)

    path = tmp_path / "p00001.samples"
    write_index(path, counts, chunks())
    return SampleIndex(path), counts


def test_counts_carried_and_shared_read_back(tmp_path):
    carried = made_pairs(samples=10, variants=500)
    index, counts = written(tmp_path, carried)
    assert (index.samples, index.edges) == (10, sum(len(v) for v in carried.values()))
    for sample, variants in carried.items():
        assert index.carried(sample).tolist() == sorted(variants)
    assert index.counts([2, 5]).tolist() == (counts[2] + counts[5]).tolist()
    assert index.shared([1, 4]).tolist() == sorted(carried[1] & carried[4])
    assert index.shared([0, 3, 7]).tolist() == sorted(carried[0] & carried[3] & carried[7])


def test_a_sample_without_genotypes_carries_nothing(tmp_path):
    carried = made_pairs(samples=4, variants=50)
    carried[2] = set()
    index, _ = written(tmp_path, carried)
    assert index.carried(2).tolist() == [] and index.shared([2, 0]).tolist() == []


def test_genotypes_not_matching_the_counts_fail_and_leave_no_file(tmp_path):
    counts = np.zeros((2, len(COUNT_FIELDS)), np.int64)
    counts[:, 0] = [2, 1]
    path = tmp_path / "p00001.samples"
    with pytest.raises(VcfAgentError, match=r"p00001\.samples: sample offset 1: 2 genotypes, counted 1"):
        write_index(path, counts, iter([(np.array([0, 0, 1, 1]), np.array([5, 6, 7, 8]))]))
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_an_index_is_refused_in_one_line(tmp_path):
    path = tmp_path / "p00001.samples"
    path.write_bytes(b"not an index at all, but long enough to hold a header")
    with pytest.raises(VcfAgentError, match=r"^.*p00001\.samples: not a sample index \(bad header\); rebuild"):
        SampleIndex(path)


def test_a_sample_offset_outside_the_partition_is_refused(tmp_path):
    index, _ = written(tmp_path, made_pairs(samples=3, variants=20))
    with pytest.raises(VcfAgentError, match="sample offset 3 outside its 3 samples"):
        index.carried(3)


def test_the_index_is_named_after_its_partition():
    assert index_path("results/kuzu_parts/kg/p00007.kuzu").name == "p00007.samples"
