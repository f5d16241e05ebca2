"""VCFs that share samples and sites: each (sample, variant) is one genotype in every store and count.

Three inputs made from the real 1000 Genomes high-coverage cohort: `a` (samples 1-40, records
1-300), `b` (samples 21-60, records 201-500; three genotypes edited so that `b` disagrees with `a`)
and `a_again` (the file of `a` under a second name). The rule under test (README, "Stores"): the
first VCF of the config that holds both the sample and the variant gives the genotype. The
expected answers apply that rule to every genotype bcftools lists from each input.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vcf_agent.query import Stores
from vcf_agent.stores.lance import open_table

from helpers import bcftools_lines, data_file, run_workflow

pytestmark = pytest.mark.slow

COHORT = "cohorts/1kgp_high_coverage_chr1_3202samples_head.vcf.gz"


def is_carrier(gt: str) -> bool:
    """The call holds the ALT (after the split, allele 1; half-missing ./1 included)."""
    return "1" in re.split(r"[/|]", gt)


def calls(vcf: Path) -> dict[tuple[str, str], str]:
    """(sample, CHROM:POS:REF:ALT) -> GT of every genotype of the file, after bcftools norm -m -any."""
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-Ou", str(vcf)], capture_output=True, check=True)
    fmt = "[%CHROM:%POS:%REF:%ALT\\t%SAMPLE\\t%GT\\n]"
    listed = subprocess.run(["bcftools", "query", "-f", fmt], input=norm.stdout, capture_output=True, check=True)
    result = {}
    for line in listed.stdout.decode().splitlines():
        variant_id, sample, gt = line.split("\t")
        result[(sample, variant_id)] = gt
    return result


@dataclass
class Expected:
    """The genotypes the first-VCF-wins rule keeps, and what it sets aside, computed from bcftools."""

    kept: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (sample, id) -> (file, gt)
    duplicates: int = 0
    conflicts: dict[tuple[str, str], tuple[str, str | None, str, str | None]] = field(default_factory=dict)
    variants: set[str] = field(default_factory=set)

    def add(self, name: str, genotypes: dict[tuple[str, str], str]) -> None:
        for key, gt in genotypes.items():
            self.variants.add(key[1])
            if key not in self.kept:
                self.kept[key] = (name, gt)
                continue
            first_file, first_gt = self.kept[key]
            if not is_carrier(first_gt) and not is_carrier(gt):
                continue  # neither call is stored
            if first_gt == gt:
                self.duplicates += 1
            else:
                shown = lambda g: g if is_carrier(g) else None  # noqa: E731 -- a non-carrier is not stored
                self.conflicts[key] = (first_file, shown(first_gt), name, shown(gt))

    def carriers(self) -> dict[tuple[str, str], str]:
        return {key: gt for key, (_, gt) in self.kept.items() if is_carrier(gt)}


def edit_genotypes(vcf: Path, edits: dict[tuple[str, int], str], out: Path) -> None:
    """A copy of `vcf` with the GT of (sample, POS) replaced."""
    with gzip.open(vcf, "rt") as source, out.open("w") as target:
        for line in source:
            if line.startswith("#CHROM"):
                columns = {name: i for i, name in enumerate(line.rstrip("\n").split("\t"))}
            elif not line.startswith("#"):
                fields = line.rstrip("\n").split("\t")
                for (sample, pos), gt in edits.items():
                    if int(fields[1]) == pos:
                        fields[columns[sample]] = gt
                line = "\t".join(fields) + "\n"
            target.write(line)


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory) -> tuple[Path, dict[str, Path], list[tuple[str, str]]]:
    """The workflow run on a, b (edited) and a_again; also the edited (sample, variant) pairs."""
    work = tmp_path_factory.mktemp("overlaps")
    cohort = data_file(COHORT)
    samples = bcftools_lines("query", "-l", cohort)
    positions = [int(p) for p in bcftools_lines("query", "-f", "%POS\\n", cohort)]
    a, b_full, b = work / "a.vcf.gz", work / "b_unedited.vcf.gz", work / "b.vcf"
    for out, chosen, first, last in (
        (a, samples[:40], 1, positions[299]),
        (b_full, samples[20:60], positions[200], positions[499]),
    ):
        subprocess.run(["bcftools", "view", "-s", ",".join(chosen), "-t", f"chr1:{first}-{last}",
                        "-Oz", "-o", out, cohort], check=True)  # fmt: skip
    # Three disagreements at shared (sample, site): a carrier made homozygous, a non-carrier made
    # a carrier, a carrier made a non-carrier.
    in_a = calls(a)
    shared = sorted((key, gt) for key, gt in calls(b_full).items() if key in in_a)
    het = next(key for key, gt in shared if gt in ("0|1", "1|0"))
    ref = next(key for key, gt in shared if gt == "0|0")
    other_het = next(key for key, gt in shared if gt in ("0|1", "1|0") and key != het)
    edits = {het: "1|1", ref: "0|1", other_het: "0|0"}
    edit_genotypes(b_full, {(s, int(v.split(":")[1])): gt for (s, v), gt in edits.items()}, b)
    inputs = {"a": a, "b": b, "a_again": a}
    config = {"vcfs": {k: str(v) for k, v in inputs.items()}, "reference": None, "shard": {"records": 1000}}
    run_workflow(work, config)
    return work / "results", inputs, sorted(edits)


@pytest.fixture(scope="module")
def expected(overlapping) -> Expected:
    _, inputs, _ = overlapping
    result = Expected()
    for name, path in inputs.items():  # config order
        result.add(name, calls(path))
    return result


def test_each_sample_variant_is_one_genotype_in_the_stores(overlapping, expected):
    results, inputs, _ = overlapping
    carriers = expected.carriers()
    by_variant: dict[str, dict[str, str]] = {}
    by_sample: dict[str, set[str]] = {}
    for (sample, variant_id), gt in carriers.items():
        by_variant.setdefault(variant_id, {})[sample] = gt
        by_sample.setdefault(sample, set()).add(variant_id)
    with Stores.open(results) as stores:
        stats = stores.stats()
        assert stats.genotypes == len(carriers)
        assert stats.variants == stats.graph_variants == len(expected.variants)
        rows = stores.region("chr1:1-100000000", limit=1000).variants
        counted = dict(zip(rows.column("variant_id").to_pylist(), rows.column("carriers").to_pylist(), strict=True))
        assert counted == {v: len(by_variant.get(v, {})) for v in expected.variants}
        # every carrier with its GT where a and b overlap (records 201-300)
        for variant_id in sorted({v for _, v in calls(inputs["a"])} & {v for _, v in calls(inputs["b"])}):
            record = stores.variant(variant_id)
            got = {c.sample: c.gt for c in record.carriers}
            assert (record.counts.carriers, got) == (len(got), by_variant.get(variant_id, {})), variant_id
        for sample, variant_ids in sorted(by_sample.items()):
            result = stores.sample(sample, limit=1000)
            assert result.counts.carriers == len(variant_ids), sample
            assert set(result.variants.column("variant_id").to_pylist()) == variant_ids, sample
    ids = open_table(results / "lancedb").to_arrow().column("variant_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(expected.variants)


def test_a_disagreeing_call_keeps_the_first_file_and_is_counted(overlapping, expected):
    results, _, edited = overlapping
    assert sorted(expected.conflicts) == edited  # the inputs agree everywhere else
    with Stores.open(results) as stores:
        for sample, variant_id in edited:
            first_file, first_gt, _, _ = expected.conflicts[(sample, variant_id)]
            carriers = {c.sample: (c.source, c.gt) for c in stores.variant(variant_id).carriers}
            assert carriers.get(sample) == ((first_file, first_gt) if first_gt else None)
    summary = json.loads((results / "summary.json").read_text())
    overlap = summary["across_files"]
    assert overlap["conflicting_genotypes"] == len(expected.conflicts) == 3
    assert overlap["duplicate_genotypes"] == expected.duplicates > 0
    examples = {
        (e["sample"], e["variant_id"]): (e["kept"]["file"], e["kept"]["gt"], e["other"]["file"], e["other"]["gt"])
        for e in overlap["conflict_examples"]
    }
    assert examples == expected.conflicts
    assert summary["totals"]["genotypes"] == len(expected.carriers())
    assert summary["totals"]["variants"] == len(expected.variants)
    for manifest in ("kuzu.json", "lancedb.json"):
        assert json.loads((results / manifest).read_text())["across_files"] == overlap, manifest
