"""The Amplitude eraser against the fake Amplitude: the user search finds the Amplitude ID of
the device our sink sent, the User Privacy API deletes it
(https://amplitude.com/docs/apis/analytics/user-privacy)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
import urllib3
from eraser_checks import (
    FORCED,
    INSTALL_ID,
    check_deadline,
    check_forced,
    check_no_secret,
    soon,
)
from fake_amplitude import (
    API_KEY,
    DELETION_PATH,
    SEARCH_PATH,
    SECRET_KEY,
    FakeAmplitude,
    amplitude_id,
)
from fake_service import sample_events

from cli_telemetry.erasers.amplitude import (
    REQUESTER,
    AmplitudeEraser,
    api_host,
    device_amplitude_ids,
)
from cli_telemetry.erasers.common import NOT_FOUND
from cli_telemetry.sinks.amplitude import AmplitudeSink
from cli_telemetry.sinks.base import Delivery, Eraser

BASIC = "Basic " + base64.b64encode(f"{API_KEY}:{SECRET_KEY}".encode()).decode()


@pytest.fixture
def fake() -> Iterator[FakeAmplitude]:
    with FakeAmplitude() as service:
        yield service


@pytest.fixture
def eraser(fake: FakeAmplitude) -> Iterator[AmplitudeEraser]:
    eraser = AmplitudeEraser(api_key=API_KEY, secret_key=SECRET_KEY, host=fake.url)
    yield eraser
    eraser.close()


def sent(fake: FakeAmplitude, *install_ids: str) -> None:
    """The sample events of each install, sent by our sink: a device in Amplitude each."""
    sink = AmplitudeSink(api_key=API_KEY, host=fake.url)
    try:
        for install_id in install_ids:
            events = [{**event, "install_id": install_id} for event in sample_events()]
            assert sink.send(events, soon()) == Delivery("delivered")
    finally:
        sink.close()
    fake.requests.clear()


def test_the_eraser_meets_the_interface_under_the_sinks_name() -> None:
    eraser = AmplitudeEraser(api_key="k", secret_key="s")
    assert isinstance(eraser, Eraser)
    assert eraser.name == "amplitude"
    eraser.close()


def test_the_device_is_searched_then_its_amplitude_id_deleted(
    fake: FakeAmplitude, eraser: AmplitudeEraser
) -> None:
    sent(fake, INSTALL_ID)
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered")
    search, deletion = fake.requests
    assert (search.method, search.path) == ("GET", SEARCH_PATH)
    assert parse_qs(search.query) == {"user": [INSTALL_ID]}
    assert search.header("Authorization") == BASIC
    assert (deletion.method, deletion.path) == ("POST", DELETION_PATH)
    assert deletion.header("Authorization") == BASIC
    assert deletion.header("Content-Type") == "application/json"
    expected = {"amplitude_ids": [amplitude_id(INSTALL_ID)], "requester": REQUESTER}
    assert json.loads(deletion.data) == expected
    assert fake.deletions == [json.loads(deletion.data)]


def test_a_device_amplitude_never_saw_is_not_found_and_not_deleted(
    fake: FakeAmplitude, eraser: AmplitudeEraser
) -> None:
    sent(fake, INSTALL_ID)
    other = "0" * 32
    assert eraser.erase([other], soon()) == Delivery("delivered", NOT_FOUND)
    assert [r.path for r in fake.requests] == [SEARCH_PATH]
    assert eraser.erase([INSTALL_ID, other], soon()) == Delivery("delivered", NOT_FOUND)
    assert len(fake.deletions[0]["amplitude_ids"]) == 1


def test_a_hundred_amplitude_ids_a_deletion(fake: FakeAmplitude, eraser: AmplitudeEraser) -> None:
    installs = [f"{n:032x}" for n in range(150)]
    sent(fake, *installs)
    assert eraser.erase(installs + installs[:3], soon()) == Delivery("delivered")
    assert [len(d["amplitude_ids"]) for d in fake.deletions] == [100, 50]
    assert len([r for r in fake.requests if r.path == SEARCH_PATH]) == 150


def test_a_throttled_search_keeps_what_was_found_and_the_retry_goes_on_from_there(
    fake: FakeAmplitude, eraser: AmplitudeEraser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Amplitude allows 360 searches an hour: an erasure cut short deletes the devices it
    found, and its retry searches only the installs left."""
    installs = [f"{n:032x}" for n in range(3)]
    sent(fake, *installs)
    real_search, searches = fake._search, []

    def throttle_the_third(user: str) -> dict[str, object]:
        searches.append(user)
        if len(searches) == 2:
            fake.force(429, retry_after="10")  # the next request: the third search
        return real_search(user)

    monkeypatch.setattr(fake, "_search", throttle_the_third)
    assert eraser.erase(installs, soon()) == Delivery("retry", "http_429", 10.0)
    assert fake.deletions == [
        {"amplitude_ids": [amplitude_id(i) for i in installs[:2]], "requester": REQUESTER}
    ]
    assert eraser.erase(installs, soon()) == Delivery("delivered")
    assert searches == [*installs[:2], installs[2]]
    assert fake.deletions[1]["amplitude_ids"] == [amplitude_id(installs[2])]


