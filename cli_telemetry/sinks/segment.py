"""Segment, over HTTP with urllib3, shaped as analytics-python 2.x sends it.

``POST {host}/v1/batch`` with basic auth (the write key as user, no password), gzip (the
SDK's ``gzip=True``), and ``{"batch": [...], "sentAt": ..., "writeKey": ...}``.

Mapping (see `mapping`), in the Segment Spec's message model that RudderStack shares
(`rudderstack` builds on this module):

- an event is a ``track`` call: ``event`` is our ``event``, ``properties``
  `mapping.properties`; an ``identify`` event is an ``identify`` call with its traits;
- the ``install_id`` is the ``anonymousId``, and ``userId`` is null, as the SDK sends a
  call made with ``anonymous_id=`` only. The Spec's ``userId`` is "a unique identifier in
  your database", a known user; an install id is a random per-tool id of an unknown person,
  which is what ``anonymousId`` is for. Destinations treat the two differently (an
  ``anonymousId`` is merged into a user on a later ``userId``, never the other way round);
- unless the author opts in with ``user_id="install"``: then the install id is the
  ``userId`` as well, as the SDK sends a call made with both ``user_id=`` and
  ``anonymous_id=``. That is what makes the install deletable: Segment's regulations and
  RudderStack's User Suppression API name users by ``userId`` only (the erasers
  `cli_telemetry.erasers.segment`, `cli_telemetry.erasers.rudderstack`), and an event
  without one cannot be deleted through them. The price is the Spec's meaning of
  ``userId``: destinations treat the install as a known user (a CRM makes a contact or a
  person record of it, an email or ads tool a profile). The id names no one, it is random
  and per tool, but those records exist, and each counts where a destination bills per
  user; so the default stays anonymous;
- ``messageId`` is the ``event_id``: Segment de-duplicates on it, so a retried batch is
  stored once;
- ``timestamp`` is ours, with ``+00:00`` for ``Z`` and milliseconds, as the SDK writes it;
- ``context.library`` names cli-telemetry, and ``context.ip`` is ``"0.0.0.0"``. That one is
  not in the SDK's messages: Segment and its destinations read a user's location from
  ``context.ip`` (RudderStack's geolocation falls back to the request's address when it is
  blank), and an upload comes from the end user's own connection. A placeholder address
  locates no one. PostHog's ``$geoip_disable`` does the same there.

Retries: the SDK sends ``X-Retry-Count: n`` on its n-th retry, from memory. Our retries
happen in a later uploader process, so the count is what this sink object itself tried
(for the same `mapping.batch_id`); a first try in a new run sends no header. A lower bound,
never an invented number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import urllib3

from .. import __version__
from ..errors import ConfigurationError
from . import mapping
from .base import Delivery
from .http import Transport, gzipped, json_body

LIB: Final = "cli-telemetry"
BATCH_PATH: Final = "/v1/batch"
NO_IP: Final = "0.0.0.0"  # noqa: S104  # not a bind address: a location-free placeholder
INSTALL: Final = "install"
"""The one value of ``user_id``: the install id is also the ``userId``."""


def install_as_user_id(user_id: str | None) -> bool:
    """Whether ``user_id`` opts in to sending the install id as ``userId`` (None: it does
    not); any other value is an author's mistake, refused when the sink is built."""
    if user_id is not None and user_id != INSTALL:
        raise ConfigurationError(f"user_id must be {INSTALL!r} or None, not {user_id!r}")
    return user_id == INSTALL


class SegmentSink:
    """Sends batches to Segment's ``/v1/batch``; ``host`` is
    ``https://events.eu1.segmentapis.com`` for an EU workspace."""

    retry_header: str | None = "X-Retry-Count"
    """The header that counts retries, if the SDK sends one."""
    max_batch_bytes: int = 500_000
    """Segment refuses a batch over 500 KB with a 400, for good; the uploader's batches
    may be larger (512 KiB of events, before the envelope). A larger batch is answered
    here with a 413, unsent, so that the uploader (or the collector) splits it."""

    def __init__(
        self,
        *,
        name: str = "segment",
        write_key: str,
        host: str = "https://api.segment.io",
        user_id: str | None = None,
    ) -> None:
        self.name = name
        self.identified = install_as_user_id(user_id)
        self.url = host.rstrip("/") + BATCH_PATH
        self._write_key = write_key
        self._auth = urllib3.util.make_headers(basic_auth=f"{write_key}:")
        self._transport = Transport()
        self._tries: dict[str, int] = {}  # batch id -> attempts by this object

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        headers = {"Content-Type": "application/json", **self._auth}
        key = mapping.batch_id(events)
        retries = self._tries.get(key, 0)
        if retries and self.retry_header:
            headers[self.retry_header] = str(retries)
        raw = json_body(self.envelope([self.message(event) for event in events]))
        if len(raw) > self.max_batch_bytes and len(events) > 1:
            return Delivery("rejected", "http_413")
        data = gzipped(raw, headers)
        delivery = self._transport.post(self.url, data, headers, deadline)[0]
        if delivery.outcome == "retry":
            self._tries[key] = retries + 1
        else:
            self._tries.pop(key, None)
        return delivery

    def envelope(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"batch": messages, "sentAt": _now(), "writeKey": self._write_key}

    def message(self, event: dict[str, Any]) -> dict[str, Any]:
        return message(event, identified=self.identified)

    def close(self) -> None:
        self._transport.close()


def message(event: dict[str, Any], *, identified: bool = False) -> dict[str, Any]:
    """One event as a Segment Spec ``track`` or ``identify`` message, keys as the SDK
    writes them; ``identified``: the install id is the ``userId`` too (the author's
    opt-in, see the module's docstring)."""
    install_id = mapping.distinct_id(event)
    common = {
        "integrations": {},
        "anonymousId": install_id,
        "timestamp": mapping.iso_offset(event["timestamp"]),
        "context": {"library": {"name": LIB, "version": __version__}, "ip": NO_IP},
        "userId": install_id if identified else None,
        "messageId": str(event["event_id"]),
    }
    if mapping.is_identify(event):
        return {**common, "type": "identify", "traits": mapping.traits(event)}
    return {
        **common,
        "properties": mapping.properties(event),
        "type": "track",
        "event": str(event["event"]),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()
