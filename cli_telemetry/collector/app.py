"""The collector's HTTP side: ``POST /v1/events`` and ``GET /healthz``.

Bad requests get a precise answer and store nothing: 415 for a wrong content type or
encoding, 413 for a body over the limit (compressed or not: a gzip bomb is cut off while it
inflates), 400 with ``{"error": ..., "field": ...}`` for malformed JSON or an invalid event.
A valid batch is stored whole, in one transaction; resent events are acknowledged and not
stored twice.
"""

from __future__ import annotations

import hmac
import json
import zlib
from typing import Any, Final

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from . import storage
from .validation import InvalidBatch, check_batch

MAX_BODY_BYTES: Final = 8 * 1024 * 1024
"""Raw and inflated alike: 10,000 events of a few hundred bytes each fit comfortably."""


def error(status: int, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, str] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status)


def create_app(engine: Engine, tokens: dict[str, str] | None = None) -> Starlette:
    """The app over ``engine``. ``tokens`` maps a tool to its shared secret: a batch with
    that tool's events must then carry ``Authorization: Bearer <secret>`` (401 otherwise).
    Tools without a token are accepted as they are (tokens are off by default)."""
    tokens = dict(tokens or {})

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
            batch = check_batch(document)
        except InvalidBatch as exc:
            return error(400, exc.message, exc.field)
        presented = request.headers.get("authorization", "")
        for tool in sorted({event["tool"] for event in batch} & tokens.keys()):
            if not hmac.compare_digest(presented.encode(), f"Bearer {tokens[tool]}".encode()):
                return error(401, f"events of {tool} need its Bearer token", "Authorization")
        stored = await run_in_threadpool(storage.store, engine, batch)
        return JSONResponse({"stored": stored, "duplicates": len(batch) - stored})

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
        routes=[
            Route("/v1/events", ingest, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/api/report", api_report, methods=["GET"]),
            Route("/", dashboard, methods=["GET"]),
            Route("/favicon.ico", favicon, methods=["GET"]),
        ]
    )
