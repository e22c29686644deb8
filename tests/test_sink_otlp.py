"""The OTLP sink against a real loopback receiver that decodes OTLP/HTTP JSON strictly, and
compared with the reference request in tests/wire/otlp.json."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fake_otlp import FakeOtlp, decode_request
from fake_service import sample_events
from sink_checks import COMMAND_ITEM, check_answer, deliver, post, soon
from wire_reference import load

from cli_telemetry import __version__
from cli_telemetry.errors import ConfigurationError
from cli_telemetry.sinks import Delivery, Sink, mapping
from cli_telemetry.sinks.http import USER_AGENT
from cli_telemetry.sinks.otlp import OtlpSink, any_value, epoch_nanos, export_request, logs_url


@pytest.fixture
def otlp() -> Iterator[FakeOtlp]:
    with FakeOtlp() as fake:
        yield fake


@pytest.fixture
def reference() -> dict[str, Any]:
    [request] = load("otlp.json")
    return request


def send(otlp: FakeOtlp, events: list[dict[str, Any]], **options: Any) -> Delivery:
    return deliver(OtlpSink(endpoint=otlp.url, **options), events)


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def test_the_sink_meets_the_interface() -> None:
    sink = OtlpSink()
    assert isinstance(sink, Sink)
    assert (sink.name, sink.url) == ("otlp", "http://localhost:4318/v1/logs")
    sink.close()


def test_the_request_is_shaped_as_the_reference(otlp: FakeOtlp, reference: dict[str, Any]) -> None:
    assert send(otlp, sample_events()) == Delivery("delivered")
    [request] = otlp.requests
    assert request.method == reference["method"]
    assert request.path == reference["path"]
    assert request.query == reference["query"]
    assert request.header("Content-Type") == reference["content_type"] == "application/json"
    assert request.header("Content-Encoding") is reference["content_encoding"] is None
    assert request.header("User-Agent") == USER_AGENT
    body, expected = json.loads(request.data), reference["body"]

    assert set(body) == set(expected) == {"resourceLogs"}
    [ours], [theirs] = body["resourceLogs"], expected["resourceLogs"]
    assert set(ours) == set(theirs) == {"resource", "scopeLogs"}
    assert set(ours["resource"]) == set(theirs["resource"]) == {"attributes"}
    [scope], [their_scope] = ours["scopeLogs"], theirs["scopeLogs"]
    assert set(scope) == set(their_scope) == {"scope", "logRecords"}
    assert set(scope["scope"]) == set(their_scope["scope"]) == {"name", "version"}
    their_record = their_scope["logRecords"][1]
    for record in scope["logRecords"]:
        assert set(record) == set(their_record)
        for field in ("timeUnixNano", "observedTimeUnixNano"):
            assert isinstance(record[field], str) and record[field].isdigit()  # fixed64
        assert (record["severityNumber"], record["severityText"]) == (9, "INFO")  # enum: int
        assert record["body"] == {"stringValue": record["eventName"]}
        assert record["attributes"][1]["key"] == their_record["attributes"][1]["key"]
        for attribute in record["attributes"]:
            assert set(attribute) == {"key", "value"}
    # The value encodings the reference shows: int64 as a string, a list as arrayValue.
    assert their_record["attributes"][3] == kv("exit_code", {"intValue": "0"})
    attributes = {a["key"]: a["value"] for a in scope["logRecords"][0]["attributes"]}
    assert attributes["exit_code"] == {"intValue": "0"}
    assert attributes["flags"] == {
        "arrayValue": {"values": [{"stringValue": "--force"}, {"stringValue": "--format"}]}
    }


def test_the_exact_body(otlp: FakeOtlp) -> None:
    """A snapshot of what an OTLP backend receives for the sample events."""
    assert send(otlp, sample_events()).outcome == "delivered"
    [request] = otlp.requests
    body = json.loads(request.data)
    [resource_logs] = body["resourceLogs"]
    assert resource_logs["resource"] == {
        "attributes": [
            kv("service.name", {"stringValue": "acme"}),
            kv("service.version", {"stringValue": "1.4.0"}),
            kv("os.type", {"stringValue": "linux"}),
            kv("os.version", {"stringValue": "6.1"}),
            kv("host.arch", {"stringValue": "amd64"}),
            kv("process.runtime.name", {"stringValue": "python"}),
            kv("process.runtime.version", {"stringValue": "3.11.7"}),
        ]
    }
    [scope_logs] = resource_logs["scopeLogs"]
    assert scope_logs["scope"] == {"name": "cli-telemetry", "version": __version__}
    command, _, custom, identify = scope_logs["logRecords"]
    assert command == {
        "timeUnixNano": "1795428001250000000",
        "observedTimeUnixNano": "1795428001250000000",
        "severityNumber": 9,
        "severityText": "INFO",
        "eventName": "command",
        "body": {"stringValue": "command"},
        "attributes": [
            kv("install_id", {"stringValue": "3f1c2a9be07d4c55a1e2b3c4d5e6f708"}),
            kv("log.record.uid", {"stringValue": "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a01"}),
            kv("schema_version", {"intValue": "1"}),
            kv("ci", {}),
            kv("interactive", {"boolValue": True}),
            kv("command", {"stringValue": "acme deploy"}),
            kv(
                "flags",
                {
                    "arrayValue": {
                        "values": [{"stringValue": "--force"}, {"stringValue": "--format"}]
                    }
                },
            ),
            kv(
                "values",
                {
                    "kvlistValue": {
                        "values": [
                            kv("--force", {"boolValue": True}),
                            kv("--format", {"stringValue": "json"}),
                        ]
                    }
                },
            ),
            kv("exit_code", {"intValue": "0"}),
            kv("outcome", {"stringValue": "success"}),
            kv("error_type", {}),
            kv("duration_ms", {"intValue": "125"}),
        ],
    }
    assert custom["eventName"] == "template_used"
    assert custom["attributes"][2:4] == [  # custom properties first (mapping.properties)
        kv("template", {"stringValue": "basic"}),
        kv("count", {"intValue": "3"}),
    ]
    assert identify["eventName"] == "identify"
    assert identify["timeUnixNano"] == "1795428004000000000"
    assert kv("plan", {"stringValue": "pro"}) in identify["attributes"]
    assert request.data == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def test_nothing_identifies_the_host(otlp: FakeOtlp) -> None:
    assert send(otlp, sample_events()).outcome == "delivered"
    body = json.loads(otlp.requests[0].data)
    for resource_logs in body["resourceLogs"]:
        keys = {a["key"] for a in resource_logs["resource"]["attributes"]}
        assert not {k for k in keys if k.startswith("host.") and k != "host.arch"}
        assert "host.id" not in keys
    assert "user.id" not in otlp.requests[0].data.decode()  # the install id is no identity


def test_stored_items_are_normalized(otlp: FakeOtlp) -> None:
    assert send(otlp, sample_events()).outcome == "delivered"
    command, failed, custom, identify = otlp.stored
    arch = "amd64"  # the semantic convention's name for x86_64
    assert command == {**COMMAND_ITEM, "properties": {**COMMAND_ITEM["properties"], "arch": arch}}
    assert failed["properties"]["error_type"] == "ConnectionError"
    assert (custom["kind"], custom["name"], custom["properties"]["count"]) == (
        "event",
        "template_used",
        3,
    )
    assert (identify["kind"], identify["name"]) == ("identify", "identify")
    assert identify["properties"] == {"plan": "pro"}  # the traits
    assert [item["time"] for item in otlp.stored] == [
        1795428001.25,
        1795428002.5,
        1795428003.75,
        1795428004.0,
    ]


def test_events_are_grouped_by_resource(otlp: FakeOtlp) -> None:
    first, second, third, _ = sample_events()
    second = {**second, "tool_version": "1.5.0", "os": "macos", "arch": "arm64"}
    assert send(otlp, [first, second, third]).outcome == "delivered"
    body = json.loads(otlp.requests[0].data)
    groups = [
        (
            {a["key"]: a["value"]["stringValue"] for a in r["resource"]["attributes"]},
            [rec["attributes"][1]["value"]["stringValue"][-2:]
             for rec in r["scopeLogs"][0]["logRecords"]],
        )
        for r in body["resourceLogs"]
    ]  # fmt: skip
    assert [(g["service.version"], g["os.type"], g["host.arch"], ids) for g, ids in groups] == [
        ("1.4.0", "linux", "amd64", ["01", "03"]),
        ("1.5.0", "darwin", "arm64", ["02"]),
    ]
    assert otlp.stored[2]["properties"]["os"] == "macos"


def test_headers_are_sent_as_given(otlp: FakeOtlp) -> None:
    headers = {
        "Authorization": "Bearer t0ken",
        "X-Scope-OrgID": "tenant-1",
        "content-type": "text/plain",  # the sink's own
    }
    assert send(otlp, sample_events()[:1], headers=headers).outcome == "delivered"
    [request] = otlp.requests
    assert request.header("Authorization") == "Bearer t0ken"
    assert request.header("X-Scope-OrgID") == "tenant-1"
    assert request.header("Content-Type") == "application/json"


def test_gzip_when_asked(otlp: FakeOtlp) -> None:
    assert send(otlp, sample_events(), compression="gzip").outcome == "delivered"
    [request] = otlp.requests
    assert request.header("Content-Encoding") == "gzip"
    assert json.loads(gzip.decompress(request.body)) == export_request(sample_events())
    assert len(otlp.stored) == 4


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [("http://h:4318", "http://h:4318/v1/logs"),
     ("http://h:4318/", "http://h:4318/v1/logs"),
     ("https://h/otlp/", "https://h/otlp/v1/logs"),
     ("https://h/otlp?tenant=a", "https://h/otlp/v1/logs?tenant=a"),
     ("https://h/v1/logs", "https://h/v1/logs")],
)  # fmt: skip
def test_the_logs_path_is_appended(endpoint: str, url: str) -> None:
    assert logs_url(endpoint) == url


def test_a_base_path_and_credentials_in_the_endpoint() -> None:
    with FakeOtlp(path="/otlp/v1/logs") as fake:
        endpoint = fake.url.replace("http://", "http://user:s3cret@") + "/otlp/"
        sink = OtlpSink(endpoint=endpoint)
        assert "s3cret" not in sink.url
        assert deliver(sink).outcome == "delivered"
        assert fake.requests[0].header("Authorization") == "Basic dXNlcjpzM2NyZXQ="
        assert len(fake.stored) == 4


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", Delivery("retry", "http_429", 7.0)),
     (503, None, Delivery("retry", "http_503")),
     (502, "3", Delivery("retry", "http_502", 3.0)),
     (504, None, Delivery("retry", "http_504")),
     (500, None, Delivery("rejected", "http_500")),  # OTLP: MUST NOT be retried
     (408, None, Delivery("rejected", "http_408")),
     (400, None, Delivery("rejected", "http_400")),
     (401, None, Delivery("rejected", "http_401")),
     (413, None, Delivery("rejected", "http_413"))],  # the uploader splits the batch
)  # fmt: skip
def test_answers_are_classified_as_otlp_says(
    otlp: FakeOtlp, status: int, retry_after: str | None, expected: Delivery
) -> None:
    check_answer(OtlpSink(endpoint=otlp.url), otlp, status, retry_after, expected)


def test_a_partial_success_is_delivered_with_the_count_of_rejected_records(
    otlp: FakeOtlp,
) -> None:
    """The receiver keeps what it can and says how many it rejected, not which."""
    events = sample_events()
    otlp.reject_before = mapping.epoch_seconds(events[2]["timestamp"])  # the first two
    assert send(otlp, events) == Delivery("delivered", "partial_rejected", unattributed=2)
    assert [item["dedup_id"] for item in otlp.stored] == [e["event_id"] for e in events[2:]]
    assert not otlp.refused  # a 200: not to be retried


def test_a_partial_success_is_read_leniently(otlp: FakeOtlp) -> None:
    otlp.success_body = b'{"partialSuccess":{"rejectedLogRecords":"9","errorMessage":"x"}}'
    assert send(otlp, sample_events()) == Delivery(
        "delivered",
        "partial_rejected",
        unattributed=4,  # no more than were sent
    )
    otlp.success_body = b'{"partialSuccess":{"rejectedLogRecords":1}}'  # a number, not "1"
    assert send(otlp, sample_events()).unattributed == 1
    otlp.success_body = b'{"partialSuccess":{"errorMessage":"a warning only"}}'
    assert send(otlp, sample_events()) == Delivery("delivered")
    otlp.success_body = b"\x0a\x00"  # not JSON (a protobuf answer): a 200 is a success
    assert send(otlp, sample_events()) == Delivery("delivered")


def test_a_connection_failure_is_retried() -> None:
    from loopback import closed_port

    sink = OtlpSink(endpoint=closed_port().removesuffix("/v1/events"))
    assert sink.send(sample_events(), soon()) == Delivery("retry", "connection")
    sink.close()


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(None, {}), (True, {"boolValue": True}), (0, {"intValue": "0"}),
     (-(2**63), {"intValue": "-9223372036854775808"}),
     (2**63, {"stringValue": "9223372036854775808"}),
     (1.5, {"doubleValue": 1.5}), (float("nan"), {"doubleValue": "NaN"}),
     (float("-inf"), {"doubleValue": "-Infinity"}), ("é", {"stringValue": "é"}),
     ([1, None], {"arrayValue": {"values": [{"intValue": "1"}, {}]}}),
     ({"a": [True]}, {"kvlistValue": {"values": [
         {"key": "a", "value": {"arrayValue": {"values": [{"boolValue": True}]}}}]}})],
)  # fmt: skip
def test_any_value(value: object, encoded: dict[str, Any]) -> None:
    assert any_value(value) == encoded


def test_nanoseconds_are_exact() -> None:
    assert epoch_nanos("2026-11-23T10:00:01.250Z") == 1_795_428_001_250_000_000
    assert epoch_nanos("2026-11-23T11:00:01.250001+01:00") == 1_795_428_001_250_001_000
    assert epoch_nanos("1970-01-01T00:00:00Z") == 0


def test_a_custom_property_cannot_pose_as_an_id() -> None:
    event = {**sample_events()[2], "properties": {"install_id": "x", "log.record.uid": "y"}}
    [item] = decode_request(export_request([event]))
    assert item["distinct_id"] == "3f1c2a9be07d4c55a1e2b3c4d5e6f708"
    assert item["dedup_id"] == "0b7e7d52-8a51-4f0e-9a3e-2f1c0d6b4a03"


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        OtlpSink(compression="zstd")
    with pytest.raises(ConfigurationError):
        OtlpSink(headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(ConfigurationError):
        OtlpSink(headers={"Bad Name": "x"})


def _post(url: str, body: bytes, content_type: str = "application/json") -> int:
    return post(url, body, {"Content-Type": content_type})


def test_the_fake_collector_refuses_what_a_collector_would(otlp: FakeOtlp) -> None:
    """So that the tests above can fail."""
    good = export_request(sample_events()[:1])
    record = good["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]

    def with_record(**changes: Any) -> bytes:
        changed = json.loads(json.dumps(good))
        changed["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0] = {**record, **changes}
        return json.dumps(changed).encode()

    url = otlp.url + "/v1/logs"
    assert _post(url, json.dumps(good).encode()) == 200
    assert _post(otlp.url + "/v1/traces", json.dumps(good).encode()) == 404
    assert _post(url, json.dumps(good).encode(), "application/x-protobuf") == 415
    assert _post(url, b"{") == 400
    assert _post(url, b'{"resource_logs": []}') == 400  # snake_case
    assert _post(url, with_record(timeUnixNano=int(record["timeUnixNano"]))) == 400
    assert _post(url, with_record(severityNumber="SEVERITY_NUMBER_INFO")) == 400
    assert _post(url, with_record(attributes=[kv("n", {"intValue": 3})])) == 400
    assert (
        _post(url, with_record(attributes=[kv("n", {"stringValue": "a", "intValue": "1"})])) == 400
    )
    assert _post(url, with_record(attributes=record["attributes"] * 2)) == 400  # repeated keys
    assert _post(url, with_record(attributes=record["attributes"][2:])) == 400  # no ids
    with_host = json.loads(json.dumps(good))
    with_host["resourceLogs"][0]["resource"]["attributes"].append(
        kv("host.name", {"stringValue": "h"})
    )
    assert _post(url, json.dumps(with_host).encode()) == 400
    assert len(otlp.stored) == 1
