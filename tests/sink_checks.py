"""What every provider's sink test checks the same way: a sink sends the sample events to
the provider's fake service (`fake_service`), and the test looks at what the service stored,
refused or was told to answer. The per-provider modules keep only what is their provider's."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import urllib3
from fake_service import FakeService, sample_events
from wire_reference import expected_items

from cli_telemetry.sinks import Delivery, Sink, mapping

ANSWERS = pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", Delivery("retry", "http_429", 7.0)), (503, None, Delivery("retry", "http_503")),
     (400, None, Delivery("rejected", "http_400")), (401, None, Delivery("rejected", "http_401"))],
)  # fmt: skip
"""The answers of a service that follows HTTP's meaning (PostHog, Segment, RudderStack)."""

COMMAND_ITEM: dict[str, Any] = {
    "kind": "event",
    "name": "command",
    "distinct_id": "3f1c2a9be07d4c55a1e2b3c4d5e6f708",
    "dedup_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a01",
    "time": 1795428001.25,
    "properties": {
        "schema_version": 1,
        "tool": "acme",
        "tool_version": "1.4.0",
        "os": "linux",
        "os_version": "6.1",
        "arch": "x86_64",
        "python_version": "3.11.7",
        "ci": None,
        "interactive": True,
        "command": "acme deploy",
        "flags": ["--force", "--format"],
        "values": {"--force": True, "--format": "json"},
        "exit_code": 0,
        "outcome": "success",
        "error_type": None,
        "duration_ms": 125,
    },
}
"""The first sample event as a service that keeps every field stores it, written out rather
than computed, so that a mapping that loses or changes a field fails."""


def soon(seconds: float = 10) -> float:
    return time.monotonic() + seconds


def deliver(sink: Sink, events: list[dict[str, Any]] | None = None) -> Delivery:
    """Send ``events`` (the sample events) once, then close the sink: a run of the uploader."""
    try:
        return sink.send(sample_events() if events is None else events, soon())
    finally:
        sink.close()


def check_stores_every_event(sink: Sink, fake: FakeService) -> None:
    assert deliver(sink).outcome == "delivered"
    assert fake.stored == expected_items(sample_events())


def check_answer(
    sink: Sink, fake: FakeService, status: int, retry_after: str | None, expected: Delivery
) -> None:
    """The service answers ``status`` once: the sink reports ``expected`` and nothing is
    stored; the same events sent again are stored, with the same ids to de-duplicate on."""
    fake.force(status, retry_after=retry_after)
    try:
        assert sink.send(sample_events(), soon()) == expected
        assert fake.stored == []
        assert sink.send(sample_events(), soon()) == Delivery("delivered")
    finally:
        sink.close()
    assert [item["dedup_id"] for item in fake.stored] == [e["event_id"] for e in sample_events()]


def check_refused(sink: Sink, fake: FakeService, status: int) -> None:
    """The service itself (not a forced answer) refuses the sample events with ``status``."""
    assert deliver(sink) == Delivery("rejected", f"http_{status}")
    assert fake.stored == []
    assert [refused for _, refused in fake.refused] == [status]


def check_nothing_to_send(sink: Sink, fake: FakeService) -> None:
    """No request for an empty batch, an identify without traits, or a deadline passed."""
    assert sink.send([], soon()) == Delivery("delivered")
    no_traits = {**sample_events()[3], "properties": {}}
    assert sink.send([no_traits], soon()) == Delivery("delivered")
    assert sink.send(sample_events(), time.monotonic() - 1) == Delivery("retry", "deadline")
    assert fake.requests == []


def check_normalized(items: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    """The fake stored the sample ``events`` as the normalized items of `fake_service`: kind
    and name, the install id as distinct id, the time in float seconds."""
    assert [(i["kind"], i["name"]) for i in items] == [
        ("event", "command"),
        ("event", "command"),
        ("event", "template_used"),
        ("identify", "identify"),
    ]
    for item, event in zip(items, events, strict=True):
        assert set(item) == {"kind", "name", "distinct_id", "dedup_id", "time", "properties"}
        assert item["distinct_id"] == event["install_id"]
        assert item["time"] == pytest.approx(mapping.epoch_seconds(event["timestamp"]))
        assert isinstance(item["time"], float)


def post(url: str, body: object, headers: dict[str, str]) -> int:
    """POST ``body`` (bytes or text as it is, anything else as JSON) with exactly
    ``headers``, without retries: the status the service answers."""
    data = body if isinstance(body, (bytes, str)) else json.dumps(body).encode()
    with urllib3.PoolManager() as pool:
        return pool.request("POST", url, body=data, headers=headers, retries=False).status
