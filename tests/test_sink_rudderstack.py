"""The RudderStack sink against a fake data plane, compared with rudder-sdk-python's wire."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import urllib3
from fake_segment import RUDDER_KEY, FakeRudderStack
from fake_service import sample_events
from sink_checks import (
    ANSWERS,
    check_answer,
    check_refused,
    check_stores_every_event,
    deliver,
    post,
    soon,
)
from wire_reference import (
    ISO_PYTHON,
    assert_gzipped_like,
    auth_scheme,
    body,
    compare_segment_messages,
    header_names,
    load,
    shape,
)

from cli_telemetry.providers import RudderStack
from cli_telemetry.sinks import Delivery, Sink
from cli_telemetry.sinks.rudderstack import RudderStackSink


@pytest.fixture
def fake() -> Iterator[FakeRudderStack]:
    with FakeRudderStack() as service:
        yield service


def sink_for(
    fake: FakeRudderStack, write_key: str = RUDDER_KEY, user_id: str | None = None
) -> RudderStackSink:
    return RudderStackSink(write_key=write_key, data_plane_url=fake.url, user_id=user_id)


def test_the_sink_meets_the_interface() -> None:
    assert isinstance(RudderStackSink(write_key="k", data_plane_url="https://x"), Sink)


def test_request_matches_rudder_sdk_python(fake: FakeRudderStack) -> None:
    assert deliver(sink_for(fake)) == Delivery("delivered")
    [request] = fake.requests
    [ref] = load("rudderstack.json")
    assert_gzipped_like(request, ref)
    assert auth_scheme(request.headers) == auth_scheme(ref["headers"]) == "Basic"
    ours = body(request)
    assert shape(ours) == shape(ref["body"])
    assert ISO_PYTHON.fullmatch(ours["sentAt"])
    compare_segment_messages(ours["batch"], ref["body"]["batch"])
    for message in ours["batch"]:
        assert (message["channel"], message["integrations"]) == ("server", {"All": True})
        assert ISO_PYTHON.fullmatch(message["timestamp"])


def test_the_service_stores_every_event_as_sent(fake: FakeRudderStack) -> None:
    check_stores_every_event(sink_for(fake), fake)


def test_identify_carries_traits_in_context(fake: FakeRudderStack) -> None:
    [*_, identify] = sample_events()
    deliver(sink_for(fake), [identify])
    [message] = body(fake.requests[0])["batch"]
    assert message["type"] == "identify"
    assert "traits" not in message
    assert message["context"]["traits"] == {"plan": "pro"}
    assert message["anonymousId"] == identify["install_id"]


def test_by_default_no_user_id_is_sent(fake: FakeRudderStack) -> None:
    deliver(sink_for(fake))
    assert {m["userId"] for m in body(fake.requests[0])["batch"]} == {None}
    assert "user_id" not in RudderStack("k", "https://x").options


def test_the_opt_in_sends_the_install_id_as_user_id_too(fake: FakeRudderStack) -> None:
    """``user_id="install"``: every message is identified, as rudder-sdk-python sends a call
    given ``user_id=`` and ``anonymous_id=``, and the data plane takes it."""
    provider = RudderStack("k", "https://x", user_id="install")
    assert provider.options["user_id"] == "install"
    assert deliver(sink_for(fake, user_id="install")) == Delivery("delivered")
    ours = body(fake.requests[0])
    [ref] = load("rudderstack.json")
    assert {m["userId"] for m in ref["body"]["batch"]} == {"anon-123"}  # an identified call
    compare_segment_messages(ours["batch"], ref["body"]["batch"], identified=True)
    install_id = sample_events()[0]["install_id"]
    assert {(m["userId"], m["anonymousId"]) for m in ours["batch"]} == {(install_id, install_id)}
    identify = ours["batch"][-1]
    assert identify["type"] == "identify" and identify["context"]["traits"] == {"plan": "pro"}
    assert fake.refused == [] and len(fake.stored) == 4


@ANSWERS
def test_answers(
    fake: FakeRudderStack, status: int, retry_after: str | None, expected: Delivery
) -> None:
    check_answer(sink_for(fake), fake, status, retry_after, expected)


def test_a_wrong_key_is_refused_by_the_service(fake: FakeRudderStack) -> None:
    check_refused(sink_for(fake, "WRONG"), fake, 401)


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
    assert post(url, {"batch": [good]}, headers) == 200
    body_key_only = {"Content-Type": "application/json"}
    assert post(url, {"batch": [good], "writeKey": RUDDER_KEY}, body_key_only) == 401
    assert post(url, {"batch": [{**good, "anonymousId": None}]}, headers) == 400
    assert post(url, {"batch": [{**good, "userId": "u"}]}, headers) == 200
    assert post(url, {"batch": [{**good, "anonymousId": None, "userId": "u"}]}, headers) == 200
    assert post(url, {"batch": [{**good, "userId": 5}]}, headers) == 400
    assert len(fake.stored) == 3
