"""The read-only HTTP API (`vcf-agent serve`): the operations of vcf_agent.query as JSON endpoints.

One process opens both stores once: Kuzu read-only, with one connection per
worker thread (Kuzu runs one query at a time per connection); the LanceDB
table object is shared by every request. Endpoints are plain functions that
FastAPI runs in its thread pool (`threads` workers), so a slow query never
blocks the event loop. Bad arguments answer 400 (or 422 when a parameter does
not even have the declared type), unknown samples/variants/contigs 404, a
missing store 503; every error body is ``{"detail": "<one line>"}``.

The OpenAPI schema is at /openapi.json (interactive docs at /docs).
"""

from __future__ import annotations

import contextlib
import json
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from vcf_agent import __version__
from vcf_agent.errors import VcfAgentError
from vcf_agent.query import (
    GRAPH_HANDLES,
    MAX_LIMIT,
    VARIANT_CLASSES,
    BadQuery,
    Counts,
    Filters,
    Hit,
    NotFound,
    Stats,
    StoreMissing,
    Stores,
    VariantRecord,
    to_jsonable,
)

#: Threads running queries: Python runs one at a time, so more only add memory (two cores).
DEFAULT_THREADS = 16
#: mallopt parameter number of M_ARENA_MAX (glibc malloc.h).
M_ARENA_MAX = -8
#: Environment variable passing `serve`'s options to its worker processes.
WORKER_OPTIONS = "VCF_AGENT_SERVE_OPTIONS"
#: Largest request line and headers accepted (bytes).
MAX_REQUEST_LINE = 1 << 20


class ErrorBody(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    variants: int
    samples: int
    lancedb_built: str | None
    kuzu_built: str | None
    version: str


class VariantRow(BaseModel):
    variant_id: str
    chrom: str
    pos: int
    end: int | None = None
    ref: str
    alt: str
    variant_class: str
    gene: str | None = None
    consequence: str | None = None
    impact: str | None = None
    filter: str | None = None
    af: float | None = None


class SampleRow(VariantRow):
    gt: str
    phased: bool
    zygosity: str


class SharedRow(VariantRow):
    #: each sample's GT, in the order of `samples`
    genotypes: list[str | None]


class RegionRow(VariantRow):
    carriers: int


@dataclass
class SampleResponse:
    sample: str
    files: list[str]
    filters: dict[str, Any]
    counts: Counts
    variants: list[SampleRow]
    truncated: bool


@dataclass
class SharedResponse:
    samples: list[str]
    filters: dict[str, Any]
    total: int
    variants: list[SharedRow]
    truncated: bool


@dataclass
class RegionResponse:
    region: str
    filters: dict[str, Any]
    total: int
    variants: list[RegionRow]
    truncated: bool


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a malformed argument"},
    404: {"model": ErrorBody, "description": "unknown variant, sample or contig"},
    503: {"model": ErrorBody, "description": "a store is missing or closed"},
}

_TERM = r"^[A-Za-z0-9_.+\-]{1,100}$"
_GENE = r"^[A-Za-z0-9][A-Za-z0-9_.:+\-/@()*]{0,99}$"
VariantClass = Literal[VARIANT_CLASSES]  # type: ignore[valid-type]


def query_filters(
    region: Annotated[str | None, Query(max_length=1000, description="chrom, chrom:pos or chrom:start-end")] = None,
    gene: Annotated[str | None, Query(pattern=_GENE, description="gene of the most severe annotation")] = None,
    consequence: Annotated[str | None, Query(pattern=_TERM, description="an SO term, e.g. missense_variant")] = None,
    filter: Annotated[str | None, Query(pattern=_TERM, description="PASS or one FILTER name")] = None,
    af_min: Annotated[float | None, Query(ge=0, le=1, description="lowest INFO/AF")] = None,
    af_max: Annotated[float | None, Query(ge=0, le=1, description="highest INFO/AF")] = None,
    variant_class: Annotated[VariantClass | None, Query(description="variant class")] = None,
    carried_by: Annotated[str | None, Query(max_length=1000, description="only variants this sample carries")] = None,
) -> Filters:
    return Filters(
        region=region,
        gene=gene,
        consequence=consequence,
        filter=filter,
        af_min=af_min,
        af_max=af_max,
        variant_class=variant_class,
        carried_by=carried_by,
    )


