"""The collector's HTTP side: ``POST /v1/events``, ``GET /healthz``, the report and the
dashboard.

Bad requests get a precise answer and store nothing: 421 for a Host it does not serve, 401
without the token it needs (see `access`), 415 for a wrong content type or encoding, 413
for a body over the limit (compressed or not: a gzip bomb is cut off while it inflates) or
holding too many JSON values, 408 for a body that does not arrive in time, 400 with
``{"error": ..., "field": ...}`` for a body that is not JSON or not a batch. Within a batch
each event stands alone: the valid ones are stored, in one transaction, and the answer
(200) names each refused one::

    {"accepted": 4, "stored": 2, "duplicates": 1, "forgotten": 1,
     "rejected": [{"index": 1, "field": "outcome", "error": "must be one of [...]"}]}

``accepted`` counts the records the collector took: events it now has (``stored`` new ones,
and ``duplicates`` it had already: resent events are acknowledged and not stored twice; an
event of an install forgotten in the last day is acknowledged and not stored either, and
counted there, see `forget.guard`),
and deletion requests it applied (``forgotten``: each leaves nothing of its install in the
collector, after the batch's events are stored; see `forget`). A resent deletion request
is applied, and answered, again.

The event loop only moves bytes: a request's token is checked from its headers, before its
body is read; the body is inflated, counted, parsed and checked in a worker thread
(`body.read`, `validation.check_batch`), at most `PARSERS` at once, so a hostile body
costs a thread a bounded time and never stalls ``/healthz`` or the other requests.

One writer per process stores: batches that arrive while a transaction runs wait and go
together into the next one (group commit), so concurrent senders share a commit instead of
queueing for one each; and a transaction about to start waits briefly for the batches
still being checked (`GATHER`). Each request is answered only once its events are
committed; if that transaction fails, every request in it gets 503 and may be resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any, Final

import anyio
import anyio.to_thread
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..events import DELETION_EVENT
from ..providers import Provider
from ..sinks.base import Eraser
from . import storage
from .access import Access
from .body import MAX_BODY_BYTES, BodyError, read
from .retention import EVERY
from .server import REQUEST_TIMEOUT
from .validation import Catalog, InvalidBatch, check_batch

log = logging.getLogger("cli_telemetry.collector")

PARSERS: Final = 1
"""Bodies read and checked at once. The work holds the GIL, so more threads would not do
it sooner; with one, the event loop competes with one thread for the GIL, and the heap
holds one body's objects at most, which keeps the garbage collector's full passes (which
hold the GIL too) short. While rounds of 4 of the largest batches were refused, /healthz
answered in 50 ms (p95) with four at once, 7 ms with one, here."""

MAX_GROUP_EVENTS: Final = 20_000
"""A transaction takes waiting batches until it holds this many events (a larger batch
still goes whole, alone)."""

GATHER: Final = 0.02
"""Seconds a transaction waits, at most, for the batches that are being read and checked
when it is about to start (none when no other request is that far). What a commit costs
is mostly the pages it writes, and each event dirties a page of each index wherever its
key lands (and of ``daily_installs``): a page that several batches' events share is
written once for all of them. In `bench/collector.py` (4 clients), SQLite's transactions
held 2 batches where they now hold 4, and the server spent 96 µs of CPU per event instead
of 110 (5 alternating runs each, load average 5 to 10, here); the events stored a second
hardly changed (9,200 against 8,900), as the writer now also waits. Checking a batch of
100 events takes milliseconds; a large batch's check may outlast the wait, which then
ends."""


class Writer:
    """The process's one writer: `store` queues a batch, `run` commits what is queued.
    `checking` wraps the reading and checking of a body, so that `run` knows which batches
    are on their way (see `GATHER`); between its end and `store` queueing the batch
    nothing may be awaited, so a batch is always either counted there or queued."""

    def __init__(
        self, engine: Engine, forward_to: Sequence[str] = (), erase_at: Sequence[str] = ()
    ) -> None:
        self.engine = engine
        self.forward_to = list(forward_to)
        self.erase_at = list(erase_at)
        self.queue: asyncio.Queue[tuple[list[dict[str, Any]], asyncio.Future[int]]]
        self.queue = asyncio.Queue()
        self.being_checked = 0
        self.changed = asyncio.Event()
        """Set when a batch is queued or a check ends: what `run` waits for."""

    @contextlib.contextmanager
    def checking(self) -> Iterator[None]:
        """Around a request's reading and checking."""
        self.being_checked += 1
        try:
            yield
        finally:
            self.being_checked -= 1
            self.changed.set()

    async def store(self, batch: list[dict[str, Any]]) -> int:
        """How many events of ``batch`` were new, once they are committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self.queue.put((batch, future))
        self.changed.set()
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self.queue.get()]
            size = len(group[0][0])
            deadline = loop.time() + GATHER
            while True:
                while size < MAX_GROUP_EVENTS and not self.queue.empty():
                    group.append(self.queue.get_nowait())
                    size += len(group[-1][0])
                if size >= MAX_GROUP_EVENTS or not self.being_checked or loop.time() >= deadline:
                    break
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(deadline):
                        await self.changed.wait()
            try:
                stored = await run_in_threadpool(
                    _store,
                    self.engine,
                    [batch for batch, _ in group],
                    self.forward_to,
                    self.erase_at,
                )
            except Exception as exc:  # the database failed: so does every request of the group
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), count in zip(group, stored, strict=True):
                if not future.done():  # not cancelled by a client that went away
                    future.set_result(count)


def _store(
    engine: Engine,
    batches: Sequence[list[dict[str, Any]]],
    forward_to: Sequence[str],
    erase_at: Sequence[str],
) -> list[int]:
    """`storage.store`, then the batches emptied, here in the worker thread: freeing
    10,000 events takes tens of milliseconds, which would otherwise fall on the event loop
    when its last reference to them went."""
    try:
        return storage.store(engine, batches, forward_to, erase_at)
    finally:
        for batch in batches:
            batch.clear()


def error(
    status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


WRITE_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="cli-telemetry"'}
READ_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="cli-telemetry", charset="UTF-8"'}


class HostCheck:
    """Answers 421 to a request whose Host is not one the collector serves
    (`Access.host_allowed`), before any route sees it; ``/healthz`` answers any."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            host = Headers(scope=scope).get("host")
            if not self.access.host_allowed(host):
                shown = (host or "")[:100]
                response = error(
                    421,
                    f"this collector does not serve the host {shown!r}: start it with"
                    " --allowed-host NAME for each name it is reached by",
                    "Host",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    engine: Engine,
    tokens: dict[str, str] | None = None,
    providers: Sequence[Provider] = (),
    *,
    erasers: Sequence[Eraser] = (),
    why_no_eraser: Mapping[str, str] | None = None,
    forward_backoff: float = 30.0,
    catalogs: dict[str, Catalog] | None = None,
    access: Access | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
    retain: float | None = None,
    prune_every: float = EVERY,
) -> Starlette:
    """The app over ``engine``. ``access`` says who may write and read and which Host names it
    answers (`Access`); ``tokens`` (tool -> write token) is a shorthand for
    ``Access.build(tokens)``. What is stored is forwarded to each of ``providers`` (see
    `forward`), and each deletion request it gets is passed on to each of ``erasers`` (see
    `erasure`; the app closes them when it stops); a provider without one is named once at
    start, with its reason from ``why_no_eraser`` if it has one there. A tool with a catalog
    in ``catalogs`` (``--schema``) has its custom events checked against it. A body must
    arrive within ``request_timeout`` seconds of its request's head (408 otherwise). With
    ``retain``, events older than that many seconds are pruned at start and every
    ``prune_every`` seconds (see `retention`); without, they are kept (the round still lets
    go of the forgotten installs whose refusal is over, `forget.let_go`)."""
    access = access or Access.build(tokens)
    writer = Writer(
        engine, [provider.name for provider in providers], [eraser.name for eraser in erasers]
    )
    parsers: list[anyio.CapacityLimiter] = []  # made in the event loop, on first use

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from .erasure import ErasureForwarder, waiting
        from .forward import Forwarder
        from .retention import Pruner

        task = asyncio.create_task(writer.run())
        erasing = {eraser.name for eraser in erasers}
        for provider in providers:
            if provider.name not in erasing:
                why = (why_no_eraser or {}).get(
                    provider.name, "it has no eraser (a client of its deletion API)"
                )
                log.warning("deletion requests are not forwarded to %s: %s", provider.name, why)
        for name, owed in sorted((await run_in_threadpool(waiting, engine)).items()):
            if name not in erasing:
                log.warning("%d deletion requests wait for %s, which has no eraser", owed, name)
        workers: list[Forwarder | ErasureForwarder | Pruner] = []
        if providers:
            workers.append(Forwarder(engine, providers, backoff_base=forward_backoff))
        if erasers:
            workers.append(ErasureForwarder(engine, erasers, backoff_base=forward_backoff))
        workers.append(Pruner(engine, retain, every=prune_every))
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for worker in workers:
                await run_in_threadpool(worker.stop)

    def judge(
        raw: bytes, gzipped: bool, tools: frozenset[str]
    ) -> JSONResponse | tuple[list[dict[str, Any]], str]:
        """In a worker thread: the body read (`body.read`), its tools checked against the
        request's token, then its events: the valid events and the refused ones (as the
        answer's JSON), or the answer that refuses the body. Nothing is raised: an
        exception would carry the parsed body, in its traceback, to the event loop, which
        would then spend the time to free it."""
        try:
            document = read(raw, gzipped)
            events = document.get("batch")
            if isinstance(events, list):  # every event counts, valid or not
                named = (event.get("tool") for event in events if isinstance(event, dict))
                refused = access.refused_tool(named, tools)
                if refused is not None:
                    message = f"events of {refused} need its Bearer token"
                    return error(401, message, "Authorization", WRITE_CHALLENGE)
            batch, rejected = check_batch(document, catalogs)
        except BodyError as exc:
            return error(exc.status, exc.message)
        except InvalidBatch as exc:
            return error(400, exc.message, exc.field)
        return batch, json.dumps([rejection.to_json() for rejection in rejected])

    async def ingest(request: Request) -> Response:
        tools = access.writer(request.headers.get("authorization"))
        if tools is None:  # before the body is read
            message = (
                "a write token is needed (Authorization: Bearer <token>)"
                if "authorization" not in request.headers
                else "the token is no tool's write token"
            )
            return error(401, message, "Authorization", WRITE_CHALLENGE)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return error(415, "Content-Type must be application/json")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return error(415, "Content-Encoding must be gzip or absent")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        raw = bytearray()
        try:
            async with asyncio.timeout(request_timeout):
                async for chunk in request.stream():
                    raw += chunk
                    if len(raw) > MAX_BODY_BYTES:
                        return error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        except TimeoutError:
            return error(
                408,
                f"the body did not arrive within {request_timeout:g} s",
                headers={"Connection": "close"},
            )
        if not parsers:
            parsers.append(anyio.CapacityLimiter(PARSERS))
        with writer.checking():  # ends before anything else is awaited: see `Writer`
            judged = await anyio.to_thread.run_sync(
                judge, bytes(raw), encoding == "gzip", tools, limiter=parsers[0]
            )
        if isinstance(judged, Response):
            return judged
        batch, rejected = judged
        accepted = len(batch)  # the writer empties the list once it is stored
        forgotten = sum(1 for event in batch if event["event"] == DELETION_EVENT)
        stored = 0
        if batch:
            try:
                stored = await writer.store(batch)
            except Exception:
                response = error(503, "the events could not be stored; send them again later")
                response.headers["Retry-After"] = "5"
                return response
        counts = {
            "accepted": accepted,
            "stored": stored,
            "duplicates": accepted - forgotten - stored,
            "forgotten": forgotten,
        }
        text = json.dumps(counts)[:-1] + f', "rejected": {rejected}}}'
        return Response(text, media_type="application/json")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def report_for(request: Request) -> dict[str, Any] | JSONResponse:
        from .report import build
        from .window import DEFAULT_SINCE, iso_ago, parse_age

        try:
            seconds = parse_age(request.query_params.get("since", DEFAULT_SINCE))
        except ValueError as exc:
            return error(400, str(exc), "since")
        return build(engine, since=iso_ago(seconds), tool=request.query_params.get("tool") or None)

    def refused_reader(request: Request) -> JSONResponse | None:
        """401, asking for the read token, unless the request carries it (`Access`)."""
        if access.may_read(request.headers.get("authorization")):
            return None
        message = (
            "the read token is needed: Authorization: Bearer <token>, or basic auth with"
            " the token as the password"
            if access.read_token is not None
            else "this collector has no read token (CLI_TELEMETRY_COLLECTOR_READ_TOKEN):"
            " nobody can read its report over HTTP"
        )
        return error(401, message, "Authorization", READ_CHALLENGE)

    async def api_report(request: Request) -> JSONResponse:
        refused = refused_reader(request)
        if refused is not None:
            return refused
        result = await run_in_threadpool(report_for, request)
        return result if isinstance(result, JSONResponse) else JSONResponse(result)

    async def dashboard(request: Request) -> Response:
        from .dashboard import page

        refused = refused_reader(request)
        if refused is not None:
            return refused
        result = await run_in_threadpool(report_for, request)
        return result if isinstance(result, JSONResponse) else HTMLResponse(page(result))

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/v1/events", ingest, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/report", api_report, methods=["GET"]),
            Route("/", dashboard, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
        ],
        middleware=[Middleware(HostCheck, access=access)],
    )
