"""The project's own wire format over HTTP, with urllib3: the first and default sink.

``POST <endpoint>`` with ``Content-Type: application/json``, ``Content-Encoding: gzip`` and
the body ``{"batch": [event, ...], "sent_at": "<UTC ISO 8601>"}``. A 2xx means stored, but
for the events its answer names as refused for good: the collector answers
``{"accepted": n, ..., "rejected": [{"index": i, "field": ..., "error": ...}, ...]}``, where
``index`` is an event's position in the batch (see `refused_indexes`). Any other 2xx (an
empty body, plain text, JSON without ``rejected``) means every event is stored, so a
receiver of the wire format may answer a plain 200.

Timeouts are strict because a slow or hostile endpoint must cost the background uploader a
bounded time and nothing more: 2 s to connect, 5 s to read, and never past the deadline.
urllib3's own retries and redirects are off: the uploader decides what to retry, across
runs, with backoff. A redirect is never followed (`redirected`). An answer's body is read
only as far as `ANSWER_LIMIT`.

The deadline is hard. urllib3's timeouts bound each socket operation, not the request: a
server that drips its status line, headers or body a byte at a time (or reads our body a
byte at a time) resets them with every byte and holds a send for as long as it likes. So
each request has a watchdog (`_Watchdog`, a timer thread) that, at the deadline, shuts
down the request's socket: the read or write blocked on it returns at once, urllib3 raises,
and the sending thread closes the connection and answers a ``timeout``, whatever it had
read. Shutting down is done through a duplicate of the socket's descriptor, taken when the
socket is made (`_Connection._new_conn`, before any TLS handshake): the watchdog never
touches a descriptor that the sending thread may have closed and the system given to
someone else meanwhile. The timer is cancelled and joined, and the duplicate closed, before
`Transport.post` returns: a send leaves no thread and no socket behind, however it ended.

Each request has its own one-connection pool, closed with it (an answer is never read to
its end, so a connection could not be reused anyway), and every socket it opens is its own.
The one wait the watchdog cannot cut short is the name lookup (``getaddrinfo`` has no
socket); the resolver's own timeouts bound it, and the uploader's process watchdog
(`cli_telemetry._uploader`) is the hard stop there.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import urllib3

from .. import __version__
from .base import DELIVERED, REDIRECT, Delivery, partially

CONNECT_TIMEOUT: Final = 2.0
READ_TIMEOUT: Final = 5.0
USER_AGENT: Final = f"cli-telemetry/{__version__}"
ANSWER_LIMIT: Final = 64 * 1024
"""Bytes of a wire-format answer read for its ``rejected`` list: the collector names a
refused event in ~100 bytes, so even a batch of the uploader's size (100 events) whose every
event is refused fits several times over."""


class Transport:
    """Sends one request at a time with the strict timeouts and the hard deadline above;
    shared by every HTTP sink and by the providers' erasers (`cli_telemetry.erasers`).

    `post` (or `request`, for the erasers' lookups with ``GET``) sends one request and
    classifies the answer from its status line. A body is read only when the caller asks (a
    provider that names refused events, or signals errors inside a 200): ``read_limit``
    bytes at most, and never past the deadline.
    """

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        deadline: float,
        *,
        read_limit: int = 0,
    ) -> tuple[Delivery, bytes]:
        """POST ``body``; returns the delivery and, if ``read_limit``, up to that many bytes
        of the answer's body (empty otherwise). Returns by ``deadline``, whatever the server
        does (but for a name lookup that hangs, see the module docstring)."""
        return self.request("POST", url, body, headers, deadline, read_limit=read_limit)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: dict[str, str],
        deadline: float,
        *,
        read_limit: int = 0,
    ) -> tuple[Delivery, bytes]:
        """`post` with another ``method`` (``GET`` with no ``body``)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Delivery("retry", "deadline"), b""
        timeout = urllib3.Timeout(
            connect=min(CONNECT_TIMEOUT, remaining),
            read=min(READ_TIMEOUT, remaining),
            total=remaining,
        )
        watchdog = _Watchdog(deadline)
        try:
            result = _exchange(method, url, body, headers, timeout, deadline, read_limit, watchdog)
        finally:
            cut_short = watchdog.stop()
        if cut_short:
            # Whatever was read before the socket was shut down may be a part of the answer
            # (a status line without its headers): stored or not is unknown, so retry.
            return Delivery("retry", "timeout"), b""
        return result

    def close(self) -> None:
        """Nothing to release: each request's connection is closed with it."""


def _exchange(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    timeout: urllib3.Timeout,
    deadline: float,
    read_limit: int,
    watchdog: _Watchdog,
) -> tuple[Delivery, bytes]:
    try:
        pool, target = _pool_for(url, timeout, watchdog)
    except urllib3.exceptions.HTTPError as exc:
        return Delivery("retry", _error_kind(exc)), b""
    with pool:
        try:
            response = pool.urlopen(
                method,
                target,
                body=body,
                headers={"User-Agent": USER_AGENT, **headers},
                timeout=timeout,
                retries=False,
                redirect=False,
                preload_content=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return Delivery("retry", _error_kind(exc)), b""
        # The status line is usually all we need. Closing drops the connection (a new one
        # per batch is cheap next to the risk of reading an answer to its end).
        status, retry_after = response.status, response.headers.get("Retry-After")
        location = response.headers.get("Location")
        answer = b""
        try:
            if read_limit:
                answer = read_answer(response, read_limit, deadline)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if 200 <= status < 300:  # delivered or not? unknown: the provider de-duplicates
                return Delivery("retry", _error_kind(exc)), b""
        finally:
            response.close()
    return classify(status, retry_after, location, url), answer


def _pool_for(
    url: str, timeout: urllib3.Timeout, watchdog: _Watchdog
) -> tuple[urllib3.HTTPConnectionPool, str]:
    """A one-connection pool for ``url``, whose connection hands its socket to
    ``watchdog``, and the request target (path and query) to post to."""
    parsed = urllib3.util.parse_url(url)
    scheme = (parsed.scheme or "http").lower()
    if not parsed.host:
        raise urllib3.exceptions.LocationValueError("No host specified.")
    if scheme not in ("http", "https"):
        raise urllib3.exceptions.URLSchemeUnknown(scheme)
    pool_class = _TlsPool if scheme == "https" else _Pool
    port = parsed.port or (443 if scheme == "https" else 80)
    pool = pool_class(
        parsed.host, port, timeout=timeout, maxsize=1, retries=False, watchdog=watchdog
    )
    return pool, parsed.request_uri


class _Watchdog:
    """Shuts down the sockets of one request at its deadline (see the module docstring).

    It holds a duplicate of each socket's descriptor, so the socket it shuts down is the
    request's even if the sending thread has closed its own descriptor meanwhile. `stop`
    cancels and joins the timer and closes the duplicates: call it exactly once.
    """

    def __init__(self, deadline: float) -> None:
        self._lock = threading.Lock()
        self._duplicates: list[socket.socket] = []
        self._fired = False
        self._stopped = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down at the deadline (at once if that has passed)."""
        duplicate = sock.dup()
        with self._lock:
            self._duplicates.append(duplicate)
            if self._fired:
                _shut_down(duplicate)

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._fired = True
            for duplicate in self._duplicates:
                _shut_down(duplicate)

    def stop(self) -> bool:
        """Disarm; whether it fired (the exchange was cut short at the deadline)."""
        with self._lock:
            self._stopped = True
            fired = self._fired
        self._timer.cancel()
        self._timer.join()
        for duplicate in self._duplicates:
            duplicate.close()
        return fired


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected (any more): nothing waits on it
        pass


class _Connection(urllib3.connection.HTTPConnection):
    """A connection that hands its socket to the request's watchdog as soon as it is
    connected (for HTTPS, before the handshake, which a server could drip too)."""

    def __init__(self, *args: Any, watchdog: _Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        try:
            self._watchdog.watch(sock)
        except BaseException:
            sock.close()
            raise
        return sock


class _TlsConnection(_Connection, urllib3.connection.HTTPSConnection):
    pass


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TlsPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _TlsConnection


def read_answer(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> bytes:
    """Up to ``limit`` bytes of ``response``'s body (inflated), read by ``deadline``.

    Read as it arrives (``read1``: one receive at a time), so that no more than ``limit``
    is ever asked of the socket. A receive that would go past the deadline is cut short by
    the request's watchdog; past it, this raises a read timeout, as the socket does.
    """
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        if deadline <= time.monotonic():
            raise urllib3.exceptions.TimeoutError("past the deadline")
        chunk = response.read1(limit - size, decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def refused_indexes(answer: bytes, count: int) -> tuple[int, ...]:
    """The events of a batch of ``count`` that a wire-format answer refuses: the ``index``
    of each entry of its ``rejected`` list, each an integer of ``0 .. count - 1``, once.

    Nothing is refused when the answer is empty, not JSON, cut short by `ANSWER_LIMIT`, or
    has no such list: a 2xx means the batch is stored, and only an answer that names events
    in exactly this shape takes some back. An entry that names no such event (a receiver's
    bug) is passed over: it cannot be attributed to an event.
    """
    try:
        value = json.loads(answer)
    except (ValueError, RecursionError):
        return ()
    rejected = value.get("rejected") if isinstance(value, dict) else None
    if not isinstance(rejected, list):
        return ()
    indexes = {
        entry["index"]
        for entry in rejected
        if isinstance(entry, dict)
        and type(entry.get("index")) is int
        and 0 <= entry["index"] < count
    }
    return tuple(sorted(indexes))


def split_auth(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without its ``user:password@``, and those as a basic auth header (urllib3
    ignores credentials in a URL, and they must not appear in what the pool logs)."""
    try:
        parsed = urllib3.util.parse_url(url)
    except urllib3.exceptions.LocationParseError:
        return url, {}
    if not parsed.auth:
        return url, {}
    return parsed._replace(auth=None).url, urllib3.util.make_headers(basic_auth=parsed.auth)


def gzipped(body: bytes, headers: dict[str, str]) -> bytes:
    """``body`` gzip-compressed, with its Content-Encoding header added to ``headers``."""
    headers["Content-Encoding"] = "gzip"
    return gzip.compress(body, compresslevel=6, mtime=0)


def json_body(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def utc_now_iso() -> str:
    """Now, as ``2026-01-02T03:04:05.678Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HttpSink:
    """POSTs batches to ``endpoint`` in the wire format above."""

    def __init__(
        self,
        endpoint: str,
        *,
        token: str | None = None,
        gzip_body: bool = True,
        name: str = "collector",
    ) -> None:
        self.name = name
        self.gzip_body = gzip_body
        self.endpoint, self._auth = split_auth(endpoint)
        if token:  # the collector's per-tool shared secret
            self._auth = {"Authorization": f"Bearer {token}"}
        self._transport = Transport()

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        body = json_body({"batch": list(events), "sent_at": utc_now_iso()})
        headers = {"Content-Type": "application/json", **self._auth}
        if self.gzip_body:
            body = gzipped(body, headers)
        return post_batch(self._transport, self.endpoint, body, headers, deadline, len(events))

    def forget(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        """Pass deletion requests on (`cli_telemetry.sinks.base.Forgetting`): a batch like
        any other, which the collector checks record by record and answers as it answers
        events, so a refused request comes back in ``refused`` and the rest are its."""
        return self.send(requests, deadline)

    def close(self) -> None:
        self._transport.close()


def post_batch(
    transport: Transport,
    url: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    count: int,
) -> Delivery:
    """POST a wire-format batch of ``count`` events and read the answer: delivered (with
    the events a 2xx names as refused, see `refused_indexes`), or as `classify` says."""
    delivery, answer = transport.post(url, body, headers, deadline, read_limit=ANSWER_LIMIT)
    if delivery.outcome != "delivered":
        return delivery
    return partially(refused_indexes(answer, count))


def classify(
    status: int, retry_after: str | None, location: str | None = None, url: str = ""
) -> Delivery:
    """2xx delivered; 408, 429 and 5xx retry (honouring Retry-After); 3xx a redirect to
    ``location`` from ``url``, not followed (`redirected`); other 4xx rejected for good."""
    if 200 <= status < 300:
        return DELIVERED
    if 300 <= status < 400:
        return redirected(location, url)
    if status in (408, 429) or status >= 500:
        return Delivery("retry", f"http_{status}", parse_retry_after(retry_after))
    return Delivery("rejected", f"http_{status}")


MAX_HOST: Final = 253
_HOST_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.[]:")


def redirected(location: str | None, url: str) -> Delivery:
    """An endpoint that redirects (a 3xx) to ``location`` (relative to ``url``): the events
    are kept for a later attempt, and the error kind names where it points, by its origin
    only: ``redirect:https://telemetry.example.com``.

    The redirect is not followed. An endpoint is the author's configuration, and a
    redirect one to correct (a URL written with http where the server wants https, a
    moved host): following it silently would send the events, and the token in their
    request, to a host nobody configured, and a 301 or 302 would turn the POST into a GET
    and lose the body anyway. Retrying soon cannot mend it either, so the uploader waits
    as long as its backoff allows before the next attempt (`cli_telemetry.delivery`),
    and ``telemetry status`` names the redirect as the reason.

    Only the scheme, host and port of the target are kept: its path or query may carry a
    secret (a signed URL, a token), and the kind is shown to the user and stored in
    ``upload.json``. The host is kept only if it is made of what a host name or address
    is made of, so a server's words never reach a terminal; otherwise the kind is just
    ``redirect``.
    """
    from urllib.parse import urljoin

    try:
        target = urllib3.util.parse_url(urljoin(url, (location or "").strip()))
    except (urllib3.exceptions.LocationParseError, ValueError):
        return Delivery("retry", REDIRECT)
    scheme, host = (target.scheme or "").lower(), (target.host or "").lower()
    if (
        not location
        or scheme not in ("http", "https")
        or not host
        or len(host) > MAX_HOST
        or not set(host) <= _HOST_CHARACTERS
    ):
        return Delivery("retry", REDIRECT)
    port = f":{target.port}" if target.port is not None else ""
    return Delivery("retry", f"{REDIRECT}:{scheme}://{host}{port}")


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
