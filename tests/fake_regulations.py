"""Fake deletion APIs of Segment and RudderStack: the regulations each takes for userIds.

Segment's Public API, ``POST /regulations`` ("Create Workspace Regulation",
https://docs.segmentapis.com/tag/Deletion-and-Suppression, as the generated SDKs declare
it): a Public API token as ``Authorization: Bearer`` (401 otherwise), a JSON body
(``application/json`` or the API's ``application/vnd.segment.v1+json``) with
``regulationType`` one of the six workspace types, ``subjectType`` ``USER_ID`` or
``OBJECT_ID`` (not ``ANONYMOUS_ID``: that exists only for source regulations) and 1 to
5000 ``subjectIds`` ("up to 5000 userIds per call"); what breaks that is a 422 with the
API's error envelope, as are the SDKs' other documented answers (404 another path, 429).
Success: 200 with ``{"data": {"regulateId": ...}}``.

RudderStack's User Suppression API, ``POST /v2/regulations``
(https://www.rudderstack.com/docs/api/user-suppression-api/): an access token as
``Authorization: Bearer`` (401 otherwise), a JSON body with ``regulationType``
``suppress`` or ``suppress_with_delete``, ``users`` a non-empty list of objects each with a
``userId`` (``phone`` and ``email`` may be there too), and, for ``suppress_with_delete``,
``destinationIds``: known destinations of the workspace (``sourceIds`` for ``suppress``);
400 otherwise. Success: 201, no body read.

Each accepted regulation is kept in ``regulations``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from fake_service import FakeService, Refusal, Request

PUBLIC_API_TOKEN: Final = "SEGMENT_TEST_PUBLIC_API_TOKEN"
SEGMENT_PATH: Final = "/regulations"
SEGMENT_TYPES: Final = frozenset(
    {"DELETE_INTERNAL", "DELETE_ONLY", "SUPPRESS_ONLY", "SUPPRESS_WITH_DELETE",
     "SUPPRESS_WITH_DELETE_INTERNAL", "UNSUPPRESS"}
)  # fmt: skip
SEGMENT_SUBJECTS: Final = frozenset({"USER_ID", "OBJECT_ID"})
SEGMENT_CONTENT_TYPES: Final = frozenset({"application/json", "application/vnd.segment.v1+json"})
MAX_SUBJECTS: Final = 5000

ACCESS_TOKEN: Final = "RUDDERSTACK_TEST_ACCESS_TOKEN"
RUDDER_PATH: Final = "/v2/regulations"
DESTINATIONS: Final[tuple[str, ...]] = (
    "2FIKkByqJ3r1RIzm5lsQbaaaaaa",
    "2FIKkByqJ3r1RIzm5lsQbbbbbbb",
)
SOURCES: Final[tuple[str, ...]] = ("2H2WbKP1613awrY1YgA9Q58wBOc",)


class FakeSegmentPublicApi(FakeService):
    def __init__(self, token: str = PUBLIC_API_TOKEN) -> None:
        self.token = token
        self.regulations: list[dict[str, Any]] = []
        super().__init__()

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.path != SEGMENT_PATH:
            raise Refusal(404, _segment_error("not-found", "Resource not found"))
        if request.method != "POST":
            raise Refusal(404, _segment_error("not-found", "Resource not found"))
        if request.header("Authorization") != f"Bearer {self.token}":
            raise Refusal(401, _segment_error("unauthorized", "Unauthorized"))
        content_type = (request.header("Content-Type") or "").split(";")[0].strip()
        if content_type not in SEGMENT_CONTENT_TYPES:
            raise Refusal(422, _segment_error("validation", "unsupported content type"))
        body = _json_object(request.data)
        if body is None:
            raise Refusal(422, _segment_error("validation", "body must be a JSON object"))
        if body.get("regulationType") not in SEGMENT_TYPES:
            raise Refusal(422, _segment_error("validation", "regulationType"))
        if body.get("subjectType") not in SEGMENT_SUBJECTS:
            raise Refusal(422, _segment_error("validation", "subjectType"))
        ids = body.get("subjectIds")
        if not _strings(ids, MAX_SUBJECTS):
            raise Refusal(422, _segment_error("validation", "subjectIds: 1 to 5000 ids"))
        if set(body) - {"regulationType", "subjectType", "subjectIds"}:
            raise Refusal(422, _segment_error("validation", "unknown field"))
        with self._lock:
            self.regulations.append(body)
            number = len(self.regulations)
        answer = {"data": {"regulateId": f"2Ld0Xs0eVyW4F3Vj1u8nqmo{number:04d}"}}
        self.answer_with(request, json.dumps(answer).encode())
        return []


class FakeRudderStackApi(FakeService):
    def __init__(self, token: str = ACCESS_TOKEN) -> None:
        self.token = token
        self.regulations: list[dict[str, Any]] = []
        super().__init__()

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.path != RUDDER_PATH:
            raise Refusal(404, _rudder_error("not found"))
        if request.method != "POST":
            raise Refusal(405, _rudder_error("method not allowed"))
        if request.header("Authorization") != f"Bearer {self.token}":
            raise Refusal(401, _rudder_error("unauthorized"))
        body = _json_object(request.data)
        if body is None:
            raise Refusal(400, _rudder_error("body must be a JSON object"))
        kind = body.get("regulationType")
        if kind not in ("suppress", "suppress_with_delete"):
            raise Refusal(400, _rudder_error("regulationType"))
        users = body.get("users")
        if not isinstance(users, list) or not users or not all(map(_user, users)):
            raise Refusal(400, _rudder_error("users: objects with a userId"))
        named, known = ("destinationIds", DESTINATIONS)
        if kind == "suppress":
            named, known = ("sourceIds", SOURCES)
        ids = body.get(named, [] if kind == "suppress" else None)
        if not isinstance(ids, list) or (kind != "suppress" and not ids):
            raise Refusal(400, _rudder_error(f"{named} required"))
        if any(i not in known for i in ids):
            raise Refusal(400, _rudder_error(f"{named}: unknown id"))
        with self._lock:
            self.regulations.append(body)
        self.answer_with(request, b"", 201)
        return []


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _strings(value: object, limit: int) -> bool:
    return (
        isinstance(value, list)
        and 1 <= len(value) <= limit
        and all(isinstance(item, str) and item for item in value)
    )


def _user(value: object) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("userId"), str)
        and bool(value["userId"])
        and set(value) <= {"userId", "phone", "email"}
    )


def _segment_error(kind: str, message: str) -> str:
    """The Public API's error envelope (``RequestErrorEnvelope``)."""
    return json.dumps({"errors": [{"type": kind, "message": message}]})


def _rudder_error(message: str) -> str:
    return json.dumps({"error": message})
