"""The PostHog sink against a fake PostHog on loopback, compared with posthog-python's wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_posthog import TEST_KEY, V1_PATH, FakePostHog
from fake_service import sample_events
from sink_checks import (
    ANSWERS,
    check_answer,
    check_refused,
    check_stores_every_event,
    deliver,
    soon,
)
from sink_checks import post as post_exactly
from wire_reference import (
    ISO_PYTHON,
    assert_gzipped_like,
    auth_scheme,
    body,
    header_names,
    load,
    shape,
)

from cli_telemetry import __version__
from cli_telemetry.providers import PostHog
from cli_telemetry.sinks import Delivery, Sink
from cli_telemetry.sinks.posthog import PostHogSink

SDK_ONLY = {"$is_server", "$python_runtime", "$os_distro"}
"""The SDK's properties we leave out on purpose (see the sink's docstring)."""


@pytest.fixture
def fake() -> Iterator[FakePostHog]:
    with FakePostHog() as service:
        yield service


@pytest.fixture(params=["batch", "v1"])
def api(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def sink_for(fake: FakePostHog, api: str = "batch", **options: Any) -> PostHogSink:
    return PostHogSink(api_key=options.pop("api_key", TEST_KEY), host=fake.url, api=api)


def compare_messages(ours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> None:
    """Each of our messages has the shape of the SDK's message of the same kind."""
    ref_set = next(m for m in reference if m["event"] == "$set")
    ref_event = next(m for m in reference if m["event"] != "$set")
    for message in ours:
        ref = ref_set if message["event"] == "$set" else ref_event
        assert shape(message) == shape(ref)
        assert ISO_PYTHON.fullmatch(message["timestamp"])
        ref_own = {k for k in ref["properties"] if k.startswith("$")}
        own = {k for k in message["properties"] if k.startswith("$")}
        assert own - {"$set"} == ref_own - SDK_ONLY - {"$set"}
        assert message["properties"]["$geoip_disable"] is True
        if "$lib" in message["properties"]:
            assert message["properties"]["$lib"] == "cli-telemetry"
            assert message["properties"]["$lib_version"] == __version__


def test_the_sink_meets_the_interface() -> None:
    assert isinstance(PostHogSink(api_key="k"), Sink)


def test_batch_request_matches_posthog_python(fake: FakePostHog) -> None:
    assert deliver(sink_for(fake)) == Delivery("delivered")
    [request] = fake.requests
    [ref] = load("posthog-gzip.json")
    assert_gzipped_like(request, ref)
    assert auth_scheme(request.headers) is None  # the key is in the body
    ours = body(request)
    assert shape(ours) == shape(ref["body"])
    assert ours["api_key"] == TEST_KEY
    assert ISO_PYTHON.fullmatch(ours["sent_at"])
    compare_messages(ours["batch"], ref["body"]["batch"])
    # Uncompressed, the SDK's default sends the same body.
    assert shape(load("posthog.json")[0]["body"]) == shape(ours)


def test_v1_request_matches_posthog_python(fake: FakePostHog) -> None:
    assert deliver(sink_for(fake, "v1")) == Delivery("delivered")
    [request] = fake.requests
    [ref] = load("posthog-v1.json")
    assert (request.method, request.path) == (ref["method"], ref["path"]) == ("POST", V1_PATH)
    # gzip is our choice (the SDK's capture_compression="gzip"); the capture has none.
    assert header_names(request.headers) == header_names(ref["headers"]) | {"content-encoding"}
    assert auth_scheme(request.headers) == auth_scheme(ref["headers"]) == "Bearer"
    assert request.header("PostHog-Sdk-Info") == f"cli-telemetry/{__version__}"
    assert request.header("PostHog-Attempt") == "1"
    assert ISO_PYTHON.fullmatch(request.header("PostHog-Request-Timestamp") or "")
    ours = body(request)
    assert shape(ours) == shape(ref["body"])
    assert ISO_PYTHON.fullmatch(ours["created_at"])
    compare_messages(ours["batch"], ref["body"]["batch"])
    for message in ours["batch"]:
        assert message["options"] == {}
        assert "$lib" not in message["properties"]


def test_the_service_stores_every_event_as_sent(fake: FakePostHog, api: str) -> None:
    check_stores_every_event(sink_for(fake, api), fake)


def test_identify_sets_person_properties(fake: FakePostHog, api: str) -> None:
    [*_, identify] = sample_events()
    assert deliver(sink_for(fake, api), [identify]).outcome == "delivered"
    [message] = body(fake.requests[0])["batch"]
    assert message["event"] == "$set"
    assert message["distinct_id"] == identify["install_id"]
    person = message["$set"] if api == "batch" else message["properties"]["$set"]
    assert person == {"plan": "pro"}
    assert "plan" not in message["properties"]  # a trait, not an event property
    assert message["properties"]["tool"] == "acme"


def test_os_and_python_come_from_the_event_in_posthogs_names(fake: FakePostHog) -> None:
    events = sample_events()[:1]
    events[0]["os"] = "macos"
    deliver(sink_for(fake), events)
    props = body(fake.requests[0])["batch"][0]["properties"]
    assert (props["$os"], props["$os_version"], props["$python_version"]) == (
        "Mac OS X", "6.1", "3.11.7",
    )  # fmt: skip
    assert props["os"] == "macos"


def test_no_custom_property_turns_geolocation_back_on(fake: FakePostHog, api: str) -> None:
    event = sample_events()[2]
    event["properties"] = {"$geoip_disable": False, "$lib": "x"}
    deliver(sink_for(fake, api), [event])
    props = body(fake.requests[0])["batch"][0]["properties"]
    assert props["$geoip_disable"] is True
    assert props.get("$lib", "cli-telemetry") == "cli-telemetry"


