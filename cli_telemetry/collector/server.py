"""The app under uvicorn, with the limits an endpoint that anyone can reach needs.

- `LIMIT_CONCURRENCY` (64): uvicorn answers 503 to a request that arrives while 64
  connections are open or 64 requests are being answered. An uploader's request is
  answered in milliseconds, so a healthy collector is far from it; what it bounds is what
  slow or hostile clients can hold: 64 connections, and 64 bodies of at most 8 MiB. An
  uploader that gets the 503 tries again later, after its backoff.
- `REQUEST_TIMEOUT` (30 s): a request's head (its request line and headers) must arrive
  within 30 s of the connection opening or of the previous answer on it, or the connection
  is closed; then its body within 30 s more, or it is answered 408 (the app's part). uvicorn
  itself only times out a connection idle between requests (``timeout_keep_alive``, 5 s)
  and bounds a head's size (16 KiB), not how long it may take: a client sending a byte a
  second would hold a connection for ever. An uploader sends its whole request at once
  (at most 512 KiB, and it gives up after 30 s), so 30 s cuts off only a client that
  stalls or drips.
- `SWITCH_INTERVAL` (1 ms): how long a thread that holds the GIL keeps it once another
  asks (CPython's default is 5 ms). The event loop, which answers every request, asks for
  it several times per request while a worker thread reads a large body; at 1 ms,
  ``/healthz`` answered in 8 ms (p95) instead of 21 ms while the largest batches were
  being refused, here. A thread switch costs microseconds, and happens only when threads
  want the GIL at once.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from starlette.applications import Starlette

LIMIT_CONCURRENCY: Final = 64
REQUEST_TIMEOUT: Final = 30.0
KEEP_ALIVE: Final = 5
SWITCH_INTERVAL: Final = 0.001


def run(
    app: Starlette,
    host: str,
    port: int,
    *,
    limit_concurrency: int = LIMIT_CONCURRENCY,
    request_timeout: float = REQUEST_TIMEOUT,
) -> None:
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Protocol(H11Protocol):
        """uvicorn's h11 protocol, but for a deadline on each request's head: from the
        connection opening, or the previous answer ending, to the head's last byte."""

        head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_head()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_head()

        def connection_lost(self, exc: Exception | None) -> None:
            if self.head_deadline is not None:
                self.head_deadline.cancel()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            if self.head_deadline is not None:
                self.head_deadline.cancel()
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # a pipelined request's head had already arrived
            self.head_deadline = self.loop.call_later(request_timeout, self._head_late, cycle)

        def _head_late(self, cycle: Any) -> None:
            if self.cycle is cycle and not self.transport.is_closing():
                self.transport.close()  # no new request began: its head is late

    sys.setswitchinterval(SWITCH_INTERVAL)  # this process is the collector's own
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        http=Protocol,
        limit_concurrency=limit_concurrency,
        timeout_keep_alive=KEEP_ALIVE,
    )
