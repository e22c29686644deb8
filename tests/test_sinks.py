"""The HTTP sink against a real loopback server, and its response classification."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest
from conftest import needs_proc, open_sockets
from loopback import Endpoint, EndpointProcess, closed_port

from cli_telemetry.sinks import Delivery, MemorySink, Sink
from cli_telemetry.sinks.http import (
    HttpSink,
    classify,
    parse_retry_after,
    redirected,
    refused_indexes,
)

EVENTS = [{"event_id": "1", "event": "command"}, {"event_id": "2", "event": "x"}]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def soon(seconds: float = 10) -> float:
    return time.monotonic() + seconds


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "delivered"), (202, "delivered"), (204, "delivered"),
     (400, "rejected"), (401, "rejected"), (404, "rejected"), (408, "retry"), (413, "rejected"),
     (429, "retry"), (500, "retry"), (503, "retry")],
)  # fmt: skip
def test_classify(status: int, outcome: str) -> None:
    result = classify(status, None)
    assert result.outcome == outcome
    assert result.error == (None if outcome == "delivered" else f"http_{status}")


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_every_3xx_is_a_redirect_kept_for_later_and_never_a_refusal(status: int) -> None:
    result = classify(status, "5", "https://telemetry.example.com/v1/events", URL)
    assert result == Delivery("retry", "redirect:https://telemetry.example.com")
    assert classify(status, None) == Delivery("retry", "redirect")  # no Location


URL = "http://127.0.0.1:8000/v1/events?key=ours"


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        # Only the origin: the path and query may carry a secret.
        ("https://telemetry.example.com/v1/events?token=s3cret", "redirect:https://telemetry.example.com"),
        ("HTTPS://Telemetry.Example.COM:8443/x#frag", "redirect:https://telemetry.example.com:8443"),
        ("https://user:s3cret@moved.example/v1", "redirect:https://moved.example"),
        ("https://[::1]:9443/v1", "redirect:https://[::1]:9443"),
        # Relative to the endpoint: the same origin.
        ("/v2/events?token=s3cret", "redirect:http://127.0.0.1:8000"),
        ("//moved.example/v1", "redirect:http://moved.example"),
        # Nothing to name: the kind alone.
        (None, "redirect"),
        ("", "redirect"),
        ("ftp://files.example/x", "redirect"),
        ("javascript:alert(1)", "redirect"),
        ("https://evil\x1b[2J.example/", "redirect"),  # a terminal escape never gets through
        ("https://" + "a" * 300 + ".example/", "redirect"),
    ],
)  # fmt: skip
def test_a_redirect_names_where_it_points_by_its_origin_only(
    location: str | None, kind: str
) -> None:
    assert redirected(location, URL) == Delivery("retry", kind)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirecting_endpoint_is_not_followed(endpoint: Endpoint, status: int) -> None:
    """A real answer with a Location on another host: one request, nothing sent there."""
    target = Endpoint()
    try:
        endpoint.mode, endpoint.status, endpoint.location = "status", status, target.url
        sink = HttpSink(endpoint.url, token="s3cret")
        result = sink.send(EVENTS, soon())
        assert result == Delivery("retry", f"redirect:{target.url.rsplit('/v1', 1)[0]}")
        assert (endpoint.seen, target.seen) == (1, 0)
        sink.close()
    finally:
        target.close()


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 0 ") == 0.0
    in_an_hour = parse_retry_after(formatdate(time.time() + 3600, usegmt=True))
    assert in_an_hour is not None and 3500 < in_an_hour <= 3600
    assert parse_retry_after(formatdate(time.time() - 3600, usegmt=True)) == 0.0
    for bad in (None, "", "soon", "-5", "1.5e3", "Mon, 99 Foo 2026"):
        assert parse_retry_after(bad) is None
    assert classify(429, "30").retry_after == 30.0


def test_the_sinks_meet_the_interface() -> None:
    assert isinstance(HttpSink("http://127.0.0.1:9/"), Sink)
    assert isinstance(MemorySink(), Sink)


def test_delivered_in_the_wire_format(endpoint: Endpoint) -> None:
    sink = HttpSink(endpoint.url)
    assert sink.send(EVENTS, soon()) == Delivery("delivered")
    [request] = endpoint.requests
    assert request["body"]["batch"] == EVENTS
    assert request["body"]["sent_at"].endswith("Z")
    assert request["headers"]["Content-Encoding"] == "gzip"
    sink.close()


def test_without_gzip(endpoint: Endpoint) -> None:
    sink = HttpSink(endpoint.url, gzip_body=False)
    assert sink.send(EVENTS, soon()).outcome == "delivered"
    assert "Content-Encoding" not in endpoint.requests[0]["headers"]
    sink.close()


@pytest.mark.parametrize(
    ("mode", "status", "outcome", "error"),
    [("status", 503, "retry", "http_503"), ("status", 400, "rejected", "http_400"),
     ("reset", 0, "retry", None), ("hold", 0, "retry", "timeout")],
)  # fmt: skip
def test_failures(
    endpoint: Endpoint, mode: str, status: int, outcome: str, error: str | None
) -> None:
    endpoint.mode, endpoint.status, endpoint.retry_after = mode, status, "60"
    sink = HttpSink(endpoint.url)
    result = sink.send(EVENTS, soon(1.5))  # a hold ends with the deadline, not the 5 s read
    assert result.outcome == outcome
    if error:
        assert result.error == error
    if mode == "status" and status == 503:
        assert result.retry_after == 60.0
    assert endpoint.requests == []
    sink.close()


@needs_proc
@pytest.mark.parametrize("mode", ["drip", "drip_body", "drip_handshake"])
def test_no_server_holds_a_send_past_its_deadline_or_keeps_its_socket(mode: str) -> None:
    """A byte a second resets every socket timeout, in the headers (``drip``), the body
    (``drip_body``) or a TLS handshake (``drip_handshake``): the send still ends at its
    deadline, with a ``timeout`` (stored or not is unknown, so it is sent again), its socket
    closed and its watchdog thread gone."""
    with EndpointProcess(mode) as server:
        threads, sockets = threading.active_count(), open_sockets()
        sink = HttpSink(server.url)
        results: list[Delivery] = []
        sender = threading.Thread(target=lambda: results.append(sink.send(EVENTS, soon(2))))
        sender.start()
        sender.join(2 + 10)  # generous: without a hard deadline it would never return
        assert not sender.is_alive(), f"{mode}: the send outlived its deadline"
        assert results == [Delivery("retry", "timeout")]
        assert (threading.active_count(), open_sockets()) == (threads, sockets)
        sink.close()


def test_refused_and_bad_endpoints() -> None:
    assert HttpSink(closed_port()).send(EVENTS, soon()) == Delivery("retry", "connection")
    assert HttpSink("not a url").send(EVENTS, soon()).outcome == "retry"


def test_a_spent_deadline_sends_nothing(endpoint: Endpoint) -> None:
    assert HttpSink(endpoint.url).send(EVENTS, time.monotonic() - 1) == Delivery(
        "retry", "deadline"
    )
    assert endpoint.seen == 0


def test_memory_sink_answers_in_turn_then_delivers() -> None:
    sink = MemorySink(results=[Delivery("retry", "x")])
    assert sink.send(EVENTS, soon()).outcome == "retry"
    assert sink.events == []
    assert sink.send(EVENTS, soon()).outcome == "delivered"
    assert sink.events == EVENTS


def test_credentials_in_the_url_become_basic_auth(endpoint: Endpoint) -> None:
    url = endpoint.url.replace("http://", "http://user:s3cret@") + "?key=abc"
    sink = HttpSink(url)
    assert sink.send(EVENTS, soon()).outcome == "delivered"
    [request] = endpoint.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == "Basic dXNlcjpzM2NyZXQ="
    assert request["path"] == "/v1/events?key=abc"
    assert "s3cret" not in sink.endpoint
    sink.close()


def test_backoff_never_overflows() -> None:
    import random

    from cli_telemetry.delivery import BACKOFF_CAP, backoff

    assert backoff(10**6, None, random.Random(0)) <= 1.5 * BACKOFF_CAP


# -- the answer: events refused one by one ---------------------------------------------


def test_the_events_a_2xx_names_as_rejected_are_refused(endpoint: Endpoint) -> None:
    events = [{"event_id": str(i), "event": "command"} for i in range(4)]
    endpoint.refuse = lambda event: event["event_id"] in ("1", "3")
    sink = HttpSink(endpoint.url)
    assert sink.send(events, soon()) == Delivery("delivered", "partial_rejected", refused=(1, 3))
    assert [e["event_id"] for e in endpoint.events] == ["0", "2"]
    sink.close()


@pytest.mark.parametrize(
    "answer",
    [b"", b"OK", b"<html>stored</html>", b'{"stored": 2}', b'{"rejected": []}',
     b'{"rejected": "none"}', b"[1, 2]", b'{"rejected": [{"index": 1}', b"\xff\xfe"],
    ids=["empty", "text", "html", "no-rejected", "none-rejected", "not-a-list", "not-an-object",
         "cut-short", "not-utf8"],
)  # fmt: skip
def test_a_2xx_that_names_no_events_delivers_them_all(endpoint: Endpoint, answer: bytes) -> None:
    endpoint.answer = answer
    sink = HttpSink(endpoint.url)
    assert sink.send(EVENTS, soon()) == Delivery("delivered")
    sink.close()


def test_only_indexes_of_the_batch_are_refused_each_once() -> None:
    def answer(*entries: object) -> bytes:
        return json.dumps({"accepted": 1, "rejected": list(entries)}).encode()

    assert refused_indexes(answer({"index": 2}, {"index": 0}, {"index": 2}), 3) == (0, 2)
    assert refused_indexes(answer({"index": 3}, {"index": -1}, {"index": True}), 3) == ()
    assert refused_indexes(answer({"index": 1.0}, {"index": "1"}, 1, {"field": "x"}), 3) == ()
    assert refused_indexes(answer({"index": 1, "field": "outcome", "error": "e"}), 3) == (1,)


def test_an_answer_is_read_no_further_than_the_limit(endpoint: Endpoint) -> None:
    """A wire-format answer larger than ANSWER_LIMIT is cut short: not JSON, so nothing is
    refused, and reading it costs no more than the limit."""
    from cli_telemetry.sinks import http

    rejected = [{"index": 0, "field": "x" * 100, "error": "y"}] * 1000
    endpoint.answer = json.dumps({"rejected": rejected}).encode()
    assert len(endpoint.answer) > http.ANSWER_LIMIT
    sink = HttpSink(endpoint.url)
    assert sink.send(EVENTS, soon()) == Delivery("delivered")
    sink.close()


def test_an_answer_dripped_a_byte_at_a_time_is_read_only_until_the_deadline(
    endpoint: Endpoint,
) -> None:
    """Each byte would reset a read timeout: the deadline bounds the whole read."""
    endpoint.mode = "drip_body"
    sink = HttpSink(endpoint.url)
    started = time.monotonic()
    result = sink.send(EVENTS, soon(2.5))
    assert time.monotonic() - started < 4
    assert result == Delivery("retry", "timeout")  # stored or not: unknown, so sent again
    sink.close()