@ANSWERS
def test_answers(
    fake: FakePostHog, api: str, status: int, retry_after: str | None, expected: Delivery
) -> None:
    check_answer(sink_for(fake, api), fake, status, retry_after, expected)


def test_a_wrong_key_is_refused_by_the_service(fake: FakePostHog, api: str) -> None:
    check_refused(sink_for(fake, api, api_key="phc_WRONG"), fake, 401)


def test_a_retried_batch_repeats_its_ids(fake: FakePostHog, api: str) -> None:
    fake.force(503)
    first = sink_for(fake, api)
    assert first.send(sample_events(), soon()).outcome == "retry"
    first.close()
    later_run = sink_for(fake, api)  # a retry happens in a later uploader process
    assert later_run.send(sample_events(), soon()).outcome == "delivered"
    later_run.close()
    failed, delivered = (body(r) for r in fake.requests)
    assert [m["uuid"] for m in failed["batch"]] == [m["uuid"] for m in delivered["batch"]]
    assert [m["uuid"] for m in delivered["batch"]] == [e["event_id"] for e in sample_events()]
    if api == "v1":
        ids = {r.header("PostHog-Request-Id") for r in fake.requests}
        assert len(ids) == 1
        # A new process cannot know of the earlier try: attempt 1 again, never invented.
        assert [r.header("PostHog-Attempt") for r in fake.requests] == ["1", "1"]


def test_v1_attempts_count_within_one_sink(fake: FakePostHog) -> None:
    fake.force(503)
    sink = sink_for(fake, "v1")
    assert sink.send(sample_events(), soon()).outcome == "retry"
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    assert sink.send(sample_events()[:1], soon()).outcome == "delivered"
    sink.close()
    attempts = [r.header("PostHog-Attempt") for r in fake.requests]
    assert attempts == ["1", "2", "1"]
    first, second, other = fake.requests
    assert first.header("PostHog-Request-Id") == second.header("PostHog-Request-Id")
    assert other.header("PostHog-Request-Id") != first.header("PostHog-Request-Id")
    assert body(first)["created_at"] == body(second)["created_at"]


def test_v1_per_event_results(fake: FakePostHog) -> None:
    events = sample_events()
    fake.v1_results = {events[1]["event_id"]: "retry"}
    sink = sink_for(fake, "v1")
    assert sink.send(events, soon()) == Delivery("retry", "partial")
    fake.v1_results = {events[1]["event_id"]: "drop"}
    assert sink.send(events, soon()) == Delivery("delivered")
    sink.close()


def test_eu_and_self_hosted_hosts(fake: FakePostHog) -> None:
    eu = PostHog("phc_x", host="https://eu.i.posthog.com").build()
    assert isinstance(eu, PostHogSink)
    assert eu.url == "https://eu.i.posthog.com/batch/"
    assert eu.name == "posthog"
    v1 = PostHog("phc_x", host="https://ph.example.org/", api="v1", name="ph").build()
    assert isinstance(v1, PostHogSink)
    assert (v1.url, v1.name) == ("https://ph.example.org/i/v1/analytics/events", "ph")
    assert deliver(PostHog(TEST_KEY, host=fake.url + "/").build()).outcome == "delivered"
    assert len(fake.stored) == 4


def post(url: str, payload: object, headers: dict[str, str] | None = None) -> int:
    return post_exactly(url, payload, {"Content-Type": "application/json", **(headers or {})})


def test_the_fake_refuses_what_posthog_refuses(fake: FakePostHog) -> None:
    good = {"event": "x", "distinct_id": "d", "uuid": sample_events()[0]["event_id"],
            "timestamp": "2026-11-23T10:00:01+00:00", "properties": {}}  # fmt: skip
    batch = {"api_key": TEST_KEY, "batch": [good], "sent_at": "2026-11-23T10:00:05+00:00"}
    assert post(fake.url + "/batch/", batch) == 200
    assert post(fake.url + "/batch/", {**batch, "api_key": "phc_other"}) == 401
    assert post(fake.url + "/batch/", {**batch, "batch": []}) == 400
    for broken in ({"uuid": "not-a-uuid"}, {"distinct_id": ""}, {"timestamp": "yesterday"},
                   {"timestamp": "2026-11-23T10:00:01"}, {"event": None}):  # fmt: skip
        assert post(fake.url + "/batch/", {**batch, "batch": [{**good, **broken}]}) == 400
    assert post(fake.url + "/capture/", batch) == 404
    v1_headers = {
        "Authorization": f"Bearer {TEST_KEY}",
        "PostHog-Sdk-Info": "t/1",
        "PostHog-Attempt": "1",
        "PostHog-Request-Id": good["uuid"],
        "PostHog-Request-Timestamp": "2026-11-23T10:00:05+00:00",
    }
    v1 = {"created_at": "2026-11-23T10:00:05+00:00", "batch": [{**good, "options": {}}]}
    assert post(fake.url + V1_PATH, v1, v1_headers) == 200
    assert post(fake.url + V1_PATH, v1, {**v1_headers, "Authorization": "Bearer x"}) == 401
    assert post(fake.url + V1_PATH, v1, {**v1_headers, "PostHog-Attempt": "0"}) == 400
    no_options = {**v1, "batch": [good]}
    assert post(fake.url + V1_PATH, no_options, v1_headers) == 400
    top_level_set = {**v1, "batch": [{**good, "options": {}, "$set": {"a": 1}}]}
    assert post(fake.url + V1_PATH, top_level_set, v1_headers) == 400
    assert post(fake.url + V1_PATH, v1, {"Authorization": f"Bearer {TEST_KEY}"}) == 400
    assert len(fake.stored) == 2
