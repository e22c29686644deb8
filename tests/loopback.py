"""A real HTTP endpoint on 127.0.0.1 that can misbehave on purpose.

Modes: ``ok``; ``slow`` (answers after ``delay`` s); ``hold`` (reads the request, never
answers until released); ``status`` (answers ``status``, with ``retry_after`` if set, and
stores nothing); ``reset`` (reads the request and resets the connection); ``flaky`` (every
``fail_every``-th request gets 503 and stores nothing); ``drip`` (a status line, then a
header byte every second); ``drip_body`` (a 200 and its headers, then a body byte every
second). ``refused`` is a port where nothing listens, see `closed_port`.

In ``ok`` mode it answers as the collector does: 200 with ``{"accepted": n, "stored": n,
"duplicates": 0, "rejected": [...]}``, where ``rejected`` names by index each event that
``refuse`` (if set) refuses; those are not stored. ``answer`` replaces that body with any
bytes (an empty body, plain text: what another receiver of the wire format may answer).
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away before its answer (a sender that timed out, which some
        tests make happen) is no error of the server's; anything else is printed."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Endpoint:
    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.status = 200
        self.retry_after: str | None = None
        self.fail_every = 3
        self.requests: list[dict[str, Any]] = []  # headers and decoded body of stored batches
        self.seen = 0  # requests that arrived, stored or not
        self.holding = 0  # connections held open right now
        self.release = threading.Event()
        self.refuse: Callable[[dict[str, Any]], bool] | None = None
        self.answer: bytes | None = None
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint._lock:
                    endpoint.seen += 1
                    number = endpoint.seen
                mode = endpoint.mode
                if mode == "hold":
                    with endpoint._lock:
                        endpoint.holding += 1
                    endpoint.release.wait(60)
                    with endpoint._lock:
                        endpoint.holding -= 1
                    return
                if mode == "drip":  # a status line, then a header byte every second
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    while not endpoint.release.wait(1):
                        try:
                            self.wfile.write(b"X")
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                if mode == "drip_body":  # a 200 and its headers, then a body byte a second
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    while not endpoint.release.wait(1):
                        try:
                            self.wfile.write(b" ")
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                if mode == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    return
                if mode == "slow":
                    endpoint.release.wait(endpoint.delay)
                if mode == "status" or (mode == "flaky" and number % endpoint.fail_every == 0):
                    self.send_response(endpoint.status if mode == "status" else 503)
                    if endpoint.retry_after is not None:
                        self.send_header("Retry-After", endpoint.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                document = json.loads(body)
                batch = document["batch"]
                refused = [i for i, e in enumerate(batch) if endpoint.refuse and endpoint.refuse(e)]
                document["batch"] = [e for i, e in enumerate(batch) if i not in refused]
                with endpoint._lock:
                    endpoint.requests.append(
                        {"headers": dict(self.headers), "body": document, "path": self.path}
                    )
                kept = len(batch) - len(refused)
                answer = endpoint.answer
                if answer is None:
                    rejected = [{"index": i, "field": "event", "error": "refused"} for i in refused]
                    answer = json.dumps(
                        {"accepted": kept, "stored": kept, "duplicates": 0, "rejected": rejected}
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for request in self.requests for event in request["body"]["batch"]]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


def closed_port() -> str:
    """The URL of a loopback port that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/events"
