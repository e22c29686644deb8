"""PostHog, over HTTP with urllib3, shaped as posthog-python 7.x sends it.

Two endpoints, chosen with ``api``:

- ``"batch"`` (default): ``POST {host}/batch/`` with ``{"batch": [...], "historical_migration":
  false, "sent_at": ..., "api_key": ...}``; the project key travels in the body.
- ``"v1"``: ``POST {host}/i/v1/analytics/events`` with ``Authorization: Bearer <key>``, the
  ``PostHog-*`` headers and ``{"created_at": ..., "batch": [...]}``; each event carries an
  ``options`` object, ``$set`` lives in ``properties``, and ``$lib``/``$lib_version`` are
  left out (PostHog takes them from ``PostHog-Sdk-Info``). A 2xx answer lists a result per
  event; if any says ``retry`` the whole batch is kept for a later run (PostHog drops the
  repeats by ``uuid``), ``drop`` and ``ok`` count as done, as in the SDK.

Both are gzip-compressed (the SDK's ``gzip=True`` / ``capture_compression="gzip"``): the
uploader runs on an end user's machine, and the bytes are theirs.

Mapping (see `mapping`): ``event`` is our ``event``, ``distinct_id`` the ``install_id``,
``uuid`` the ``event_id``, ``timestamp`` ours as ``datetime.isoformat()`` writes it. An
``identify`` event becomes the SDK's ``set()``: event ``$set`` with the traits as ``$set``.
Properties are `mapping.properties` plus what the SDK adds, where it fits a CLI:

- ``$lib``/``$lib_version`` are cli-telemetry's own;
- ``$geoip_disable: true`` always: PostHog must never locate a user from the IP address the
  upload came from (it would otherwise, from the end user's own connection);
- ``$os``, ``$os_version`` and ``$python_version`` come from the event's own fields (the
  SDK reads them from the machine it runs on, which here is the end user's too); ``$os``
  uses the SDK's names (``Linux``, ``Mac OS X``, ``Windows``). ``$python_runtime`` and
  ``$os_distro`` are not sent: the event does not record them and we add nothing it does
  not hold;
- no ``$is_server``: PostHog's changelog says to leave it off "when using posthog-python as
  a client/CLI".

Retries happen in a later uploader process, so the SDK's in-memory retry state cannot
survive. ``PostHog-Request-Id`` is `mapping.batch_id` (a UUID5 of the event ids), stable
across runs. ``PostHog-Attempt`` counts the tries *this sink object* made with that id: a
batch retried by a later run starts at 1 again. Nothing records attempts across runs, and
an invented count would be a lie; this one is a lower bound, never an overcount, and the
request id is what lets PostHog tie the tries together.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from .. import __version__
from ..errors import ConfigurationError
from . import mapping
from .base import Delivery
from .http import USER_AGENT, Transport, gzipped, json_body

LIB: Final = "cli-telemetry"
BATCH_PATH: Final = "/batch/"
V1_PATH: Final = "/i/v1/analytics/events"
V1_READ_LIMIT: Final = 64 * 1024
"""Enough for the per-event results of the uploader's largest batch (100 events)."""

OS_NAMES: Final = {
    "linux": "Linux",
    "macos": "Mac OS X",
    "windows": "Windows",
    "freebsd": "FreeBSD",
}
"""Our ``os`` values as posthog-python names them in ``$os``."""


