"""A real HTTP endpoint on 127.0.0.1 that can misbehave on purpose.

Modes: ``ok``; ``slow`` (answers after ``delay`` s); ``hold`` (reads the request, never
answers until released); ``status`` (answers ``status``, with ``retry_after`` and
``location`` as its Retry-After and Location headers if set, and stores nothing);
``reset`` (reads the request and resets the connection); ``flaky`` (every
``fail_every``-th request gets 503 and stores nothing); ``drip`` (a status line, then a
header byte every second); ``drip_body`` (a 200 and its headers, then a body byte every
second). ``refused`` is a port where nothing listens, see `closed_port`.

In ``ok`` mode it answers as the collector does: 200 with ``{"accepted": n, "stored": n,
"duplicates": 0, "forgotten": 0, "rejected": [...]}``, where ``rejected`` names by index
each event that ``refuse`` (if set) refuses; those are not stored. ``answer`` replaces that
body with any bytes (an empty body, plain text: what another receiver of the wire format
may answer).

`EndpointProcess` runs one in a process of its own (``python tests/loopback.py MODE``), for
tests that count the threads and sockets of their own process: those are then the
client's alone.
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietServer(ThreadingHTTPServer):
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
        self.location: str | None = None
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
                    if endpoint.location is not None:
                        self.send_header("Location", endpoint.location)
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
                        {"accepted": kept, "stored": kept, "duplicates": 0, "forgotten": 0,
                         "rejected": rejected}
                    ).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
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


class EndpointProcess:
    """An `Endpoint` in ``mode``, in a child process; it stops when `close` closes its
    stdin."""

    def __init__(self, mode: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        assert self.url.startswith("http"), "the endpoint process did not start"

    def close(self) -> None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
        self._proc.stdout.close()

    def __enter__(self) -> EndpointProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drip_handshake() -> None:
    """``drip_handshake`` (in `EndpointProcess` only): a TCP server that answers a TLS
    ClientHello with the header of a 16 KiB handshake record, then a byte of it a second,
    until our stdin closes: a TLS handshake that never ends, though no read ever waits long.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"https://127.0.0.1:{listener.getsockname()[1]}/v1/events", flush=True)
    stop = threading.Event()

    def drip(connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)  # the ClientHello
                connection.sendall(b"\x16\x03\x03\x40\x00")  # a handshake record, 16 KiB
                while not stop.wait(1):
                    connection.sendall(b"\x00")
            except OSError:
                return

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    sys.stdin.read()
    stop.set()
    listener.close()


if __name__ == "__main__":
    if sys.argv[1] == "drip_handshake":
        _drip_handshake()
    else:
        served = Endpoint()
        served.mode = sys.argv[1]
        print(served.url, flush=True)
        sys.stdin.read()  # until the test closes our stdin
        served.close()
