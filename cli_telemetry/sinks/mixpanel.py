"""Mixpanel: ``POST /track`` (or ``/import``) for events and ``POST /engage`` for identify,
as mixpanel-python sends them (``tests/wire/mixpanel*.json``).

Every request is form-encoded, ``data=<JSON list>&verbose=1&ip=0``:

- ``/track`` authenticates by the project ``token`` inside each event's properties;
- ``/import?strict=1&project_id=...`` (with a service account) adds HTTP basic auth; the
  SDK sends no ``strict``, we ask for it so that a malformed event is a 400 naming it rather
  than a silent drop;
- ``/engage`` takes ``$set`` profile updates, one per identify event, with the token.

``ip=0`` tells Mixpanel not to derive a location from the request's address (the SDK sends
it on every request, and so do we); event properties named ``ip`` or ``$ip`` are left out,
because Mixpanel would geolocate those too.

Answers: with ``verbose=1`` Mixpanel answers ``{"status": 1, "error": null}``; a 200 with
``"status": 0`` means the payload was refused for good (the SDK raises on it), so it is
read (see `Transport.post`) and reported as rejected. ``/import`` answers
``{"code": 200, "num_records_imported": n, "status": "OK"}``, and 400 with
``failed_records`` (``[{"index": i, "insert_id": ..., "field": ..., "message": ...}]``)
when some events failed validation: "a 400 is a partial success rather than a total
rejection", the valid ones are stored and the others never will be (Mixpanel asks not to
retry a 400). So the batch is delivered, with the failed ones as ``refused``: ``index``
counts the request's events, which leave out identify events, and is mapped back to the
batch's. A 400 whose failed records are every event, or that names none we can place (a
bad request, an answer cut short), is a rejection of the batch. 413 is rejected as
``http_413`` (the uploader splits the batch); 429 and 5xx are retried.

A batch with identify events needs two requests. They are sent in that order and the worse
result wins (retry, then rejected, then delivered, whose refused events add up): a retry
sends both again, which is harmless, because Mixpanel de-duplicates events on
``$insert_id`` (with the event, its time and its distinct id) and ``$set`` is idempotent.
After a request to retry, the other is not even tried, since it will be sent again anyway.

Note that ``/track`` silently drops events older than five days; tools whose users are
often offline for longer should use ``/import``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlencode

import urllib3

from .. import __version__
from ..errors import ConfigurationError
from . import mapping
from .base import DELIVERED, Delivery, partially
from .http import Transport

LIBRARY: Final = "cli-telemetry"
FORM: Final = "application/x-www-form-urlencoded"
ANSWER_LIMIT: Final = 64 * 1024
"""Enough for a verbose answer, or /import's failed records for every event of a batch of
the uploader's size (each names its event in ~150 bytes); the rest is not read."""
GEOLOCATING: Final = frozenset({"ip", "$ip"})
"""Properties from which Mixpanel would derive a location: never sent."""

_RANK: Final = {"delivered": 0, "rejected": 1, "retry": 2}


