"""The HTTP API on stores the real workflow built: answers, errors, a schema-driven fuzz run, a real server."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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

from vcf_agent.interfaces.server import BUILD_HEADER, create_app, openapi_document
from vcf_agent.query import Stores
from vcf_agent.stores.build import READERS_LOCK, remove_unused_builds

from helpers import bcftools_lines, split_records

pytestmark = pytest.mark.slow  # the query_stores workflow run

VCF_AGENT = Path(sys.executable).with_name("vcf-agent")
PATHS = {"/health", "/stats", "/search", "/similar", "/variant", "/sample", "/shared", "/region"}
PATHS |= {"/ask", "/list/{what}"}  # vcf-agent ask and the listings
#: Examples per operation in the fuzz run (8 operations; keeps the run to a few seconds).
FUZZ_EXAMPLES = 30
#: Seconds the served API gives a request to send its headers (`--header-timeout`).
HEADER_TIMEOUT = 2


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
    sample = client.get("/sample", params={"sample": "HG00096", "limit": 3}).json()
    hom = bcftools.split("kg", "%POS\n", view=("-s", "HG00096"), include='GT="AA"')
    assert sample["counts"]["hom_alt"] == len(hom) and len(sample["variants"]) == 3


def test_region_shared_and_vector_endpoints(client, bcftools):
    region = client.get("/region", params={"region": "22:16050000-16060000", "limit": 5}).json()
    assert region["total"] == len(bcftools.ids("kg", view=("-r", "22:16050000-16060000", "--regions-overlap", "1")))
    shared = client.get("/shared", params=[("samples", "HG00096"), ("samples", "HG00097"), ("limit", 2)]).json()
    assert shared["samples"] == ["HG00096", "HG00097"] and len(shared["variants"]) == 2
    hits = client.get("/search", params={"text": "insertion", "region": "chrX", "limit": 3, "carriers": 2}).json()
    assert len(hits) == 3 and all(h["chrom"] == "chrX" and len(h["carrier_samples"]) <= 2 for h in hits)
    near = client.get("/similar", params={"variant_id": "22:16051453:A:G", "carried_by": "HG00096"}).json()
    assert near and all("HG00096" in bcftools.genotypes("kg", h["variant_id"]) for h in near[:3])


@pytest.mark.parametrize(
    ("url", "params", "status", "message"),
    [
        ("/variant", {"variant_id": "22:1:A:G"}, 404, "unknown variant"),
        ("/sample", {"sample": "HG00096' OR '1'='1"}, 404, "unknown sample"),
        ("/region", {"region": "chr99:1-2"}, 404, "unknown contig"),
        ("/region", {"region": "22:9-3"}, 400, "end is before the start"),
        ("/shared", [("samples", "HG00096"), ("samples", "HG00096")], 400, "at least two"),
        ("/search", {"text": "x", "af_min": 0.9, "af_max": 0.1}, 400, "above af_max"),
        ("/search", {"text": "x", "gene": "A' OR 1=1"}, 422, None),
        ("/sample", {"sample": "HG00096", "limit": 0}, 422, None),
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
    with serving(query_stores.results) as base:
        yield base


@contextlib.contextmanager
def serving(results: Path, output=subprocess.PIPE) -> Iterator[str]:
    """A real `vcf-agent serve` on 127.0.0.1 (a free port) over `results`; yields its base URL."""
    port = free_port()
    command = [VCF_AGENT, "serve", "--results", str(results), "--port", str(port), "--threads", "4",
               "--header-timeout", str(HEADER_TIMEOUT)]  # fmt: skip
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise AssertionError(f"vcf-agent serve exited: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("vcf-agent serve did not answer /health within 60 s")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_served_api_answers_many_clients_at_once(served):
    """200 concurrent requests of every kind on a real `vcf-agent serve`: all answered, all correct."""
    requests = [
        ("/variant", {"variant_id": "22:16050654:A:<CN3>", "carriers": 5}),
        ("/sample", {"sample": "HG00099", "limit": 5}),
        ("/region", {"region": "22:16.05M-16.06M", "limit": 5}),
        ("/similar", {"variant_id": "22:16051453:A:C", "limit": 5}),
        ("/search", {"text": "rare deletion", "limit": 5}),
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


def test_a_request_whose_headers_never_end_is_closed(served):
    """Half a request line, then silence (a slowloris client): the server closes the connection."""
    port = int(served.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=HEADER_TIMEOUT + 10) as slow:
        slow.sendall(b"GET /health HT")
        started = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server (a timeout here raises instead)
        waited = time.monotonic() - started
    assert HEADER_TIMEOUT - 0.5 <= waited <= HEADER_TIMEOUT + 5, waited
    assert httpx.get(f"{served}/health", timeout=10).status_code == 200  # complete requests still answered


# ---------------------------------------------------------------- a rebuild under load

#: The stores are rebuilt without this VCF (the cohort: the rebuild takes seconds), so old and new answers differ.
DROPPED = "kg"
#: Each client thread cycles through these (each answerable by both builds); /stats and /health
#: combine LanceDB (variants) and Kuzu (samples).
LOAD_REQUESTS = [
    ("/stats", {}),
    ("/variant", {"variant_id": "chrX:2700157:G:A", "carriers": 5}),
    ("/health", {}),
    ("/search", {"text": "rare deletion", "limit": 5}),
    ("/sample", {"sample": "37150", "limit": 5}),
]
CLIENTS = 4
#: Seconds the new LanceDB table is published alone (the server must wait for the graph).
HALF_PUBLISHED = 3
#: Seconds of traffic after the switch.
AFTER_SWITCH = 2

REBUILD = """
import json, sys
from vcf_agent.stores.kuzu import input_paths, load_kuzu, samples_from_headers
from vcf_agent.stores.lance import load_lancedb
job = json.loads(sys.argv[1])
results = job["results"]
if job["store"] == "lancedb":
    load_lancedb(job["variants"], job["embeddings"], f"{results}/lancedb", f"{results}/lancedb.json",
                 summary=f"{results}/summary.json", threads=1)
