"""Fake Segment and RudderStack ``POST /v1/batch`` endpoints, checked as the services do.

Both take the Segment Spec's messages with basic auth (the write key as user). Refusals:
401 for a missing or unknown write key, 400 for a body that is not JSON or breaks the Spec
(a message without ``type``, without ``userId`` or ``anonymousId``, without ``messageId``, a
``track`` without ``event``, an unreadable ``timestamp``), 400 past Segment's size limits
(500 KB a batch, 32 KB a message), 404 for another path, 405 for another method.

Where Segment documents a 200 for a message it then drops silently (no identifier, a track
without a name), the fake refuses with 400 instead, so that a test sees the mistake; a
wrong key, which Segment also drops, gets 401 (RudderStack's answer).

`check` returns the normalized items every fake returns; ``distinct_id`` is the
``anonymousId`` (or the ``userId`` if there is none), an identify's properties its traits
(RudderStack's SDK puts them in ``context.traits``).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fake_service import FakeService, Refusal, Request, rfc3339_seconds

SEGMENT_KEY = "SEGMENT_TEST_WRITE_KEY"
RUDDER_KEY = "RUDDER_TEST_WRITE_KEY"
MAX_BATCH_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})


class FakeSegment(FakeService):
    success_body = b'{"success": true}'
    writekey_in_body = True  # Segment also takes the key as the body's writeKey

    def __init__(self, write_key: str = SEGMENT_KEY) -> None:
        self.write_key = write_key
        super().__init__()

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.path != "/v1/batch":
            raise Refusal(404, "not found")
        if request.method != "POST":
            raise Refusal(405, "method not allowed")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise Refusal(400, "content type must be application/json")
        if len(request.data) > MAX_BATCH_BYTES:
            raise Refusal(400, "Exceed payload limit")
        try:
            body = json.loads(request.data)
        except ValueError:
            raise Refusal(400, "Invalid JSON") from None
        if not isinstance(body, dict):
            raise Refusal(400, "body must be an object")
        if not self._authorized(request, body):
            raise Refusal(401, "Invalid Authorization Header")
        batch = body.get("batch")
        if not isinstance(batch, list) or not batch:
            raise Refusal(400, "batch must be a non-empty list")
        if "sentAt" in body:
            rfc3339_seconds(body["sentAt"], "sentAt")
        return [self._message(message) for message in batch]

    def _authorized(self, request: Request, body: dict[str, Any]) -> bool:
        if self.writekey_in_body and body.get("writeKey") == self.write_key:
            return True
        scheme, _, encoded = (request.header("Authorization") or "").partition(" ")
        if scheme != "Basic":
            return False
        try:
            user, _, _ = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == self.write_key

    def _message(self, message: object) -> dict[str, Any]:
        if not isinstance(message, dict):
            raise Refusal(400, "each message must be an object")
        if len(json.dumps(message).encode()) > MAX_MESSAGE_BYTES:
            raise Refusal(400, "Exceed payload limit")
        kind = message.get("type")
        if kind not in TYPES:
            raise Refusal(400, "invalid type")
        anonymous_id, user_id = message.get("anonymousId"), message.get("userId")
        for value in (anonymous_id, user_id):
            if value is not None and not isinstance(value, str):
                raise Refusal(400, "userId and anonymousId must be strings")
        distinct_id = anonymous_id or user_id
        if not distinct_id:
            raise Refusal(400, "userId or anonymousId is required")
        message_id = message.get("messageId")
        if not isinstance(message_id, str) or not message_id:
            raise Refusal(400, "messageId is required")
        time = rfc3339_seconds(message.get("timestamp"), "timestamp")
        context = message.get("context", {})
        if not isinstance(context, dict) or not isinstance(message.get("integrations", {}), dict):
            raise Refusal(400, "context and integrations must be objects")
        item = {"distinct_id": distinct_id, "dedup_id": message_id, "time": time}
        if kind == "identify":
            traits = message.get("traits", context.get("traits", {}))
            if not isinstance(traits, dict):
                raise Refusal(400, "traits must be an object")
            return {"kind": "identify", "name": "identify", **item, "properties": dict(traits)}
        name = message.get("event")
        if kind == "track" and (not isinstance(name, str) or not name):
            raise Refusal(400, "track needs an event name")
        properties = message.get("properties", {})
        if not isinstance(properties, dict):
            raise Refusal(400, "properties must be an object")
        return {"kind": "event", "name": str(name), **item, "properties": dict(properties)}


class FakeRudderStack(FakeSegment):
    """RudderStack's data plane: the key only as basic auth, ``OK`` in plain text."""

    success_body = b"OK"
    success_content_type = "text/plain; charset=utf-8"
    writekey_in_body = False

    def __init__(self, write_key: str = RUDDER_KEY) -> None:
        super().__init__(write_key)
