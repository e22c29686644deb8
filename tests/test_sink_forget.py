"""Sinks that pass deletion requests on (`cli_telemetry.sinks.base.Forgetting`): the
collector's own sink against a loopback receiver of the wire format and the real collector,
the webhook against the fake receiver that verifies signatures. The providers' event sinks
take no deletion request (their deletion APIs want secrets a tool cannot ship): they do not
have ``forget``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_webhook import FakeWebhook
from loopback import Endpoint
from sink_checks import soon
from test_collector_e2e import Collector

from cli_telemetry.events import check_event
from cli_telemetry.providers import (
    OTLP,
    Amplitude,
    Mixpanel,
    PostHog,
    Provider,
    RudderStack,
    Segment,
)
from cli_telemetry.sinks import Delivery, HttpSink
from cli_telemetry.sinks.base import Forgetting
from cli_telemetry.sinks.webhook import WebhookSink
from cli_telemetry.webhook_signature import SIGNATURE_HEADER

SECRET = "whsec_test_forget"


def deletion_request(**changes: Any) -> dict[str, Any]:
    """A deletion request as ``telemetry disable`` leaves it (`events.DeletionRequest`)."""
    request: dict[str, Any] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "event": "deletion_request",
        "timestamp": "2026-11-23T12:00:00.123Z",
        "tool": "acme",
        "install_id": str(uuid.uuid4()),
    }
    request.update(changes)
    return request


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    server = Collector(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    yield server
    server.close()


def test_the_sample_request_is_one_the_schema_takes() -> None:
    check_event(deletion_request())


def test_the_collector_sink_and_the_webhook_forget() -> None:
    collector, hook = HttpSink("http://127.0.0.1:9/v1/events"), WebhookSink(url="http://x/")
    assert isinstance(collector, Forgetting) and isinstance(hook, Forgetting)
    collector.close()
    hook.close()


@pytest.mark.parametrize(
    "provider",
    [PostHog(api_key="k"), Segment(write_key="w"), Mixpanel(token="t"), Amplitude(api_key="k"),
     RudderStack(write_key="w", data_plane_url="https://dp.example.com"), OTLP()],
    ids=lambda provider: provider.name,
)  # fmt: skip
def test_a_providers_event_sink_takes_no_deletion_request(provider: Provider) -> None:
    sink = provider.build()
    try:
        assert not isinstance(sink, Forgetting)
    finally:
        sink.close()


def test_forget_posts_the_requests_in_the_wire_format() -> None:
    endpoint = Endpoint()
    sink = HttpSink(endpoint.url)
    requests = [deletion_request(), deletion_request()]
    try:
        assert sink.forget(requests, soon()) == Delivery("delivered")
    finally:
        sink.close()
        endpoint.close()
    [request] = endpoint.requests
    assert request["body"]["batch"] == requests
    assert request["headers"]["Content-Encoding"] == "gzip"


def test_forget_reads_the_answer_as_send_does() -> None:
    """A receiver of the wire format refuses one request by its index (as the collector
    refuses an event), and a busy one is tried again later."""
    endpoint = Endpoint()
    endpoint.refuse = lambda record: record["tool"] == "refused"
    sink = HttpSink(endpoint.url)
    try:
        delivery = sink.forget([deletion_request(), deletion_request(tool="refused")], soon())
        assert (delivery.outcome, delivery.refused) == ("delivered", (1,))
        endpoint.mode, endpoint.status, endpoint.retry_after = "status", 503, "30"
        assert sink.forget([deletion_request()], soon()) == Delivery("retry", "http_503", 30.0)
    finally:
        sink.close()
        endpoint.close()


def test_the_collector_takes_deletion_requests_as_it_takes_events(collector: Collector) -> None:
    sink = HttpSink(collector.url + "/v1/events")
    try:
        assert sink.forget([deletion_request(), deletion_request()], soon()) == Delivery(
            "delivered"
        )
    finally:
        sink.close()


def test_the_collector_refuses_a_malformed_request_alone(collector: Collector) -> None:
    """A request carrying usage data is not a deletion request: the collector names it,
    and its neighbour is taken."""
    sink = HttpSink(collector.url + "/v1/events")
    batch = [deletion_request(), deletion_request(command="acme deploy")]
    try:
        delivery = sink.forget(batch, soon())
    finally:
        sink.close()
    assert delivery.outcome == "delivered"
    assert delivery.refused == (1,)


def test_the_webhook_passes_a_signed_deletion_request_on() -> None:
    with FakeWebhook(SECRET) as hook:
        sink = WebhookSink(url=hook.endpoint, secret=SECRET)
        request = deletion_request()
        try:
            assert sink.forget([request], soon()) == Delivery("delivered")
        finally:
            sink.close()
        [sent] = hook.requests
        assert json.loads(sent.body)["batch"] == [request]
        assert sent.header(SIGNATURE_HEADER)
        [stored] = hook.stored
        assert stored["name"] == "deletion_request"
        assert stored["distinct_id"] == request["install_id"]


def test_a_webhook_that_refuses_the_signature_refuses_the_request() -> None:
    with FakeWebhook(SECRET) as hook:
        sink = WebhookSink(url=hook.endpoint, secret="whsec_wrong")
        try:
            assert sink.forget([deletion_request()], soon()) == Delivery("rejected", "http_401")
        finally:
            sink.close()
        assert hook.stored == []