else:
    load_kuzu(job["variants"], job["genotypes"], job["annotations"], f"{results}/kuzu", f"{results}/kuzu.json",
              samples=samples_from_headers(job["bcfs"]), files=input_paths(f"{results}/normalized/inputs.json"),
              threads=1)
"""


def rebuild(results: Path, store: str, vcfs: list[str]) -> None:
    """Load one store again, as the workflow's load rule does, from the shards of `vcfs` only."""
    shards = lambda kind: [str(p) for vcf in vcfs for p in sorted((results / kind / vcf).glob("*.parquet"))]  # noqa: E731
    job = {
        "results": str(results), "store": store, "variants": shards("parquet/variants"),
        "embeddings": shards("embeddings"), "genotypes": shards("parquet/genotypes"),
        "annotations": shards("parquet/annotations"), "bcfs": [str(results / "normalized" / f"{v}.bcf") for v in vcfs],
    }  # fmt: skip
    subprocess.run([sys.executable, "-c", REBUILD, json.dumps(job)], check=True, capture_output=True)


def expected_counts(query_stores, vcfs: list[str]) -> dict:
    """What /stats must say of stores built from `vcfs`, from bcftools."""
    samples = {name for vcf in vcfs for name in bcftools_lines("query", "-l", query_stores.inputs[vcf])}
    return {"variants": sum(split_records(query_stores.inputs[v]) for v in vcfs), "samples": len(samples)}


