"""An OTLP/HTTP logs receiver, checking requests as a collector decodes them, and stricter.

``POST /v1/logs`` with ``Content-Type: application/json`` (404, 405 and 415 otherwise), the
body an ``ExportLogsServiceRequest`` in the OTLP JSON mapping, else 400. A collector ignores
fields it does not know; this fake refuses them, because an unknown field is how a wrong
encoding (``time_unix_nano``, ``resource_logs``) would silently lose data. It also insists
on what the proto3 JSON mapping writes, where a decoder would accept more: 64-bit integers
(``timeUnixNano``, ``intValue``) as decimal strings, enums as integers, attribute keys
unique. And on this project's conventions: every record has ``install_id`` and
``log.record.uid``, and the resource no ``host.name`` or ``host.id``.

With ``reject_before`` set (epoch seconds), records older than that are rejected as a
backend rejects what falls outside its retention: the others are stored and the answer is a
200 whose ``partialSuccess`` gives ``rejectedLogRecords`` (a count, as a decimal string: an
int64 in the JSON mapping) and an ``errorMessage``, as the specification describes.

Stored items, normalized for the end-to-end tests::

    {"kind": "event" | "identify", "name": str, "distinct_id": str, "dedup_id": str | None,
     "time": float, "properties": dict}

``properties`` are the record's attributes (decoded to JSON values; ``install_id`` and
``log.record.uid`` are the ids) with the resource's mapped back to the event's field names:
``service.name`` is ``tool``, ``service.version`` ``tool_version``, ``os.type`` ``os``
(``darwin`` is ``macos``), ``os.version`` ``os_version``, ``host.arch`` ``arch`` (in the
semantic convention's spelling: ``amd64`` for ``x86_64``), ``process.runtime.version``
``python_version``. For an identify, ``properties`` are its traits only (the attributes
that are not event fields), as the other fakes normalize an identify.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from fake_service import FakeService, Refusal, Request

from cli_telemetry.events import Event

INT64 = re.compile(r"-?(0|[1-9][0-9]{0,18})")
UINT64 = re.compile(r"0|[1-9][0-9]{0,19}")
FIELDS = {
    "request": {"resourceLogs"},
    "resourceLogs": {"resource", "scopeLogs", "schemaUrl"},
    "resource": {"attributes", "droppedAttributesCount", "entityRefs"},
    "scopeLogs": {"scope", "logRecords", "schemaUrl"},
    "scope": {"name", "version", "attributes", "droppedAttributesCount"},
    "logRecord": {
        "timeUnixNano", "observedTimeUnixNano", "severityNumber", "severityText", "body",
        "attributes", "droppedAttributesCount", "flags", "traceId", "spanId", "eventName",
    },
}  # fmt: skip
ANY_VALUE = {
    "stringValue", "boolValue", "intValue", "doubleValue", "arrayValue", "kvlistValue",
    "bytesValue",
}  # fmt: skip
FROM_RESOURCE = {
    "service.name": "tool",
    "service.version": "tool_version",
    "os.type": "os",
    "os.version": "os_version",
    "host.arch": "arch",
    "process.runtime.version": "python_version",
}
IDENTIFYING = {"host.name", "host.id", "host.ip", "host.mac"}
EVENT_FIELDS = Event.__required_keys__ | Event.__optional_keys__


class FakeOtlp(FakeService):
    def __init__(self, path: str = "/v1/logs") -> None:
        self.path = path
        self.reject_before: float | None = None
        super().__init__()

    def check(self, request: Request) -> list[dict[str, Any]]:
        if request.path != self.path:
            raise Refusal(404, "unknown path")
        if request.method != "POST":
            raise Refusal(405, "POST only")
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Refusal(415, "unsupported content type")
        try:
            data = json.loads(request.data)
            items = list(decode_request(data))
        except (ValueError, Malformed) as exc:
            raise Refusal(400, json.dumps({"message": str(exc)})) from None
        cutoff = self.reject_before
        kept = [item for item in items if cutoff is None or item["time"] >= cutoff]
        if len(kept) < len(items):
            partial = {
                "rejectedLogRecords": str(len(items) - len(kept)),
                "errorMessage": "log records older than the retention period",
            }
            self.answer_with(request, json.dumps({"partialSuccess": partial}).encode())
        return kept


class Malformed(Exception):
    pass


def _object(value: Any, kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{kind} must be an object")
    unknown = set(value) - FIELDS[kind]
    if unknown:
        raise Malformed(f"{kind} has unknown fields {sorted(unknown)}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} must be an array")
    return value


def _uint64(value: Any, what: str) -> int:
    if not isinstance(value, str) or not UINT64.fullmatch(value) or int(value) >= 2**64:
        raise Malformed(f"{what} must be a decimal string (fixed64)")
    return int(value)


def decode_any(value: Any) -> Any:
    if not isinstance(value, dict) or len(value) > 1 or set(value) - ANY_VALUE:
        raise Malformed(f"bad AnyValue {value!r}")
    if not value:
        return None  # the empty value
    [(kind, inner)] = value.items()
    if kind == "stringValue" and isinstance(inner, str):
        return inner
    if kind == "boolValue" and isinstance(inner, bool):
        return inner
    if kind == "intValue" and isinstance(inner, str) and INT64.fullmatch(inner):
        number = int(inner)
        if -(2**63) <= number < 2**63:
            return number
    if kind == "doubleValue" and (
        (isinstance(inner, (int, float)) and not isinstance(inner, bool))
        or inner in ("NaN", "Infinity", "-Infinity")
    ):
        return float(inner)
    if kind == "arrayValue" and isinstance(inner, dict) and set(inner) <= {"values"}:
        return [decode_any(item) for item in _list(inner.get("values"), "arrayValue.values")]
    if kind == "kvlistValue" and isinstance(inner, dict) and set(inner) <= {"values"}:
        return decode_attributes(inner.get("values"))
    raise Malformed(f"bad AnyValue {value!r}")


def decode_attributes(value: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for item in _list(value, "attributes"):
        if not isinstance(item, dict) or set(item) - {"key", "value"}:
            raise Malformed(f"bad KeyValue {item!r}")
        key = item.get("key")
        if not isinstance(key, str) or not key or key in decoded:
            raise Malformed(f"bad or repeated attribute key {key!r}")
        decoded[key] = decode_any(item.get("value", {}))
    return decoded


def decode_request(data: Any) -> list[dict[str, Any]]:
    items = []
    for resource_logs in _list(_object(data, "request").get("resourceLogs"), "resourceLogs"):
        resource_logs = _object(resource_logs, "resourceLogs")
        resource = decode_attributes(
            _object(resource_logs.get("resource", {}), "resource").get("attributes")
        )
        if IDENTIFYING & set(resource):
            raise Malformed(f"identifying resource attributes {IDENTIFYING & set(resource)}")
        if not isinstance(resource.get("service.name"), str):
            raise Malformed("resource without service.name")
        common = {FROM_RESOURCE[k]: v for k, v in resource.items() if k in FROM_RESOURCE}
        if common.get("os") == "darwin":
            common["os"] = "macos"
        for scope_logs in _list(resource_logs.get("scopeLogs"), "scopeLogs"):
            scope_logs = _object(scope_logs, "scopeLogs")
            _object(scope_logs.get("scope", {}), "scope")
            for record in _list(scope_logs.get("logRecords"), "logRecords"):
                items.append(decode_record(_object(record, "logRecord"), common))
    return items


def decode_record(record: dict[str, Any], common: dict[str, Any]) -> dict[str, Any]:
    nanos = _uint64(record.get("timeUnixNano"), "timeUnixNano")
    if "observedTimeUnixNano" in record:
        _uint64(record["observedTimeUnixNano"], "observedTimeUnixNano")
    severity = record.get("severityNumber", 0)
    if not isinstance(severity, int) or isinstance(severity, bool) or not 0 <= severity <= 24:
        raise Malformed("severityNumber must be an integer from 0 to 24")
    for text in ("severityText", "eventName"):
        if not isinstance(record.get(text, ""), str):
            raise Malformed(f"{text} must be a string")
    body = decode_any(record.get("body", {}))
    name = record.get("eventName") or body
    if not isinstance(name, str) or not name:
        raise Malformed("a record without an event name")
    attributes = decode_attributes(record.get("attributes"))
    distinct_id = attributes.pop("install_id", None)
    dedup_id = attributes.pop("log.record.uid", None)
    if not isinstance(distinct_id, str) or not isinstance(dedup_id, str):
        raise Malformed("a record without install_id or log.record.uid")
    properties = {**common, **attributes}
    if name == "identify":
        properties = {k: v for k, v in attributes.items() if k not in EVENT_FIELDS}
    return {
        "kind": "identify" if name == "identify" else "event",
        "name": name,
        "distinct_id": distinct_id,
        "dedup_id": dedup_id,
        # as datetime.timestamp() computes it, so equal to the event's timestamp parsed
        "time": timedelta(microseconds=nanos // 1000).total_seconds(),
        "properties": properties,
    }
