"""The Mixpanel eraser against the fake Mixpanel's GDPR API: a deletion task for the
distinct ids our sink sent (https://docs.mixpanel.com/reference/gdpr-api)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from eraser_checks import (
    FORCED,
    INSTALL_ID,
    check_deadline,
    check_forced,
    check_no_secret,
    soon,
)
from fake_mixpanel import DELETION_PATH, GDPR_TOKEN, TOKEN, FakeMixpanel
from fake_service import sample_events
from sink_checks import post

from cli_telemetry.erasers.mixpanel import MixpanelEraser, api_host
from cli_telemetry.sinks.base import Delivery, Eraser
from cli_telemetry.sinks.mixpanel import MixpanelSink


@pytest.fixture
def fake() -> Iterator[FakeMixpanel]:
    with FakeMixpanel() as service:
        yield service


@pytest.fixture
def eraser(fake: FakeMixpanel) -> Iterator[MixpanelEraser]:
    eraser = MixpanelEraser(token=TOKEN, gdpr_token=GDPR_TOKEN, host=fake.url)
    yield eraser
    eraser.close()


def test_the_eraser_meets_the_interface_under_the_sinks_name() -> None:
    eraser = MixpanelEraser(token="t", gdpr_token="g")
    assert isinstance(eraser, Eraser)
    assert eraser.name == "mixpanel"
    eraser.close()


def test_the_request_is_the_documented_deletion_task(
    fake: FakeMixpanel, eraser: MixpanelEraser
) -> None:
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered")
    [request] = fake.requests
    assert (request.method, request.path) == ("POST", DELETION_PATH)
    assert parse_qs(request.query) == {"token": [TOKEN]}
    assert request.header("Authorization") == f"Bearer {GDPR_TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert json.loads(request.data) == {"distinct_ids": [INSTALL_ID], "compliance_type": "GDPR"}


def test_the_ids_are_those_the_sink_sent(fake: FakeMixpanel, eraser: MixpanelEraser) -> None:
    sink = MixpanelSink(token=TOKEN, host=fake.url)
    try:
        assert sink.send(sample_events(), soon()) == Delivery("delivered")
    finally:
        sink.close()
    sent = {item["distinct_id"] for item in fake.stored}
    assert eraser.erase(sorted(sent), soon()) == Delivery("delivered")
    assert set(fake.deletions[0]["distinct_ids"]) == sent == {INSTALL_ID}


def test_1999_ids_a_request_each_once(fake: FakeMixpanel, eraser: MixpanelEraser) -> None:
    ids = [f"{n:032x}" for n in range(4000)]
    assert eraser.erase(ids + ids[:5], soon()) == Delivery("delivered")
    assert [len(d["distinct_ids"]) for d in fake.deletions] == [1999, 1999, 2]
    assert [i for d in fake.deletions for i in d["distinct_ids"]] == ids


def test_nothing_to_erase_asks_nothing(fake: FakeMixpanel, eraser: MixpanelEraser) -> None:
    assert eraser.erase([], soon()) == Delivery("delivered")
    assert fake.requests == []


@FORCED
def test_answers_map_to_outcomes(
    fake: FakeMixpanel,
    eraser: MixpanelEraser,
    status: int,
    retry_after: str | None,
    expected: Delivery,
) -> None:
    check_forced(eraser, fake, status, retry_after, expected)


def test_mixpanel_refuses_a_bad_token_and_another_project(fake: FakeMixpanel) -> None:
    bad_token = MixpanelEraser(token=TOKEN, gdpr_token="expired", host=fake.url)
    other_project = MixpanelEraser(token="OTHER", gdpr_token=GDPR_TOKEN, host=fake.url)
    assert bad_token.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_401")
    assert other_project.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_403")
    assert fake.deletions == []


def test_a_mixpanel_that_never_answers_costs_no_more_than_the_deadline(
    fake: FakeMixpanel, eraser: MixpanelEraser
) -> None:
    check_deadline(eraser, fake)


def test_no_secret_is_shown(fake: FakeMixpanel, eraser: MixpanelEraser) -> None:
    wrong = MixpanelEraser(token=TOKEN, gdpr_token="GDPR_SECRET_WRONG", host=fake.url)
    deliveries = [eraser.erase([INSTALL_ID], soon()), wrong.erase([INSTALL_ID], soon())]
    check_no_secret(eraser, [GDPR_TOKEN], deliveries)
    check_no_secret(wrong, ["GDPR_SECRET_WRONG"], deliveries)


def test_the_api_host_is_the_application_host_of_the_data_residency() -> None:
    assert api_host("https://api.mixpanel.com") == "https://mixpanel.com"
    assert api_host("https://api-eu.mixpanel.com/") == "https://eu.mixpanel.com"
    assert api_host("https://api-in.mixpanel.com") == "https://in.mixpanel.com"
    assert api_host("https://mixpanel-proxy.example.com") is None


GOOD_HEADERS = {"Authorization": f"Bearer {GDPR_TOKEN}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("query", "body", "headers", "status"),
    [(f"token={TOKEN}", {"distinct_ids": ["a"]}, GOOD_HEADERS, 201),
     (f"token={TOKEN}", {"distinct_ids": ["a"], "compliance_type": "CCPA"}, GOOD_HEADERS, 201),
     ("", {"distinct_ids": ["a"]}, GOOD_HEADERS, 403),
     (f"token={TOKEN}", {"distinct_ids": ["a"]}, {"Content-Type": "application/json"}, 401),
     (f"token={TOKEN}", {"distinct_ids": []}, GOOD_HEADERS, 400),
     (f"token={TOKEN}", {"distinct_ids": [str(n) for n in range(2000)]}, GOOD_HEADERS, 400),
     (f"token={TOKEN}", {"distinct_ids": ["a"], "compliance_type": "HIPAA"}, GOOD_HEADERS, 400),
     (f"token={TOKEN}", "not json", GOOD_HEADERS, 400)],
)  # fmt: skip
def test_the_fake_refuses_what_mixpanel_refuses(
    fake: FakeMixpanel, query: str, body: object, headers: dict[str, str], status: int
) -> None:
    assert post(f"{fake.url}{DELETION_PATH}?{query}", body, headers) == status
