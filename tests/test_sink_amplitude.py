"""The Amplitude sink against a fake Amplitude on loopback, compared with what
amplitude-analytics sends (``tests/wire/amplitude*.json``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3
from fake_amplitude import API_KEY, FakeAmplitude
from fake_service import Request, sample_events
from sink_checks import check_normalized, check_nothing_to_send, post, soon
from wire_reference import body, json_type, load

from cli_telemetry import __version__, providers
from cli_telemetry.sinks import Delivery, Sink, mapping
from cli_telemetry.sinks.amplitude import AmplitudeSink, faulty_events

REFERENCE = {"httpapi": "amplitude.json", "batch": "amplitude-batch.json"}
LOCATING = {"ip", "country", "region", "city", "dma", "location_lat", "location_lng"}


@pytest.fixture
def fake() -> Iterator[FakeAmplitude]:
    with FakeAmplitude() as service:
        yield service


@pytest.fixture
def sink(fake: FakeAmplitude) -> Iterator[AmplitudeSink]:
    sink = AmplitudeSink(api_key=API_KEY, host=fake.url)
    yield sink
    sink.close()


def reference(api: str) -> dict[str, Any]:
    [request] = load(REFERENCE[api])
    return request


def assert_like(ours: Request, theirs: dict[str, Any]) -> None:
    """Our request has the SDK's structure: method, path, query, content type and encoding,
    no auth header, the body's keys, and per event the SDK's keys with values of the same
    JSON types (numbers as one: the SDK's test sent 12.5 ms, we send ints), ``user_id``
    being our ``device_id`` (see the sink's docstring)."""
    assert (ours.method, ours.path, ours.query) == (
        theirs["method"],
        theirs["path"],
        theirs["query"],
    )
    assert ours.header("Content-Type") == theirs["content_type"]
    assert ours.header("Content-Encoding") == theirs["content_encoding"]
    assert ours.header("Authorization") is None and "Authorization" not in theirs["headers"]
    assert ours.header("Accept") == theirs["headers"]["Accept"]
    data = body(ours)
    assert data.keys() == theirs["body"].keys()
    samples = {e["event_type"] == "$identify": e for e in theirs["body"]["events"]}
    for event in data["events"]:
        sample = samples[event["event_type"] == "$identify"]
        expected = {"device_id" if k == "user_id" else k: v for k, v in sample.items()}
        assert event.keys() == expected.keys()
        for key, value in expected.items():
            assert json_type(event[key]) == json_type(value), key
        if event["event_type"] == "command":
            their_properties = sample["event_properties"]
            for key, value in their_properties.items():
                assert json_type(event["event_properties"][key]) == json_type(value), key


def test_the_sink_meets_the_interface() -> None:
    assert isinstance(AmplitudeSink(api_key=API_KEY), Sink)


@pytest.mark.parametrize("api", ["httpapi", "batch"])
def test_events_and_identify_are_sent_as_the_sdk_sends_them(fake: FakeAmplitude, api: str) -> None:
    sink = AmplitudeSink(api_key=API_KEY, host=fake.url, api=api)
    assert sink.send(sample_events(), soon()) == Delivery("delivered")
    [request] = fake.requests
    assert_like(request, reference(api))
    assert body(request)["api_key"] == API_KEY
    assert fake.refused == []
    sink.close()


def test_our_fields_map_to_amplitude_as_documented(
    fake: FakeAmplitude, sink: AmplitudeSink
) -> None:
    events = sample_events()
    assert sink.send(events, soon()).outcome == "delivered"
    sent = body(fake.requests[0])["events"]
    assert [e["event_type"] for e in sent] == ["command", "command", "template_used", "$identify"]
    for message, event in zip(sent, events, strict=True):
        assert message["device_id"] == event["install_id"]
        assert "user_id" not in message  # anonymous: a device, never a known user
        assert message["insert_id"] == event["event_id"]
        assert message["time"] == mapping.epoch_millis(event["timestamp"])
        assert isinstance(message["time"], int)
        assert message["library"] == f"cli-telemetry/{__version__}"
        assert not LOCATING & set(message)  # no address, so no location is derived
    assert sent[0]["time"] == 1795428001250
    for message, event in zip(sent[:3], events, strict=False):
        assert message["event_properties"] == mapping.properties(event)
        assert "user_properties" not in message
    assert sent[0]["event_properties"]["values"] == {"--force": True, "--format": "json"}
    assert sent[2]["event_properties"]["template"] == "basic"  # custom, flattened
    assert sent[3]["user_properties"] == {"$set": {"plan": "pro"}}
    assert "event_properties" not in sent[3]


def test_the_fake_stores_normalized_items(fake: FakeAmplitude, sink: AmplitudeSink) -> None:
    events = sample_events()
    sink.send(events, soon())
    check_normalized(fake.stored, events)
    for item, event in zip(fake.stored, events, strict=True):
        assert item["dedup_id"] == event["event_id"]
        expected = (
            mapping.traits(event) if mapping.is_identify(event) else mapping.properties(event)
        )
        assert item["properties"] == expected


def test_throttling_is_retried_after_the_servers_wait_with_the_same_insert_ids(
    fake: FakeAmplitude, sink: AmplitudeSink
) -> None:
    fake.force(429, retry_after="7")
    assert sink.send(sample_events(), soon()) == Delivery("retry", "http_429", 7.0)
    fake.force(429)  # Amplitude sends no Retry-After: its documented 30 s
    assert sink.send(sample_events(), soon()) == Delivery("retry", "http_429", 30.0)
    assert fake.stored == []
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    ids = [[e["insert_id"] for e in body(r)["events"]] for r in fake.requests]
    assert ids[0] == ids[1] == ids[2] == [e["event_id"] for e in sample_events()]
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    assert len(fake.stored) == 4  # sent twice, stored once


@pytest.mark.parametrize(
    ("status", "outcome"), [(503, "retry"), (500, "retry"), (502, "retry"), (400, "rejected"),
                            (401, "rejected"), (403, "rejected"), (413, "rejected")],
)  # fmt: skip
def test_answers_map_to_outcomes(
    fake: FakeAmplitude, sink: AmplitudeSink, status: int, outcome: str
) -> None:
    fake.force(status)
    result = sink.send(sample_events(), soon())
    assert (result.outcome, result.error, result.retry_after) == (outcome, f"http_{status}", None)
    assert len(fake.requests) == 1 and fake.stored == []


def test_a_400_naming_events_sends_the_others_again_at_once(
    fake: FakeAmplitude, sink: AmplitudeSink
) -> None:
    events = sample_events()
    events[1]["install_id"] = "abc"  # too short for Amplitude
    events[2]["timestamp"] = "1970-01-01T00:00:01Z"  # before what Amplitude takes
    assert sink.send(events, soon()) == Delivery("delivered", "partial_rejected", refused=(1, 2))
    first, second = fake.requests
    assert fake.refused == [(first, 400)]
    assert len(body(first)["events"]) == 4
    assert [e["insert_id"] for e in body(second)["events"]] == [
        events[0]["event_id"],
        events[3]["event_id"],
    ]
    assert [i["dedup_id"] for i in fake.stored] == [events[0]["event_id"], events[3]["event_id"]]


def test_refused_events_are_named_by_their_index_in_the_batch_not_in_the_request(
    fake: FakeAmplitude, sink: AmplitudeSink
) -> None:
    """An identify without traits is not sent: the request's indexes are shifted from the
    batch's. Two rounds of 400s (a silenced device, then a bad id) name events of two
    different requests; both are reported by their place in the batch."""
    events = sample_events()
    no_traits = {**events[3], "event_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a05", "properties": {}}
    silenced = {**events[1], "install_id": "silenced0device0id0000000000000000"}
    short = {**events[2], "install_id": "abc"}
    batch = [no_traits, events[0], silenced, no_traits, short, events[3]]
    fake.silence("silenced0device0id0000000000000000")
    assert sink.send(batch, soon()) == Delivery("delivered", "partial_rejected", refused=(2, 4))
    assert [r for _, r in fake.refused] == [400]  # one 400 named both kinds of fault
    assert [i["dedup_id"] for i in fake.stored] == [events[0]["event_id"], events[3]["event_id"]]


def test_a_second_400_names_events_by_the_shorter_requests_indexes(
    fake: FakeAmplitude, sink: AmplitudeSink
) -> None:
    """The second request lacks the event the first 400 named: the index the second 400
    gives is that request's, and is mapped back to the batch's."""
    events = sample_events()
    events[0]["install_id"] = "abc"  # refused by the first request
    events[2]["install_id"] = "other0device0id00000000000000000"
    fake.silence(events[2]["install_id"], after=1)  # from the second request on
    assert sink.send(events, soon()) == Delivery("delivered", "partial_rejected", refused=(0, 2))
    first, second, third = fake.requests
    assert [len(body(r)["events"]) for r in (first, second)] == [4, 3]
    assert [e["insert_id"] for e in body(third)["events"]] == [
        events[1]["event_id"],
        events[3]["event_id"],
    ]
    assert [i["dedup_id"] for i in fake.stored] == [events[1]["event_id"], events[3]["event_id"]]


def test_a_400_naming_every_event_or_none_is_rejected(
    fake: FakeAmplitude, sink: AmplitudeSink
) -> None:
    events = [{**e, "install_id": "abc"} for e in sample_events()]
    assert sink.send(events, soon()) == Delivery("rejected", "http_400")
    wrong_key = AmplitudeSink(api_key="not-the-key", host=fake.url)
    assert wrong_key.send(sample_events(), soon()) == Delivery("rejected", "http_400")
    wrong_key.close()
    assert len(fake.requests) == 2 and fake.stored == []


def test_faulty_events_are_read_from_amplitudes_answers() -> None:
    answer = {
        "code": 400,
        "error": "Test error",
        "events_with_invalid_fields": {"time": [0, 1]},
        "events_with_missing_fields": {"event_type": [5]},
        "events_with_invalid_id_lengths": {"user_id": [10], "device_id": [13]},
        "silenced_events": [16, True, "x"],
    }
    assert faulty_events(json.dumps(answer).encode()) == {0, 1, 5, 10, 13, 16}
    missing = {"code": 400, "missing_field": "api_key", "events_with_missing_fields": {"a": [1]}}
    assert faulty_events(json.dumps(missing).encode()) == set()
    assert faulty_events(b'{"code": 400, "error": "Invalid API key: x"}') == set()
    assert faulty_events(b"<html>") == faulty_events(b"[1]") == set()


def test_nothing_to_send_sends_nothing(fake: FakeAmplitude, sink: AmplitudeSink) -> None:
    check_nothing_to_send(sink, fake)


def test_the_eu_host_and_the_batch_api_come_from_the_provider() -> None:
    eu = providers.Amplitude("key", host="https://api.eu.amplitude.com/").build()
    assert isinstance(eu, AmplitudeSink)
    assert eu.url == "https://api.eu.amplitude.com/2/httpapi"
    batch = providers.Amplitude("key", host="https://api.eu.amplitude.com", api="batch").build()
    assert isinstance(batch, AmplitudeSink)
    assert batch.url == "https://api.eu.amplitude.com/batch"
    with pytest.raises(Exception, match="httpapi"):
        AmplitudeSink(api_key=API_KEY, api="v3")


def post_to(
    path: str, fake: FakeAmplitude, payload: Any, content_type: str = "application/json"
) -> int:
    return post(fake.url + path, payload, {"Content-Type": content_type})


def test_the_fake_accepts_what_the_sdk_sent(fake: FakeAmplitude) -> None:
    for api in REFERENCE:
        theirs = reference(api)
        assert post_to(theirs["path"], fake, theirs["body"], theirs["content_type"]) == 200
    assert len(fake.stored) == 4  # the batch repeats the same insert ids: de-duplicated


def event(**fields: Any) -> dict[str, Any]:
    return {
        "event_type": "command",
        "device_id": "3f1c2a9be07d4c55a1e2b3c4d5e6f708",
        "time": 1795428001250,
        "insert_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a01",
        **fields,
    }


def request(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"api_key": API_KEY, "events": list(events), **fields}


@pytest.mark.parametrize(
    ("path", "payload", "status"),
    [
        ("/2/httpapi", request(event()), 200),
        ("/2/httpapi", request(event(device_id="abc")), 400),
        ("/2/httpapi", request(event(device_id="abc"), options={"min_id_length": 3}), 200),
        ("/2/httpapi", request(event(device_id="null")), 400),
        ("/2/httpapi", request(event(time=1795428001)), 400),  # seconds
        ("/2/httpapi", request(event(time=1795428001.25)), 400),  # not an integer
        ("/2/httpapi", request(event(time="2026-11-23T10:00:01Z")), 400),
        ("/2/httpapi", request(event(event_type="")), 400),
        ("/2/httpapi", request({k: v for k, v in event().items() if k != "device_id"}), 400),
        ("/2/httpapi", request(event(event_properties=[1])), 400),
        ("/2/httpapi", request(event(properties={"a": 1})), 400),  # not an Amplitude key
        ("/2/httpapi", request(event(event_type="$identify")), 400),
        ("/2/httpapi", request(event(event_type="$identify", user_properties={"plan": 1})), 400),
        ("/2/httpapi", request(event(ip="$remote")), 400),  # our policy: no geolocation
        ("/2/httpapi", request(event(city="Paris")), 400),
        ("/2/httpapi", {"events": [event()]}, 400),
        ("/2/httpapi", request(event(), api_key="wrong"), 400),
        ("/2/httpapi", request(), 400),
        ("/2/httpapi", b"not json", 400),
        ("/2/httpapi", request(*[event()] * 2001), 413),
        ("/2/httpapi", request(event(event_properties={"x": "y" * 1024 * 1024})), 413),
        ("/batch", request(event(event_properties={"x": "y" * 1024 * 1024})), 200),
        ("/3/httpapi", request(event()), 404),
    ],
)  # fmt: skip
def test_the_fake_refuses_what_amplitude_refuses(
    fake: FakeAmplitude, path: str, payload: Any, status: int
) -> None:
    assert post_to(path, fake, payload) == status


def test_the_fake_wants_json(fake: FakeAmplitude) -> None:
    assert post_to("/2/httpapi", fake, request(event()), "application/x-www-form-urlencoded") == 400
    with urllib3.PoolManager() as pool:
        assert pool.request("GET", fake.url + "/2/httpapi", retries=False).status == 405


def test_a_400_answer_names_the_events_at_fault(fake: FakeAmplitude) -> None:
    payload = request(event(), event(device_id="abc"), event(time=5))
    with urllib3.PoolManager() as pool:
        response = pool.request("POST", fake.url + "/2/httpapi", json=payload, retries=False)
    assert response.status == 400
    answer = json.loads(response.data)
    assert answer["events_with_invalid_id_lengths"] == {"device_id": [1]}
    assert answer["events_with_invalid_fields"] == {"time": [2]}
    assert faulty_events(response.data) == {1, 2}
