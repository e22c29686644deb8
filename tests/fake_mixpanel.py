"""A fake Mixpanel ingestion API: ``/track``, ``/engage`` and ``/import``, checked as
Mixpanel's documentation says the real one checks them.

- ``/track`` and ``/engage``: ``POST``, form-encoded, a ``data`` field holding a JSON list
  (or one object); the project token in each message; ``verbose=1`` answers
  ``{"status": 1, "error": null}``, a refusal ``{"status": 0, "error": ...}``, otherwise
  ``1`` or ``0``. ``/track`` refuses invalid events with 400 (its reference: "do not retry
  validation errors (400 status code)"); ``/engage`` "will return a 200 OK even if there
  are data validation issues", the refusal being only in the body.
- ``/import``: basic auth with the service account and ``project_id`` in the query (401
  otherwise); form-encoded as the SDK sends it, or JSON / NDJSON as the API reference
  shows; ``$insert_id`` and ``time`` required; with ``strict=1`` the valid events are stored
  and the batch answered 400 with ``num_records_imported`` and ``failed_records`` (each with
  the event's ``index`` in the request, its ``insert_id``, the ``field`` and a ``message``),
  as the real service does ("a 400 is a partial success rather than a total rejection").
- Events: a name, ``distinct_id`` a string, ``time`` in seconds or milliseconds since the
  epoch, after 1971 and at most an hour ahead, ``$insert_id`` at most 36 characters of
  ``[A-Za-z0-9-]``, fewer than 255 properties, objects nested at most 3 deep, with fewer
  than 255 keys, lists with fewer than 255 items. Events repeating (event, distinct id,
  time, ``$insert_id``) are de-duplicated, as Mixpanel does.

And the GDPR API's deletion task, ``POST /api/app/data-deletions/v3.0/?token=<project
token>``, as https://docs.mixpanel.com/reference/gdpr-api and Mixpanel's OpenAPI description
of it (``gdpr.openapi.yaml``) document it: the GDPR OAuth token as ``Authorization: Bearer``
(401 otherwise; the OpenAPI description takes no other scheme), the project's token in the
query (403 for another's), a JSON body with ``distinct_ids`` (1 to 1999 strings) and an
optional ``compliance_type``, ``GDPR`` or ``CCPA`` (400 otherwise); 201 with ``{"status":
"ok", "results": {"task_id": ...}}``. Errors are ``{"status": "error", "error": ...}``.
Each task is kept in ``deletions``. (The real API lives on the application host,
``mixpanel.com``, not ``api.mixpanel.com``: one fake serves both here.)

One check is ours, not Mixpanel's (``require_no_geolocation``, on by default): a request
without ``ip=0``, or an event with an ``ip``/``$ip`` property, would let Mixpanel derive a
location from an address, which cli-telemetry promises never to allow: it is refused with 400.

`check` returns the stored items normalized for provider-independent tests:
``{"kind", "name", "distinct_id", "dedup_id", "time" (epoch seconds), "properties"}``,
an identify (``/engage`` ``$set``) with the name ``"identify"``.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any, Final
from urllib.parse import parse_qs

from fake_service import FakeService, Refusal, Request

TOKEN: Final = "MIXPANEL_TEST_TOKEN"
SERVICE_ACCOUNT: Final = "sa-user.test:SA_TEST_SECRET"
PROJECT_ID: Final = "12345"
GDPR_TOKEN: Final = "MIXPANEL_TEST_GDPR_OAUTH_TOKEN"
DELETION_PATH: Final = "/api/app/data-deletions/v3.0/"
MAX_DELETION_IDS: Final = 1999
COMPLIANCE_TYPES: Final = frozenset({"GDPR", "CCPA"})

ENVELOPE: Final = frozenset(
    {"token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib_version"}
)
PROFILE_OPERATIONS: Final = frozenset(
    {"$set", "$set_once", "$add", "$union", "$append", "$remove", "$unset", "$delete"}
)
PROFILE_KEYS: Final = PROFILE_OPERATIONS | {
    "$token", "$distinct_id", "$time", "$ip", "$ignore_time", "$ignore_alias"
}  # fmt: skip
PLACEHOLDER_IDS: Final = frozenset(
    {"anon", "anonymous", "nil", "none", "null", "n/a", "undefined", "unknown",
     "00000000-0000-0000-0000-000000000000", "[]", "{}", "0", "-1"}
)  # fmt: skip
INSERT_ID: Final = re.compile(r"[A-Za-z0-9-]{1,36}")
LIMIT: Final = 255
MAX_DEPTH: Final = 3
MAX_EVENTS: Final = 2000
MAX_BODY: Final = 10 * 1024 * 1024
EPOCH_1971: Final = 31536000.0


class FakeMixpanel(FakeService):
    success_body = b'{"status": 1, "error": null}'

    def __init__(
        self,
        token: str = TOKEN,
        service_account: str = SERVICE_ACCOUNT,
        project_id: str = PROJECT_ID,
    ) -> None:
        self.token = token
        self.service_account = service_account
        self.project_id = project_id
        self.require_no_geolocation = True
        self.gdpr_token = GDPR_TOKEN
        self.deletions: list[dict[str, Any]] = []
        self.path_answers: dict[str, list[tuple[int, bytes]]] = {}
        self._seen: set[tuple[Any, ...]] = set()
        super().__init__()

    def answer_path(self, path: str, status: int, body: bytes | str, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` with ``status`` and ``body``
        (storing nothing): ``answer_path("/engage", 503, ...)`` fails one of a batch's two
        requests; a 200 with ``{"status": 0}`` is the verbose refusal."""
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self.path_answers.setdefault(path, []).extend([(status, raw)] * times)

    def check(self, request: Request) -> list[dict[str, Any]]:
        with self._lock:
            queued = self.path_answers.get(request.path)
            answer = queued.pop(0) if queued else None
        if answer is not None:
            raise Refusal(*answer)
        if request.method != "POST":
            raise Refusal(405, _error("method not allowed"))
        if request.path == DELETION_PATH:
            return self._deletion(request)
        if request.path == "/track":
            return self._track(request)
        if request.path == "/engage":
            return self._engage(request)
        if request.path == "/import":
            return self._import(request)
        raise Refusal(404, _error("not found"))

    # -- the GDPR API ------------------------------------------------------------------

    def _deletion(self, request: Request) -> list[dict[str, Any]]:
        if request.header("Authorization") != f"Bearer {self.gdpr_token}":
            raise Refusal(401, _app_error("Authentication required"))
        if parse_qs(request.query).get("token") != [self.token]:
            raise Refusal(403, _app_error("Permission denied"))
        content_type = (request.header("Content-Type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise Refusal(400, _app_error("request body must be JSON"))
        try:
            body = json.loads(request.data)
        except ValueError:
            raise Refusal(400, _app_error("request body must be JSON")) from None
        ids = body.get("distinct_ids") if isinstance(body, dict) else None
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_DELETION_IDS
            or not all(isinstance(i, str) and i for i in ids)
        ):
            raise Refusal(400, _app_error("distinct_ids: 1 to 1999 distinct ids"))
        if body.get("compliance_type", "GDPR") not in COMPLIANCE_TYPES:
            raise Refusal(400, _app_error("compliance_type must be GDPR or CCPA"))
        task = {"status": "ok", "results": {"task_id": str(uuid.uuid4())}}
        with self._lock:
            self.deletions.append(body)
        self.answer_with(request, json.dumps(task).encode(), status=201)
        return []

    # -- /track and /engage ------------------------------------------------------------

    def _track(self, request: Request) -> list[dict[str, Any]]:
        fields = self._form(request)
        verbose = fields.get("verbose") == "1"
        messages = self._messages(fields, verbose)
        self._policy(fields, verbose)
        errors: list[str] = []
        for message in messages:
            errors += self._event_errors(message, strict=False)
            if not errors and message["properties"].get("token") != self.token:
                errors.append("token, missing or invalid")
        if errors:
            raise Refusal(400, _error(errors[0]) if verbose else "0")
        if not verbose:
            self.answer_with(request, b"1")
        return self._store_events(messages)

    def _engage(self, request: Request) -> list[dict[str, Any]]:
        fields = self._form(request)
        verbose = fields.get("verbose") == "1"
        records = self._messages(fields, verbose)
        self._policy(fields, verbose)
        stored = []
        for record in records:
            problem = self._profile_error(record)
            if problem:  # "200 OK even if there are data validation issues": see the body
                raise Refusal(200, _error(problem) if verbose else "0")
        for record in records:
            if "$set" not in record:
                continue
            when = record.get("$time", time.time())
            key = ("$set", record["$distinct_id"], when, json.dumps(record["$set"], sort_keys=True))
            with self._lock:
                if key in self._seen:
                    continue
                self._seen.add(key)
            stored.append(
                {
                    "kind": "identify",
                    "name": "identify",
                    "distinct_id": record["$distinct_id"],
                    "dedup_id": None,
                    "time": _seconds(when),
                    "properties": dict(record["$set"]),
                }
            )
        if not verbose:
            self.answer_with(request, b"1")
        return stored

    def _profile_error(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            return "each profile update must be an object"
        if record.get("$token") != self.token:
            return "$token, missing or invalid"
        if not isinstance(record.get("$distinct_id"), str) or not record["$distinct_id"]:
            return "$distinct_id, missing or empty"
        unknown = set(record) - PROFILE_KEYS
        if unknown:
            return f"unknown profile keys {sorted(unknown)}"
        operations = PROFILE_OPERATIONS & set(record)
        if len(operations) != 1:
            return "exactly one profile operation expected"
        if "$set" in record and not isinstance(record["$set"], dict):
            return "$set must be an object"
        if "$time" in record and not _is_number(record["$time"]):
            return "$time must be a number"
        if self.require_no_geolocation and record.get("$ip", "0") != "0":
            return "fake policy: $ip would be geolocated"
        return None

    # -- /import -----------------------------------------------------------------------

    def _import(self, request: Request) -> list[dict[str, Any]]:
        expected = "Basic " + base64.b64encode(self.service_account.encode()).decode()
        if request.header("Authorization") != expected:
            raise Refusal(401, _import_error(401, "Invalid credentials", "Unauthorized"))
        query = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        if query.get("project_id") != self.project_id:
            raise Refusal(401, _import_error(401, "Invalid project_id", "Unauthorized"))
        strict = query.get("strict", "1") == "1"
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/x-www-form-urlencoded":
            fields = self._form(request)
            self._policy(fields, verbose=True)
            messages = self._messages(fields, verbose=True)
        elif content_type in ("application/json", "application/x-ndjson"):
            messages = self._json_messages(request.data, content_type)
        else:
            raise Refusal(415, _import_error(415, "unsupported content type", "Bad Request"))
        if len(request.data) > MAX_BODY:
            raise Refusal(413, _import_error(413, "request too large", "Request Entity Too Large"))
        failed, valid = [], []
        for index, message in enumerate(messages):
            errors = self._event_errors(message, strict=True)
            token = message["properties"].get("token") if not errors else None
            if not errors and token is not None and token != self.token:
                errors.append("'properties.token' is invalid")
            if errors:
                failed.append(
                    {
                        "index": index,
                        "insert_id": _insert_id_of(message),
                        "field": _field_of(errors[0]),
                        "message": errors[0],
                    }
                )
            else:
                valid.append(message)
        if failed and strict:
            stored = self._store_events(valid)
            with self._lock:
                self.stored.extend(stored)  # a 400 from /import is a partial success
            raise Refusal(
                400,
                json.dumps(
                    {
                        "code": 400,
                        "error": "some data points in the request failed validation",
                        "status": "Bad Request",
                        "num_records_imported": len(valid),
                        "failed_records": failed,
                    }
                ),
            )
        imported = {"code": 200, "num_records_imported": len(valid), "status": "OK"}
        self.answer_with(request, json.dumps(imported).encode())
        return self._store_events(valid)

    # -- shared ------------------------------------------------------------------------

    def _form(self, request: Request) -> dict[str, str]:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise Refusal(400, _error("expected a form-encoded body"))
        try:
            parsed = parse_qs(request.data.decode(), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise Refusal(400, _error("malformed form body")) from None
        if any(len(values) != 1 for values in parsed.values()):
            raise Refusal(400, _error("a form field appears more than once"))
        return {key: values[0] for key, values in parsed.items()}

    def _messages(self, fields: dict[str, str], verbose: bool) -> list[Any]:
        if "data" not in fields:
            raise Refusal(400, _error("data, missing or empty") if verbose else "0")
        try:
            value = json.loads(fields["data"])
        except ValueError:
            raise Refusal(400, _error("data, invalid JSON") if verbose else "0") from None
        messages = value if isinstance(value, list) else [value]
        if not messages or len(messages) > MAX_EVENTS:
            raise Refusal(400, _error(f"1 to {MAX_EVENTS} messages per request"))
        return messages

    def _json_messages(self, data: bytes, content_type: str) -> list[Any]:
        try:
            if content_type == "application/x-ndjson":
                return [json.loads(line) for line in data.splitlines() if line.strip()]
            value = json.loads(data)
        except ValueError:
            raise Refusal(400, _import_error(400, "invalid JSON", "Bad Request")) from None
        return value if isinstance(value, list) else [value]

    def _policy(self, fields: dict[str, str], verbose: bool) -> None:
        if self.require_no_geolocation and fields.get("ip") != "0":
            raise Refusal(400, _error("fake policy: without ip=0 the address is geolocated"))

    def _event_errors(self, message: Any, *, strict: bool) -> list[str]:
        if not isinstance(message, dict):
            return ["each event must be an object"]
        if not isinstance(message.get("event"), str) or not message["event"]:
            return ["'event' must be a non-empty string"]
        properties = message.get("properties")
        if not isinstance(properties, dict):
            return ["'properties' must be an object"]
        errors = []
        distinct_id = properties.get("distinct_id")
        if not isinstance(distinct_id, str):
            errors.append("'properties.distinct_id' must be a string")
        elif strict and distinct_id.strip().lower() in PLACEHOLDER_IDS:
            errors.append("'properties.distinct_id' is a placeholder value")
        when = properties.get("time")
        if when is None:
            if strict:
                errors.append("'properties.time' is required")
        elif not _is_number(when):
            errors.append("'properties.time' must be a number")
        else:
            seconds = _seconds(when)
            if seconds < EPOCH_1971 or (strict and seconds > time.time() + 3600):
                errors.append("'properties.time' is invalid: must be seconds since epoch")
        insert_id = properties.get("$insert_id")
        if insert_id is None:
            if strict:
                errors.append("'properties.$insert_id' is required")
        elif not isinstance(insert_id, str) or not INSERT_ID.fullmatch(insert_id):
            errors.append("'properties.$insert_id' must be 1-36 characters of [A-Za-z0-9-]")
        if len(properties) >= LIMIT:
            errors.append(f"an event must have fewer than {LIMIT} properties")
        errors += _nesting_errors(properties, 0)
        if self.require_no_geolocation and ({"ip", "$ip"} & set(properties)):
            errors.append("fake policy: an ip property would be geolocated")
        return errors

    def _store_events(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        stored = []
        for message in messages:
            properties = message["properties"]
            when = properties.get("time", time.time())
            insert_id = properties.get("$insert_id")
            if insert_id is not None:
                key = (message["event"], properties["distinct_id"], _seconds(when), insert_id)
                with self._lock:
                    if key in self._seen:
                        continue
                    self._seen.add(key)
            stored.append(
                {
                    "kind": "event",
                    "name": message["event"],
                    "distinct_id": properties["distinct_id"],
                    "dedup_id": insert_id,
                    "time": _seconds(when),
                    "properties": {k: v for k, v in properties.items() if k not in ENVELOPE},
                }
            )
        return stored


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _seconds(value: float) -> float:
    """Mixpanel takes seconds or milliseconds since the epoch."""
    return float(value) / 1000 if value > 1e11 else float(value)


def _nesting_errors(value: Any, depth: int) -> list[str]:
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return [f"objects may be nested at most {MAX_DEPTH} deep"]
        if len(value) >= LIMIT:
            return [f"objects must have fewer than {LIMIT} keys"]
        return [e for item in value.values() for e in _nesting_errors(item, depth + 1)]
    if isinstance(value, list):
        if len(value) >= LIMIT:
            return [f"lists must have fewer than {LIMIT} items"]
        return [e for item in value for e in _nesting_errors(item, depth + 1)]
    return []


def _insert_id_of(message: Any) -> Any:
    if isinstance(message, dict) and isinstance(message.get("properties"), dict):
        return message["properties"].get("$insert_id")
    return None


def _field_of(error: str) -> str:
    """The field an error message names in quotes (``'properties.time' is required``)."""
    quoted = re.match(r"'([^']+)'", error)
    return quoted.group(1) if quoted else "event"


def _error(message: str) -> str:
    return json.dumps({"error": message, "status": 0})


def _app_error(message: str) -> str:
    """An error of Mixpanel's application API (the GDPR API)."""
    return json.dumps({"status": "error", "error": message})


def _import_error(code: int, message: str, status: str) -> str:
    return json.dumps({"code": code, "error": message, "status": status})
