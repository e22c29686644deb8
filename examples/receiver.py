"""A minimal receiver for cli-telemetry's wire format, with the standard library only.

    python examples/receiver.py [--port 8787]

``POST /v1/events`` with ``Content-Type: application/json`` (optionally ``Content-Encoding:
gzip``) and the body ``{"batch": [event, ...], "sent_at": "..."}``; it answers 200 and
prints one line per event. A real receiver should de-duplicate on ``event_id`` (a batch is
resent when an answer is lost) and validate events; the project's collector does both.

With ``RECEIVER_WEBHOOK_SECRET`` set, it is the receiving end of a signed webhook
(``providers.Webhook(url, secret=...)``): a request whose ``X-CLI-Telemetry-Timestamp`` and
``X-CLI-Telemetry-Signature`` do not sign its raw body with that secret, or are more than
five minutes off, is answered 401 (only then is cli_telemetry imported, for
`verify_signature`, which needs nothing beyond the standard library).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Event = dict[str, Any]


def make_server(
    port: int, on_event: Callable[[Event], None], secret: str | None = None
) -> ThreadingHTTPServer:
    verify = _verifier(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if verify and not verify(body, self.headers):
                self.send_error(401, "missing, wrong or stale signature")
                return
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                batch = json.loads(body)["batch"]
            except (ValueError, KeyError, TypeError):
                self.send_error(400, 'expected {"batch": [...], "sent_at": ...}')
                return
            for event in batch:
                on_event(event)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def _verifier(secret: str | None) -> Callable[[bytes, Any], bool] | None:
    """A check of a request's signature headers against its raw body, if there is a secret."""
    if not secret:
        return None
    from cli_telemetry.webhook_signature import (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        verify_signature,
    )

    def verify(body: bytes, headers: Any) -> bool:
        timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
        return verify_signature(secret, timestamp, body, signature)

    return verify


def describe(event: Event) -> str:
    if event.get("event") == "command":
        command = " ".join([event["command"], *event.get("flags", [])])
        return f"{command} -> {event['outcome']} ({event['duration_ms']} ms)"
    return f"{event['command']}: {event['event']} {json.dumps(event.get('properties', {}))}"


def start_in_background(
    port: int, on_event: Callable[[Event], None], secret: str | None = None
) -> ThreadingHTTPServer:
    server = make_server(port, on_event, secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8787)
    args = parser.parse_args()
    secret = os.environ.get("RECEIVER_WEBHOOK_SECRET") or None
    server = make_server(
        args.port, lambda event: print("received:", describe(event), flush=True), secret
    )
    signed = " (signed requests only)" if secret else ""
    print(f"listening on http://127.0.0.1:{args.port}/v1/events{signed}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
