"""`vcf-agent ask` on the bundled example (the example_run fixture): the question set's example part is
planned as written, every number of its answers is bcftools' (split with the example's reference, as the
workflow does), and the README's `ask` examples run."""

from __future__ import annotations

import json

import pytest
from ask_truth import Truth, check_every_answer, check_planning, with_reference
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
    check_planning(stores, STORE, plan, TARGET_SHARE)


def test_every_number_in_the_example_answers_is_bcftools(example):
    stores, truth, _ = example
    check_every_answer(stores, truth, STORE)


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