class MixpanelSink:
    """Sends a batch to Mixpanel: events to ``/track`` (or ``/import`` with
    ``service_account="user:secret"`` and ``project_id``), identify events to ``/engage``.

    The distinct id is the event's ``install_id`` (random, per tool: never a real identity),
    the ``$insert_id`` its ``event_id``, ``time`` its timestamp in epoch seconds with the
    milliseconds as a fraction (as the SDK sends ``time.time()``; Mixpanel keeps ms).
    """

    def __init__(
        self,
        *,
        name: str = "mixpanel",
        token: str,
        host: str = "https://api.mixpanel.com",
        service_account: str | None = None,
        project_id: str | None = None,
    ) -> None:
        if (service_account is None) != (project_id is None):
            raise ConfigurationError("Mixpanel /import needs both service_account and project_id")
        self.name = name
        self._token = token
        host = host.rstrip("/")
        self.events_url = f"{host}/track"
        self._events_auth: dict[str, str] = {}
        if service_account is not None and project_id is not None:
            query = urlencode({"strict": "1", "project_id": project_id})
            self.events_url = f"{host}/import?{query}"
            self._events_auth = urllib3.util.make_headers(basic_auth=service_account)
        self.engage_url = f"{host}/engage"
        self._transport = Transport()

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        # Each request's messages, and the index in ``events`` of each message's event.
        tracked = [i for i, e in enumerate(events) if not mapping.is_identify(e)]
        profiled = [i for i, e in enumerate(events) if mapping.is_identify(e) and mapping.traits(e)]
        result = DELIVERED
        for url, auth, origin, build in (
            (self.events_url, self._events_auth, tracked, self._event),
            (self.engage_url, {}, profiled, self._profile),
        ):
            if not origin:
                continue
            answer = self._post(url, auth, [build(events[i]) for i in origin], deadline)
            if answer.refused:
                answer = partially(origin[i] for i in answer.refused)
            result = worse(result, answer)
            if result.outcome == "retry":
                break
        return result

    def close(self) -> None:
        self._transport.close()

    def _post(
        self, url: str, auth: dict[str, str], messages: list[dict[str, Any]], deadline: float
    ) -> Delivery:
        # The SDK's own encoding: compact JSON (ASCII-escaped), then urlencoded like requests.
        data = json.dumps(messages, separators=(",", ":"))
        body = urlencode({"data": data, "verbose": "1", "ip": "0"}).encode()
        headers = {"Content-Type": FORM, **auth}
        delivery, answer = self._transport.post(
            url, body, headers, deadline, read_limit=ANSWER_LIMIT
        )
        if delivery.error == "http_400" and url == self.events_url and self._events_auth:
            failed = failed_records(answer, len(messages))
            if failed and len(failed) < len(messages):
                return partially(failed)  # the others are stored: indexes of ``messages``
        if delivery.outcome != "delivered":
            return delivery
        return verdict(answer)

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        # The envelope first and winning, as in the SDK, so a custom property cannot pose as
        # the token, the distinct id or the time.
        properties: dict[str, Any] = {
            "token": self._token,
            "distinct_id": mapping.distinct_id(event),
            "time": mapping.epoch_seconds(event["timestamp"]),
            "$insert_id": str(event["event_id"]),
            "mp_lib": LIBRARY,
            "$lib_version": __version__,
        }
        for key, value in mapping.properties(event).items():
            if key not in properties and key not in GEOLOCATING:
                properties[key] = value
        return {"event": str(event["event"]), "properties": properties}

    def _profile(self, event: dict[str, Any]) -> dict[str, Any]:
        traits = {k: v for k, v in mapping.traits(event).items() if k not in GEOLOCATING}
        return {
            "$token": self._token,
            "$time": mapping.epoch_seconds(event["timestamp"]),
            "$distinct_id": mapping.distinct_id(event),
            "$set": traits,
        }


def verdict(answer: bytes) -> Delivery:
    """What a 2xx answer says: ``{"status": 1}`` (verbose), ``1`` (terse) and /import's
    ``{"code": 200}`` are delivered; ``status 0`` (or ``0``) is a refusal for good; anything
    else (a proxy's page, a cut answer) is not Mixpanel's word that it has the events, so
    they are kept and sent again (de-duplicated if they did arrive)."""
    text = answer.strip()
    if text == b"1":
        return DELIVERED
    if text == b"0":
        return Delivery("rejected", "mixpanel_status_0")
    try:
        value = json.loads(text)
    except ValueError:
        return Delivery("retry", "bad_answer")
    if isinstance(value, dict):
        status = value.get("status")
        if status == 1 or status == "OK" or value.get("code") == 200:
            return DELIVERED
        if status == 0:
            return Delivery("rejected", "mixpanel_status_0")
    return Delivery("retry", "bad_answer")


def failed_records(answer: bytes, count: int) -> tuple[int, ...]:
    """The indexes an /import 400 gives in ``failed_records`` (into the request's ``count``
    events), each an integer in range, once; empty when it names none."""
    try:
        value = json.loads(answer)
    except (ValueError, RecursionError):
        return ()
    failed = value.get("failed_records") if isinstance(value, dict) else None
    if not isinstance(failed, list):
        return ()
    return tuple(
        sorted(
            {
                record["index"]
                for record in failed
                if isinstance(record, dict)
                and type(record.get("index")) is int
                and 0 <= record["index"] < count
            }
        )
    )


def worse(a: Delivery, b: Delivery) -> Delivery:
    """The worse of two results for one batch (retry > rejected > delivered); of two
    retries, the one asking to wait longer; of two deliveries, one that refuses the events
    either refused."""
    if _RANK[b.outcome] != _RANK[a.outcome]:
        return b if _RANK[b.outcome] > _RANK[a.outcome] else a
    if a.outcome == "delivered":
        return partially((*a.refused, *b.refused), a.unattributed + b.unattributed)
    if (b.retry_after or 0) > (a.retry_after or 0):
        return b
    return a
