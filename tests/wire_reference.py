"""The requests the official SDKs sent (``tests/wire/``, a copy of the team's
``shared/reference/wire/``, so that a fresh clone tests alone), and the helpers that compare
a request of ours with one of theirs by structure: values change (keys, ids, times, library
names), the shape must not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fake_service import Request

from cli_telemetry import __version__
from cli_telemetry.sinks.segment import NO_IP

WIRE = Path(__file__).parent / "wire"

TRANSPORT_HEADERS = frozenset(
    {"user-agent", "accept", "accept-encoding", "host", "content-length", "connection"}
)
"""Headers the HTTP client adds on its own (requests and urllib3 differ here)."""

ISO_PYTHON = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00")
"""A timestamp as ``datetime.isoformat()`` writes it in UTC."""
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")

SEGMENT_OURS_ONLY = {"ip"}
"""Context we add to a Segment or RudderStack message that the SDKs do not: ``ip`` is a
placeholder, so no one is located."""


def load(name: str) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = json.loads((WIRE / name).read_text())
    return requests


def header_names(headers: dict[str, str]) -> set[str]:
    return {name.lower() for name in headers} - TRANSPORT_HEADERS


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape(value: dict[str, Any]) -> dict[str, str]:
    """Each key with the JSON type of its value."""
    return {key: json_type(item) for key, item in value.items()}


def body(request: Request) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(request.data)
    return decoded


def assert_gzipped_like(request: Request, reference: dict[str, Any]) -> None:
    """Our request goes where the SDK's went, with its headers (those the HTTP client adds
    aside), gzipped as the SDK's was."""
    assert (request.method, request.path) == (reference["method"], reference["path"])
    assert header_names(request.headers) == header_names(reference["headers"])
    assert request.header("Content-Encoding") == reference["content_encoding"] == "gzip"


def compare_segment_messages(
    ours: list[dict[str, Any]], reference: list[dict[str, Any]], *, identified: bool = False
) -> None:
    """Each of our Segment Spec messages (Segment, RudderStack) has the shape of the SDK's
    message of the same type, with the identity in ``anonymousId`` where the capture used
    ``userId`` (both keys are there, the unused one null, as the SDK sends them); with
    ``identified`` (the author's ``user_id="install"``), in both, as the SDK sends a call
    given both ``user_id`` and ``anonymous_id``."""
    user_id = "string" if identified else "null"
    for message in ours:
        ref = next(m for m in reference if m["type"] == message["type"])
        expected = shape(ref) | {"anonymousId": "string", "userId": user_id}
        assert shape(message) == expected
        assert set(message["context"]) - SEGMENT_OURS_ONLY == set(ref["context"])
        assert message["context"]["ip"] == NO_IP
        assert message["context"]["library"] == {"name": "cli-telemetry", "version": __version__}


def auth_scheme(headers: dict[str, str]) -> str | None:
    for name, value in headers.items():
        if name.lower() == "authorization":
            return value.split(" ", 1)[0]
    return None


def expected_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a fake's `check` should store for ``events``: the normalized items."""
    from cli_telemetry.sinks.mapping import epoch_seconds, properties

    items = []
    for event in events:
        identify = event["event"] == "identify"
        items.append(
            {
                "kind": "identify" if identify else "event",
                "name": event["event"],
                "distinct_id": event["install_id"],
                "dedup_id": event["event_id"],
                "time": epoch_seconds(event["timestamp"]),
                "properties": event["properties"] if identify else properties(event),
            }
        )
    return items
