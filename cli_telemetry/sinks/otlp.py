"""OpenTelemetry logs over OTLP/HTTP with the JSON encoding: one log record per event.

``POST <endpoint>/v1/logs`` with ``Content-Type: application/json`` and an
``ExportLogsServiceRequest`` in the protocol's JSON mapping (field names in lowerCamelCase,
64-bit integers as decimal strings, enums as integers), as an OpenTelemetry Collector or
any OTLP backend takes it:

- one ``resourceLogs`` per distinct environment in the batch: ``service.name`` (the tool),
  ``service.version``, ``os.type``, ``os.version``, ``host.arch``, ``process.runtime.name``
  and ``process.runtime.version``, in semantic-convention names and values (``macos`` is
  ``darwin``, ``x86_64`` is ``amd64``). Nothing else about the host: never ``host.name``,
  and never ``host.id``, which the semantic conventions fill with the machine id itself;
- one ``scopeLogs`` with the scope ``cli-telemetry`` and its version;
- per event, a record with ``eventName`` and the body set to the event's name (the body too,
  although the event conventions leave it empty, because log views and receivers older than
  ``eventName`` show the body), ``timeUnixNano`` and ``observedTimeUnixNano`` both the
  event's timestamp (the library observed it when it happened; a send time would only say
  how long the spool waited), severity INFO (9: a failed command is a fact of usage, not an
  error of this program), and every other field as an attribute under its PRIVACY.md name
  (`mapping.properties`: custom properties merged in, ``values`` as a ``kvlistValue``,
  null as an empty value). The ``event_id`` is ``log.record.uid``, the semantic convention
  for a record's unique id, for de-duplication; the ``install_id`` keeps its own name,
  ``install_id``: ``user.id`` or ``enduser.id`` would claim an identity that it is not;
- an ``identify`` event is a record like any other, named ``identify``, its anonymous
  traits among its attributes (OTLP has no profiles to update).

Answers follow the OTLP specification, which is stricter than `classify`: 429, 502, 503 and
504 are retried (with Retry-After); every other 4xx and 5xx must not be, so they are
rejected (413 too, which lets the uploader split the batch). A 200 whose ``partialSuccess``
rejects some records must not be retried either: the rest are stored, and a resend would
store them twice. It is delivered, with ``rejectedLogRecords`` as ``unattributed`` refusals
(the error kind ``partial_rejected``): OTLP says how many records were rejected but not
which, so the uploader counts them and cannot keep them back for another try.

Uncompressed by default, as every OTLP exporter is unless told otherwise
(``OTEL_EXPORTER_OTLP_COMPRESSION`` defaults to none), because a receiver that cannot inflate
would answer 4xx and the batch would be dropped for good; ``compression="gzip"`` when the
backend is known to accept it (the Collector does).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import urllib3

from .. import __version__
from ..errors import ConfigurationError
from . import mapping
from .base import Delivery, partially
from .http import Transport, gzipped, json_body, split_auth

LOGS_PATH: Final = "/v1/logs"
SCOPE: Final = {"name": "cli-telemetry", "version": __version__}
SEVERITY_INFO: Final = 9
RETRYABLE: Final = frozenset({429, 502, 503, 504})
ANSWER_LIMIT: Final = 16384
"""Bytes of a 200's body read for ``partialSuccess``: its error message is a sentence."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

RESOURCE_FIELDS: Final = frozenset(
    {"tool", "tool_version", "os", "os_version", "arch", "python_version"}
)
"""Event fields that say where an event came from: the resource's attributes (see
`resource_of`), not repeated on each record."""

OS_TYPES: Final = {"macos": "darwin"}
"""`capture` writes ``platform.system()`` lowercased, but ``macos`` for Darwin; every other
value it writes is already the semantic convention's (linux, windows, freebsd, ...)."""

HOST_ARCHS: Final = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "i386": "x86",
    "i686": "x86",
    "armv6l": "arm32",
    "armv7l": "arm32",
    "ppc": "ppc32",
    "ppc64le": "ppc64",
}
"""``platform.machine()`` spellings of the semantic convention's ``host.arch`` values;
others (amd64, arm64, x86, s390x, ...) are sent as they are."""

EVENT_ID: Final = "log.record.uid"
INSTALL_ID: Final = "install_id"

_HEADER_NAME: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_OURS: Final = frozenset({"content-type", "content-encoding", "content-length"})


