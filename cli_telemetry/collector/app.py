"""The collector's HTTP side: ``POST /v1/events`` and ``GET /healthz``.

Bad requests get a precise answer and store nothing: 415 for a wrong content type or
encoding, 413 for a body over the limit (compressed or not: a gzip bomb is cut off while it
inflates), 400 with ``{"error": ..., "field": ...}`` for a body that is not JSON or not a
batch. Within a batch each event stands alone: the valid ones are stored, in one
transaction, and the answer (200) names each refused one::

    {"accepted": 3, "stored": 2, "duplicates": 1,
     "rejected": [{"index": 1, "field": "outcome", "error": "must be one of [...]"}]}

``accepted`` counts the events the collector now has (``stored`` new ones, and
``duplicates`` it had already: resent events are acknowledged and not stored twice).

One writer per process stores: batches that arrive while a transaction runs wait and go
together into the next one (group commit), so concurrent senders share a commit instead of
queueing for one each. Each request is answered only once its events are committed; if that
transaction fails, every request in it gets 503 and may be resent.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..providers import Provider
from . import storage
from .validation import Catalog, InvalidBatch, check_batch

MAX_BODY_BYTES: Final = 8 * 1024 * 1024
"""Raw and inflated alike: 10,000 events of a few hundred bytes each fit comfortably."""


MAX_GROUP_EVENTS: Final = 20_000
"""A transaction takes waiting batches until it holds this many events (a larger batch
still goes whole, alone)."""


class Writer:
    """The process's one writer: `store` queues a batch, `run` commits what is queued."""

    def __init__(self, engine: Engine, forward_to: Sequence[str] = ()) -> None:
        self.engine = engine
        self.forward_to = list(forward_to)
        self.queue: asyncio.Queue[tuple[list[dict[str, Any]], asyncio.Future[int]]]
        self.queue = asyncio.Queue()

    async def store(self, batch: list[dict[str, Any]]) -> int:
        """How many events of ``batch`` were new, once they are committed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self.queue.put((batch, future))
        return await future

    async def run(self) -> None:
        while True:
            group = [await self.queue.get()]
            size = len(group[0][0])
            while size < MAX_GROUP_EVENTS and not self.queue.empty():
                group.append(self.queue.get_nowait())
                size += len(group[-1][0])
            try:
                stored = await run_in_threadpool(
                    storage.store, self.engine, [batch for batch, _ in group], self.forward_to
                )
            except Exception as exc:  # the database failed: so does every request of the group
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), count in zip(group, stored, strict=True):
                if not future.done():  # not cancelled by a client that went away
                    future.set_result(count)


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def create_app(
    engine: Engine,
    tokens: dict[str, str] | None = None,
    providers: Sequence[Provider] = (),
    *,
    forward_backoff: float = 30.0,
    catalogs: dict[str, Catalog] | None = None,
) -> Starlette:
    """The app over ``engine``. ``tokens`` maps a tool to its shared secret: a batch with
    that tool's events must then carry ``Authorization: Bearer <secret>`` (401 otherwise).
    Tools without a token are accepted as they are (tokens are off by default). What is
    stored is forwarded to each of ``providers`` (see `forward`). A tool with a catalog
    in ``catalogs`` (``--schema``) has its custom events checked against it."""
    tokens = dict(tokens or {})
    writer = Writer(engine, [provider.name for provider in providers])

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(writer.run())
        forwarder = None
        if providers:
            from .forward import Forwarder

            forwarder = Forwarder(engine, providers, backoff_base=forward_backoff)
            forwarder.start()
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if forwarder is not None:
                await run_in_threadpool(forwarder.stop)

    async def ingest(request: Request) -> JSONResponse:
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
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                return error(413, f"the body is over {MAX_BODY_BYTES} bytes")
        body = bytes(raw)
        if encoding == "gzip":
            inflater = zlib.decompressobj(wbits=31)
            try:
                body = inflater.decompress(body, MAX_BODY_BYTES + 1)
            except zlib.error:
                return error(400, "the body is not valid gzip")
            if len(body) > MAX_BODY_BYTES or inflater.unconsumed_tail:
                return error(413, f"the inflated body is over {MAX_BODY_BYTES} bytes")
            if not inflater.eof:
                return error(400, "the gzip body is truncated")
            if inflater.unused_data:
                return error(400, "there is data after the gzip body")
        try:
            document = json.loads(body.decode("utf-8"))  # strictly UTF-8, as JSON on the wire is
        except UnicodeDecodeError:
            return error(400, "the body is not UTF-8")
        except (ValueError, RecursionError) as exc:
            return error(400, f"the body is not JSON: {str(exc)[:200]}")
        try:
            batch, rejected = check_batch(document, catalogs)
        except InvalidBatch as exc:
            return error(400, exc.message, exc.field)
        presented = request.headers.get("authorization", "")
        named = {e.get("tool") for e in document["batch"] if isinstance(e, dict)}  # valid or not
        for tool in sorted(tokens.keys() & named):
            if not hmac.compare_digest(presented.encode(), f"Bearer {tokens[tool]}".encode()):
                return error(401, f"events of {tool} need its Bearer token", "Authorization")
        stored = 0
        if batch:
            try:
                stored = await writer.store(batch)
            except Exception:
                response = error(503, "the events could not be stored; send them again later")
                response.headers["Retry-After"] = "5"
                return response
        return JSONResponse(
            {
                "accepted": len(batch),
                "stored": stored,
                "duplicates": len(batch) - stored,
                "rejected": [rejection.to_json() for rejection in rejected],
            }
        )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    def report_for(request: Request) -> dict[str, Any] | JSONResponse:
        from .report import build, iso_ago, parse_age

        try:
            seconds = parse_age(request.query_params.get("since", "30d"))
        except ValueError as exc:
            return error(400, str(exc), "since")
        return build(engine, since=iso_ago(seconds), tool=request.query_params.get("tool") or None)

    async def api_report(request: Request) -> JSONResponse:
        result = await run_in_threadpool(report_for, request)
        return result if isinstance(result, JSONResponse) else JSONResponse(result)

    async def dashboard(request: Request) -> Response:
        from .dashboard import page

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
    )
