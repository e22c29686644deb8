"""The project's own wire format over HTTP, with urllib3: the first and default sink.

``POST <endpoint>`` with ``Content-Type: application/json``, ``Content-Encoding: gzip`` and
the body ``{"batch": [event, ...], "sent_at": "<UTC ISO 8601>"}``; any 2xx means stored.

Timeouts are strict because a slow or hostile endpoint must cost the background uploader a
bounded time and nothing more: 2 s to connect, 5 s to read, and never past the run's
deadline. urllib3's own retries and redirects are off: the uploader decides what to retry,
across runs, with backoff. A response body is never read.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import urllib3

from .. import __version__
from .base import DELIVERED, Delivery

CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0
USER_AGENT: Final = f"cli-telemetry/{__version__}"


class HttpSink:
    """POSTs batches to ``endpoint`` in the wire format above."""

    name = "http"

    def __init__(self, endpoint: str, *, token: str | None = None, gzip_body: bool = True) -> None:
        self.gzip_body = gzip_body
        # urllib3 ignores user:password@ in a URL: send it as basic auth, and keep it out of
        # the URL the pool logs and connects with.
        self._auth: dict[str, str] = {}
        try:
            url = urllib3.util.parse_url(endpoint)
        except urllib3.exceptions.LocationParseError:
            url = None
        if url is not None and url.auth:
            self._auth = urllib3.util.make_headers(basic_auth=url.auth)
            endpoint = url._replace(auth=None).url
        if token:  # the collector's per-tool shared secret
            self._auth = {"Authorization": f"Bearer {token}"}
        self.endpoint = endpoint
        self._pool = urllib3.PoolManager(
            retries=False,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            maxsize=1,
        )

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Delivery("retry", "deadline")
        sent_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        body = json.dumps(
            {"batch": list(events), "sent_at": sent_at.replace("+00:00", "Z")},
            separators=(",", ":"),
        ).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **self._auth}
        if self.gzip_body:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        timeout = urllib3.Timeout(
            connect=min(CONNECT_TIMEOUT, remaining),
            read=min(READ_TIMEOUT, remaining),
            total=remaining,
        )
        try:
            response = self._pool.request(
                "POST",
                self.endpoint,
                body=body,
                headers=headers,
                timeout=timeout,
                preload_content=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            return Delivery("retry", _error_kind(exc))
        # The status line is all we need. The body is never read: a server that drips it a
        # byte at a time could otherwise hold us for as long as it likes. Closing drops the
        # connection (a new one per batch is cheap next to that risk).
        status, retry_after = response.status, response.headers.get("Retry-After")
        response.close()
        return classify(status, retry_after)

    def close(self) -> None:
        self._pool.clear()


def classify(status: int, retry_after: str | None) -> Delivery:
    """2xx delivered; 408, 429 and 5xx retry (honouring Retry-After); 3xx retry (the
    endpoint is misconfigured, the events are kept); other 4xx rejected for good."""
    if 200 <= status < 300:
        return DELIVERED
    if status in (408, 429) or status >= 500 or 300 <= status < 400:
        return Delivery("retry", f"http_{status}", parse_retry_after(retry_after))
    return Delivery("rejected", f"http_{status}")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent
    or unreadable. Capping is the uploader's business."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_kind(exc: Exception) -> str:
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2, so it goes first.
    if isinstance(exc, urllib3.exceptions.NewConnectionError):
        return "connection"
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, urllib3.exceptions.ProtocolError):
        return "protocol"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "tls"
    if isinstance(exc, urllib3.exceptions.LocationValueError):
        return "bad_endpoint"
    return "http_error"