class OtlpSink:
    """POSTs batches as OTLP/HTTP JSON logs to ``<endpoint>/v1/logs``.

    ``endpoint`` is a base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` (one that already ends in
    ``/v1/logs`` is taken as it is). ``headers`` (``OTEL_EXPORTER_OTLP_HEADERS``, parsed) are
    sent as given, except that this sink alone sets the content type and encoding.
    """

    def __init__(
        self,
        *,
        name: str = "otlp",
        endpoint: str = "http://localhost:4318",
        headers: dict[str, str] | None = None,
        compression: str = "none",
    ) -> None:
        if compression not in ("none", "gzip"):
            raise ConfigurationError(
                f"OTLP compression must be 'none' or 'gzip', not {compression!r}"
            )
        for key, value in (headers or {}).items():
            if not _HEADER_NAME.fullmatch(key) or any(c in value for c in "\r\n\0"):
                raise ConfigurationError(f"OTLP header {key!r} is not a valid HTTP header")
        self.name = name
        self.compression = compression
        base, auth = split_auth(endpoint)
        self.url = logs_url(base)
        user = {k: v for k, v in (headers or {}).items() if k.lower() not in _OURS}
        self._headers = {**auth, **user, "Content-Type": "application/json"}
        self._transport = Transport()

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        body = json_body(export_request(events))
        headers = dict(self._headers)
        if self.compression == "gzip":
            body = gzipped(body, headers)
        result, answer = self._transport.post(
            self.url, body, headers, deadline, read_limit=ANSWER_LIMIT
        )
        result = otlp_outcome(result)
        if result.outcome == "delivered":
            return partially(unattributed=min(len(events), rejected_records(answer)))
        return result

    def close(self) -> None:
        self._transport.close()


def logs_url(endpoint: str) -> str:
    """``endpoint`` with ``/v1/logs`` appended to its path (before any query string)."""
    try:
        parsed = urllib3.util.parse_url(endpoint)
    except urllib3.exceptions.LocationParseError:
        return endpoint.rstrip("/") + LOGS_PATH  # the transport will call it a bad endpoint
    path = (parsed.path or "").rstrip("/")
    if not path.endswith(LOGS_PATH):
        path += LOGS_PATH
    return parsed._replace(path=path).url


def otlp_outcome(result: Delivery) -> Delivery:
    """`classify`'s answer, made to follow OTLP: a 4xx or 5xx not in `RETRYABLE` is
    rejected (the transport's error kind for a status is ``http_<status>``)."""
    kind = result.error or ""
    if result.outcome == "retry" and kind.startswith("http_") and kind[5:].isdigit():
        status = int(kind[5:])
        if 400 <= status < 600 and status not in RETRYABLE:
            return Delivery("rejected", kind)
    return result


def rejected_records(answer: bytes) -> int:
    """``partialSuccess.rejectedLogRecords`` of an ExportLogsServiceResponse (JSON), or 0
    when there is none or the answer cannot be read (a 200 is a success)."""
    try:
        partial = json.loads(answer).get("partialSuccess") or {}
        return max(0, int(partial.get("rejectedLogRecords") or 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def export_request(events: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """An ExportLogsServiceRequest, JSON-mapped, for ``events``: one resource per distinct
    environment, in the order they first appear."""
    groups: dict[tuple[tuple[str, str], ...], list[dict[str, Any]]] = {}
    for event in events:
        groups.setdefault(resource_of(event), []).append(log_record(event))
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": [_key_value(k, v) for k, v in resource]},
                "scopeLogs": [{"scope": dict(SCOPE), "logRecords": records}],
            }
            for resource, records in groups.items()
        ]
    }


def resource_of(event: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The resource attributes of an event's environment, as a hashable tuple."""
    os_type, arch, python = event.get("os"), event.get("arch"), event.get("python_version")
    attributes = {
        "service.name": event.get("tool"),
        "service.version": event.get("tool_version"),
        "os.type": None if os_type is None else OS_TYPES.get(str(os_type), os_type),
        "os.version": event.get("os_version"),
        "host.arch": None if arch is None else HOST_ARCHS.get(str(arch), arch),
        # The event has the language's version, not the implementation's (CPython, PyPy).
        "process.runtime.name": None if python is None else "python",
        "process.runtime.version": python,
    }
    return tuple((key, str(value)) for key, value in attributes.items() if value is not None)


def log_record(event: dict[str, Any]) -> dict[str, Any]:
    """One event as a LogRecord."""
    name = str(event.get("event", ""))
    nanos = str(epoch_nanos(str(event["timestamp"])))
    # The ids first, and a custom property of the same name cannot pose as one of them.
    attributes: dict[str, Any] = {INSTALL_ID: mapping.distinct_id(event)}
    if event.get("event_id") is not None:
        attributes[EVENT_ID] = str(event["event_id"])
    for key, value in mapping.properties(event).items():
        if key not in RESOURCE_FIELDS and key not in attributes:
            attributes[key] = value
    return {
        "timeUnixNano": nanos,
        "observedTimeUnixNano": nanos,
        "severityNumber": SEVERITY_INFO,
        "severityText": "INFO",
        "eventName": name,
        "body": {"stringValue": name},
        "attributes": [_key_value(key, value) for key, value in attributes.items()],
    }


def epoch_nanos(timestamp: str) -> int:
    """``2026-01-02T03:04:05.678Z`` (or with an offset) as integer nanoseconds since the
    epoch, exactly (no float on the way)."""
    when = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def any_value(value: object) -> dict[str, Any]:
    """A JSON value as an OTLP AnyValue: ints as decimal strings (int64), floats as
    doubles, None as the empty value, lists and dicts as array and key-value lists."""
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}  # a number no int64 holds: keep its digits
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {
            "doubleValue": "NaN"
            if math.isnan(value)
            else ("Infinity" if value > 0 else "-Infinity")
        }
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [_key_value(str(k), v) for k, v in value.items()]}}
    return {"stringValue": str(value)}


def _key_value(key: str, value: object) -> dict[str, Any]:
    return {"key": key, "value": any_value(value)}