class PostHogSink:
    """Sends batches to PostHog's ``/batch/`` (``api="batch"``) or ``/i/v1/analytics/events``
    (``api="v1"``); ``host`` is the region's or a self-hosted instance's base URL."""

    def __init__(
        self,
        *,
        name: str = "posthog",
        api_key: str,
        host: str = "https://us.i.posthog.com",
        api: str = "batch",
    ) -> None:
        if api not in ("batch", "v1"):
            raise ConfigurationError(f"PostHog api must be 'batch' or 'v1', not {api!r}")
        self.name = name
        self.api = api
        self.url = host.rstrip("/") + (BATCH_PATH if api == "batch" else V1_PATH)
        self._api_key = api_key
        self._transport = Transport()
        self._tries: dict[str, tuple[int, str]] = {}  # request id -> (attempts, created_at)

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        if self.api == "v1":
            return self._send_v1(events, deadline)
        body = {
            "batch": [message(event) for event in events],
            "historical_migration": False,
            "sent_at": _now(),
            "api_key": self._api_key,
        }
        headers = {"Content-Type": "application/json"}
        data = gzipped(json_body(body), headers)
        return self._transport.post(self.url, data, headers, deadline)[0]

    def _send_v1(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        request_id = mapping.batch_id(events)
        attempts, created_at = self._tries.get(request_id, (0, _now()))
        attempt = attempts + 1
        body = {"created_at": created_at, "batch": [v1_message(event) for event in events]}
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self._api_key}",
            "PostHog-Sdk-Info": USER_AGENT,
            "PostHog-Attempt": str(attempt),
            "PostHog-Request-Id": request_id,
            "PostHog-Request-Timestamp": _now(),
        }
        data = gzipped(json_body(body), headers)
        delivery, answer = self._transport.post(
            self.url, data, headers, deadline, read_limit=V1_READ_LIMIT
        )
        if delivery.outcome == "delivered" and _asks_for_retry(answer):
            delivery = Delivery("retry", "partial")
        if delivery.outcome == "retry":
            self._tries[request_id] = (attempt, created_at)
        else:
            self._tries.pop(request_id, None)
        return delivery

    def close(self) -> None:
        self._transport.close()


def message(event: dict[str, Any]) -> dict[str, Any]:
    """One event as posthog-python queues it for ``/batch/``."""
    if mapping.is_identify(event):
        return {
            "timestamp": mapping.isoformat(event["timestamp"]),
            "distinct_id": mapping.distinct_id(event),
            "$set": mapping.traits(event),
            "event": "$set",
            "properties": _identify_properties(event, lib=True),
            "uuid": str(event["event_id"]),
        }
    return {
        "properties": _properties(event, lib=True),
        "timestamp": mapping.isoformat(event["timestamp"]),
        "distinct_id": mapping.distinct_id(event),
        "event": str(event["event"]),
        "uuid": str(event["event_id"]),
    }


def v1_message(event: dict[str, Any]) -> dict[str, Any]:
    """One event as posthog-python's capture v1 sends it: ``$set`` inside ``properties``,
    no ``$lib``, an ``options`` object (empty: we set none of its sentinels)."""
    identify = mapping.is_identify(event)
    if identify:
        properties = _identify_properties(event, lib=False)
        properties["$set"] = mapping.traits(event)
    else:
        properties = _properties(event, lib=False)
    return {
        "event": "$set" if identify else str(event["event"]),
        "uuid": str(event["event_id"]),
        "distinct_id": mapping.distinct_id(event),
        "timestamp": mapping.isoformat(event["timestamp"]),
        "options": {},
        "properties": properties,
    }


def _properties(event: dict[str, Any], *, lib: bool) -> dict[str, Any]:
    properties = mapping.properties(event)
    os_name = event.get("os")
    if isinstance(os_name, str):
        properties["$os"] = OS_NAMES.get(os_name, os_name)
    for ours, theirs in (("os_version", "$os_version"), ("python_version", "$python_version")):
        if isinstance(event.get(ours), str):
            properties[theirs] = event[ours]
    return _sdk_properties(properties, lib=lib)


def _identify_properties(event: dict[str, Any], *, lib: bool) -> dict[str, Any]:
    """The SDK's ``set()`` adds no system context; the traits go to ``$set``, the event's
    other fields stay as the ``$set`` event's properties."""
    without_traits = {k: v for k, v in event.items() if k != "properties"}
    return _sdk_properties(mapping.properties(without_traits), lib=lib)


def _sdk_properties(properties: dict[str, Any], *, lib: bool) -> dict[str, Any]:
    # Set last, so that no custom property can switch geolocation back on.
    if lib:
        properties["$lib"] = LIB
        properties["$lib_version"] = __version__
    else:  # v1: PostHog takes them from the PostHog-Sdk-Info header
        properties.pop("$lib", None)
        properties.pop("$lib_version", None)
    properties["$geoip_disable"] = True
    return properties


def _asks_for_retry(answer: bytes) -> bool:
    """Whether a v1 2xx answer tags any event ``retry``. An unreadable answer counts as
    success, as the SDK treats it (a broken success must not loop for ever)."""
    try:
        results = json.loads(answer)["results"]
        return any(isinstance(r, dict) and r.get("result") == "retry" for r in results.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def _now() -> str:
    return datetime.now(UTC).isoformat()
