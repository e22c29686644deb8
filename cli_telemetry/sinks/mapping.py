"""From our event to a provider's model: the parts every provider shares.

An event (`cli_telemetry.events.Event`) is flat JSON. Each provider wants a name, an
anonymous id, a time, an id to de-duplicate on, and properties; these helpers give them the
same way to every provider, so that a report in PostHog and one in Amplitude count the same
things:

- the distinct (anonymous) id is the event's ``install_id``: a random, per-tool id, never a
  real identity, so no provider can join it with anything else;
- the de-duplication id (insert id, message id, uuid) is the ``event_id``, a UUID that a
  retry repeats;
- the properties are every other field, with a custom event's own ``properties`` merged in
  (the built-in fields win a name clash, so a custom property cannot pose as, say, ``os``);
- an ``identify`` event (`Telemetry.identify`) carries anonymous traits in ``properties``
  and maps to the provider's identify call where it has one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

IDENTIFY: Final = "identify"

NOT_PROPERTIES: Final = frozenset({"event_id", "event", "timestamp", "install_id", "properties"})
"""Fields that become the provider's own envelope, not properties."""


def is_identify(event: dict[str, Any]) -> bool:
    return event.get("event") == IDENTIFY


def distinct_id(event: dict[str, Any]) -> str:
    return str(event["install_id"])


def traits(event: dict[str, Any]) -> dict[str, Any]:
    """An identify event's traits."""
    value = event.get("properties")
    return dict(value) if isinstance(value, dict) else {}


def properties(event: dict[str, Any]) -> dict[str, Any]:
    """Every field that is not part of the envelope, custom properties merged in; ``values``
    (closed-set flag values) stays one nested object, as the providers accept."""
    merged: dict[str, Any] = {}
    custom = event.get("properties")
    if isinstance(custom, dict):
        merged.update(custom)
    for key, value in event.items():
        if key not in NOT_PROPERTIES:
            merged[key] = value
    return merged


def epoch_seconds(timestamp: str) -> float:
    """``2026-01-02T03:04:05.678Z`` (or with an offset) as seconds since the epoch."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def epoch_millis(timestamp: str) -> int:
    return round(epoch_seconds(timestamp) * 1000)


def iso_offset(timestamp: str) -> str:
    """The timestamp with ``+00:00`` for ``Z``, as the Python SDKs write it."""
    return timestamp[:-1] + "+00:00" if timestamp.endswith("Z") else timestamp


def isoformat(timestamp: str) -> str:
    """The timestamp as ``datetime.isoformat()`` writes it (``...T03:04:05.678000+00:00``,
    no fraction when it is zero), as posthog-python and rudder-sdk-python send it."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).isoformat()


_BATCH_NAMESPACE: Final = uuid.UUID("6f0c3c1e-5b8e-4a53-9a52-2d7f0f3e8c10")


def batch_id(events: Sequence[dict[str, Any]]) -> str:
    """A UUID named by the batch's event ids: a batch that a later uploader run sends again
    has the same id, where a request id made up per send would not."""
    return str(uuid.uuid5(_BATCH_NAMESPACE, "\n".join(str(e.get("event_id")) for e in events)))
