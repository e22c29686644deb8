"""A base for fake analytics services on 127.0.0.1: real HTTP, checked as the service would.

A provider's fake subclasses `FakeService` and implements `check`, which looks at one
request exactly as the real service does (method, path, auth, content type and encoding,
body schema) and either accepts it, returning the events it would store, or refuses it with
the status the real service answers. Tests can force the next answers (429 with a
Retry-After, 503, 400, 401) to see retries and permanent failures, or make the service hold
every request without ever answering (`hold`), to see a client keep its deadline.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, NoReturn, Self

from loopback import QuietServer


class Request:
    """One request as it arrived: ``body`` is the raw bytes, ``data`` the decompressed."""

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        encoding = headers.get("Content-Encoding", "").lower()
        if encoding == "gzip":
            self.data = gzip.decompress(body)
        elif encoding == "deflate":
            self.data = zlib.decompress(body)
        else:
            self.data = body

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class Refusal(Exception):
    """Raised by `check`: the service answers ``status`` with ``body``."""

    def __init__(self, status: int, body: bytes | str = b"") -> None:
        super().__init__(status)
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body


def invalid(what: str) -> NoReturn:
    """Refuse with 400, naming the field at fault."""
    raise Refusal(400, f"invalid {what}")


def rfc3339_seconds(value: object, what: str) -> float:
    """``value`` as seconds since the epoch if it is an RFC 3339 time with an offset, as
    PostHog, Segment and RudderStack require (PostHog's v1 parser rejects a naive time);
    otherwise a 400 naming ``what``."""
    if not isinstance(value, str):
        invalid(what)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        invalid(what)
    if parsed.tzinfo is None:
        invalid(what)
    return parsed.timestamp()


class FakeService:
    """Subclasses implement `check(request) -> list of stored items` or raise `Refusal`."""

    success_body: bytes = b"{}"
    success_content_type = "application/json"

    def __init__(self) -> None:
        self.requests: list[Request] = []  # everything that arrived
        self.stored: list[dict[str, Any]] = []  # what the service would keep
        self.refused: list[tuple[Request, int]] = []
        self.forced: list[tuple[int, str | None]] = []  # next answers: (status, Retry-After)
        self._special: dict[int, tuple[int, bytes]] = {}  # other success answers
        self._lock = threading.Lock()
        self._holding = False
        self._released = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                path, _, query = self.path.partition("?")
                request = Request(
                    self.command, path, query, dict(self.headers), self.rfile.read(length)
                )
                if service._holding:  # read, never answered: until the service closes
                    service._released.wait(60)
                    self.close_connection = True
                    return
                status, body, extra = service._answer(request)
                self.send_response(status)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", service.success_content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle
            do_DELETE = _handle

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def check(self, request: Request) -> list[dict[str, Any]]:
        raise NotImplementedError

    def answer_with(self, request: Request, body: bytes, status: int = 200) -> None:
        """From `check`: answer ``request``'s success with ``body`` (and ``status``) instead
        of `success_body` (what a service says when it stored only part of a batch, or a
        ``202`` of a deletion it queued)."""
        with self._lock:
            self._special[id(request)] = (status, body)

    def hold(self) -> None:
        """From now on, read each request and never answer it (until `close`)."""
        self._holding = True

    def force(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (storing nothing)."""
        with self._lock:
            self.forced.extend([(status, retry_after)] * times)

    def _answer(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            forced = self.forced.pop(0) if self.forced else None
        if forced is not None:
            status, retry_after = forced
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            with self._lock:
                self.refused.append((request, status))
            return status, b'{"error":"forced"}', headers
        try:
            items = self.check(request)
        except Refusal as refusal:
            with self._lock:
                self.refused.append((request, refusal.status))
                self._special.pop(id(request), None)
            return refusal.status, refusal.body, {}
        with self._lock:
            self.stored.extend(items)
            status, body = self._special.pop(id(request), (200, self.success_body))
        return status, body, {}

    def wait_for(self, condition: Callable[[], bool], timeout: float = 20.0) -> bool:
        from conftest import poll

        return poll(condition, timeout)

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sample_events() -> list[dict[str, Any]]:
    """Events as the library writes them (`cli_telemetry.events.Event`): a command, a
    failed command, a custom event and an identify event (anonymous traits)."""
    common = {
        "schema_version": 1,
        "tool": "acme",
        "tool_version": "1.4.0",
        "install_id": "3f1c2a9be07d4c55a1e2b3c4d5e6f708",
        "os": "linux",
        "os_version": "6.1",
        "arch": "x86_64",
        "python_version": "3.11.7",
        "ci": None,
        "interactive": True,
    }
    return [
        {
            **common,
            "event_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a01",
            "event": "command",
            "timestamp": "2026-11-23T10:00:01.250Z",
            "command": "acme deploy",
            "flags": ["--force", "--format"],
            "values": {"--force": True, "--format": "json"},
            "exit_code": 0,
            "outcome": "success",
            "error_type": None,
            "duration_ms": 125,
        },
        {
            **common,
            "event_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a02",
            "event": "command",
            "timestamp": "2026-11-23T10:00:02.500Z",
            "command": "acme deploy",
            "flags": [],
            "values": {},
            "exit_code": 1,
            "outcome": "error",
            "error_type": "ConnectionError",
            "duration_ms": 3012,
        },
        {
            **common,
            "event_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a03",
            "event": "template_used",
            "timestamp": "2026-11-23T10:00:03.750Z",
            "command": "acme",
            "properties": {"template": "basic", "count": 3},
        },
        {
            **common,
            "event_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a04",
            "event": "identify",
            "timestamp": "2026-11-23T10:00:04.000Z",
            "command": "acme",
            "properties": {"plan": "pro"},
        },
    ]
