"""Amplitude: ``POST /2/httpapi`` (HTTP V2 API) or ``POST /batch`` (Batch Event Upload), as
amplitude-analytics sends them (``tests/wire/amplitude*.json``).

One JSON request per batch, ``{"api_key": ..., "events": [...]}``, identify events included
as Amplitude's ``$identify`` events with ``user_properties: {"$set": traits}``, in the same
request, as the SDK sends them.

Identity: the event's ``install_id`` is the ``device_id``, and no ``user_id`` is sent. In
Amplitude a user id names a known person (it merges every device that sends it into one
user), while a device id is the anonymous identifier; ``install_id`` is random and per
tool, an anonymous device in Amplitude's terms. ``insert_id`` de-duplication is also keyed
by device id (same ``device_id`` and ``insert_id`` within 7 days). Amplitude wants ids of at
least 5 characters; ``install_id`` has 32.

Location: no ``ip`` field and no location fields are sent. Amplitude looks an address up
only if the event carries one (``"$remote"`` asks it to use the request's); its own SDKs
disable IP tracking by leaving ``ip`` out, and Amplitude documents that it then receives no
address and leaves the location properties empty.

Answers (Amplitude's HTTP V2 documentation): 200 stored. 400 lists the events at fault by
index (``events_with_invalid_fields``, ``events_with_missing_fields``,
``events_with_invalid_id_lengths``, ``silenced_events``) and stores none of the batch:
like the SDK, the others are sent again at once, without those, a few times at most, and
once they are stored the batch is delivered with the events at fault as ``refused`` (by
their indexes in the batch the uploader gave, not in the request). A 400 naming no event
(bad API key, bad JSON), or naming every event that is left, is a rejection of the batch.
413 is rejected as ``http_413``, which the uploader answers by splitting the batch. 429 (a
device over 30 events per second, or a daily quota) is retried after Amplitude's advised
30 s unless the answer says otherwise; 5xx are retried (``insert_id`` makes that safe).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from .. import __version__
from ..errors import ConfigurationError
from . import mapping
from .base import DELIVERED, Delivery, partially
from .http import Transport, json_body

LIBRARY: Final = f"cli-telemetry/{__version__}"
PATHS: Final = {"httpapi": "/2/httpapi", "batch": "/batch"}
HEADERS: Final = {"Content-Type": "application/json; charset=UTF-8", "Accept": "*/*"}
IDENTIFY: Final = "$identify"
THROTTLED_WAIT: Final = 30.0
"""Amplitude: "pause sending events for that user or device for a period of 30 seconds"."""
ANSWER_LIMIT: Final = 16384
"""A 400's index lists for a batch of the uploader's size fit well within this."""
ATTEMPTS: Final = 3
"""Requests per batch when 400s name bad events (each names the first at fault per field)."""


class AmplitudeSink:
    """Sends a batch to Amplitude's HTTP V2 API (``api="httpapi"``) or Batch API
    (``api="batch"``) at ``host``."""

    def __init__(
        self,
        *,
        name: str = "amplitude",
        api_key: str,
        host: str = "https://api2.amplitude.com",
        api: str = "httpapi",
    ) -> None:
        if api not in PATHS:
            raise ConfigurationError(f"Amplitude api must be 'httpapi' or 'batch', not {api!r}")
        self.name = name
        self._api_key = api_key
        self.url = host.rstrip("/") + PATHS[api]
        self._transport = Transport()

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        # An identify without traits has nothing to say to Amplitude: it is not sent, so a
        # message's index is not its event's; `origin` maps one to the other.
        origin = [
            i for i, e in enumerate(events) if not mapping.is_identify(e) or mapping.traits(e)
        ]
        messages = [message(events[i]) for i in origin]
        if not messages:
            return DELIVERED
        refused: set[int] = set()
        for _ in range(ATTEMPTS):
            body = json_body({"api_key": self._api_key, "events": messages})
            delivery, answer = self._transport.post(
                self.url, body, dict(HEADERS), deadline, read_limit=ANSWER_LIMIT
            )
            if delivery.error == "http_429" and delivery.retry_after is None:
                return Delivery("retry", "http_429", THROTTLED_WAIT)
            if delivery.outcome == "delivered":
                return partially(refused)
            if delivery.error != "http_400":
                return delivery  # the ones refused so far will be refused again
            at_fault = faulty_events(answer)
            kept = [i for i in range(len(messages)) if i not in at_fault]
            if not kept or len(kept) == len(messages):
                return delivery  # every event at fault, or the request itself was refused
            refused.update(origin[i] for i in range(len(messages)) if i in at_fault)
            origin = [origin[i] for i in kept]
            messages = [messages[i] for i in kept]
        return Delivery("rejected", "http_400")

    def close(self) -> None:
        self._transport.close()


def message(event: dict[str, Any]) -> dict[str, Any]:
    """One of our events as an Amplitude event (identify as ``$identify``)."""
    amplitude: dict[str, Any] = {
        "event_type": IDENTIFY if mapping.is_identify(event) else str(event["event"]),
        "device_id": mapping.distinct_id(event),
        "time": mapping.epoch_millis(event["timestamp"]),
        "insert_id": str(event["event_id"]),
        "library": LIBRARY,
    }
    if mapping.is_identify(event):
        amplitude["user_properties"] = {"$set": mapping.traits(event)}
    else:
        amplitude["event_properties"] = mapping.properties(event)
    return amplitude


def faulty_events(answer: bytes) -> set[int]:
    """The indexes of the events a 400 names; empty when it names none (the request as a
    whole was refused: a bad API key, a missing field, a body that is not JSON)."""
    try:
        value = json.loads(answer)
    except ValueError:
        return set()
    if not isinstance(value, dict) or value.get("missing_field"):
        return set()
    lists: list[Any] = [value.get("silenced_events")]
    for key in (
        "events_with_invalid_fields",
        "events_with_missing_fields",
        "events_with_invalid_id_lengths",
    ):
        fields = value.get(key)
        if isinstance(fields, dict):
            lists.extend(fields.values())
    return {
        index
        for indexes in lists
        if isinstance(indexes, list)
        for index in indexes
        if isinstance(index, int) and not isinstance(index, bool)
    }
