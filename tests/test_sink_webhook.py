"""The webhook sink against a real loopback receiver that verifies signatures, and the
signature scheme itself."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fake_service import sample_events
from fake_webhook import FakeWebhook, normalize
from hypothesis import given
from hypothesis import strategies as st
from sink_checks import COMMAND_ITEM, check_answer, check_refused, deliver, soon

from cli_telemetry.sinks import Delivery, Sink
from cli_telemetry.sinks.http import USER_AGENT
from cli_telemetry.sinks.webhook import WebhookSink
from cli_telemetry.webhook_signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify_signature,
)

SECRET = "whsec_test_0123456789"
WRONG = "whsec_test_wrong"
BODY = b'{"batch":[],"sent_at":"2026-11-23T10:00:05.000Z"}'
NOW = 1_795_428_005


@pytest.fixture
def hook() -> Iterator[FakeWebhook]:
    with FakeWebhook(SECRET) as fake:
        yield fake


def test_the_sink_meets_the_interface() -> None:
    sink = WebhookSink(url="http://127.0.0.1:9/")
    assert isinstance(sink, Sink)
    assert sink.name == "webhook"
    sink.close()


def test_a_signed_batch_in_the_wire_format(hook: FakeWebhook) -> None:
    sink = WebhookSink(url=hook.endpoint, secret=SECRET)
    before = int(time.time())
    assert sink.send(sample_events(), soon()) == Delivery("delivered")
    sink.close()
    [request] = hook.requests
    assert request.method == "POST" and request.path == "/hooks/telemetry"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Content-Encoding") is None  # plain JSON, see the module
    assert request.header("User-Agent") == USER_AGENT
    body = json.loads(request.body)
    assert body["batch"] == sample_events()
    assert body["sent_at"].endswith("Z")
    assert set(body) == {"batch", "sent_at"}
    timestamp = request.header(TIMESTAMP_HEADER)
    assert timestamp is not None and before <= int(timestamp) <= time.time()
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.header(SIGNATURE_HEADER) == "v1=" + expected.hexdigest()
    assert hook.refused == []


def test_stored_items_are_normalized(hook: FakeWebhook) -> None:
    assert deliver(WebhookSink(url=hook.endpoint, secret=SECRET)).outcome == "delivered"
    command, failed, custom, identify = hook.stored
    assert command == COMMAND_ITEM
    assert failed["properties"]["error_type"] == "ConnectionError"
    assert (custom["kind"], custom["name"]) == ("event", "template_used")
    assert custom["properties"]["template"] == "basic" and custom["properties"]["count"] == 3
    assert (identify["kind"], identify["name"]) == ("identify", "identify")
    assert identify["properties"] == {"plan": "pro"}  # the traits
    assert identify["time"] == 1795428004.0


def test_without_a_secret_nothing_is_signed() -> None:
    with FakeWebhook(secret=None) as fake:
        assert deliver(WebhookSink(url=fake.endpoint)).outcome == "delivered"
        [request] = fake.requests
        assert request.header(TIMESTAMP_HEADER) is None
        assert request.header(SIGNATURE_HEADER) is None
        assert len(fake.stored) == 4


@pytest.mark.parametrize("secret", [None, "", "not-the-secret"])
def test_the_receiver_refuses_unsigned_or_wrongly_signed_requests(
    hook: FakeWebhook, secret: str | None
) -> None:
    check_refused(WebhookSink(url=hook.endpoint, secret=secret), hook, 401)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", Delivery("retry", "http_429", 7.0)),
     (503, None, Delivery("retry", "http_503")),
     (500, "30", Delivery("retry", "http_500", 30.0)),
     (400, None, Delivery("rejected", "http_400")),
     (401, None, Delivery("rejected", "http_401")),
     (404, None, Delivery("rejected", "http_404"))],
)  # fmt: skip
def test_answers_are_classified(
    hook: FakeWebhook, status: int, retry_after: str | None, expected: Delivery
) -> None:
    check_answer(WebhookSink(url=hook.endpoint, secret=SECRET), hook, status, retry_after, expected)


def test_a_receiver_of_the_wire_format_can_refuse_single_events(hook: FakeWebhook) -> None:
    """It answers as the collector does: the events it names are refused, by their index
    in the batch; the others are stored."""
    hook.refuse = lambda event: event["event"] == "template_used"
    sink = WebhookSink(url=hook.endpoint, secret=SECRET)
    assert deliver(sink) == Delivery("delivered", "partial_rejected", refused=(2,))
    assert [item["name"] for item in hook.stored] == ["command", "command", "identify"]


@pytest.mark.parametrize(
    "answer", [b'{"status": "success", "id": "a1b2"}', b"Accepted", b"", b'{"rejected": 2}']
)
def test_another_services_answer_means_every_event_arrived(
    hook: FakeWebhook, answer: bytes
) -> None:
    hook.success_body = answer
    assert deliver(WebhookSink(url=hook.endpoint, secret=SECRET)) == Delivery("delivered")


def test_credentials_in_the_url_become_basic_auth() -> None:
    with FakeWebhook(secret=None) as fake:
        sink = WebhookSink(url=fake.endpoint.replace("http://", "http://user:s3cret@"))
        assert "s3cret" not in sink.url
        assert deliver(sink, sample_events()[:1]).outcome == "delivered"
        assert fake.requests[0].header("Authorization") == "Basic dXNlcjpzM2NyZXQ="


def test_the_fake_receiver_refuses_what_a_receiver_would(hook: FakeWebhook) -> None:
    """So that the tests above can fail: gzip, another type, a bad body, another path."""
    import urllib3

    pool = urllib3.PoolManager(retries=False)
    try:
        good = json.dumps({"batch": sample_events(), "sent_at": "x"}).encode()
        json_type = {"Content-Type": "application/json"}
        cases = [
            (hook.endpoint, good, {"Content-Type": "text/plain"}, 415),
            (hook.endpoint, gzip.compress(good), {**json_type, "Content-Encoding": "gzip"}, 415),
            (hook.url + "/elsewhere", good, json_type, 404),
            (hook.endpoint, b"{", json_type, 400),
            (hook.endpoint, b'{"events":[]}', json_type, 400),
            (hook.endpoint, b'{"batch":[{"event":"x"}],"sent_at":"x"}', json_type, 400),
        ]  # fmt: skip
        for url, body, headers, status in cases:
            signed = {**headers, **signature_headers(SECRET, body)}
            answer = pool.request("POST", url, body=body, headers=signed)
            assert answer.status == status, (url, headers, body[:40])
    finally:
        pool.clear()
    assert hook.stored == []


def test_a_replayed_request_is_refused_once_stale() -> None:
    import urllib3

    fake = FakeWebhook(SECRET, tolerance=60)
    pool = urllib3.PoolManager(retries=False)
    try:
        body = json.dumps({"batch": sample_events()[:1], "sent_at": "x"}).encode()
        headers = {"Content-Type": "application/json"}
        for age, status in [(0, 200), (30, 200), (61, 401), (-61, 401)]:
            signed = {**headers, **signature_headers(SECRET, body, now=time.time() - age)}
            assert pool.request("POST", fake.endpoint, body=body, headers=signed).status == status
        assert len(fake.stored) == 2
    finally:
        pool.clear()
        fake.close()


# The scheme, without a network.


def test_a_good_signature_verifies() -> None:
    headers = signature_headers(SECRET, BODY, now=NOW)
    assert headers == {
        TIMESTAMP_HEADER: str(NOW),
        SIGNATURE_HEADER: "v1=" + sign(SECRET, NOW, BODY),
    }
    timestamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert verify_signature(SECRET, timestamp, BODY, signature, now=NOW)
    assert verify_signature(SECRET.encode(), timestamp, BODY, signature, now=NOW + 300)
    assert verify_signature(SECRET, timestamp, BODY, signature, now=NOW - 300)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    """Spelled out, as a receiver in another language computes it."""
    expected = hmac.new(b"k", b"1700000000." + b"{}", hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", b"{}") == expected
    assert verify_signature("k", "1700000000", b"{}", f"v1={expected}", now=1_700_000_000)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [(SECRET, BODY.replace(b"[]", b"[{}]"), NOW),  # tampered body
     (SECRET, BODY + b" ", NOW),  # one byte more
     ("another secret", BODY, NOW),  # wrong secret
     (SECRET, BODY, NOW + 301),  # stale: a replay after the tolerance
     (SECRET, BODY, NOW - 301)],  # from the future
)  # fmt: skip
def test_a_bad_signature_does_not_verify(secret: str, body: bytes, now: int) -> None:
    headers = signature_headers(SECRET, BODY, now=NOW)
    assert not verify_signature(
        secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now=now
    )


def test_a_signed_timestamp_cannot_be_changed() -> None:
    signature = "v1=" + sign(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, str(NOW + 1), BODY, signature, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [(None, "v1=00"), (str(NOW), None), ("", "v1=00"), ("1.5e9", None), ("-1", None),
     (" ", "v1="), ("\uff11\uff12\uff13", "v1=00"), (str(NOW), "v0=abc"), (str(NOW), "garbage"),
     (str(NOW), "v1=é"), ("9" * 400, "v1=00")],
)  # fmt: skip
def test_malformed_headers_never_raise(timestamp: str | None, signature: str | None) -> None:
    assert not verify_signature(SECRET, timestamp, BODY, signature, now=NOW)
    assert not verify_signature("", str(NOW), BODY, "v1=" + sign("", NOW, BODY), now=NOW)


GOOD = "v1=" + sign(SECRET, NOW, BODY)


@pytest.mark.parametrize(
    ("timestamp", "signature", "tolerance", "now"),
    [("9" * 5000, "v1=00", 300, None),  # int() refuses over 4,300 digits
     ("9" * 400, "v1=00", 300, None),  # too large to subtract from a float clock
     ("0" * 5000 + str(NOW), GOOD, 300, NOW),  # the right time, padded: still too long
     (str(NOW), GOOD, float("nan"), NOW),  # nan: every age would pass
     (str(NOW), GOOD, float("inf"), NOW),
     (str(NOW), GOOD, -1, NOW),
     (str(NOW), GOOD, 300, float("nan")),
     (str(NOW), GOOD, 300, float("-inf")),
     (str(NOW), GOOD, 300, 10**400),  # an int no float holds
     (str(NOW), GOOD, True, NOW),  # a bool is not a number of seconds
     (str(NOW), GOOD, "300", NOW),
     (str(NOW).encode(), GOOD, 300, NOW),  # bytes, as some frameworks give headers
     (str(NOW), GOOD.encode(), 300, NOW),
     (NOW, GOOD, 300, NOW)],
    ids=["5000-digits", "400-digits", "padded", "tolerance-nan", "tolerance-inf",
         "tolerance-negative", "now-nan", "now-inf", "now-huge-int", "tolerance-bool",
         "tolerance-str", "timestamp-bytes", "signature-bytes", "timestamp-int"],
)  # fmt: skip
def test_hostile_inputs_are_refused_without_raising(
    timestamp: Any, signature: Any, tolerance: Any, now: Any
) -> None:
    """Each of these raised, or (nan) accepted a request of any age, before."""
    assert (
        verify_signature(SECRET, timestamp, BODY, signature, tolerance=tolerance, now=now) is False
    )


@pytest.mark.parametrize(
    ("secret", "body"),
    [("\ud800", BODY), (b"", BODY), (None, BODY), (SECRET, BODY.decode()), (SECRET, None)],
    ids=["lone-surrogate", "empty", "none", "str-body", "no-body"],
)
def test_a_secret_or_body_of_the_wrong_kind_is_refused_without_raising(
    secret: Any, body: Any
) -> None:
    assert verify_signature(secret, str(NOW), body, GOOD, now=NOW) is False


def test_tolerance_zero_accepts_only_the_exact_second() -> None:
    assert verify_signature(SECRET, str(NOW), BODY, GOOD, tolerance=0, now=NOW)
    assert not verify_signature(SECRET, str(NOW), BODY, GOOD, tolerance=0, now=NOW + 1)


@given(
    timestamp=st.one_of(
        st.none(),
        st.text(),
        st.integers().map(str),
        st.text("0123456789", min_size=300, max_size=5000),  # past a float, past int()
    ),
    signature=st.one_of(st.none(), st.text(), st.lists(st.text(max_size=80)).map(",".join)),
    body=st.binary(max_size=200),
    tolerance=st.one_of(st.floats(), st.integers()),
    now=st.one_of(st.none(), st.floats(), st.integers()),
)
def test_verify_signature_never_raises(
    timestamp: str | None, signature: str | None, body: bytes, tolerance: float, now: float | None
) -> None:
    """Whatever arrives in the headers and the body, and whatever numbers a receiver
    passes, the answer is a bool; only a signature made with the secret can be True."""
    result = verify_signature(SECRET, timestamp, body, signature, tolerance=tolerance, now=now)
    assert result is False or (
        signature is not None and sign(SECRET, (timestamp or "").strip(), body) in signature
    )


def test_any_of_several_signatures_may_match() -> None:
    """While a secret is rotated, a header may carry a signature per secret."""
    good = sign(SECRET, NOW, BODY)
    header = f"v1={sign('old secret', NOW, BODY)}, v0=whatever,v1={good}"
    assert verify_signature(SECRET, str(NOW), BODY, header, now=NOW)
    assert verify_signature(SECRET, str(NOW), BODY, f"t={NOW},v1={good}", now=NOW)


def test_a_receiver_can_verify_without_urllib3(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from cli_telemetry.webhook_signature import verify_signature\n"
        "assert 'urllib3' not in sys.modules, 'urllib3 was imported'\n"
        "assert not any(m.startswith('cli_telemetry.sinks') for m in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_normalize_matches_the_shape_the_end_to_end_tests_use() -> None:
    item = normalize(sample_events()[3])
    assert set(item) == {"kind", "name", "distinct_id", "dedup_id", "time", "properties"}
    assert isinstance(item["time"], float)


def _receiver() -> ModuleType:
    path = Path(__file__).parents[1] / "examples" / "receiver.py"
    spec = importlib.util.spec_from_file_location("example_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("secret", [None, SECRET])
def test_the_example_receiver(secret: str | None) -> None:
    """examples/receiver.py: unchanged without RECEIVER_WEBHOOK_SECRET (the wire format,
    gzipped or not), and with it, only correctly signed requests."""
    from cli_telemetry.sinks.http import HttpSink

    receiver = _receiver()
    received: list[dict[str, Any]] = []
    server = receiver.start_in_background(0, received.append, secret)
    url = f"http://127.0.0.1:{server.server_address[1]}/v1/events"
    sinks: list[Sink] = [WebhookSink(url=url, secret=SECRET), WebhookSink(url=url, secret=WRONG)]
    sinks += [WebhookSink(url=url), HttpSink(url)]
    try:
        outcomes = [sink.send(sample_events(), soon()).outcome for sink in sinks]
    finally:
        for sink in sinks:
            sink.close()
        server.shutdown()
        server.server_close()
    if secret is None:
        assert outcomes == ["delivered"] * 4
        assert len(received) == 16
    else:
        assert outcomes == ["delivered", "rejected", "rejected", "rejected"]
        assert received == sample_events()
