"""`vcf-agent ask` on the stores of the real workflow: planning, answers checked against bcftools, rsIDs,
listings, the CLI and HTTP faces, and the optional language-model protocol against a local endpoint."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ask_truth import Truth, asked_over_http, check_answer, check_every_answer, check_planning, planned, questions
from fastapi.testclient import TestClient

from vcf_agent.ask.llm import tool_schemas
from vcf_agent.ask.planner import OPERATIONS, plan
from vcf_agent.interfaces.cli import main
from vcf_agent.interfaces.server import create_app
from vcf_agent.query import BadQuery, NotFound, Stores

pytestmark = pytest.mark.slow  # the query_stores workflow run

STORE = "query"
#: Share of the question set the planner must map to exactly the expected calls.
TARGET_SHARE = 0.9


@pytest.fixture(scope="module")
def stores(query_stores):
    with Stores.open(query_stores.results) as opened:
        yield opened


@pytest.fixture(scope="module")
def truth(bcftools) -> Truth:
    return Truth(bcftools)


def test_the_question_set_is_planned_as_written(stores):
    check_planning(stores, STORE, plan, TARGET_SHARE)


def test_every_number_in_the_answers_is_bcftools(stores, truth):
    check_every_answer(stores, truth, STORE, least=20)


def test_an_rsid_names_a_variant_everywhere(stores, bcftools):
    (line,) = bcftools.split("kg", "%CHROM:%POS:%REF:%ALT\n", include='ID="rs587697622"')
    assert stores.variant("rs587697622").variant_id == line
    assert stores.variant("chr22-16050075-A-G").variant_id == line
    assert all(hit.variant_id != line for hit in stores.similar("rs587697622", limit=3))
    several = bcftools.split("kg", "%CHROM:%POS:%REF:%ALT\n", include='ID="rs587625198"')
    assert len(several) == 2
    assert stores.resolve_variant("rs587625198") == several
    with pytest.raises(BadQuery, match="rs587625198 names 2 split records: " + ", ".join(several)):
        stores.variant("rs587625198")
    with pytest.raises(NotFound, match="unknown variant 'rs1'"):
        stores.variant("rs1")


def test_the_listings_match_bcftools(stores, truth):
    expected = truth.figures("list", {"what": "samples"})
    listed = stores.list_samples()
    assert len(listed) == expected[("samples", None)]
    assert {(e.sample, e.variants) for e in listed} == {
        (sample, n) for (name, sample), n in expected.items() if name == "variants"
    }
    files = truth.figures("list", {"what": "files"})
    assert {(f.name, f.samples, f.variants) for f in stores.list_files()} == {
        (name, files[("samples", name)], files[("variants", name)]) for name in truth.names
    }
    contigs = truth.figures("list", {"what": "contigs"})
    assert {(c.name, c.variants) for c in stores.list_contigs()} == {
        (chrom, n) for (name, chrom), n in contigs.items() if name == "variants"
    }
    genes = {g.gene: g for g in stores.list_genes()}
    region = stores.region("chrX", None, limit=10_000).variants.column("gene").to_pylist()
    assert genes["XG"].variants == region.count("XG") and genes["XG"].contigs == ["chrX"]


def test_a_question_it_cannot_map_names_the_operations(stores):
    answer = stores.ask("please book me a flight to Boston")
    assert answer.calls == [] and answer.results == []
    for name in OPERATIONS:
        assert f"{name} (" in answer.answer
    assert "carried_by" in answer.answer and "variant_id" in answer.answer
    unknown = stores.ask("variants in the gene BRCA2")
    assert unknown.calls == [] and "no sample or gene named BRCA2" in unknown.answer


def test_cli_ask_json_and_list(capsys, query_stores, truth):
    results = str(query_stores.results)
    code = main(["ask", "which rare variants of HG00096 are also carried by HG00097?", "--results", results, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(out) >= {"question", "calls", "answer", "results", "figures"}
    assert out["calls"] == [{"operation": "shared", "arguments": {"samples": ["HG00096", "HG00097"], "af_max": 0.01}}]
    total = truth.figures("shared", out["calls"][0]["arguments"])[("variants", None)]
    assert out["results"][0]["total"] == total and f"{total:,} variants" in out["answer"]
    code = main(["list", "files", "--results", results, "--json"])
    assert code == 0 and [f["name"] for f in json.loads(capsys.readouterr().out)] == truth.names
    code = main(["ask", "who carries rs587697622?", "--results", results])
    assert code == 0 and "22:16050075:A:G" in capsys.readouterr().out


def test_cli_ask_loads_no_model_unless_it_searches(query_stores):
    script = (
        "import sys; from vcf_agent.interfaces.cli import main;"
        f" code = main(['ask', 'how many SNPs does HG00096 carry?', '--results', {str(query_stores.results)!r}]);"
        " sys.exit(code or ('sentence_transformers' in sys.modules) * 3 or ('torch' in sys.modules) * 4)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HG00096 carries" in result.stdout


def test_http_ask_and_list_answer_fast_on_a_warm_server(stores, truth):
    app = create_app(stores=stores)
    asked = [item for item in questions(STORE) if item.get("bcftools")][:20]
    with TestClient(app) as client:
        replies = asked_over_http(client, asked)
        for item, (_, reply) in zip(asked, replies, strict=True):
            assert reply["calls"] == [
                {"operation": op, "arguments": args} for call in item["calls"] for op, args in call.items()
            ]
        seconds = [took for took, _ in replies]
        listed = client.get("/list/samples").json()
        assert len(listed) == truth.figures("list", {"what": "samples"})[("samples", None)]
        assert client.get("/list/nothing").status_code == 422
    print(f"\n/ask: median {statistics.median(seconds):.3f} s, max {max(seconds):.3f} s over {len(seconds)} questions")
    assert statistics.median(seconds) < 1.0


# ---------------------------------------------------------------- a language model's plan


class CannedModel(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat-completions endpoint whose 'model' answers with the next canned tool call."""

    replies: typing.ClassVar[list[tuple[str, dict]]] = []
    requests: typing.ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body})
        name, arguments = type(self).replies.pop(0)
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "tool_calls": [call]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def canned_model():
    server = ThreadingHTTPServer(("127.0.0.1", 0), CannedModel)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    CannedModel.replies, CannedModel.requests = [], []
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_a_language_models_tool_calls_are_validated_and_a_bad_one_falls_back(stores, truth, canned_model):
    question = "rare variants of HG00099"
    CannedModel.replies = [
        ("sample", {"sample": "HG00099", "af_max": 0.01}),  # valid
        ("sample", {"sample": "HG00099", "af_maximum": 0.01}),  # not in the schema
        ("sample", {"sample": "HG0009", "af_max": 0.01}),  # no such sample
    ]
    used = stores.ask(question, llm=canned_model, llm_model="tiny")
    assert used.planner == "llm"
    assert planned(used.calls) == [{"sample": {"sample": "HG00099", "af_max": 0.01}}]
    check_answer(truth, question, used)
    request = CannedModel.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "tiny"
    assert request["body"]["messages"][-1] == {"role": "user", "content": question}
    assert request["body"]["tools"] == tool_schemas()
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in tool_schemas()}
    assert set(schemas) == set(OPERATIONS)
    assert set(schemas["sample"]["properties"]) >= {
        "sample",
        "limit",
        "region",
        "af_max",
        "variant_class",
        "carried_by",
    }
    offline = planned(plan(stores, question)[0])
    for wrong in ("unknown argument 'af_maximum'", "unknown sample 'HG0009'"):
        fallback = stores.ask(question, llm=canned_model)
        assert fallback.planner == "offline" and planned(fallback.calls) == offline
        assert any(wrong in note for note in fallback.notes), fallback.notes
    unreachable = stores.ask(question, llm="http://127.0.0.1:9/v1")
    assert unreachable.planner == "offline" and planned(unreachable.calls) == offline


@pytest.mark.parametrize("command", ["ask", "list"])
def test_ask_and_list_have_help_with_examples(capsys, command):
    from vcf_agent.interfaces.cli import EXAMPLES

    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"vcf-agent {command}" in text and EXAMPLES[command] in text