class Traffic:
    """CLIENTS threads sending LOAD_REQUESTS until stopped; every answer kept with its time and build."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[tuple[int, float, str, int | str, str | None, dict | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def __enter__(self) -> Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _client(self, number: int) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            i = number
            while not self.stop.is_set():
                url, params = LOAD_REQUESTS[i % len(LOAD_REQUESTS)]
                i += 1
                try:
                    response = http.get(url, params=params)
                except httpx.TransportError as error:
                    self.answers.append((number, time.time(), url, repr(error), None, None))
                    continue
                body = response.json() if url in ("/stats", "/health") and response.status_code == 200 else None
                self.answers.append(
                    (number, time.time(), url, response.status_code, response.headers.get(BUILD_HEADER), body)
                )

    def builds_seen(self) -> set[str | None]:
        return {answer[4] for answer in self.answers}


def lock_is_free(build: Path) -> bool:
    with open(build / READERS_LOCK) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@pytest.mark.slow
def test_a_rebuild_under_load_switches_without_an_error(query_stores, tmp_path):
    """4 clients query a real server while both stores are rebuilt (with one VCF fewer): no
    error, every answer wholly from the old or wholly from the new stores, the switch only
    once both are published, and the old builds freed for the next load to remove."""
    results = tmp_path / "results"
    shutil.copytree(query_stores.results, results, symlinks=True)
    vcfs = list(query_stores.inputs)
    kept = [v for v in vcfs if v != DROPPED]
    counts = {"old": expected_counts(query_stores, vcfs), "new": expected_counts(query_stores, kept)}
    old_dirs = {name: results / os.readlink(results / name) for name in ("lancedb", "kuzu")}
    log = tmp_path / "serve.log"
    with log.open("w") as output, serving(results, output) as base, Traffic(base) as traffic:
        old_build = httpx.get(f"{base}/health", timeout=30).headers[BUILD_HEADER]
        started = time.time()
        time.sleep(1)
        rebuild(results, "lancedb", kept)
        lance_published = time.time()
        time.sleep(HALF_PUBLISHED)  # the new table alone: still the old snapshot
        assert traffic.builds_seen() == {old_build}
        rebuild(results, "kuzu", kept)
        kuzu_published = (results / "kuzu.json").stat().st_mtime
        new_build = " ".join(os.readlink(results / name) for name in ("lancedb", "kuzu"))
        assert all(path.is_dir() for path in old_dirs.values())  # held by the server
        for _ in range(300):
            if new_build in traffic.builds_seen():
                break
            time.sleep(0.1)
        time.sleep(AFTER_SWITCH)
        for _ in range(100):  # the server closes the old snapshot once its last requests are done
            if all(lock_is_free(path) for path in old_dirs.values()):
                break
            time.sleep(0.1)
        for name in ("lancedb", "kuzu"):
            remove_unused_builds(results / name)  # what the next load does first
        freed = not any(path.exists() for path in old_dirs.values())
    answers = traffic.answers
    errors = [a for a in answers if a[3] != 200]
    new_times = [a[1] for a in answers if a[4] == new_build]
    switch = min(new_times, default=float("nan"))
    print(f"rebuild under load: {len(answers)} requests, {len(errors)} errors in {answers[-1][1] - started:.1f} s;"
          f" LanceDB published at {lance_published - started:.1f} s, Kuzu at {kuzu_published - started:.1f} s,"
          f" first new answer at {switch - started:.1f} s ({switch - kuzu_published:.1f} s after)")  # fmt: skip
    assert errors == [], errors[:5]
    assert new_times, "the server never switched to the new stores"
    assert {a[4] for a in answers} == {old_build, new_build}
    assert switch >= kuzu_published  # never the new table with the old graph
    for answer in answers:
        if answer[5] is not None:
            expected = counts["old" if answer[4] == old_build else "new"]
            assert {k: answer[5][k] for k in expected} == expected, answer
    for number in range(CLIENTS):  # once a client has a new answer, it gets no old one
        builds = [a[4] for a in answers if a[0] == number]
        assert builds == sorted(builds, key=lambda b: b == new_build), number
    assert "Traceback" not in log.read_text()
    assert freed, "the server still holds the old builds after switching"
