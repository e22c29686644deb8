"""The RudderStack sink against a fake data plane, compared with rudder-sdk-python's wire."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import urllib3
from fake_segment import RUDDER_KEY, FakeRudderStack
from fake_service import sample_events
from wire_reference import ISO_PYTHON, auth_scheme, body, expected_items, header_names, load, shape

from cli_telemetry import __version__
from cli_telemetry.providers import RudderStack
from cli_telemetry.sinks import Delivery, Sink
from cli_telemetry.sinks.rudderstack import RudderStackSink
from cli_telemetry.sinks.segment import NO_IP

OURS_ONLY = {"ip"}
"""Context we add that the SDK does not (a placeholder address, see `segment`)."""


@pytest.fixture
def fake() -> Iterator[FakeRudderStack]:
    service = FakeRudderStack()
    yield service
    service.close()


def soon() -> float:
    return time.monotonic() + 10


def sink_for(fake: FakeRudderStack, write_key: str = RUDDER_KEY) -> RudderStackSink:
    return RudderStackSink(write_key=write_key, data_plane_url=fake.url)


def test_the_sink_meets_the_interface() -> None:
    assert isinstance(RudderStackSink(write_key="k", data_plane_url="https://x"), Sink)


def test_request_matches_rudder_sdk_python(fake: FakeRudderStack) -> None:
    sink = sink_for(fake)
    assert sink.send(sample_events(), soon()) == Delivery("delivered")
    sink.close()
    [request] = fake.requests
    [ref] = load("rudderstack.json")
    assert (request.method, request.path) == (ref["method"], ref["path"])
    assert header_names(request.headers) == header_names(ref["headers"])
    assert request.header("Content-Encoding") == ref["content_encoding"] == "gzip"
    assert auth_scheme(request.headers) == auth_scheme(ref["headers"]) == "Basic"
    ours = body(request)
    assert shape(ours) == shape(ref["body"])
    assert ISO_PYTHON.fullmatch(ours["sentAt"])
    for message in ours["batch"]:
        ref_message = next(m for m in ref["body"]["batch"] if m["type"] == message["type"])
        assert shape(message) == shape(ref_message) | {"anonymousId": "string", "userId": "null"}
        assert set(message["context"]) - OURS_ONLY == set(ref_message["context"])
        assert message["context"]["ip"] == NO_IP
        assert message["context"]["library"]["name"] == "cli-telemetry"
        assert message["context"]["library"]["version"] == __version__
        assert (message["channel"], message["integrations"]) == ("server", {"All": True})
        assert ISO_PYTHON.fullmatch(message["timestamp"])


def test_the_service_stores_every_event_as_sent(fake: FakeRudderStack) -> None:
    sink = sink_for(fake)
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    sink.close()
    assert fake.stored == expected_items(sample_events())


def test_identify_carries_traits_in_context(fake: FakeRudderStack) -> None:
    [*_, identify] = sample_events()
    sink = sink_for(fake)
    sink.send([identify], soon())
    sink.close()
    [message] = body(fake.requests[0])["batch"]
    assert message["type"] == "identify"
    assert "traits" not in message
    assert message["context"]["traits"] == {"plan": "pro"}
    assert message["anonymousId"] == identify["install_id"]


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", Delivery("retry", "http_429", 7.0)), (503, None, Delivery("retry", "http_503")),
     (400, None, Delivery("rejected", "http_400")), (401, None, Delivery("rejected", "http_401"))],
)  # fmt: skip
def test_answers(
    fake: FakeRudderStack, status: int, retry_after: str | None, expected: Delivery
) -> None:
    fake.force(status, retry_after=retry_after)
    sink = sink_for(fake)
    assert sink.send(sample_events(), soon()) == expected
    sink.close()


def test_a_wrong_key_is_refused_by_the_service(fake: FakeRudderStack) -> None:
    sink = sink_for(fake, "WRONG")
    assert sink.send(sample_events(), soon()) == Delivery("rejected", "http_401")
    sink.close()


def test_a_retried_batch_is_sent_again_unchanged(fake: FakeRudderStack) -> None:
    fake.force(503)
    sink = sink_for(fake)
    assert sink.send(sample_events(), soon()).outcome == "retry"
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    sink.close()
    failed, delivered = (body(r) for r in fake.requests)
    assert [m["messageId"] for m in failed["batch"]] == [m["messageId"] for m in delivered["batch"]]
    # rudder-sdk-python sends no retry header; neither do we.
    retry_ref = load("rudderstack-retry.json")
    assert header_names(retry_ref[0]["headers"]) == header_names(retry_ref[1]["headers"])
    assert header_names(fake.requests[0].headers) == header_names(fake.requests[1].headers)


def test_the_data_plane_url_is_honoured() -> None:
    sink = RudderStack("k", "https://acme.dataplane.rudderstack.com/").build()
    assert isinstance(sink, RudderStackSink)
    assert sink.url == "https://acme.dataplane.rudderstack.com/v1/batch"
    assert sink.name == "rudderstack"


def test_the_fake_refuses_what_rudderstack_refuses(fake: FakeRudderStack) -> None:
    good = {"type": "track", "event": "x", "anonymousId": "a", "messageId": "m1",
            "timestamp": "2026-11-23T10:00:01+00:00"}  # fmt: skip
    url = fake.url + "/v1/batch"
    auth = urllib3.util.make_headers(basic_auth=f"{RUDDER_KEY}:")
    headers = {"Content-Type": "application/json", **auth}

    def post(payload: object, headers: dict[str, str]) -> int:
        data = json.dumps(payload).encode()
        return urllib3.request("POST", url, body=data, headers=headers, retries=False).status

    assert post({"batch": [good]}, headers) == 200
    body_key_only = {"Content-Type": "application/json"}
    assert post({"batch": [good], "writeKey": RUDDER_KEY}, body_key_only) == 401
    assert post({"batch": [{**good, "anonymousId": None}]}, headers) == 400
    assert len(fake.stored) == 1
