"""The provider interface, and the one result type every sink returns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Literal, Protocol, runtime_checkable

from .._record import Record

Outcome = Literal["delivered", "retry", "rejected"]
"""delivered: the sink has the events. retry: keep them and try again later (timeouts,
connection errors, 429, 5xx). rejected: they can never succeed (other 4xx): drop them."""


class Delivery(Record):
    """What became of one batch at one sink.

    ``error`` is a short kind (``"timeout"``, ``"http_503"``, ``"connection"``), never a
    message: it is shown by ``telemetry status`` and must not carry a URL's secrets or a
    server's words. ``retry_after`` is the server's requested wait in seconds, if any.
    """

    __slots__ = ("error", "outcome", "retry_after")

    def __init__(
        self, outcome: Outcome, error: str | None = None, retry_after: float | None = None
    ) -> None:
        self.outcome: Final = outcome
        self.error: Final = error
        self.retry_after: Final = retry_after


DELIVERED: Final = Delivery("delivered")


@runtime_checkable
class Sink(Protocol):
    """A destination for events. ``deadline`` is a ``time.monotonic()`` value that ``send``
    must return by (the uploader's whole run has one)."""

    name: str

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery: ...

    def close(self) -> None: ...
