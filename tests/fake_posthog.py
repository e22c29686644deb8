"""A fake PostHog: ``POST /batch/`` and ``POST /i/v1/analytics/events``, checked as PostHog's
capture service checks them.

Refusals: 401 for a missing or unknown project key (``api_key`` in the body for ``/batch/``,
a Bearer token for v1), 400 for a body that is not JSON or breaks the schema (an event
without a name, a distinct id, a UUID ``uuid`` or an RFC 3339 timestamp with an offset;
in v1 also a missing ``PostHog-*`` header, an ``options`` that is not an object, or a
top-level ``$set``, which v1 does not have), 404 for another path, 405 for another method.

A v1 success answers ``{"results": {uuid: {"result": "ok"}}}``; set ``v1_results`` to
answer some uuids otherwise (``"retry"``, ``"drop"``).

`check` returns the normalized items every fake returns (``kind``, ``name``,
``distinct_id``, ``dedup_id``, ``time``, ``properties``). An event ``$set`` is an
``identify`` named ``"identify"`` whose properties are its ``$set``; PostHog's own ``$``
properties are left out of an event's properties.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fake_service import FakeService, Refusal, Request, invalid, rfc3339_seconds

TEST_KEY = "phc_TESTPROJECTKEY"
BATCH_PATH = "/batch/"
V1_PATH = "/i/v1/analytics/events"
V1_HEADERS = ("PostHog-Sdk-Info", "PostHog-Attempt", "PostHog-Request-Id")


class FakePostHog(FakeService):
    success_body = b'{"status": 1}'

    def __init__(self, api_key: str = TEST_KEY) -> None:
        self.api_key = api_key
        self.v1_results: dict[str, str] = {}
        super().__init__()

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.path not in (BATCH_PATH, V1_PATH):
            raise Refusal(404, "not found")
        if request.method != "POST":
            raise Refusal(405, "method not allowed")
        v1 = request.path == V1_PATH
        if v1 and request.header("Authorization") != f"Bearer {self.api_key}":
            raise Refusal(401, '{"error": "invalid_api_key"}')
        content_type = (request.header("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise Refusal(400, "content type must be application/json")
        try:
            body = json.loads(request.data)
        except ValueError:
            raise Refusal(400, "invalid JSON") from None
        if not isinstance(body, dict):
            raise Refusal(400, "body must be an object")
        if v1:
            return self._check_v1(request, body)
        if body.get("api_key") != self.api_key:
            raise Refusal(401, '{"type": "authentication_error", "code": "invalid_api_key"}')
        rfc3339_seconds(body.get("sent_at"), "sent_at")
        return [_event(message, v1=False) for message in _batch(body)]

    def _check_v1(self, request: Request, body: dict[str, Any]) -> list[dict[str, Any]]:
        for name in V1_HEADERS:
            if not request.header(name):
                raise Refusal(400, f"missing header {name}")
        attempt = request.header("PostHog-Attempt") or ""
        if not attempt.isdigit() or int(attempt) < 1:
            raise Refusal(400, "PostHog-Attempt must be a positive integer")
        _uuid(request.header("PostHog-Request-Id"), "PostHog-Request-Id")
        rfc3339_seconds(request.header("PostHog-Request-Timestamp"), "PostHog-Request-Timestamp")
        if "api_key" in body:
            raise Refusal(400, "v1 takes the key as a Bearer token only")
        rfc3339_seconds(body.get("created_at"), "created_at")
        return [_event(message, v1=True) for message in _batch(body)]

    def _answer(self, request: Request) -> tuple[int, bytes, dict[str, str]]:
        status, body, headers = super()._answer(request)
        if status == 200 and request.path == V1_PATH:
            uuids = [m["uuid"] for m in json.loads(request.data)["batch"]]
            results = {u: {"result": self.v1_results.get(u, "ok")} for u in uuids}
            body = json.dumps({"results": results}).encode()
        return status, body, headers


def _batch(body: dict[str, Any]) -> list[dict[str, Any]]:
    batch = body.get("batch")
    if not isinstance(batch, list) or not batch:
        raise Refusal(400, "batch must be a non-empty list")
    for message in batch:
        if not isinstance(message, dict):
            raise Refusal(400, "each event must be an object")
    return batch


def _event(message: dict[str, Any], *, v1: bool) -> dict[str, Any]:
    name = message.get("event")
    if not isinstance(name, str) or not name:
        raise Refusal(400, "event name missing")
    distinct_id = message.get("distinct_id")
    if not isinstance(distinct_id, str) or not distinct_id:
        raise Refusal(400, "distinct_id missing")
    dedup_id = _uuid(message.get("uuid"), "uuid")
    time = rfc3339_seconds(message.get("timestamp"), "timestamp")
    properties = message.get("properties", {})
    if not isinstance(properties, dict):
        raise Refusal(400, "properties must be an object")
    if v1:
        if not isinstance(message.get("options"), dict):
            raise Refusal(400, "options must be an object")
        if "$set" in message or "$set_once" in message:
            raise Refusal(400, "v1 takes $set in properties only")
        person = properties.get("$set")
    else:
        person = message.get("$set", properties.get("$set"))
    if name == "$set":
        if not isinstance(person, dict):
            raise Refusal(400, "$set must be an object")
        return _item("identify", "identify", distinct_id, dedup_id, time, person)
    own = {k: v for k, v in properties.items() if not k.startswith("$")}
    return _item("event", name, distinct_id, dedup_id, time, own)


def _item(
    kind: str, name: str, distinct_id: str, dedup_id: str, time: float, props: dict[str, Any]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "distinct_id": distinct_id,
        "dedup_id": dedup_id,
        "time": time,
        "properties": dict(props),
    }


def _uuid(value: object, what: str) -> str:
    try:
        return str(uuid.UUID(str(value))) if isinstance(value, str) else invalid(what)
    except ValueError:
        return invalid(what)
