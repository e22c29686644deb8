"""The provider interface, and the one result type every sink returns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal, Protocol, runtime_checkable

from .._values import Record

Outcome = Literal["delivered", "retry", "rejected"]
"""delivered: the sink has the events (but those it names as refused). retry: keep them and
try again later (timeouts, connection errors, 429, 5xx). rejected: they can never succeed
(other 4xx): drop them."""


class Delivery(Record):
    """What became of one batch at one sink.

    ``error`` is a short kind (``"timeout"``, ``"http_503"``, ``"connection"``), never a
    message: it is shown by ``telemetry status`` and must not carry a URL's secrets or a
    server's words. ``retry_after`` is the server's requested wait in seconds, if any.

    A sink that took a batch but refused some of its events for good (the collector's
    ``rejected`` list, Amplitude's or Mixpanel's failed events, OTLP's partial success) says
    so with a ``"delivered"`` outcome and ``refused``: the indexes, into the events given to
    ``send``, of the events it will never take (sorted, each once). A service that only says
    how many it refused (OTLP's ``rejectedLogRecords``) gives that number as
    ``unattributed`` instead: those events cannot be told apart, so the uploader counts them
    but keeps none back. Both are ignored with another outcome, where the whole batch is
    kept or refused.
    """

    __slots__ = ("error", "outcome", "refused", "retry_after", "unattributed")

    def __init__(
        self,
        outcome: Outcome,
        error: str | None = None,
        retry_after: float | None = None,
        *,
        refused: Iterable[int] = (),
        unattributed: int = 0,
    ) -> None:
        self.outcome: Final = outcome
        self.error: Final = error
        self.retry_after: Final = retry_after
        self.refused: Final[tuple[int, ...]] = tuple(sorted(set(refused)))
        self.unattributed: Final = max(0, unattributed)

    @property
    def refusals(self) -> int:
        """How many events of a delivered batch the sink refused, named or not."""
        return len(self.refused) + self.unattributed


DELIVERED: Final = Delivery("delivered")
PARTIAL: Final = "partial_rejected"
"""The error kind of a delivery whose sink refused some of the events."""
REDIRECT: Final = "redirect"
"""The error kind of an endpoint that answers with a redirect, which is never followed
(`cli_telemetry.sinks.http.redirected`): ``redirect:<scheme>://<host>[:<port>]``, where it
points, or ``redirect`` alone when that cannot be told."""


def is_redirect(error: str | None) -> bool:
    """Whether ``error`` is a redirect's kind (`REDIRECT`)."""
    return error is not None and (error == REDIRECT or error.startswith(REDIRECT + ":"))


def partially(refused: Iterable[int] = (), unattributed: int = 0) -> Delivery:
    """Delivered, but for ``refused`` (and ``unattributed`` more): `DELIVERED` when that is
    none, else a delivery with the error kind `PARTIAL`."""
    result = Delivery("delivered", PARTIAL, refused=refused, unattributed=unattributed)
    return result if result.refusals else DELIVERED


@runtime_checkable
class Sink(Protocol):
    """A destination for events. ``deadline`` is a ``time.monotonic()`` value that ``send``
    must return by (the uploader's whole run has one)."""

    name: str

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery: ...

    def close(self) -> None: ...


@runtime_checkable
class Forgetting(Protocol):
    """A sink that passes deletion requests on (`cli_telemetry.events.DeletionRequest`): the
    project's collector, a webhook. ``telemetry disable`` leaves one for the install id it
    deletes, and the uploader hands it to each sink that has ``forget``; the outcomes are
    those of ``send``. A sink without it (a provider's event API, which takes no deletion
    with a key a tool can ship) is told nothing: its events are forgotten only if it is
    reached through the collector, whose `Eraser` has the provider's secret."""

    name: str

    def forget(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery: ...


@runtime_checkable
class Eraser(Protocol):
    """A provider's deletion API, driven by the collector (its credentials are secrets that
    only a server holds): ``erase`` asks the provider to delete everything it holds of each
    install id (the ``distinct_id``, ``device_id`` or ``anonymousId`` the sink of the same
    ``name`` sent it as), and returns by ``deadline``. ``delivered`` means the provider
    accepted the request (its deletion may run later, on its own schedule); ``retry`` and
    ``rejected`` are as for ``send``."""

    name: str

    def erase(self, install_ids: Sequence[str], deadline: float) -> Delivery: ...

    def close(self) -> None: ...
