"""The Segment sink against a fake Segment on loopback, compared with analytics-python's wire."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from fake_segment import SEGMENT_KEY, FakeSegment
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
    ISO_MILLIS,
    ISO_PYTHON,
    assert_gzipped_like,
    auth_scheme,
    body,
    compare_segment_messages,
    load,
    shape,
)

from cli_telemetry.errors import ConfigurationError
from cli_telemetry.providers import Segment
from cli_telemetry.sinks import Delivery, Sink
from cli_telemetry.sinks.segment import SegmentSink


@pytest.fixture
def fake() -> Iterator[FakeSegment]:
    with FakeSegment() as service:
        yield service


def sink_for(
    fake: FakeSegment, write_key: str = SEGMENT_KEY, user_id: str | None = None
) -> SegmentSink:
    return SegmentSink(write_key=write_key, host=fake.url, user_id=user_id)


def test_the_sink_meets_the_interface() -> None:
    assert isinstance(SegmentSink(write_key="k"), Sink)


def test_request_matches_analytics_python(fake: FakeSegment) -> None:
    assert deliver(sink_for(fake)) == Delivery("delivered")
    [request] = fake.requests
    [ref] = load("segment-gzip.json")
    assert_gzipped_like(request, ref)
    assert auth_scheme(request.headers) == auth_scheme(ref["headers"]) == "Basic"
    assert (
        request.header("Authorization")
        == "Basic " + base64.b64encode(f"{SEGMENT_KEY}:".encode()).decode()
    )
    ours = body(request)
    assert shape(ours) == shape(ref["body"])
    assert ours["writeKey"] == SEGMENT_KEY
    assert ISO_PYTHON.fullmatch(ours["sentAt"])
    compare_segment_messages(ours["batch"], ref["body"]["batch"])
    for message in ours["batch"]:
        assert ISO_MILLIS.fullmatch(message["timestamp"])
    assert shape(load("segment.json")[0]["body"]) == shape(ours)


def test_the_service_stores_every_event_as_sent(fake: FakeSegment) -> None:
    check_stores_every_event(sink_for(fake), fake)


def test_identify_carries_traits_and_the_anonymous_id(fake: FakeSegment) -> None:
    [*_, identify] = sample_events()
    deliver(sink_for(fake), [identify])
    [message] = body(fake.requests[0])["batch"]
    assert message["type"] == "identify"
    assert message["traits"] == {"plan": "pro"}
    assert (message["anonymousId"], message["userId"]) == (identify["install_id"], None)
    assert message["messageId"] == identify["event_id"]


def test_by_default_no_user_id_is_sent(fake: FakeSegment) -> None:
    deliver(sink_for(fake))
    assert {m["userId"] for m in body(fake.requests[0])["batch"]} == {None}
    assert "user_id" not in Segment("w").options


def test_the_opt_in_sends_the_install_id_as_user_id_too(fake: FakeSegment) -> None:
    """``user_id="install"``: every message is identified, as analytics-python sends a call
    given ``user_id=`` and ``anonymous_id=``, and Segment takes it."""
    sink = Segment("w", user_id="install").build()
    assert isinstance(sink, SegmentSink) and sink.identified
    sink.close()
    assert deliver(sink_for(fake, user_id="install")) == Delivery("delivered")
    ours = body(fake.requests[0])
    [ref] = load("segment.json")
    assert {m["userId"] for m in ref["body"]["batch"]} == {"anon-123"}  # an identified call
    compare_segment_messages(ours["batch"], ref["body"]["batch"], identified=True)
    install_id = sample_events()[0]["install_id"]
    assert {(m["userId"], m["anonymousId"]) for m in ours["batch"]} == {(install_id, install_id)}
    assert [item["distinct_id"] for item in fake.stored] == [install_id] * 4
    assert fake.refused == []


def test_user_id_takes_only_install() -> None:
    with pytest.raises(ConfigurationError, match="user_id"):
        Segment("w", user_id="email")
    with pytest.raises(ConfigurationError, match="user_id"):
        SegmentSink(write_key="w", user_id="yes")


@ANSWERS
def test_answers(
    fake: FakeSegment, status: int, retry_after: str | None, expected: Delivery
) -> None:
    check_answer(sink_for(fake), fake, status, retry_after, expected)


def test_a_wrong_key_is_refused_by_the_service(fake: FakeSegment) -> None:
    check_refused(sink_for(fake, "WRONG"), fake, 401)


def test_a_retried_batch_repeats_its_message_ids(fake: FakeSegment) -> None:
    fake.force(503)
    sink = sink_for(fake)
    assert sink.send(sample_events(), soon()).outcome == "retry"
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    sink.close()
    later_run = sink_for(fake)
    assert later_run.send(sample_events(), soon()).outcome == "delivered"
    later_run.close()
    ids = [[m["messageId"] for m in body(r)["batch"]] for r in fake.requests]
    assert ids == [[e["event_id"] for e in sample_events()]] * 3
    # As the SDK: no header on a first try, X-Retry-Count on a retry this sink made.
    retry_ref = load("segment-retry.json")
    assert [r["headers"].get("X-Retry-Count") for r in retry_ref] == [None, "1"]
    assert [r.header("X-Retry-Count") for r in fake.requests] == [None, "1", None]


def test_eu_host() -> None:
    sink = Segment("k", host="https://events.eu1.segmentapis.com/").build()
    assert isinstance(sink, SegmentSink)
    assert (sink.url, sink.name) == ("https://events.eu1.segmentapis.com/v1/batch", "segment")


def test_the_fake_refuses_what_segment_refuses(fake: FakeSegment) -> None:
    auth = urllib3.util.make_headers(basic_auth=f"{SEGMENT_KEY}:")
    headers = {"Content-Type": "application/json", **auth}
    good = {"type": "track", "event": "x", "anonymousId": "a", "messageId": "m1",
            "timestamp": "2026-11-23T10:00:01.250+00:00", "properties": {}}  # fmt: skip
    url = fake.url + "/v1/batch"
    assert post(url, {"batch": [good]}, headers) == 200
    key_in_body = {"batch": [good], "writeKey": SEGMENT_KEY}
    assert post(url, key_in_body, {"Content-Type": "application/json"}) == 200
    assert post(url, {"batch": [good]}, {"Content-Type": "application/json"}) == 401
    wrong = urllib3.util.make_headers(basic_auth="OTHER:")
    assert post(url, {"batch": [good]}, {**headers, **wrong}) == 401
    broken_messages: list[dict[str, Any]] = [
        {"anonymousId": None}, {"messageId": ""}, {"event": ""}, {"type": "x"},
        {"timestamp": "soon"}, {"properties": []}, {"properties": {"big": "x" * 40_000}},
    ]  # fmt: skip
    for broken in broken_messages:
        assert post(url, {"batch": [{**good, **broken}]}, headers) == 400
    assert post(url, {"batch": [good]}, {**headers, "Content-Type": "text/plain"}) == 400
    assert post(fake.url + "/v1/track", good, headers) == 404
    identified = {**good, "userId": "u", "messageId": "m2"}
    assert post(url, {"batch": [identified]}, headers) == 200
    assert post(url, {"batch": [{**identified, "anonymousId": None}]}, headers) == 200
    assert post(url, {"batch": [{**good, "userId": ["u"]}]}, headers) == 400
    assert len(fake.stored) == 4


def test_a_batch_over_segments_limit_is_split_not_refused_for_good(fake: FakeSegment) -> None:
    """Segment refuses a batch over 500 KB with a 400, which would drop it for good; the
    uploader's batches may be that large (100 events of up to 8 KiB), so the sink answers
    413 itself and the uploader sends halves."""
    big = sample_events()[2]
    events = [
        {**big, "event_id": f"00000000-0000-4000-8000-{i:012d}",
         "properties": {f"p{k}": "x" * 200 for k in range(30)}}
        for i in range(100)
    ]  # fmt: skip
    sink = sink_for(fake)
    assert sink.send(events, soon()) == Delivery("rejected", "http_413")
    assert fake.requests == []  # not sent: it could only be refused
    for half in (events[:50], events[50:]):
        assert sink.send(half, soon()) == Delivery("delivered")
    assert len(fake.stored) == 100 and fake.refused == []
