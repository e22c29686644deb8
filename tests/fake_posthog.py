"""A fake PostHog: ``POST /batch/`` and ``POST /i/v1/analytics/events``, checked as PostHog's
capture service checks them, and the persons API's bulk delete.

Refusals: 401 for a missing or unknown project key (``api_key`` in the body for ``/batch/``,
a Bearer token for v1), 400 for a body that is not JSON or breaks the schema (an event
without a name, a distinct id, a UUID ``uuid`` or an RFC 3339 timestamp with an offset;
in v1 also a missing ``PostHog-*`` header, an ``options`` that is not an object, or a
top-level ``$set``, which v1 does not have), 404 for another path, 405 for another method.

A v1 success answers ``{"results": {uuid: {"result": "ok"}}}``; set ``v1_results`` to
answer some uuids otherwise (``"retry"``, ``"drop"``).

The bulk delete, ``POST /api/projects/<project id>/persons/bulk_delete/``, as
https://posthog.com/docs/api/persons documents it and PostHog's ``PersonViewSet.bulk_delete``
reads it: a personal API key as ``Authorization: Bearer`` with the ``person:write`` scope
(401 without a known key, 403 without the scope), a project the key may use (404 otherwise),
a JSON body (415 otherwise) with ``distinct_ids`` or ``ids`` (not both), at most 1000 (400,
``{"type": "validation_error", ...}``, otherwise), ``delete_events`` read as a boolean. The
persons are the distinct ids of the events the fake has stored; the answer is 202 with
``persons_found``, ``persons_deleted``, ``events_queued_for_deletion``,
``recordings_queued_for_deletion`` and ``deletion_errors`` (the persons of
``undeletable``). Each accepted request is kept in ``deletions``.

`check` returns the normalized items every fake returns (``kind``, ``name``,
``distinct_id``, ``dedup_id``, ``time``, ``properties``). An event ``$set`` is an
``identify`` named ``"identify"`` whose properties are its ``$set``; PostHog's own ``$``
properties are left out of an event's properties.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fake_service import FakeService, Refusal, Request, invalid, rfc3339_seconds

TEST_KEY = "phc_TESTPROJECTKEY"
PERSONAL_KEY = "phx_TESTPERSONALAPIKEY"
PROJECT_ID = "4242"
BATCH_PATH = "/batch/"
V1_PATH = "/i/v1/analytics/events"
V1_HEADERS = ("PostHog-Sdk-Info", "PostHog-Attempt", "PostHog-Request-Id")
BULK_DELETE = re.compile(r"/api/projects/([^/]+)/persons/bulk_delete/")
MAX_DELETE_IDS = 1000


class FakePostHog(FakeService):
    success_body = b'{"status": 1}'

    def __init__(self, api_key: str = TEST_KEY) -> None:
        self.api_key = api_key
        self.v1_results: dict[str, str] = {}
        self.personal_keys = {PERSONAL_KEY: {"person:write"}}  # key -> its scopes
        self.project_id = PROJECT_ID
        self.deletions: list[dict[str, Any]] = []
        self.undeletable: set[str] = set()  # distinct ids whose person fails to go
        self._gone: set[str] = set()  # distinct ids of deleted persons
        super().__init__()

    def check(self, request: Request) -> list[dict[str, Any]]:
        deletion = BULK_DELETE.fullmatch(request.path)
        if deletion:
            return self._bulk_delete(request, deletion.group(1))
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

    def _bulk_delete(self, request: Request, project_id: str) -> list[dict[str, Any]]:
        if request.method != "POST":
            raise Refusal(405, _api_error("invalid_request", "method_not_allowed", "Not allowed"))
        scheme, _, key = (request.header("Authorization") or "").partition(" ")
        scopes = self.personal_keys.get(key) if scheme == "Bearer" else None
        if scopes is None:
            raise Refusal(401, _api_error("authentication_error", "authentication_failed"))
        if "person:write" not in scopes:
            raise Refusal(403, _api_error("authentication_error", "permission_denied"))
        if project_id != self.project_id:
            raise Refusal(404, _api_error("invalid_request", "not_found", "Not found."))
        content_type = (request.header("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise Refusal(415, _api_error("invalid_request", "unsupported_media_type"))
        try:
            body = json.loads(request.data)
        except ValueError:
            raise Refusal(400, _api_error("validation_error", "parse_error")) from None
        if not isinstance(body, dict):
            raise Refusal(400, _api_error("validation_error", "invalid_input"))
        distinct_ids, ids = body.get("distinct_ids"), body.get("ids")
        if distinct_ids and ids:
            raise Refusal(400, _validation("You must provide either distinct_ids or ids, not both"))
        if not distinct_ids and not ids:
            raise Refusal(400, _validation("You need to specify either distinct_ids or ids"))
        if ids or not isinstance(distinct_ids, list):
            raise Refusal(400, _validation("this fake takes distinct_ids, a list"))
        if len(distinct_ids) > MAX_DELETE_IDS:
            raise Refusal(400, _validation("You can only pass 1000 distinct_ids in one call"))
        with self._lock:
            known = {item["distinct_id"] for item in self.stored} - self._gone
            found = [i for i in dict.fromkeys(distinct_ids) if i in known]
            failed = [i for i in found if i in self.undeletable]
            self._gone.update(i for i in found if i not in failed)
            self.deletions.append(body)
        delete_events = bool(body.get("delete_events"))
        summary = {
            "persons_found": len(found),
            "persons_deleted": len(found) - len(failed),
            "events_queued_for_deletion": delete_events and bool(found),
            "recordings_queued_for_deletion": bool(body.get("delete_recordings")) and bool(found),
            "deletion_errors": [
                {"person_uuid": str(uuid.uuid5(uuid.NAMESPACE_OID, i))} for i in failed
            ],
        }
        self.answer_with(request, json.dumps(summary).encode(), status=202)
        return []

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


def _api_error(kind: str, code: str, detail: str = "") -> str:
    """An error as PostHog's API writes them (DRF, with its ``type``, ``code``, ``detail``)."""
    return json.dumps({"type": kind, "code": code, "detail": detail or code, "attr": None})


def _validation(detail: str) -> str:
    return _api_error("validation_error", "invalid_input", detail)