def test_only_a_device_match_names_the_install() -> None:
    """A search answers which kind of id matched: only a device (or user) id match is the
    install's; an Amplitude ID or a user id prefix that happened to match is someone
    else's."""
    match = {"amplitude_id": 7, "user_id": None, "last_device_id": INSTALL_ID}
    for kind, expected in (("match_user_or_device_id", [7]), ("match_amplitude_id", []),
                           ("match_user_prefix", []), ("nomatch", [])):  # fmt: skip
        answer = json.dumps({"type": kind, "matches": [match] if kind != "nomatch" else []})
        assert device_amplitude_ids(answer.encode()) == expected
    for unreadable in (b"", b"<html>", b"[]", b'{"type": "x", "matches": {}}'):
        assert device_amplitude_ids(unreadable) is None


def test_an_unreadable_search_is_retried(
    fake: FakeAmplitude, eraser: AmplitudeEraser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the answer there is nothing to delete: asked again later."""
    sent(fake, INSTALL_ID)
    monkeypatch.setattr(fake, "_search", lambda user: ["not", "an", "answer"])
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("retry", "bad_answer")
    assert fake.deletions == []


def test_nothing_to_erase_asks_nothing(fake: FakeAmplitude, eraser: AmplitudeEraser) -> None:
    assert eraser.erase([], soon()) == Delivery("delivered")
    assert fake.requests == []


@FORCED
def test_answers_to_the_search_map_to_outcomes(
    fake: FakeAmplitude,
    eraser: AmplitudeEraser,
    status: int,
    retry_after: str | None,
    expected: Delivery,
) -> None:
    check_forced(eraser, fake, status, retry_after, expected)


@FORCED
def test_answers_to_the_deletion_map_to_outcomes(
    fake: FakeAmplitude,
    eraser: AmplitudeEraser,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    retry_after: str | None,
    expected: Delivery,
) -> None:
    sent(fake, INSTALL_ID)
    real_search = fake._search

    def search_then_force(user: str) -> dict[str, object]:
        fake.force(status, retry_after=retry_after)  # the next request: the deletion
        return real_search(user)

    monkeypatch.setattr(fake, "_search", search_then_force)
    assert eraser.erase([INSTALL_ID], soon()) == expected
    assert [r.path for r in fake.requests] == [SEARCH_PATH, DELETION_PATH]
    assert fake.deletions == []


def test_amplitude_refuses_wrong_keys(fake: FakeAmplitude) -> None:
    wrong = AmplitudeEraser(api_key=API_KEY, secret_key="wrong", host=fake.url)
    assert wrong.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_401")


def test_an_amplitude_that_never_answers_costs_no_more_than_the_deadline(
    fake: FakeAmplitude, eraser: AmplitudeEraser
) -> None:
    check_deadline(eraser, fake)


def test_no_secret_is_shown(fake: FakeAmplitude, eraser: AmplitudeEraser) -> None:
    sent(fake, INSTALL_ID)
    wrong = AmplitudeEraser(api_key=API_KEY, secret_key="AMP_SECRET_WRONG", host=fake.url)
    deliveries = [eraser.erase([INSTALL_ID], soon()), wrong.erase([INSTALL_ID], soon())]
    check_no_secret(eraser, [SECRET_KEY, BASIC.split()[1]], deliveries)
    check_no_secret(wrong, ["AMP_SECRET_WRONG"], deliveries)


def test_the_api_host_is_that_of_the_data_center() -> None:
    assert api_host("https://api2.amplitude.com") == "https://amplitude.com"
    assert api_host("https://api.amplitude.com/") == "https://amplitude.com"
    assert api_host("https://api.eu.amplitude.com") == "https://analytics.eu.amplitude.com"
    assert api_host("https://amplitude-proxy.example.com") is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [("GET", f"{SEARCH_PATH}?user={INSTALL_ID}", None, 200),
     ("GET", SEARCH_PATH, None, 400),
     ("POST", f"{SEARCH_PATH}?user={INSTALL_ID}", None, 405),
     ("POST", DELETION_PATH, {"amplitude_ids": ["KNOWN"], "requester": "r"}, 200),
     ("POST", DELETION_PATH, {"amplitude_ids": [1], "requester": "r"}, 400),
     ("POST", DELETION_PATH, {"amplitude_ids": [1], "ignore_invalid_ids": True}, 200),
     ("POST", DELETION_PATH, {"amplitude_ids": list(range(101))}, 400),
     ("POST", DELETION_PATH, {"amplitude_ids": ["1"]}, 400),
     ("POST", DELETION_PATH, {}, 400),
     ("GET", DELETION_PATH, None, 405)],
)  # fmt: skip
def test_the_fake_refuses_what_amplitude_refuses(
    fake: FakeAmplitude, method: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    sent(fake, INSTALL_ID)
    if body and body.get("amplitude_ids") == ["KNOWN"]:
        body = {**body, "amplitude_ids": [amplitude_id(INSTALL_ID)]}
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": BASIC, "Content-Type": "application/json"}
    with urllib3.PoolManager() as pool:
        answer = pool.request(method, fake.url + path, body=data, headers=headers, retries=False)
    assert answer.status == status
    without_keys = {"Content-Type": "application/json"}
    with urllib3.PoolManager() as pool:
        unauthorized = pool.request(method, fake.url + path, body=data, headers=without_keys)
    assert unauthorized.status == 401