FiltersParam = Annotated[Filters, Depends(query_filters)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows to return")]
CarriersShown = Annotated[int, Query(ge=0, le=MAX_LIMIT, description="carrier names per hit")]
VariantId = Annotated[str, Query(min_length=1, max_length=100_000, description="chrom:pos:ref:alt as stored")]


def create_app(
    results: Path | str = "results",
    *,
    stores: Stores | None = None,
    threads: int = DEFAULT_THREADS,
    model: str | Path | None = None,
    graph_handles: int = GRAPH_HANDLES,
) -> FastAPI:
    """The FastAPI application over the stores in `results` (or over already opened `stores`)."""
    opened = stores if stores is not None else Stores.open(results, model=model, graph_handles=graph_handles)
    if stores is None:
        opened.warm(threads)  # the model, the indexes and the threads' memory, before the first request
    else:
        opened.stats()
    _warm_ask(opened)
    app = _build_app(threads, close=opened.close if stores is None else None)
    app.state.stores = opened
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI schema of the API (needs no stores: for docs and schema-driven tests)."""
    return _build_app(DEFAULT_THREADS, close=None).openapi()


def _build_app(threads: int, close) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        try:
            yield
        finally:
            if close is not None:
                close()

    app = FastAPI(
        title="vcf-agent",
        version=__version__,
        description="Read-only questions to the vcf-agent stores (LanceDB vectors, Kuzu graph).",
        lifespan=lifespan,
        responses=ERRORS,
    )
    _add_error_handlers(app)
    _add_routes(app)
    _add_ask_routes(app)
    return app


def current_stores(request: Request) -> Stores:
    stores = getattr(request.app.state, "stores", None)
    if stores is None:
        raise StoreMissing("no stores are open in this server")
    return stores


StoresParam = Annotated[Stores, Depends(current_stores)]


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status: int):
        async def handler(request: Request, error: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, status_code=status)

        return handler

    app.add_exception_handler(NotFound, answer(404))
    app.add_exception_handler(BadQuery, answer(400))
    app.add_exception_handler(StoreMissing, answer(503))
    app.add_exception_handler(VcfAgentError, answer(400))


def _add_routes(app: FastAPI) -> None:
    @app.get("/health", response_model=Health, summary="liveness and what is served")
    def health(stores: StoresParam) -> dict:
        if stores.rebuilt():
            raise StoreMissing(f"the stores in {stores.results} were rebuilt since this server opened them; restart it")
        stats = stores.stats()
        return {
            "status": "ok",
            "variants": stats.variants,
            "samples": stats.samples,
            "lancedb_built": stats.lancedb_built,
            "kuzu_built": stats.kuzu_built,
            "version": __version__,
        }

    @app.get("/stats", response_model=Stats, summary="files, samples, variants, genotypes, genes, contigs, model")
    def stats(stores: StoresParam) -> dict:
        return to_jsonable(stores.stats())

    @app.get("/search", response_model=list[Hit], summary="semantic search: variants nearest to the text")
    def search(
        stores: StoresParam,
        q: Annotated[str, Query(min_length=1, max_length=10_000, description="what to look for, in words")],
        filters: FiltersParam,
        limit: Limit = 10,
        carriers: CarriersShown = 10,
        prefilter: bool = True,
    ) -> list:
        return to_jsonable(stores.search(q, filters, limit=limit, prefilter=prefilter, carriers=carriers))

    @app.get("/similar", response_model=list[Hit], summary="nearest neighbours of a stored variant")
    def similar(
        stores: StoresParam,
        variant_id: VariantId,
        filters: FiltersParam,
        limit: Limit = 10,
        carriers: CarriersShown = 10,
        prefilter: bool = True,
    ) -> list:
        return to_jsonable(stores.similar(variant_id, filters, limit=limit, prefilter=prefilter, carriers=carriers))

    @app.get("/variant", response_model=VariantRecord, summary="one variant with annotations and carriers")
    def variant(
        stores: StoresParam,
        variant_id: VariantId,
        carriers: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="list at most N carriers")] = None,
    ) -> dict:
        return to_jsonable(stores.variant(variant_id, carriers=carriers))

    @app.get("/sample", response_model=SampleResponse, summary="variants a sample carries, with zygosity counts")
    def sample(
        stores: StoresParam,
        id: Annotated[str, Query(min_length=1, max_length=1000, description="sample name")],
        filters: FiltersParam,
        limit: Limit = 100,
    ) -> dict:
        return to_jsonable(stores.sample(id, filters, limit=limit))

    @app.get("/shared", response_model=SharedResponse, summary="variants carried by every one of the samples")
    def shared(
        stores: StoresParam,
        samples: Annotated[list[str], Query(min_length=2, max_length=100, description="two or more sample names")],
        filters: FiltersParam,
        limit: Limit = 100,
    ) -> dict:
        return to_jsonable(stores.shared(samples, filters, limit=limit))

    @app.get("/region", response_model=RegionResponse, summary="variants in a region with carrier counts")
    def region(
        stores: StoresParam,
        region: Annotated[str, Query(min_length=1, max_length=1000, description="chrom, chrom:pos or chrom:start-end")],
        filters: Annotated[Filters, Depends(_filters_without_region)],
        limit: Limit = 100,
    ) -> dict:
        return to_jsonable(stores.region(region, filters, limit=limit))


class AskCall(BaseModel):
    operation: str
    arguments: dict[str, Any]


class AskFigure(BaseModel):
    name: str
    value: int | float
    call: int
    about: str | None = None


class AskResponse(BaseModel):
    question: str
    #: the calls of the operations that answered it, with the arguments of this API
    calls: list[AskCall]
    #: a few sentences; every number in them is one of `figures`
    answer: str
    #: each call's result (as its endpoint returns it), or {"error": "..."}
    results: list[Any]
    figures: list[AskFigure]
    planner: str
    notes: list[str]
    seconds: float


Listing = Literal["samples", "genes", "contigs", "files"]


def _warm_ask(stores: Stores) -> None:
    """The names /ask checks questions against (samples, genes, contigs, filters), read before the first question."""
    from vcf_agent.ask import vocabulary

    vocabulary(stores)


def _add_ask_routes(app: FastAPI) -> None:
    @app.get("/ask", response_model=AskResponse, summary="a question in plain words, answered by the operations")
    def ask(
        stores: StoresParam,
        q: Annotated[str, Query(min_length=1, max_length=10_000, description="the question")],
        limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT, description="rows per call")] = None,
    ) -> dict:
        return to_jsonable(stores.ask(q, limit=limit))

    @app.get("/list/{what}", response_model=list[dict[str, Any]], summary="the samples, genes, contigs or files held")
    def listing(stores: StoresParam, what: Listing) -> list:
        return to_jsonable(stores.listing(what))


def _filters_without_region(
    gene: Annotated[str | None, Query(pattern=_GENE)] = None,
    consequence: Annotated[str | None, Query(pattern=_TERM)] = None,
    filter: Annotated[str | None, Query(pattern=_TERM)] = None,
    af_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    af_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    variant_class: VariantClass | None = None,
    carried_by: Annotated[str | None, Query(max_length=1000)] = None,
) -> Filters:
    return query_filters(None, gene, consequence, filter, af_min, af_max, variant_class, carried_by)


def serve(
    results: Path | str = "results",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = DEFAULT_THREADS,
    workers: int = 1,
    model: str | Path | None = None,
    graph_handles: int = GRAPH_HANDLES,
    log_level: str = "warning",
) -> None:
    """Run the API with uvicorn until interrupted (stores opened before the port is bound).

    With `workers` > 1, that many processes share the port, each with its own read-only
    handles on the stores (Kuzu and LanceDB allow several reading processes): Python runs
    one thread at a time, so a second process is what puts a second core to work.
    """
    import uvicorn

    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "backlog": 4096,
        "timeout_keep_alive": 30,
        # a GET carries its arguments in the URL: a variant id holds its alleles (up to 100,000
        # characters, three bytes each when percent-encoded), beyond h11's default of 16 KiB
        "h11_max_incomplete_event_size": MAX_REQUEST_LINE,
    }
    app_options = {"threads": threads, "model": model, "graph_handles": graph_handles}
    _fewer_malloc_arenas()
    if workers <= 1:
        uvicorn.run(create_app(results, **app_options), **options)
        return
    Stores.open(results, model=model).close()  # a missing or broken store: one line, before any worker
    os.environ[WORKER_OPTIONS] = json.dumps({"results": str(results), **app_options, "model": _text(model)})
    uvicorn.run("vcf_agent.server:app_from_environment", factory=True, workers=workers, **options)


def _fewer_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (by default 8 per core, one per busy thread): with a thread
    pool they fragment memory, and the server's RSS kept creeping up under load (6.4% against
    4.6% in 30 s with 500 clients). Applies to threads started afterwards; no-op off glibc."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(M_ARENA_MAX, arenas)


def app_from_environment() -> FastAPI:
    """The app of one worker process of `serve(workers=N)` (its options come through the environment)."""
    options = json.loads(os.environ[WORKER_OPTIONS])
    return create_app(options.pop("results"), **options)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
