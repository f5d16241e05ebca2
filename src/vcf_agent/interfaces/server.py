"""The read-only HTTP API (`vcf-agent serve`): the operations of vcf_agent.query as JSON endpoints.

One process opens both stores once: Kuzu read-only, with one connection per
worker thread (Kuzu runs one query at a time per connection); the LanceDB
table object is shared by every request. Endpoints are plain functions that
FastAPI runs in its thread pool (`threads` workers), so a slow query never
blocks the event loop. Bad arguments answer 400 (or 422 when a parameter does
not even have the declared type), unknown samples/variants/contigs 404, a
missing store 503; every error body is ``{"detail": "<one line>"}``.

A rebuild does not disturb it (`LiveStores`): it answers from the builds it
opened until a load has published both new stores, then switches to them by
itself; each answer comes from one snapshot, named in the X-VCF-Agent-Build
header. A connection whose request line and headers do not arrive within
HEADER_TIMEOUT seconds of its first byte is closed (`HeaderTimeoutProtocol`).

The endpoints of the operations are generated (`add_operation_routes`): each takes its
operation's parameters model (vcf_agent.interfaces.operations, the filters among them) as
query parameters named as the CLI's arguments, and answers its result model
(vcf_agent.query.results). The OpenAPI schema is at /openapi.json, the interactive docs at
/docs and /redoc, with
Swagger UI and ReDoc served by this server itself (the package fastapi-offline), so they
work without internet.

Start-up (`create_app`): the query model loads in a thread while LanceDB and Kuzu are
imported and opened; the port opens once both are done, and the rest of the warm-up
(Stores.warm: indexes, node and rel columns, a burst of each operation on every query
thread, the names /ask checks against) runs in the background after it, while requests
are already answered. With `workers` > 1 each worker process does all of this for itself,
and watches for a new build for itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from inspect import Parameter, Signature
from pathlib import Path
from typing import Annotated, Any

import h11
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathPart
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from uvicorn.protocols.http.h11_impl import H11Protocol

from vcf_agent import __version__
from vcf_agent.errors import VcfAgentError
from vcf_agent.interfaces.operations import OPERATIONS, parameters
from vcf_agent.interfaces.startup import load_model_meanwhile
from vcf_agent.query import (
    GRAPH_HANDLES,
    KUZU_DIR,
    KUZU_MANIFEST,
    LANCE_DIR,
    LANCE_MANIFEST,
    OPEN_PARTITIONS,
    BadQuery,
    Filters,
    Hit,
    NotFound,
    RegionResult,
    SampleResult,
    SharedResult,
    Stats,
    StoreMissing,
    Stores,
    VariantRecord,
    complete_builds,
    to_jsonable,
)
from vcf_agent.runtime import setup_process

#: Threads running queries: Python runs one at a time, so more only add memory (two cores).
DEFAULT_THREADS = 16
#: Environment variable passing `serve`'s options to its worker processes.
WORKER_OPTIONS = "VCF_AGENT_SERVE_OPTIONS"
#: Environment variable naming the file where a worker that cannot open the stores writes why.
WORKER_FAILURE = "VCF_AGENT_SERVE_FAILURE"
#: Exit status of a worker that failed before serving (uvicorn.config.STARTUP_FAILURE): uvicorn's
#: supervisor then stops instead of starting it again.
STARTUP_FAILURE = 3
#: Seconds a worker may take to answer uvicorn's supervisor (5 by default): it kills and restarts
#: one that does not, and a worker importing and opening the stores on a busy machine holds the
#: GIL for longer than that (on two cores at a load of 20, every worker was killed before it served).
WORKER_HEALTHCHECK_SECONDS = 120
#: Niceness of the background warm-up's threads (Linux schedules threads apart): the requests
#: answered meanwhile get the cores first (under load, a fuzz run's first searches waited > 10 s).
WARM_NICENESS = 10
#: Seconds the shutdown waits for a background warm-up still running before closing the stores.
WARM_JOIN_SECONDS = 60.0
#: Largest request line and headers accepted (bytes).
MAX_REQUEST_LINE = 1 << 20
#: Seconds a connection has to send a whole request line and headers (then it is closed).
HEADER_TIMEOUT = 10.0
#: Seconds between two looks at the manifests and symlinks for a new build.
WATCH_SECONDS = 1.0
#: Response header naming the builds an answer came from: "<LanceDB build> <Kuzu build>".
BUILD_HEADER = "X-VCF-Agent-Build"

_log = logging.getLogger("uvicorn.error")


class ErrorBody(BaseModel):
    detail: str


class Health(BaseModel):
    status: str
    variants: int
    samples: int
    lancedb_built: str | None
    kuzu_built: str | None
    #: the build folders answering (results/lancedb and results/kuzu point at them, or did)
    lancedb_build: str
    kuzu_build: str
    version: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a malformed argument"},
    404: {"model": ErrorBody, "description": "unknown variant, sample or contig"},
    503: {"model": ErrorBody, "description": "a store is missing or closed"},
}


class LiveStores:
    """The stores the server answers from, replaced by the next complete build while it runs.

    Each request borrows the current snapshot (both stores) for its whole length, so
    an answer never mixes two builds. With `reopen`, a watcher thread looks every
    `interval` seconds at the manifests and symlinks (a few stat calls); once a load
    has published a complete release (query.complete_builds: both manifests written,
    both stores built from the same variants), it opens and warms the new snapshot
    beside the old one, swaps the reference, lets the requests on the old snapshot
    finish and closes it, which lets the next load remove its builds.
    """

    def __init__(
        self, stores: Stores, reopen: Callable[[], Stores] | None = None, interval: float = WATCH_SECONDS
    ) -> None:
        self._current = stores
        self._reopen = reopen
        self._interval = interval
        self._users: dict[int, int] = {}  # id(snapshot) -> requests on it
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._seen: tuple | None = self._signature()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Stores:
        return self._current

    def start(self) -> None:
        if self._reopen is not None and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="store-watcher", daemon=True)
            self._thread.start()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Stores]:
        with self._changed:
            stores = self._current
            self._users[id(stores)] = self._users.get(id(stores), 0) + 1
        try:
            yield stores
        finally:
            with self._changed:
                self._users[id(stores)] -= 1
                if not self._users[id(stores)]:
                    del self._users[id(stores)]
                    self._changed.notify_all()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._current.close()

    def _watch(self) -> None:
        failed = None
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception as error:  # a broken new build: keep answering from the old one, try again
                self._seen = None
                if _one_line(error) != failed:
                    failed = _one_line(error)
                    _log.warning("new stores in %s not opened (still answering from the old ones): %s",
                                 self._current.results, failed)  # fmt: skip
            else:
                failed = None

    def check(self) -> bool:
        """Switch to a complete new release if one was published since the last look."""
        signature = self._signature()
        if signature == self._seen:
            return False
        builds = complete_builds(self._current.results)
        # incomplete (a load under way, a manifest not yet written): look again next time
        self._seen = None if builds is None else signature
        if builds is None or builds == self._current.builds:
            return False
        new = self._reopen()
        if new.builds != builds or not new.complete():
            new.close()  # published again meanwhile: look again next time
            self._seen = None
            return False
        try:
            new.share_model(self._current)
            new.warm()
        except BaseException:
            new.close()
            raise
        self._switch(new)
        return True

    def _switch(self, new: Stores) -> None:
        with self._changed:
            old, self._current = self._current, new
        _log.info("answering from %s now (was %s)", " ".join(new.builds), " ".join(old.builds))
        with self._changed:
            while id(old) in self._users and not self._stop.is_set():
                self._changed.wait(timeout=1)
        old.close()

    def _signature(self) -> tuple:
        """What changes when a load publishes: the manifests' stat and the symlinks' targets."""
        results = self._current.results
        parts: list[object] = []
        for name in (LANCE_MANIFEST, KUZU_MANIFEST):
            with contextlib.suppress(OSError):
                info = os.stat(results / name)
                parts.append((info.st_ino, info.st_mtime_ns, info.st_size))
        for name in (LANCE_DIR, KUZU_DIR):
            with contextlib.suppress(OSError):
                parts.append(os.readlink(results / name))
        return tuple(parts)


#: Threads of one Kuzu query, and of Lance's CPU pool, in the server: requests run side by side
#: on the server's threads (and its worker processes), so a query spread over every core only
#: contends with the others; --workers N puts N cores to work. On the full-size benchmark store,
#: 64 clients: one worker 51.9 requests/s with Lance's default pool, 66.3 with one thread.
QUERY_THREADS = 1


def create_app(
    results: Path | str = "results",
    *,
    stores: Stores | None = None,
    threads: int = DEFAULT_THREADS,
    model: str | Path | None = None,
    graph_handles: int = GRAPH_HANDLES,
    open_partitions: int = OPEN_PARTITIONS,
    watch_seconds: float = WATCH_SECONDS,
) -> FastAPI:
    """The FastAPI application over the stores in `results` (or over already opened `stores`,
    which it neither replaces nor closes)."""
    if stores is not None:
        stores.stats()
        _warm_ask(stores)
        app = _build_app(threads, LiveStores(stores), owned=False)
        return app

    graph_options = {"graph_handles": graph_handles, "graph_threads": QUERY_THREADS, "open_partitions": open_partitions}

    def reopen() -> Stores:
        reopened = Stores.open(results, model=model, **graph_options)
        _warm_ask(reopened)  # the names /ask checks questions against, read before the switch
        return reopened

    loading = load_model_meanwhile(model)  # the model loads while LanceDB and Kuzu are imported and opened
    opened = Stores.open(results, model=model, **graph_options)
    loading.join()  # the first search does not wait for it
    app = _build_app(threads, LiveStores(opened, reopen, watch_seconds), owned=True)
    app.state.warm_threads = threads  # the rest of the warm-up, once the port is open
    return app


def _warm_in_background(live: LiveStores, threads: int) -> threading.Thread:
    """Stores.warm and the /ask names on the snapshot being served, in a thread: requests are
    answered meanwhile (the first ones may take a little longer). Its time is logged."""

    def warm() -> None:
        started = time.perf_counter()
        with contextlib.suppress(OSError, AttributeError):  # the threads it starts inherit it
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICENESS)
        try:
            with live.borrow() as stores:
                _warm_ask(stores)
                stores.warm(threads)
        except Exception as error:  # a query would meet the same problem and answer it; keep serving
            _log.warning("warm-up stopped: %s", _one_line(error))
        else:
            _log.info("warmed up in %.1f s", time.perf_counter() - started)

    thread = threading.Thread(target=warm, name="store-warm-up", daemon=True)
    thread.start()
    return thread


def openapi_document() -> dict[str, Any]:
    """The OpenAPI schema of the API (needs no stores: for docs and schema-driven tests)."""
    return _build_app(DEFAULT_THREADS, None, owned=False).openapi()


def _build_app(threads: int, live: LiveStores | None, *, owned: bool) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        warming = None
        if owned and live is not None:
            live.start()
            if getattr(app.state, "warm_threads", None):
                warming = _warm_in_background(live, app.state.warm_threads)
        try:
            yield
        finally:
            if warming is not None:
                warming.join(timeout=WARM_JOIN_SECONDS)
            if owned and live is not None:
                live.close()

    app = FastAPIOffline(
        title="vcf-agent",
        version=__version__,
        description="Read-only questions to the vcf-agent stores (LanceDB vectors, Kuzu graph).",
        lifespan=lifespan,
        responses=ERRORS,
        # no badge from an online validator: the page loads nothing from outside this server
        swagger_ui_parameters={"validatorUrl": None},
    )
    _add_error_handlers(app)
    _add_routes(app)
    add_operation_routes(app)
    app.state.live = live
    return app


async def current_stores(request: Request, response: Response) -> AsyncIterator[Stores]:
    """The snapshot answering this request (held until the request is done)."""
    live = getattr(request.app.state, "live", None)
    if live is None:
        raise StoreMissing("no stores are open in this server")
    with live.borrow() as stores:
        response.headers[BUILD_HEADER] = " ".join(stores.builds)
        yield stores


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
        stats = stores.stats()
        return {
            "status": "ok",
            "variants": stats.variants,
            "samples": stats.samples,
            "lancedb_built": stats.lancedb_built,
            "kuzu_built": stats.kuzu_built,
            "lancedb_build": stores.builds[0],
            "kuzu_build": stores.builds[1],
            "version": __version__,
        }


#: What each operation's endpoint answers (the result models of vcf_agent.query.results).
RESPONSES: dict[str, Any] = {
    "search": list[Hit],
    "similar": list[Hit],
    "variant": VariantRecord,
    "sample": SampleResult,
    "shared": SharedResult,
    "region": RegionResult,
    "stats": Stats,
    "list": list[dict[str, Any]],
}
MODEL_RESPONSES = ("search", "similar", "variant", "sample", "shared", "region", "stats")


def add_operation_routes(app: FastAPI, filters: type[Filters] = Filters) -> None:
    """One GET endpoint per operation, its query parameters the operation's parameters model
    (interfaces.operations, the fields of `filters` among them: the CLI's options, same names)."""
    for name, operation in OPERATIONS.items():
        model = parameters(name, filters=filters, cli=False)
        path = "/list/{what}" if name == "list" else f"/{name}"
        response = RESPONSES.get(name, AskResponse)
        app.get(path, response_model=response, summary=operation.summary)(_endpoint(name, model))


def _endpoint(name: str, model) -> Callable[..., Any]:
    def endpoint(stores: Stores, **given: Any) -> Any:
        params = model.checked(**given) if name == "list" else given["params"]
        result = params.run(stores)
        # result models go out as they are (FastAPI serializes them by their response model); the
        # listings and ask's answer (dataclasses holding results) as plain JSON values
        return result if name in MODEL_RESPONSES else to_jsonable(result)

    if name == "list":  # the listing is a path: /list/samples
        listing = model.model_fields["what"].annotation
        given = [Parameter("what", Parameter.KEYWORD_ONLY, annotation=Annotated[listing, PathPart()])]
    else:
        given = [Parameter("params", Parameter.KEYWORD_ONLY, annotation=Annotated[model, Query()])]
    stores = Parameter("stores", Parameter.POSITIONAL_OR_KEYWORD, annotation=StoresParam)
    endpoint.__signature__ = Signature([stores, *given])  # type: ignore[attr-defined]
    endpoint.__name__ = name
    return endpoint


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


def _warm_ask(stores: Stores) -> None:
    """The names /ask checks questions against (samples, genes, contigs, filters), read before the first question."""
    from vcf_agent.ask.intents import phrasing_vectors
    from vcf_agent.ask.planner import vocabulary

    vocabulary(stores)
    with contextlib.suppress(VcfAgentError):  # a store without a usable model plans by rules only
        phrasing_vectors(stores)  # the fallback planner's example phrasings, embedded once


def serve(
    results: Path | str = "results",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = DEFAULT_THREADS,
    workers: int = 1,
    model: str | Path | None = None,
    graph_handles: int = GRAPH_HANDLES,
    open_partitions: int = OPEN_PARTITIONS,
    log_level: str = "warning",
    header_timeout: float = HEADER_TIMEOUT,
) -> None:
    """Run the API with uvicorn until interrupted (stores opened before the port is bound).

    With `workers` > 1, that many processes share the port, each with its own read-only
    handles on the stores (Kuzu and LanceDB allow several reading processes): Python runs
    one thread at a time, so a second process is what puts a second core to work.
    """
    import uvicorn

    from vcf_agent.interfaces.startup import defer_rest_client

    defer_rest_client()
    options = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "backlog": 4096,
        "timeout_keep_alive": 30,
        # a GET carries its arguments in the URL: a variant id holds its alleles (up to 100,000
        # characters, three bytes each when percent-encoded), beyond h11's default of 16 KiB
        "h11_max_incomplete_event_size": MAX_REQUEST_LINE,
        "http": HeaderTimeoutProtocol,
    }
    os.environ[HEADER_TIMEOUT_VARIABLE] = str(header_timeout)  # read by the protocol, in each worker too
    app_options = {
        "threads": threads,
        "model": model,
        "graph_handles": graph_handles,
        "open_partitions": open_partitions,
    }
    # glibc's malloc arenas capped (vcf_agent.runtime.ALLOCATOR_ARENAS): with a thread pool they
    # fragment memory, and the server's RSS kept creeping up under load; workers inherit it
    setup_process(QUERY_THREADS)  # Lance's CPU pool too: one core per query, as Kuzu's
    if workers <= 1:
        uvicorn.run(create_app(results, **app_options), **options)
        return
    # Each worker opens the stores itself; the first that cannot says why in this file, and
    # exits with STARTUP_FAILURE, which stops uvicorn's supervisor; its line is then raised here.
    with tempfile.NamedTemporaryFile("r", prefix="vcf-agent-serve-", suffix=".txt") as failure:
        os.environ[WORKER_FAILURE] = failure.name
        os.environ[WORKER_OPTIONS] = json.dumps({"results": str(results), **app_options, "model": _text(model)})
        uvicorn.run(
            "vcf_agent.interfaces.server:app_from_environment",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            **options,
        )
        reason = failure.read().strip().splitlines()
    if reason:
        raise VcfAgentError(reason[0])


