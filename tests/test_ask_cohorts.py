"""`vcf-agent ask` on two more real cohorts, each in a store of its own built by the workflow: the 1000
Genomes 30x high-coverage chr1 head (hc: 3,202 samples, ids of another normalisation in the ID column)
and hail's 1000 Genomes chr20 file (hail: 100 samples, no ##contig lines, VQSR FILTERs, sample names
with family prefixes). Their question sets (tests/data/ask_questions_cohorts.yaml) are planned as
written and every number of their answers is bcftools'; questions the rules miss are planned by
phrasing similarity."""

from __future__ import annotations

import statistics

import pytest
from ask_truth import Truth, asked_over_http, check_answer, check_every_answer, check_planning, questions, with_contigs
from conftest import Bcftools
from fastapi.testclient import TestClient

from vcf_agent.ask.intents import THRESHOLD, nearest_intent
from vcf_agent.ask.planner import plan, plan_by_rules
from vcf_agent.interfaces.server import create_app
from vcf_agent.query import Stores

from helpers import bcftools_lines, data_file, run_workflow

pytestmark = pytest.mark.slow  # builds stores or a cohort

COHORTS = {
    "hc": "cohorts/1kgp_high_coverage_chr1_3202samples_head.vcf.gz",
    "hail": "cohorts/hail_1kg_chr20_100samples_nocontigs.vcf.gz",
}
TARGET_SHARE = 0.9


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (name, opened stores, bcftools' truth over the cohort's input); each store built once."""
    opened: dict[str, tuple[str, Stores, Truth]] = {}

    def build(name: str) -> tuple[str, Stores, Truth]:
        if name not in opened:
            inputs = {name: data_file(COHORTS[name])}
            workdir = tmp_path_factory.mktemp(f"ask_{name}")
            config = {"vcfs": {n: str(p) for n, p in inputs.items()}, "reference": None, "shard": {"records": 10_000}}
            run_workflow(workdir, config, "results/lancedb.json", "results/kuzu.json")
            tool = with_contigs(Bcftools(inputs, tmp_path_factory.mktemp(f"ask_{name}_bcftools")))
            opened[name] = name, Stores.open(workdir / "results"), Truth(tool)
        return opened[name]

    yield build
    for _, stores, _ in opened.values():
        stores.close()


@pytest.fixture(params=sorted(COHORTS))
def cohort(request, built):
    return built(request.param)


@pytest.fixture
def hc(built):
    return built("hc")[1:]


@pytest.fixture
def hail(built):
    return built("hail")[1:]


def test_the_cohort_questions_are_planned_as_written(cohort):
    name, stores, _ = cohort
    check_planning(stores, name, plan, TARGET_SHARE, least=25)


def test_every_number_in_the_cohort_answers_is_bcftools(cohort):
    name, stores, truth = cohort
    check_every_answer(stores, truth, name, least=20)


def test_a_question_the_rules_miss_is_planned_by_phrasing(hc):
    stores, truth = hc
    question = "who was sequenced in this study"
    assert plan_by_rules(stores, question)[0] == []
    answer = stores.ask(question)
    assert [(c.operation, c.arguments) for c in answer.calls] == [("list", {"what": "samples"})]
    assert any("planned by phrasing" in note for note in answer.notes), answer.notes
    check_answer(truth, question, answer, set(stores.sample_names()))
    # the nearest operation needs a variant the question does not name: said, not run
    vague = stores.ask("tell me about this mutation")
    assert vague.calls == [] and "It reads like variant" in vague.answer and "argument variant_id" in vague.answer
    # an unrelated request stays below the threshold and is not mapped
    unrelated = "please book me a flight to Boston"
    assert nearest_intent(stores, unrelated).similarity < THRESHOLD
    refused = stores.ask(unrelated)
    assert refused.calls == [] and "I can run:" in refused.answer and "It reads like" not in refused.answer


def test_an_id_of_the_id_column_names_its_record(hc):
    stores, truth = hc
    (record,) = truth.tool.split("hc", "%CHROM:%POS:%REF:%ALT\n", include='ID="1:10399:C:A"')
    assert record == "chr1:10397:C:A"  # the ID column spells another position than the record's
    answer = stores.ask("who carries 1:10399:C:A?")
    assert [c.arguments for c in answer.calls] == [{"variant_id": record}]
    assert f"1:10399:C:A is the ID column of {record}" in answer.answer
    check_answer(truth, "who carries 1:10399:C:A?", answer, set(stores.sample_names()))


def test_a_name_several_samples_end_with_is_asked_back(hail):
    stores, truth = hail
    named = [s for s in truth.samples["hail"] if s.endswith("::HG02024")]
    assert len(named) == 2  # the same person in two families
    refused = stores.ask("rare variants of HG02024")
    assert refused.calls == [] and "Name one sample" in refused.answer
    assert all(sample in refused.answer for sample in named)
    # a variant's answer says how each of them carries it, as bcftools reads their genotypes
    answer = stores.ask("does HG02024 carry rs575534?")
    (vid,) = [c.arguments["variant_id"] for c in answer.calls]
    genotypes = truth.genotypes("hail", vid)[0]
    for sample in named:
        said = f"{sample} carries it (GT {genotypes[sample]}" if sample in genotypes else f"{sample} does not carry it"
        assert said in answer.answer, answer.answer


def test_records_that_failed_a_filter_are_counted_per_filter(hail):
    stores, truth = hail
    fixed = truth.tool.indexed("hail")
    failed = bcftools_lines("view", "-H", "-i", 'FILTER!="PASS" && FILTER!="."', fixed)
    names = sorted({line.split("\t")[6] for line in failed})
    assert all(";" not in name for name in names)  # one filter per record here: the per-filter sum is the count
    answer = stores.ask("which variants did not pass the filters?")
    assert [c.arguments["filter"] for c in answer.calls] == names
    (total,) = [f.value for f in answer.figures if f.call == -1]
    assert total == len(failed) and f"{total:,} variants that failed a filter" in answer.answer
    assert all(c.arguments.get("filter") != "PASS" for c in answer.calls)


def test_an_rsid_where_a_variant_is_named_answers_with_its_carriers(hail):
    stores, truth = hail
    answer = stores.ask("which samples carry rs575534 and are het?")
    (line,) = truth.tool.split("hail", "%CHROM:%POS:%REF:%ALT\n", include='ID="rs575534"')
    assert [c.arguments for c in answer.calls] == [{"variant_id": line}]
    genotypes = truth.genotypes("hail", line)[0]
    het = {sample for sample, gt in genotypes.items() if sorted(gt.replace("|", "/").split("/")) == ["0", "1"]}
    shown = answer.answer.split("The first het carriers: ", 1)[1]
    listed = shown.split(", ...", 1)[0].split(".", 1)[0].split(", ")
    assert len(listed) == min(20, len(het)) and set(listed) <= het
    check_answer(truth, "which samples carry rs575534 and are het?", answer, set(stores.sample_names()))


def test_http_ask_answers_the_cohort_questions_fast_on_a_warm_server(cohort):
    name, stores, _ = cohort
    items = questions(name)
    with TestClient(create_app(stores=stores)) as client:
        seconds = [took for took, _ in asked_over_http(client, items)]
    p95 = statistics.quantiles(seconds, n=20)[18]
    print(f"\n{name} /ask: median {statistics.median(seconds):.3f} s, p95 {p95:.3f} s over {len(seconds)} questions")
    assert statistics.median(seconds) < 1.0
