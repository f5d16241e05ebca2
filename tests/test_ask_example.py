"""`vcf-agent ask` on the bundled example (the example_run fixture): the question set's example part is
planned as written, every number of its answers is bcftools' (split with the example's reference, as the
workflow does), and the README's `ask` examples run."""

from __future__ import annotations

import json

import pytest
from ask_truth import Truth, check_answer, planning_misses, questions, with_reference
from conftest import Bcftools

from vcf_agent.ask.planner import plan
from vcf_agent.interfaces.cli import main
from vcf_agent.query import Stores

from helpers import ROOT

pytestmark = pytest.mark.slow  # the bundled example's workflow run

STORE = "example"
TARGET_SHARE = 0.9


@pytest.fixture(scope="module")
def example(example_run, tmp_path_factory):
    workdir, _ = example_run
    inputs = {"example": workdir / "resources" / "example" / "example.vcf.gz"}
    tool = with_reference(
        Bcftools(inputs, tmp_path_factory.mktemp("ask_bcftools")), inputs["example"].with_suffix("").with_suffix(".fa")
    )
    with Stores.open(workdir / "results") as stores:
        yield stores, Truth(tool), workdir / "results"


def test_the_example_questions_are_planned_as_written(example):
    stores, _, _ = example
    missed, total = planning_misses(stores, STORE, plan)
    share = 1 - len(missed) / total
    print(f"\nexample questions planned exactly right: {total - len(missed)} of {total} ({share:.0%})")
    assert share >= TARGET_SHARE, "\n".join(missed)


def test_every_number_in_the_example_answers_is_bcftools(example):
    stores, truth, _ = example
    checked = [item for item in questions(STORE) if item.get("bcftools")]
    for item in checked:
        answer = stores.ask(item["q"])
        assert answer.figures, f"{item['q']!r}: no figures in {answer.answer!r}"
        check_answer(truth, item["q"], answer, set(stores.sample_names()))


def test_the_readme_ask_examples_run(example, capsys):
    _, _, results = example
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Asking in plain words", 1)[1].split("\n## ", 1)[0]
    examples = [
        line.split("vcf-agent ask ", 1)[1] for line in section.splitlines() if line.startswith("vcf-agent ask ")
    ]
    assert len(examples) >= 3
    for example_line in examples:
        question = json.loads(example_line.split(" --", 1)[0].split("  #", 1)[0].strip())
        code = main(["ask", question, "--results", str(results), "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == 0 and out["calls"], (question, out["answer"])
