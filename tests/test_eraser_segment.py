"""The Segment eraser against the fake Public API: a workspace regulation that suppresses and
deletes the install ids our opted-in sink sent as userIds
(https://docs.segmentapis.com/tag/Deletion-and-Suppression)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from eraser_checks import (
    FORCED,
    INSTALL_ID,
    check_deadline,
    check_forced,
    check_no_secret,
    soon,
)
from fake_regulations import PUBLIC_API_TOKEN, SEGMENT_PATH, FakeSegmentPublicApi
from fake_segment import SEGMENT_KEY, FakeSegment
from fake_service import sample_events
from sink_checks import post

from cli_telemetry.erasers.segment import SegmentEraser, api_host
from cli_telemetry.sinks.base import Delivery, Eraser
from cli_telemetry.sinks.segment import SegmentSink


@pytest.fixture
def fake() -> Iterator[FakeSegmentPublicApi]:
    with FakeSegmentPublicApi() as service:
        yield service


@pytest.fixture
def eraser(fake: FakeSegmentPublicApi) -> Iterator[SegmentEraser]:
    eraser = SegmentEraser(public_api_token=PUBLIC_API_TOKEN, host=fake.url)
    yield eraser
    eraser.close()


def test_the_eraser_meets_the_interface_under_the_sinks_name() -> None:
    eraser = SegmentEraser(public_api_token="t")
    assert isinstance(eraser, Eraser)
    assert eraser.name == "segment"
    assert eraser.url == "https://api.segmentapis.com/regulations"
    eraser.close()


def test_the_request_is_the_documented_workspace_regulation(
    fake: FakeSegmentPublicApi, eraser: SegmentEraser
) -> None:
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered")
    [request] = fake.requests
    assert (request.method, request.path, request.query) == ("POST", SEGMENT_PATH, "")
    assert request.header("Authorization") == f"Bearer {PUBLIC_API_TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert request.header("Accept") == "application/vnd.segment.v1+json"
    assert json.loads(request.data) == {
        "regulationType": "SUPPRESS_WITH_DELETE",
        "subjectType": "USER_ID",
        "subjectIds": [INSTALL_ID],
    }


def test_the_ids_are_the_user_ids_the_opted_in_sink_sent(
    fake: FakeSegmentPublicApi, eraser: SegmentEraser
) -> None:
    with FakeSegment() as segment:
        sink = SegmentSink(write_key=SEGMENT_KEY, host=segment.url, user_id="install")
        try:
            assert sink.send(sample_events(), soon()) == Delivery("delivered")
        finally:
            sink.close()
        sent = {json.loads(r.data)["batch"][0]["userId"] for r in segment.requests}
    assert eraser.erase(sorted(sent), soon()) == Delivery("delivered")
    assert set(fake.regulations[0]["subjectIds"]) == sent == {INSTALL_ID}


def test_5000_ids_a_request_each_once(fake: FakeSegmentPublicApi, eraser: SegmentEraser) -> None:
    ids = [f"{n:032x}" for n in range(10_001)]
    assert eraser.erase(ids + ids[:5], soon()) == Delivery("delivered")
    assert [len(r["subjectIds"]) for r in fake.regulations] == [5000, 5000, 1]
    assert [i for r in fake.regulations for i in r["subjectIds"]] == ids


def test_nothing_to_erase_asks_nothing(fake: FakeSegmentPublicApi, eraser: SegmentEraser) -> None:
    assert eraser.erase([], soon()) == Delivery("delivered")
    assert fake.requests == []


@FORCED
def test_answers_map_to_outcomes(
    fake: FakeSegmentPublicApi,
    eraser: SegmentEraser,
    status: int,
    retry_after: str | None,
    expected: Delivery,
) -> None:
    check_forced(eraser, fake, status, retry_after, expected)


def test_segment_refuses_a_bad_token_for_good(fake: FakeSegmentPublicApi) -> None:
    wrong = SegmentEraser(public_api_token="revoked", host=fake.url)
    assert wrong.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_401")
    wrong.close()
    assert fake.regulations == []


def test_a_segment_that_never_answers_costs_no_more_than_the_deadline(
    fake: FakeSegmentPublicApi, eraser: SegmentEraser
) -> None:
    check_deadline(eraser, fake)


def test_no_secret_is_shown(fake: FakeSegmentPublicApi, eraser: SegmentEraser) -> None:
    wrong = SegmentEraser(public_api_token="SEGMENT_SECRET_WRONG", host=fake.url)
    deliveries = [eraser.erase([INSTALL_ID], soon()), wrong.erase([INSTALL_ID], soon())]
    wrong.close()
    check_no_secret(eraser, [PUBLIC_API_TOKEN], deliveries)
    check_no_secret(wrong, ["SEGMENT_SECRET_WRONG"], deliveries)


def test_the_api_host_is_the_public_apis_of_the_region() -> None:
    assert api_host("https://api.segment.io") == "https://api.segmentapis.com"
    assert api_host("https://events.eu1.segmentapis.com/") == "https://eu1.api.segmentapis.com"
    assert api_host("https://segment-proxy.example.com") is None


GOOD = {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": ["a"]}
HEADERS = {"Authorization": f"Bearer {PUBLIC_API_TOKEN}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [(GOOD, HEADERS, 200),
     ({**GOOD, "regulationType": "DELETE_ONLY"}, HEADERS, 200),
     (GOOD, {**HEADERS, "Content-Type": "application/vnd.segment.v1+json"}, 200),
     (GOOD, {"Content-Type": "application/json"}, 401),
     (GOOD, {**HEADERS, "Authorization": "Basic c2VjcmV0Og=="}, 401),
     ({**GOOD, "subjectType": "ANONYMOUS_ID"}, HEADERS, 422),
     ({**GOOD, "regulationType": "Suppress_With_Delete"}, HEADERS, 422),
     ({**GOOD, "subjectIds": []}, HEADERS, 422),
     ({**GOOD, "subjectIds": [str(n) for n in range(5001)]}, HEADERS, 422),
     ({**GOOD, "subjectIds": "a"}, HEADERS, 422),
     ({"regulation_type": "Suppress_With_Delete",
       "attributes": {"name": "userId", "values": ["a"]}}, HEADERS, 422),
     ("not json", HEADERS, 422),
     (GOOD, {**HEADERS, "Content-Type": "text/plain"}, 422)],
)  # fmt: skip
def test_the_fake_refuses_what_segment_refuses(
    fake: FakeSegmentPublicApi, body: object, headers: dict[str, str], status: int
) -> None:
    assert post(f"{fake.url}{SEGMENT_PATH}", body, headers) == status


def test_the_fake_knows_only_the_workspace_regulations_path(fake: FakeSegmentPublicApi) -> None:
    assert post(f"{fake.url}/v1beta/workspaces/acme/regulations", GOOD, HEADERS) == 404
