"""A webhook receiver as an author would write one, checking signatures with the library's
own `verify_signature`.

It takes ``POST <path>`` with ``Content-Type: application/json``, an uncompressed body (a
generic receiver is not expected to inflate one, and the sink never gzips) of the wire
format ``{"batch": [event, ...], "sent_at": "..."}``. With a ``secret`` it refuses with 401
a request whose timestamp and signature headers are missing, wrong for the body, or older or
newer than ``tolerance`` seconds. With ``refuse`` set, it refuses the events that predicate
refuses one by one, as the collector does: it stores the others and answers 200 with the
wire format's ``{"rejected": [{"index": i, "field": ..., "error": ...}]}``; otherwise it
answers ``success_body`` (``{}``, or whatever an automation service says).

Stored items are normalized for the end-to-end tests::

    {"kind": "event" | "identify", "name": str, "distinct_id": str, "dedup_id": str | None,
     "time": float, "properties": dict}

where ``properties`` are the event's fields other than the envelope (``event_id``,
``event``, ``timestamp``, ``install_id``, ``properties``) with a custom event's own merged
under them (what the wire format carries, flattened), and for an identify its traits only,
as the other fakes normalize an identify.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fake_service import FakeService, Refusal, Request

from cli_telemetry.webhook_signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

ENVELOPE = frozenset({"event_id", "event", "timestamp", "install_id", "properties"})


class FakeWebhook(FakeService):
    def __init__(
        self, secret: str | None = None, *, path: str = "/hooks/telemetry", tolerance: float = 300
    ) -> None:
        self.secret = secret
        self.path = path
        self.tolerance = tolerance
        self.refuse: Callable[[dict[str, Any]], bool] | None = None
        super().__init__()
        self.endpoint = self.url + path

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.method != "POST":
            raise Refusal(405, "POST only")
        if request.path != self.path:
            raise Refusal(404, "no such hook")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refusal(415, "expected application/json")
        if request.header("Content-Encoding") not in (None, "identity"):
            raise Refusal(415, "compressed bodies are not accepted")
        if self.secret is not None and not verify_signature(
            self.secret,
            request.header(TIMESTAMP_HEADER),
            request.body,  # the raw bytes, before parsing
            request.header(SIGNATURE_HEADER),
            tolerance=self.tolerance,
        ):
            raise Refusal(401, "bad signature")
        try:
            data = json.loads(request.body)
        except ValueError:
            raise Refusal(400, "not JSON") from None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("batch"), list)
            or not isinstance(data.get("sent_at"), str)
        ):
            raise Refusal(400, 'expected {"batch": [...], "sent_at": "..."}')
        items, rejected = [], []
        for index, event in enumerate(data["batch"]):
            if not isinstance(event, dict) or not all(
                isinstance(event.get(key), str)
                for key in ("event_id", "event", "timestamp", "install_id")
            ):
                raise Refusal(400, "an event lacks its envelope")
            if self.refuse is not None and self.refuse(event):
                rejected.append({"index": index, "field": "event", "error": "not wanted"})
                continue
            items.append(normalize(event))
        if self.refuse is not None:
            self.answer_with(request, json.dumps({"rejected": rejected}).encode())
        return items


def normalize(event: dict[str, Any]) -> dict[str, Any]:
    custom = event.get("properties")
    properties = dict(custom) if isinstance(custom, dict) else {}
    if event["event"] != "identify":
        properties.update((key, value) for key, value in event.items() if key not in ENVELOPE)
    when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    return {
        "kind": "identify" if event["event"] == "identify" else "event",
        "name": event["event"],
        "distinct_id": event["install_id"],
        "dedup_id": event["event_id"],
        "time": when.timestamp(),
        "properties": properties,
    }
