"""What the collector accepts: a request body as a whole, then each event on its own.

The events are checked with `cli_telemetry.events.check_event`, the very function the
library runs on each event before it spools it: one schema, one owner. An unknown field is
refused, not ignored, so nothing private slips in through a modified client.

A body that is not a batch (not JSON, not an object, no list of events, an unknown key) is
refused as a whole (400). Within a well-formed batch, each event stands alone: the valid ones
are stored, and each refused one is named by its index, its field and what is wrong with
it, so one bad event never costs its neighbours.
"""

from __future__ import annotations

from typing import Any, Final

from ..events import InvalidEvent, Timestamp, check_event

MAX_BATCH_EVENTS: Final = 10_000
_SENT_AT: Final = Timestamp("a UTC ISO 8601 time")


class InvalidBatch(ValueError):
    """Why a request body was refused as a whole; ``field`` names where (``batch``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Rejection:
    """One refused event of a batch, as the collector's answer lists it."""

    __slots__ = ("error", "field", "index")

    def __init__(self, index: int, field: str, error: str) -> None:
        self.index = index
        self.field = field
        self.error = error

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


def check_batch(body: Any) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """The valid events of a request body ``{"batch": [...], "sent_at": "..."}``, and the
    refused ones. Raises `InvalidBatch` when the body itself is not a batch."""
    if not isinstance(body, dict):
        raise InvalidBatch("body", 'must be an object {"batch": [...], "sent_at": "..."}')
    for key in body:
        if key not in ("batch", "sent_at"):
            raise InvalidBatch(str(key)[:64], "is not a field of the request body")
    if "sent_at" in body and _SENT_AT.problem(body["sent_at"]) is not None:
        raise InvalidBatch("sent_at", "must be a UTC ISO 8601 time")
    batch = body.get("batch")
    if not isinstance(batch, list) or not 0 < len(batch) <= MAX_BATCH_EVENTS:
        raise InvalidBatch("batch", f"must be a list of 1 to {MAX_BATCH_EVENTS} events")
    valid: set[tuple[str, type, Any]] = set()
    accepted: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    for index, event in enumerate(batch):
        try:
            check_event(event, valid)
        except InvalidEvent as exc:
            rejected.append(Rejection(index, exc.field, exc.message))
        else:
            accepted.append(event)
    return accepted, rejected
