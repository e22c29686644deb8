"""The Mixpanel sink against a fake Mixpanel on loopback, compared with what mixpanel-python
sends (``tests/wire/mixpanel*.json``)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest
import urllib3
from fake_mixpanel import PROJECT_ID, SERVICE_ACCOUNT, TOKEN, FakeMixpanel
from fake_service import Request, sample_events
from sink_checks import check_normalized, check_nothing_to_send, soon
from wire_reference import json_type
from wire_reference import load as reference

from cli_telemetry import __version__, providers
from cli_telemetry.sinks import Delivery, Sink, mapping
from cli_telemetry.sinks.mixpanel import MixpanelSink, failed_records, verdict, worse

ENVELOPE = {"token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib_version"}


@pytest.fixture
def fake() -> Iterator[FakeMixpanel]:
    with FakeMixpanel() as service:
        yield service


@pytest.fixture
def sink(fake: FakeMixpanel) -> Iterator[MixpanelSink]:
    sink = MixpanelSink(token=TOKEN, host=fake.url)
    yield sink
    sink.close()


@pytest.fixture
def importer(fake: FakeMixpanel) -> Iterator[MixpanelSink]:
    sink = MixpanelSink(
        token=TOKEN, host=fake.url, service_account=SERVICE_ACCOUNT, project_id=PROJECT_ID
    )
    yield sink
    sink.close()


def form(request: Request) -> dict[str, Any]:
    fields: dict[str, Any] = {
        key: values[0]
        for key, values in parse_qs(request.data.decode(), strict_parsing=True).items()
    }
    fields["data"] = json.loads(fields["data"])
    return fields


def messages(request: Request) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = form(request)["data"]
    return data


def assert_like(ours: Request, theirs: dict[str, Any]) -> None:
    """Our request has the SDK's structure: method, path, query keys, content type and
    encoding, auth scheme, form fields and their values, and per message the SDK's keys
    with values of the same JSON types, numbers as one (the values themselves are volatile)."""
    assert ours.method == theirs["method"]
    assert ours.path == theirs["path"]
    assert set(parse_qs(ours.query)) >= {key for key, _ in theirs["query_params"]}
    assert ours.header("Content-Type") == theirs["content_type"]
    assert ours.header("Content-Encoding") == theirs["content_encoding"]
    their_auth = theirs["headers"].get("Authorization")
    our_auth = ours.header("Authorization")
    assert (our_auth or "").split(" ")[0] == (their_auth or "").split(" ")[0]
    body = form(ours)
    assert body.keys() == theirs["body"].keys()
    assert {k: v for k, v in body.items() if k != "data"} == {
        k: v for k, v in theirs["body"].items() if k != "data"
    }
    sample = theirs["body"]["data"][0]
    for message in body["data"]:
        assert message.keys() == sample.keys()
        if "properties" in sample:  # an event: the envelope always, the SDK's properties
            expected = sample["properties"]  # on our command events (which have them all)
            names = expected.keys() if message["event"] == "command" else ENVELOPE
            for name in names:
                assert json_type(message["properties"][name]) == json_type(expected[name]), name
        else:  # a profile update
            for name in sample:
                assert json_type(message[name]) == json_type(sample[name]), name


def test_the_sink_meets_the_interface() -> None:
    assert isinstance(MixpanelSink(token=TOKEN), Sink)


def test_events_and_identify_are_sent_as_the_sdk_sends_them(
    fake: FakeMixpanel, sink: MixpanelSink
) -> None:
    assert sink.send(sample_events(), soon()) == Delivery("delivered")
    track, engage = fake.requests
    their_track, their_engage = reference("mixpanel.json")
    assert_like(track, their_track)
    assert_like(engage, their_engage)
    assert track.header("Authorization") is None and engage.header("Authorization") is None
    assert fake.refused == []


def test_our_fields_map_to_mixpanel_as_documented(fake: FakeMixpanel, sink: MixpanelSink) -> None:
    events = sample_events()
    assert sink.send(events, soon()).outcome == "delivered"
    tracked = messages(fake.requests[0])
    assert [m["event"] for m in tracked] == ["command", "command", "template_used"]
    for message, event in zip(tracked, events, strict=False):
        properties = message["properties"]
        assert properties["token"] == TOKEN
        assert properties["distinct_id"] == event["install_id"]
        assert properties["$insert_id"] == event["event_id"]
        when = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        assert properties["time"] == when and isinstance(properties["time"], float)
        assert (properties["mp_lib"], properties["$lib_version"]) == ("cli-telemetry", __version__)
        assert {k: v for k, v in properties.items() if k not in ENVELOPE} == mapping.properties(
            event
        )
    assert tracked[0]["properties"]["values"] == {"--force": True, "--format": "json"}
    assert tracked[2]["properties"]["template"] == "basic"  # custom properties, flattened
    [profile] = messages(fake.requests[1])
    assert profile == {
        "$token": TOKEN,
        "$time": mapping.epoch_seconds(events[3]["timestamp"]),
        "$distinct_id": events[3]["install_id"],
        "$set": {"plan": "pro"},
    }


def test_the_fake_stores_normalized_items(fake: FakeMixpanel, sink: MixpanelSink) -> None:
    events = sample_events()
    sink.send(events, soon())
    check_normalized(fake.stored, events)
    for item, event in zip(fake.stored, events, strict=True):
        if item["kind"] == "event":
            assert item["dedup_id"] == event["event_id"]
            assert item["properties"] == mapping.properties(event)
        else:
            assert item["dedup_id"] is None
            assert item["properties"] == mapping.traits(event)


def test_a_custom_property_cannot_pose_as_the_envelope_or_locate_anyone(
    fake: FakeMixpanel, sink: MixpanelSink
) -> None:
    event = sample_events()[2]
    event["properties"] = {
        "time": 1,
        "token": "other",
        "distinct_id": "someone",
        "ip": "203.0.113.7",
        "$ip": "203.0.113.7",
        "kept": 1,
    }
    assert sink.send([event], soon()).outcome == "delivered"
    [message] = messages(fake.requests[0])
    properties = message["properties"]
    assert properties["token"] == TOKEN
    assert properties["distinct_id"] == event["install_id"]
    assert properties["time"] == mapping.epoch_seconds(event["timestamp"])
    assert "ip" not in properties and "$ip" not in properties
    assert properties["kept"] == 1
    assert form(fake.requests[0])["ip"] == "0"


def test_throttling_is_retried_after_the_servers_wait_with_the_same_insert_ids(
    fake: FakeMixpanel, sink: MixpanelSink
) -> None:
    fake.force(429, retry_after="7")
    assert sink.send(sample_events(), soon()) == Delivery("retry", "http_429", 7.0)
    assert [r.path for r in fake.requests] == ["/track"]  # /engage waits for the retry
    assert fake.stored == []
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    first, again = (
        [m["properties"]["$insert_id"] for m in messages(r)]
        for r in (fake.requests[0], fake.requests[1])
    )
    assert first == again == [e["event_id"] for e in sample_events()[:3]]


@pytest.mark.parametrize(
    ("status", "outcome"), [(503, "retry"), (500, "retry"), (400, "rejected"), (401, "rejected"),
                            (403, "rejected"), (413, "rejected")],
)  # fmt: skip
def test_answers_map_to_outcomes(
    fake: FakeMixpanel, sink: MixpanelSink, status: int, outcome: str
) -> None:
    fake.force(status, times=2)
    result = sink.send(sample_events(), soon())
    assert (result.outcome, result.error, result.retry_after) == (outcome, f"http_{status}", None)
    assert fake.stored == []


def test_a_failed_engage_sends_the_whole_batch_again_without_duplicates(
    fake: FakeMixpanel, sink: MixpanelSink
) -> None:
    fake.answer_path("/engage", 503, '{"error": "unavailable", "status": 0}')
    assert sink.send(sample_events(), soon()) == Delivery("retry", "http_503")
    assert [i["kind"] for i in fake.stored] == ["event"] * 3
    assert sink.send(sample_events(), soon()).outcome == "delivered"
    assert [r.path for r in fake.requests] == ["/track", "/engage", "/track", "/engage"]
    assert [i["kind"] for i in fake.stored] == ["event"] * 3 + ["identify"]  # de-duplicated


def test_a_refused_track_with_a_delivered_engage_is_rejected(
    fake: FakeMixpanel, sink: MixpanelSink
) -> None:
    fake.answer_path("/track", 400, '{"error": "bad", "status": 0}')
    assert sink.send(sample_events(), soon()) == Delivery("rejected", "http_400")
    assert [i["kind"] for i in fake.stored] == ["identify"]


def test_status_0_in_a_200_is_a_refusal_and_an_unreadable_200_a_retry(
    fake: FakeMixpanel, sink: MixpanelSink
) -> None:
    fake.answer_path("/track", 200, '{"status": 0, "error": "token, missing or empty"}')
    assert sink.send(sample_events(), soon()) == Delivery("rejected", "mixpanel_status_0")
    fake.answer_path("/track", 200, "<html>captive portal</html>")
    assert sink.send(sample_events(), soon()) == Delivery("retry", "bad_answer")


def test_answers_read_from_a_200() -> None:
    assert verdict(b'{"status": 1, "error": null}').outcome == "delivered"
    assert verdict(b"1\n").outcome == "delivered"
    assert verdict(b'{"code": 200, "num_records_imported": 3, "status": "OK"}').outcome == (
        "delivered"
    )
    assert verdict(b"0") == Delivery("rejected", "mixpanel_status_0")
    assert verdict(b"").outcome == "retry"
    assert verdict(b'{"status": 1, "err').outcome == "retry"  # cut short
    assert worse(Delivery("rejected", "http_400"), Delivery("retry", "http_503")).outcome == "retry"
    assert worse(Delivery("retry", "a", 5.0), Delivery("retry", "b", 9.0)).retry_after == 9.0
    assert worse(Delivery("delivered"), Delivery("rejected", "x")).outcome == "rejected"
    partial = Delivery("delivered", "partial_rejected", refused=(1,))
    assert worse(Delivery("delivered"), partial) == worse(partial, Delivery("delivered")) == partial


def test_nothing_to_send_sends_nothing(fake: FakeMixpanel, sink: MixpanelSink) -> None:
    check_nothing_to_send(sink, fake)


def test_the_eu_host_and_import_mode_come_from_the_provider() -> None:
    eu = providers.Mixpanel("tok", host="https://api-eu.mixpanel.com/").build()
    assert isinstance(eu, MixpanelSink)
    assert eu.events_url == "https://api-eu.mixpanel.com/track"
    assert eu.engage_url == "https://api-eu.mixpanel.com/engage"
    imports = providers.Mixpanel(
        "tok", host="https://api-eu.mixpanel.com", service_account="u:s", project_id="7"
    ).build()
    assert isinstance(imports, MixpanelSink)
    assert imports.events_url == "https://api-eu.mixpanel.com/import?strict=1&project_id=7"
    with pytest.raises(Exception, match="both"):
        MixpanelSink(token=TOKEN, service_account="u:s")


def test_a_configured_host_is_where_requests_go(fake: FakeMixpanel) -> None:
    sink = MixpanelSink(token=TOKEN, host=fake.url + "/")
    assert sink.send(sample_events()[:1], soon()).outcome == "delivered"
    assert [r.path for r in fake.requests] == ["/track"]
    sink.close()


def test_import_is_sent_as_the_sdk_sends_it(fake: FakeMixpanel, importer: MixpanelSink) -> None:
    assert importer.send(sample_events(), soon()) == Delivery("delivered")
    imported, engage = fake.requests
    [theirs] = reference("mixpanel-import.json")
    assert_like(imported, theirs)
    assert imported.query == f"strict=1&project_id={PROJECT_ID}"
    assert imported.header("Authorization") == theirs["headers"]["Authorization"]
    assert engage.path == "/engage" and engage.header("Authorization") is None
    assert [i["kind"] for i in fake.stored] == ["event"] * 3 + ["identify"]


def test_import_with_wrong_credentials_is_rejected(fake: FakeMixpanel) -> None:
    sink = MixpanelSink(
        token=TOKEN, host=fake.url, service_account="sa-user.test:wrong", project_id=PROJECT_ID
    )
    assert sink.send(sample_events(), soon()) == Delivery("rejected", "http_401")
    sink.close()


def test_import_stores_the_valid_events_of_a_partly_invalid_batch(
    fake: FakeMixpanel, importer: MixpanelSink
) -> None:
    """Mixpanel: "a 400 is a partial success". The failed event is reported by its index in
    the batch, which has an identify event (sent to /engage) before it."""
    events = sample_events()
    events[2]["event_id"] = "not an insert id!"
    batch = [events[3], events[0], events[2], events[1]]
    assert importer.send(batch, soon()) == Delivery("delivered", "partial_rejected", refused=(2,))
    imported, engage = fake.requests
    assert (imported.path, engage.path) == ("/import", "/engage")
    [(_, status)] = fake.refused
    assert status == 400
    assert [i["dedup_id"] for i in fake.stored] == [
        events[0]["event_id"],
        events[1]["event_id"],
        None,  # the identify's $set
    ]


def test_import_refusing_every_event_or_naming_none_is_a_rejection(
    fake: FakeMixpanel, importer: MixpanelSink
) -> None:
    events = [{**e, "event_id": "not an insert id!"} for e in sample_events()[:3]]
    assert importer.send(events, soon()) == Delivery("rejected", "http_400")
    fake.answer_path("/import", 400, '{"code": 400, "error": "bad request", "status": "x"}')
    assert importer.send(sample_events()[:3], soon()) == Delivery("rejected", "http_400")
    assert fake.stored == []


def test_a_partial_import_and_a_failed_engage_is_a_retry(
    fake: FakeMixpanel, importer: MixpanelSink
) -> None:
    events = sample_events()
    events[0]["event_id"] = "not an insert id!"
    fake.answer_path("/engage", 503, '{"error": "unavailable", "status": 0}')
    assert importer.send(events, soon()) == Delivery("retry", "http_503")


def test_failed_records_are_read_from_an_import_answer() -> None:
    def answer(*records: Any) -> bytes:
        return json.dumps({"code": 400, "failed_records": list(records)}).encode()

    record = {"insert_id": "x", "field": "properties.time", "message": "invalid"}
    assert failed_records(answer({**record, "index": 2}, {**record, "index": 0}), 3) == (0, 2)
    assert failed_records(answer({"index": 1}, {"index": 1}), 3) == (1,)  # once
    assert failed_records(answer({"index": 3}, {"index": -1}, {"index": True}), 3) == ()
    assert failed_records(answer({"index": "1"}, "1", {"insert_id": "x"}), 3) == ()
    assert failed_records(b'{"code": 400, "failed_records": [{"index": 1', 3) == ()  # cut
    assert failed_records(b'{"code": 400, "error": "x"}', 3) == failed_records(b"[]", 3) == ()


def post(url: str, body: bytes | str, headers: dict[str, str], method: str = "POST") -> int:
    return answer(url, body, headers, method)[0]


def answer(
    url: str, body: bytes | str, headers: dict[str, str], method: str = "POST"
) -> tuple[int, Any]:
    with urllib3.PoolManager() as pool:
        response = pool.request(method, url, body=body, headers=headers, retries=False)
        try:
            return response.status, json.loads(response.data)
        except ValueError:
            return response.status, response.data


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def track_body(**properties: Any) -> str:
    event = {
        "event": "command",
        "properties": {
            "token": TOKEN,
            "distinct_id": "3f1c2a9be07d4c55a1e2b3c4d5e6f708",
            "time": time.time(),
            "$insert_id": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a01",
            **properties,
        },
    }
    return urlencode({"data": json.dumps([event]), "verbose": "1", "ip": "0"})


def test_the_fake_accepts_what_the_sdk_sent(fake: FakeMixpanel) -> None:
    for name in ("mixpanel.json", "mixpanel-import.json"):
        for theirs in reference(name):
            query = f"?{theirs['query']}" if theirs["query"] else ""
            status = post(
                fake.url + theirs["path"] + query, theirs["body_raw_text"], theirs["headers"]
            )
            assert status == 200, (name, theirs["path"], fake.refused[-1:])
    assert len(fake.stored) == 3 + 1  # the import repeats the tracked events: de-duplicated


@pytest.mark.parametrize(
    ("path", "headers", "body", "status"),
    [
        ("/track", FORM, track_body(), 200),
        ("/track", {"Content-Type": "application/json"}, "[]", 400),
        ("/track", FORM, track_body().replace("ip=0", "ip=1"), 400),
        ("/track", FORM, track_body(token=TOKEN.lower()), 400),
        ("/track", FORM, track_body(time="2026-11-23T10:00:01Z"), 400),
        ("/track", FORM, track_body(distinct_id=42), 400),
        ("/track", FORM, track_body(**{"$insert_id": "x" * 37}), 400),
        ("/track", FORM, track_body(ip="203.0.113.7"), 400),
        ("/track", FORM, track_body(deep={"a": {"b": {"c": {"d": 1}}}}), 400),
        ("/track", FORM, "verbose=1&ip=0", 400),
        ("/import", FORM, track_body(), 401),
        ("/engage", FORM, urlencode({"data": json.dumps(
            [{"$token": TOKEN, "$distinct_id": "abcdef", "$set": {"a": 1}}]), "ip": "0"}), 200),
        ("/nowhere", FORM, track_body(), 404),
    ],
)  # fmt: skip
def test_the_fake_refuses_what_mixpanel_refuses(
    fake: FakeMixpanel, path: str, headers: dict[str, str], body: str, status: int
) -> None:
    assert post(fake.url + path, body, headers) == status


def test_the_fake_checks_import_strictly(fake: FakeMixpanel) -> None:
    auth = urllib3.util.make_headers(basic_auth=SERVICE_ACCOUNT)
    url = f"{fake.url}/import?strict=1&project_id={PROJECT_ID}"
    status, refusal = answer(url, track_body(**{"$insert_id": None}), {**FORM, **auth})
    assert status == 400
    assert refusal["num_records_imported"] == 0
    assert refusal["failed_records"][0]["index"] == 0
    late = track_body(time=time.time() + 7200)
    assert post(url, late, {**FORM, **auth}) == 400
    assert post(url.replace(PROJECT_ID, "999"), track_body(), {**FORM, **auth}) == 401
    assert post(url, track_body(), {**FORM, **auth}) == 200
    assert post(f"{fake.url}/track", "", FORM, method="GET") == 405


def test_the_fake_refuses_a_bad_profile_update_in_a_200_as_mixpanel_does(
    fake: FakeMixpanel,
) -> None:
    record = {"$token": TOKEN, "$distinct_id": "abcdef", "$set": {"a": 1}, "$unset": ["b"]}
    data = {"data": json.dumps([record]), "verbose": "1", "ip": "0"}
    assert answer(f"{fake.url}/engage", urlencode(data), FORM) == (
        200,
        {"error": "exactly one profile operation expected", "status": 0},
    )
    assert fake.stored == []
