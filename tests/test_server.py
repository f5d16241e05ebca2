"""The HTTP API on stores the real workflow built: answers, errors, a schema-driven fuzz run, a real server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from vcf_agent.query import Stores
from vcf_agent.server import create_app, openapi_document

from helpers import split_records

VCF_AGENT = Path(sys.executable).with_name("vcf-agent")
PATHS = {"/health", "/stats", "/search", "/similar", "/variant", "/sample", "/shared", "/region"}
PATHS |= {"/ask", "/list/{what}"}  # vcf-agent ask and the listings
#: Examples per operation in the fuzz run (8 operations; keeps the run to a few seconds).
FUZZ_EXAMPLES = 30


@pytest.fixture(scope="module")
def app(query_stores):
    with Stores.open(query_stores.results) as stores:
        yield create_app(stores=stores, threads=16)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as test_client:
        yield test_client


def test_health_and_openapi(client, query_stores):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["variants"] == sum(split_records(p) for p in query_stores.inputs.values())
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == PATHS
    assert all(list(operations) == ["get"] for operations in schema["paths"].values())  # read-only


def test_variant_and_sample_answers_match_bcftools(client, bcftools):
    record = client.get("/variant", params={"variant_id": "22:16051453:A:C"}).json()
    assert {c["sample"]: c["gt"] for c in record["carriers"]} == bcftools.genotypes("kg", "22:16051453:A:C")
    sample = client.get("/sample", params={"id": "HG00096", "limit": 3}).json()
    hom = bcftools.split("kg", "%POS\n", view=("-s", "HG00096"), include='GT="AA"')
    assert sample["counts"]["hom_alt"] == len(hom) and len(sample["variants"]) == 3


def test_region_shared_and_vector_endpoints(client, bcftools):
    region = client.get("/region", params={"region": "22:16050000-16060000", "limit": 5}).json()
    assert region["total"] == len(bcftools.ids("kg", view=("-r", "22:16050000-16060000", "--regions-overlap", "1")))
    shared = client.get("/shared", params=[("samples", "HG00096"), ("samples", "HG00097"), ("limit", 2)]).json()
    assert shared["samples"] == ["HG00096", "HG00097"] and len(shared["variants"]) == 2
    hits = client.get("/search", params={"q": "insertion", "region": "chrX", "limit": 3, "carriers": 2}).json()
    assert len(hits) == 3 and all(h["chrom"] == "chrX" and len(h["carrier_samples"]) <= 2 for h in hits)
    near = client.get("/similar", params={"variant_id": "22:16051453:A:G", "carried_by": "HG00096"}).json()
    assert near and all("HG00096" in bcftools.genotypes("kg", h["variant_id"]) for h in near[:3])


@pytest.mark.parametrize(
    ("url", "params", "status", "message"),
    [
        ("/variant", {"variant_id": "22:1:A:G"}, 404, "unknown variant"),
        ("/sample", {"id": "HG00096' OR '1'='1"}, 404, "unknown sample"),
        ("/region", {"region": "chr99:1-2"}, 404, "unknown contig"),
        ("/region", {"region": "22:9-3"}, 400, "end is before the start"),
        ("/shared", [("samples", "HG00096"), ("samples", "HG00096")], 400, "at least two"),
        ("/search", {"q": "x", "af_min": 0.9, "af_max": 0.1}, 400, "above af_max"),
        ("/search", {"q": "x", "gene": "A' OR 1=1"}, 422, None),
        ("/sample", {"id": "HG00096", "limit": 0}, 422, None),
    ],
)
def test_errors_have_a_status_and_one_line(client, url, params, status, message):
    response = client.get(url, params=params)
    assert response.status_code == status
    if message:
        assert message in response.json()["detail"] and "\n" not in response.json()["detail"]


# ---------------------------------------------------------------- fuzzing from the OpenAPI schema


# The schema needs no stores, so it is loaded at import (schemathesis' lazy fixture loader
# does not work with pytest 9); the calls go to the real server of the `served` fixture.
# One test per endpoint through pytest's own parametrize: schemathesis' `schema.parametrize()`
# gives its tests one shared id under pytest 9, which pytest-xdist would run only once.
schema = schemathesis.openapi.from_dict(openapi_document())
OPERATIONS = [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=[operation.label for operation in OPERATIONS])
def test_fuzz_every_endpoint_from_its_schema(operation, served):
    """No input the schema allows (or breaks) gets a 500, an undeclared status or an off-schema body."""

    @given(case=operation.as_strategy())
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(
            base_url=served,
            checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        )

    check()


# ---------------------------------------------------------------- the real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(query_stores):
    port = free_port()
    command = [VCF_AGENT, "serve", "--results", str(query_stores.results), "--port", str(port), "--threads", "4"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise AssertionError(f"vcf-agent serve exited: {process.stdout.read()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("vcf-agent serve did not answer /health within 30 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_served_api_answers_many_clients_at_once(served):
    """200 concurrent requests of every kind on a real `vcf-agent serve`: all answered, all correct."""
    requests = [
        ("/variant", {"variant_id": "22:16050654:A:<CN3>", "carriers": 5}),
        ("/sample", {"id": "HG00099", "limit": 5}),
        ("/region", {"region": "22:16.05M-16.06M", "limit": 5}),
        ("/similar", {"variant_id": "22:16051453:A:C", "limit": 5}),
        ("/search", {"q": "rare deletion", "limit": 5}),
    ]

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=served, timeout=60, limits=limits) as http:
            return await asyncio.gather(*(http.get(url, params=params) for url, params in requests * 40))

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * len(responses)
    for i, (url, _) in enumerate(requests):
        bodies = {r.text for r in responses[i :: len(requests)]}
        assert len(bodies) == 1, f"{url} answered differently under load"
