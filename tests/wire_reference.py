"""The requests the official SDKs sent (``../shared/reference/wire/``), and the helpers that
compare a request of ours with one of theirs by structure: values change (keys, ids,
times, library names), the shape must not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fake_service import Request

WIRE = Path(__file__).parents[2] / "shared" / "reference" / "wire"

TRANSPORT_HEADERS = frozenset(
    {"user-agent", "accept", "accept-encoding", "host", "content-length", "connection"}
)
"""Headers the HTTP client adds on its own (requests and urllib3 differ here)."""

ISO_PYTHON = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00")
"""A timestamp as ``datetime.isoformat()`` writes it in UTC."""
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


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