def app_from_environment() -> FastAPI:
    """The app of one worker process of `serve(workers=N)` (its options come through the environment)."""
    from vcf_agent.interfaces.startup import defer_rest_client

    defer_rest_client()
    setup_process(QUERY_THREADS)  # per process: the parent's allocator setting does not reach a spawned worker
    options = json.loads(os.environ[WORKER_OPTIONS])
    try:
        return create_app(options.pop("results"), **options)
    except VcfAgentError as error:
        with open(os.environ[WORKER_FAILURE], "a") as failure:
            failure.write(f"{error}\n")
        sys.exit(STARTUP_FAILURE)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ---------------------------------------------------------------- slow requests

#: Environment variable passing serve's header timeout to the protocol (in every worker).
HEADER_TIMEOUT_VARIABLE = "VCF_AGENT_HEADER_TIMEOUT"


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request line and headers take longer
    than the header timeout (uvicorn times out idle keep-alive connections only, so a client
    sending a request a byte at a time, or half of one, held a connection forever).

    The clock starts with the first byte of each request and stops when h11 has parsed its
    headers. A new connection that sends nothing is closed after the keep-alive timeout, as
    an idle one is between two requests (a busy client may connect well before it writes).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = float(os.environ.get(HEADER_TIMEOUT_VARIABLE, HEADER_TIMEOUT))
        self._header_timer: Any = None
        self._awaiting_headers = True
        self._request_started = False

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_clock(max(self.header_timeout, self.timeout_keep_alive))

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers and not self._request_started:
            self._request_started = True
            self._start_clock(self.header_timeout)
        super().data_received(data)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete
            self._awaiting_headers = False
            self._stop_clock()

    def on_response_complete(self) -> None:
        # the next request's clock starts with its first byte (until then uvicorn's keep-alive timeout runs)
        self._awaiting_headers, self._request_started = True, False
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        super().connection_lost(exc)

    def _start_clock(self, seconds: float) -> None:
        self._stop_clock()
        self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

    def _stop_clock(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        # A busy event loop may not have read yet what the client sent in time: the callback
        # scheduled twice runs after the loop's next poll has delivered the bytes waiting.
        self._header_timer = None
        self.loop.call_soon(self.loop.call_soon, self._close_without_headers)

    def _close_without_headers(self) -> None:
        if self._awaiting_headers and not self.transport.is_closing():
            _log.info("%s: closed, the request headers did not arrive within %g s", self.client, self.header_timeout)
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()
