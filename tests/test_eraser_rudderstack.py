"""The RudderStack eraser against the fake User Suppression API: a ``suppress_with_delete``
regulation for the install ids our opted-in sink sent as userIds, in the destinations named
(https://www.rudderstack.com/docs/api/user-suppression-api/)."""

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
from fake_regulations import ACCESS_TOKEN, DESTINATIONS, RUDDER_PATH, SOURCES, FakeRudderStackApi
from fake_segment import RUDDER_KEY, FakeRudderStack
from fake_service import sample_events
from sink_checks import post

from cli_telemetry.erasers.rudderstack import RudderStackEraser
from cli_telemetry.sinks.base import Delivery, Eraser
from cli_telemetry.sinks.rudderstack import RudderStackSink


@pytest.fixture
def fake() -> Iterator[FakeRudderStackApi]:
    with FakeRudderStackApi() as service:
        yield service


@pytest.fixture
def eraser(fake: FakeRudderStackApi) -> Iterator[RudderStackEraser]:
    eraser = RudderStackEraser(
        access_token=ACCESS_TOKEN, destination_ids=list(DESTINATIONS), host=fake.url
    )
    yield eraser
    eraser.close()


def test_the_eraser_meets_the_interface_under_the_sinks_name() -> None:
    eraser = RudderStackEraser(access_token="t", destination_ids=["d"])
    assert isinstance(eraser, Eraser)
    assert eraser.name == "rudderstack"
    assert eraser.url == "https://api.rudderstack.com/v2/regulations"
    eraser.close()


def test_the_request_is_the_documented_suppression_with_delete(
    fake: FakeRudderStackApi, eraser: RudderStackEraser
) -> None:
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered")
    [request] = fake.requests
    assert (request.method, request.path, request.query) == ("POST", RUDDER_PATH, "")
    assert request.header("Authorization") == f"Bearer {ACCESS_TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert json.loads(request.data) == {
        "regulationType": "suppress_with_delete",
        "destinationIds": list(DESTINATIONS),
        "users": [{"userId": INSTALL_ID}],
    }


def test_the_ids_are_the_user_ids_the_opted_in_sink_sent(
    fake: FakeRudderStackApi, eraser: RudderStackEraser
) -> None:
    with FakeRudderStack() as data_plane:
        sink = RudderStackSink(
            write_key=RUDDER_KEY, data_plane_url=data_plane.url, user_id="install"
        )
        try:
            assert sink.send(sample_events(), soon()) == Delivery("delivered")
        finally:
            sink.close()
        sent = {m["userId"] for r in data_plane.requests for m in json.loads(r.data)["batch"]}
    assert eraser.erase(sorted(sent), soon()) == Delivery("delivered")
    assert [u["userId"] for u in fake.regulations[0]["users"]] == sorted(sent) == [INSTALL_ID]


def test_1000_users_a_request_each_once(
    fake: FakeRudderStackApi, eraser: RudderStackEraser
) -> None:
    ids = [f"{n:032x}" for n in range(2001)]
    assert eraser.erase(ids + ids[:5], soon()) == Delivery("delivered")
    assert [len(r["users"]) for r in fake.regulations] == [1000, 1000, 1]
    assert [u["userId"] for r in fake.regulations for u in r["users"]] == ids


def test_nothing_to_erase_asks_nothing(fake: FakeRudderStackApi, eraser: RudderStackEraser) -> None:
    assert eraser.erase([], soon()) == Delivery("delivered")
    assert fake.requests == []


@FORCED
def test_answers_map_to_outcomes(
    fake: FakeRudderStackApi,
    eraser: RudderStackEraser,
    status: int,
    retry_after: str | None,
    expected: Delivery,
) -> None:
    check_forced(eraser, fake, status, retry_after, expected)


def test_rudderstack_refuses_a_bad_token_and_an_unknown_destination(
    fake: FakeRudderStackApi,
) -> None:
    wrong = RudderStackEraser(access_token="revoked", destination_ids=["d"], host=fake.url)
    other = RudderStackEraser(access_token=ACCESS_TOKEN, destination_ids=["x"], host=fake.url)
    assert wrong.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_401")
    assert other.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_400")
    wrong.close()
    other.close()
    assert fake.regulations == []


def test_a_rudderstack_that_never_answers_costs_no_more_than_the_deadline(
    fake: FakeRudderStackApi, eraser: RudderStackEraser
) -> None:
    check_deadline(eraser, fake)


def test_no_secret_is_shown(fake: FakeRudderStackApi, eraser: RudderStackEraser) -> None:
    wrong = RudderStackEraser(
        access_token="RUDDER_SECRET_WRONG", destination_ids=list(DESTINATIONS), host=fake.url
    )
    deliveries = [eraser.erase([INSTALL_ID], soon()), wrong.erase([INSTALL_ID], soon())]
    wrong.close()
    check_no_secret(eraser, [ACCESS_TOKEN], deliveries)
    check_no_secret(wrong, ["RUDDER_SECRET_WRONG"], deliveries)


USERS = [{"userId": "a"}]
GOOD = {"regulationType": "suppress_with_delete", "destinationIds": [DESTINATIONS[0]],
        "users": USERS}  # fmt: skip
HEADERS = {"Authorization": f"Bearer {ACCESS_TOKEN}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [(GOOD, HEADERS, 201),
     ({**GOOD, "users": [{"userId": "a", "email": "x@example.com"}]}, HEADERS, 201),
     ({"regulationType": "suppress", "users": USERS}, HEADERS, 201),
     ({"regulationType": "suppress", "sourceIds": list(SOURCES), "users": USERS}, HEADERS, 201),
     (GOOD, {"Content-Type": "application/json"}, 401),
     (GOOD, {**HEADERS, "Authorization": "Basic c2VjcmV0Og=="}, 401),
     ({**GOOD, "regulationType": "Suppress_With_Delete"}, HEADERS, 400),
     ({"regulationType": "suppress_with_delete", "users": USERS}, HEADERS, 400),
     ({**GOOD, "destinationIds": ["unknown"]}, HEADERS, 400),
     ({**GOOD, "users": []}, HEADERS, 400),
     ({**GOOD, "users": [{"anonymousId": "a"}]}, HEADERS, 400),
     ({**GOOD, "users": ["a"]}, HEADERS, 400),
     ("not json", HEADERS, 400)],
)  # fmt: skip
def test_the_fake_refuses_what_rudderstack_refuses(
    fake: FakeRudderStackApi, body: object, headers: dict[str, str], status: int
) -> None:
    assert post(f"{fake.url}{RUDDER_PATH}", body, headers) == status
