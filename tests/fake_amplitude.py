"""A fake Amplitude ingestion API: the HTTP V2 API (``POST /2/httpapi``) and the Batch
Event Upload (``POST /batch``), checked as Amplitude's documentation says the real ones
check them.

- ``POST`` with ``Content-Type: application/json``; a JSON object with ``api_key`` (400
  "Request missing required field" without it, 400 "Invalid API key" with a wrong one),
  ``events`` (a non-empty list of at most 2000) and optional ``options``
  (``min_id_length``); a body over 1 MB (20 MB for /batch) is 413.
- Each event: ``event_type`` a non-empty string; ``user_id`` or ``device_id``, strings of
  at least ``min_id_length`` (5) characters and not a placeholder such as "null";
  ``time`` an integer of milliseconds since the epoch; ``insert_id`` a string;
  ``event_properties`` and ``user_properties`` objects (``$identify`` needs user
  properties, with operations such as ``$set``); only keys the API documents.
- A bad event makes the whole request a 400 naming it by index
  (``events_with_missing_fields``, ``events_with_invalid_fields``,
  ``events_with_invalid_id_lengths``) and nothing is stored, which is what the SDK's
  response handling assumes. Events repeating an ``insert_id`` for a device are stored once.
- A device Amplitude has silenced (one that sent far too many events: `silence`) makes the
  request a 400 too, listing ``silenced_devices`` and the indexes of their
  ``silenced_events`` beside the other faults.

And the deletion of users, with the secret key: the Dashboard REST API's user search
(``GET /api/2/usersearch?user=<id>``, https://amplitude.com/docs/apis/analytics/dashboard-rest)
and the User Privacy API (``POST /api/2/deletions/users``,
https://amplitude.com/docs/apis/analytics/user-privacy), both with the API key and the
secret key as HTTP basic auth (401 otherwise). A search for a device id or user id the fake
has events of answers ``{"type": "match_user_or_device_id", "matches": [{"user_id": ...,
"amplitude_id": ..., "last_device_id": ..., ...}]}``, for an Amplitude ID
``match_amplitude_id``, otherwise ``{"type": "nomatch", "matches": []}``; without ``user``
it is a 400. A deletion takes a JSON object with ``amplitude_ids`` (integers) and
``user_ids``, 1 to 100 in all, and ``requester``; an id the project does not have makes it a
400 (unless ``ignore_invalid_ids``); it answers 200 with the job: ``day``, ``status``
(``staging``) and ``amplitude_ids`` (each with its ``requester`` and ``requested_on_day``).
Each accepted deletion is kept in ``deletions``. (The real APIs live on ``amplitude.com``,
not on the event hosts: one fake serves both here.)

One check is ours, not Amplitude's (``require_no_geolocation``, on by default): an ``ip``
field (``"$remote"`` would make Amplitude geolocate the request's address) or location
fields are refused with 400, because cli-telemetry promises that no location is derived.

`check` returns the stored items normalized for provider-independent tests:
``{"kind", "name", "distinct_id", "dedup_id", "time" (epoch seconds), "properties"}``;
a ``$identify`` is ``{"kind": "identify", "name": "identify", "properties": <its $set>}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs

from fake_service import FakeService, Refusal, Request

API_KEY: Final = "AMPLITUDE_TEST_API_KEY"
SECRET_KEY: Final = "AMPLITUDE_TEST_SECRET_KEY"
SEARCH_PATH: Final = "/api/2/usersearch"
DELETION_PATH: Final = "/api/2/deletions/users"
MAX_DELETION_IDS: Final = 100
PATHS: Final = {"/2/httpapi": 1024 * 1024, "/batch": 20 * 1024 * 1024}
MAX_EVENTS: Final = 2000
MIN_ID_LENGTH: Final = 5
INVALID_IDS: Final = frozenset(
    {"anonymous", "nil", "none", "null", "n/a", "na", "undefined", "unknown", '""',
     "00000000-0000-0000-0000-000000000000", "{}", "lmy47d", "0", "-1"}
)  # fmt: skip
EVENT_KEYS: Final = {
    "user_id": str, "device_id": str, "event_type": str, "time": int,
    "event_properties": dict, "user_properties": dict, "groups": dict,
    "group_properties": dict, "$skip_user_properties_sync": bool, "app_version": str,
    "platform": str, "os_name": str, "os_version": str, "device_brand": str,
    "device_manufacturer": str, "device_model": str, "carrier": str, "country": str,
    "region": str, "city": str, "dma": str, "language": str, "price": float,
    "quantity": int, "revenue": float, "productId": str, "revenueType": str,
    "location_lat": float, "location_lng": float, "ip": str, "idfa": str, "idfv": str,
    "android_app_set_id": str, "adid": str, "android_id": str, "event_id": int,
    "session_id": int, "insert_id": str, "plan": dict, "library": str,
    "user_agent": str, "partner_id": str, "ingestion_metadata": dict,
}  # fmt: skip
LOCATING: Final = frozenset(
    {"ip", "country", "region", "city", "dma", "location_lat", "location_lng"}
)
USER_PROPERTY_OPERATIONS: Final = frozenset(
    {"$set", "$setOnce", "$add", "$append", "$prepend", "$unset", "$preInsert",
     "$postInsert", "$remove", "$clearAll"}
)  # fmt: skip
EPOCH_2001_MS: Final = 978307200000


class FakeAmplitude(FakeService):
    def __init__(self, api_key: str = API_KEY, secret_key: str = SECRET_KEY) -> None:
        self.api_key = api_key
        self.secret_key = secret_key
        self.deletions: list[dict[str, Any]] = []
        self._devices: set[str] = set()
        self._users: set[str] = set()
        self.require_no_geolocation = True
        self._seen: set[tuple[str, str]] = set()
        self._silenced: dict[str, int] = {}  # device id -> requests before the silence
        super().__init__()

    def silence(self, device_id: str, after: int = 0) -> None:
        """Silence ``device_id`` from the request after the next ``after`` ones on."""
        with self._lock:
            self._silenced[device_id] = len(self.requests) + after

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.path in (SEARCH_PATH, DELETION_PATH):
            return self._privacy(request)
        if request.method != "POST":
            raise Refusal(405, _error(405, "Method not allowed"))
        if request.path not in PATHS:
            raise Refusal(404, _error(400, "Invalid request path"))
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refusal(400, _error(400, "Invalid JSON request body"))
        if len(request.data) > PATHS[request.path]:
            raise Refusal(413, _error(413, "Payload too large"))
        if not request.data:
            raise Refusal(400, _error(400, "Missing request body"))
        try:
            body = json.loads(request.data)
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, _error(400, "Invalid JSON request body")) from None
        if not isinstance(body, dict):
            raise Refusal(400, _error(400, "Invalid JSON request body"))
        for field in ("api_key", "events"):
            if field not in body:
                raise Refusal(
                    400, _error(400, "Request missing required field", missing_field=field)
                )
        if body["api_key"] != self.api_key:
            raise Refusal(400, _error(400, f"Invalid API key: {body['api_key']}"))
        events, options = body["events"], body.get("options", {})
        if not isinstance(events, list) or not events:
            raise Refusal(400, _error(400, "Invalid event JSON"))
        if len(events) > MAX_EVENTS:
            raise Refusal(413, _error(413, "Payload too large"))
        if not isinstance(options, dict):
            raise Refusal(400, _error(400, "Invalid options"))
        min_id_length = options.get("min_id_length", MIN_ID_LENGTH)
        if not isinstance(min_id_length, int) or isinstance(min_id_length, bool):
            raise Refusal(400, _error(400, "Invalid options"))
        faults: dict[str, dict[str, list[int]]] = {
            "events_with_missing_fields": {},
            "events_with_invalid_fields": {},
            "events_with_invalid_id_lengths": {},
        }
        for index, event in enumerate(events):
            for kind, field in self._event_faults(event, min_id_length):
                faults[kind].setdefault(field, []).append(index)
        with self._lock:
            number = len(self.requests)
            silenced = {d for d, since in self._silenced.items() if number > since}
        silenced_events = [
            index
            for index, event in enumerate(events)
            if isinstance(event, dict) and event.get("device_id") in silenced
        ]
        if any(faults.values()) or silenced_events:
            answer: dict[str, Any] = {"code": 400, "error": "Invalid field values on some events"}
            answer.update({kind: fields for kind, fields in faults.items() if fields})
            if silenced_events:
                answer["silenced_devices"] = sorted(
                    silenced & {events[i]["device_id"] for i in silenced_events}
                )
                answer["silenced_events"] = silenced_events
            raise Refusal(400, json.dumps(answer))
        stored = []
        with self._lock:
            self._devices.update(e["device_id"] for e in events if "device_id" in e)
            self._users.update(e["user_id"] for e in events if "user_id" in e)
        for event in events:
            distinct = event.get("device_id") or event["user_id"]
            insert_id = event.get("insert_id")
            if insert_id is not None:
                with self._lock:
                    if (distinct, insert_id) in self._seen:
                        continue
                    self._seen.add((distinct, insert_id))
            identify = event["event_type"] == "$identify"
            stored.append(
                {
                    "kind": "identify" if identify else "event",
                    "name": "identify" if identify else event["event_type"],
                    "distinct_id": distinct,
                    "dedup_id": insert_id,
                    "time": event.get("time", time.time() * 1000) / 1000,
                    "properties": dict(
                        event["user_properties"].get("$set", {})
                        if identify
                        else event.get("event_properties", {})
                    ),
                }
            )
        now_ms = int(time.time() * 1000)
        answer_body = {
            "code": 200,
            "events_ingested": len(events),
            "payload_size_bytes": len(request.data),
            "server_upload_time": now_ms,
        }
        self.answer_with(request, json.dumps(answer_body).encode())
        return stored

    # -- user search and deletion ------------------------------------------------------

    def _privacy(self, request: Request) -> list[dict[str, Any]]:
        expected = base64.b64encode(f"{self.api_key}:{self.secret_key}".encode()).decode()
        if request.header("Authorization") != f"Basic {expected}":
            raise Refusal(401, _error(401, "Invalid API key or secret key"))
        if request.path == SEARCH_PATH:
            if request.method != "GET":
                raise Refusal(405, _error(405, "Method not allowed"))
            searched = parse_qs(request.query).get("user")
            if not searched:
                raise Refusal(400, _error(400, "Missing required parameter: user"))
            self.answer_with(request, json.dumps(self._search(searched[0])).encode())
            return []
        if request.method != "POST":
            raise Refusal(405, _error(405, "Method not allowed"))
        try:
            body = json.loads(request.data)
        except (ValueError, UnicodeDecodeError):
            raise Refusal(400, _error(400, "Invalid JSON request body")) from None
        if not isinstance(body, dict):
            raise Refusal(400, _error(400, "Invalid JSON request body"))
        amplitude_ids, user_ids = body.get("amplitude_ids", []), body.get("user_ids", [])
        if (
            not isinstance(amplitude_ids, list)
            or not all(type(i) is int for i in amplitude_ids)
            or not isinstance(user_ids, list)
            or not 1 <= len(amplitude_ids) + len(user_ids) <= MAX_DELETION_IDS
        ):
            raise Refusal(400, _error(400, "Invalid amplitude_ids or user_ids"))
        with self._lock:
            known = {amplitude_id(d) for d in self._devices | self._users}
            users = set(self._users)
        invalid = [i for i in amplitude_ids if i not in known]
        invalid += [i for i in user_ids if i not in users]
        if invalid and not body.get("ignore_invalid_ids"):
            raise Refusal(400, _error(400, "Users not found in the project"))
        day = datetime.now(UTC).date().isoformat()
        requester = body.get("requester")
        job = {
            "day": day,
            "status": "staging",
            "amplitude_ids": [
                {"amplitude_id": i, "requester": requester, "requested_on_day": day}
                for i in amplitude_ids
                if i not in invalid
            ],
            "user_ids": [u for u in user_ids if u not in invalid],
        }
        with self._lock:
            self.deletions.append(body)
        self.answer_with(request, json.dumps(job).encode())
        return []

    def _search(self, user: str) -> dict[str, Any]:
        with self._lock:
            devices, users = set(self._devices), set(self._users)
        if user in devices or user in users:
            match = {
                "user_id": user if user in users else None,
                "amplitude_id": amplitude_id(user),
                "last_device_id": user if user in devices else None,
                "platform": None,
                "country": None,
                "last_seen": datetime.now(UTC).date().isoformat(),
            }
            return {"type": "match_user_or_device_id", "matches": [match]}
        by_amplitude_id = [d for d in devices | users if str(amplitude_id(d)) == user]
        if by_amplitude_id:
            [known] = by_amplitude_id
            match = {"user_id": None, "amplitude_id": amplitude_id(known)}
            return {"type": "match_amplitude_id", "matches": [match]}
        return {"type": "nomatch", "matches": []}

    def _event_faults(self, event: Any, min_id_length: int) -> list[tuple[str, str]]:
        if not isinstance(event, dict):
            return [("events_with_invalid_fields", "event")]
        faults: list[tuple[str, str]] = []
        if not isinstance(event.get("event_type"), str) or not event["event_type"]:
            faults.append(("events_with_missing_fields", "event_type"))
        if "user_id" not in event and "device_id" not in event:
            faults.append(("events_with_missing_fields", "user_id"))
        for key, value in event.items():
            expected = EVENT_KEYS.get(key)
            if expected is None or not _is_a(value, expected):
                faults.append(("events_with_invalid_fields", key))
        for key in ("user_id", "device_id"):
            value = event.get(key)
            if isinstance(value, str):
                if len(value) < min_id_length:
                    faults.append(("events_with_invalid_id_lengths", key))
                elif value.strip().lower() in INVALID_IDS:
                    faults.append(("events_with_invalid_fields", key))
        when = event.get("time")
        if isinstance(when, int) and not isinstance(when, bool) and when < EPOCH_2001_MS:
            faults.append(("events_with_invalid_fields", "time"))  # seconds, not ms
        if event.get("event_type") == "$identify":
            properties = event.get("user_properties")
            if not isinstance(properties, dict) or not properties:
                faults.append(("events_with_missing_fields", "user_properties"))
            elif not set(properties) <= USER_PROPERTY_OPERATIONS:
                faults.append(("events_with_invalid_fields", "user_properties"))
        if self.require_no_geolocation:
            faults += [("events_with_invalid_fields", key) for key in LOCATING & set(event)]
        return faults


def _is_a(value: object, expected: type) -> bool:
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def amplitude_id(device_or_user: str) -> int:
    """The fake's Amplitude ID of a device or user: a number, stable for the id."""
    return int(hashlib.sha256(device_or_user.encode()).hexdigest()[:10], 16)


def _error(code: int, message: str, **extra: Any) -> str:
    return json.dumps({"code": code, "error": message, **extra})
