"""The PostHog eraser against the fake PostHog's persons API: what our sink sent, the eraser
deletes (https://posthog.com/docs/privacy/data-deletion)."""

from __future__ import annotations

import json
from collections.abc import Iterator

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
from fake_posthog import PERSONAL_KEY, PROJECT_ID, TEST_KEY, FakePostHog
from fake_service import sample_events

from cli_telemetry.erasers.common import NOT_FOUND
from cli_telemetry.erasers.posthog import PostHogEraser, api_host
from cli_telemetry.sinks.base import Delivery, Eraser
from cli_telemetry.sinks.posthog import PostHogSink


@pytest.fixture
def fake() -> Iterator[FakePostHog]:
    with FakePostHog() as service:
        yield service


@pytest.fixture
def eraser(fake: FakePostHog) -> Iterator[PostHogEraser]:
    eraser = PostHogEraser(personal_api_key=PERSONAL_KEY, project_id=PROJECT_ID, host=fake.url)
    yield eraser
    eraser.close()


def captured(fake: FakePostHog) -> None:
    """The sample events, sent by our sink: PostHog now has the install's person."""
    sink = PostHogSink(api_key=TEST_KEY, host=fake.url)
    try:
        assert sink.send(sample_events(), soon()) == Delivery("delivered")
    finally:
        sink.close()
    fake.requests.clear()


def test_the_eraser_meets_the_interface_under_the_sinks_name() -> None:
    eraser = PostHogEraser(personal_api_key="phx_k", project_id="1")
    assert isinstance(eraser, Eraser)
    assert eraser.name == "posthog"
    eraser.close()


def test_the_request_is_the_documented_bulk_delete(
    fake: FakePostHog, eraser: PostHogEraser
) -> None:
    captured(fake)
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered")
    [request] = fake.requests
    assert (request.method, request.path) == (
        "POST",
        f"/api/projects/{PROJECT_ID}/persons/bulk_delete/",
    )
    assert request.header("Authorization") == f"Bearer {PERSONAL_KEY}"
    assert request.header("Content-Type") == "application/json"
    assert json.loads(request.data) == {"distinct_ids": [INSTALL_ID], "delete_events": True}


def test_the_person_our_sink_made_is_deleted_with_its_events(
    fake: FakePostHog, eraser: PostHogEraser
) -> None:
    captured(fake)
    eraser.erase([INSTALL_ID], soon())
    [deletion] = fake.deletions
    assert deletion["distinct_ids"] == [INSTALL_ID]
    assert deletion["delete_events"] is True
    # Asked again, PostHog finds no person: nothing is left of it.
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered", NOT_FOUND)


def test_an_install_posthog_never_saw_is_not_found(
    fake: FakePostHog, eraser: PostHogEraser
) -> None:
    captured(fake)
    other = "0" * 32
    assert eraser.erase([INSTALL_ID, other], soon()) == Delivery("delivered", NOT_FOUND)
    assert fake.deletions[0]["distinct_ids"] == [INSTALL_ID, other]


def test_a_thousand_ids_a_request_each_once(fake: FakePostHog, eraser: PostHogEraser) -> None:
    ids = [f"{n:032x}" for n in range(2500)]
    eraser.erase(ids + ids[:10], soon())
    assert [len(d["distinct_ids"]) for d in fake.deletions] == [1000, 1000, 500]
    assert [i for d in fake.deletions for i in d["distinct_ids"]] == ids


def test_nothing_to_erase_asks_nothing(fake: FakePostHog, eraser: PostHogEraser) -> None:
    assert eraser.erase([], soon()) == Delivery("delivered")
    assert fake.requests == []


@FORCED
def test_answers_map_to_outcomes(
    fake: FakePostHog,
    eraser: PostHogEraser,
    status: int,
    retry_after: str | None,
    expected: Delivery,
) -> None:
    check_forced(eraser, fake, status, retry_after, expected)


def test_posthog_refuses_a_bad_key_a_key_without_the_scope_and_another_project(
    fake: FakePostHog,
) -> None:
    wrong_key = PostHogEraser(personal_api_key="phx_wrong", project_id=PROJECT_ID, host=fake.url)
    wrong_project = PostHogEraser(personal_api_key=PERSONAL_KEY, project_id="7", host=fake.url)
    fake.personal_keys["phx_readonly"] = {"person:read"}
    no_scope = PostHogEraser(personal_api_key="phx_readonly", project_id=PROJECT_ID, host=fake.url)
    assert wrong_key.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_401")
    assert no_scope.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_403")
    assert wrong_project.erase([INSTALL_ID], soon()) == Delivery("rejected", "http_404")
    assert fake.deletions == []


def test_a_person_posthog_could_not_delete_is_asked_for_again(
    fake: FakePostHog, eraser: PostHogEraser
) -> None:
    captured(fake)
    fake.undeletable.add(INSTALL_ID)
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("retry", "deletion_errors")
    fake.undeletable.clear()
    assert eraser.erase([INSTALL_ID], soon()) == Delivery("delivered")


def test_a_posthog_that_never_answers_costs_no_more_than_the_deadline(
    fake: FakePostHog, eraser: PostHogEraser
) -> None:
    check_deadline(eraser, fake)


def test_no_secret_is_shown(fake: FakePostHog, eraser: PostHogEraser) -> None:
    wrong = PostHogEraser(personal_api_key="phx_SECRET_WRONG", project_id=PROJECT_ID, host=fake.url)
    deliveries = [eraser.erase([INSTALL_ID], soon()), wrong.erase([INSTALL_ID], soon())]
    check_no_secret(eraser, [PERSONAL_KEY], deliveries)
    check_no_secret(wrong, ["phx_SECRET_WRONG"], deliveries)


def test_the_api_host_is_the_private_one_of_the_sinks_region() -> None:
    assert api_host("https://us.i.posthog.com") == "https://us.posthog.com"
    assert api_host("https://eu.i.posthog.com/") == "https://eu.posthog.com"
    assert api_host("https://posthog.example.com") == "https://posthog.example.com"


def test_the_project_id_is_one_path_segment(fake: FakePostHog) -> None:
    eraser = PostHogEraser(personal_api_key=PERSONAL_KEY, project_id="../1", host=fake.url)
    assert eraser.url == f"{fake.url}/api/projects/..%2F1/persons/bulk_delete/"


def request(fake: FakePostHog, method: str, body: object, headers: dict[str, str]) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    url = f"{fake.url}/api/projects/{PROJECT_ID}/persons/bulk_delete/"
    with urllib3.PoolManager() as pool:
        return pool.request(method, url, body=data, headers=headers, retries=False).status


GOOD_HEADERS = {"Authorization": f"Bearer {PERSONAL_KEY}", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("method", "body", "headers", "status"),
    [("POST", {"distinct_ids": ["a"]}, GOOD_HEADERS, 202),
     ("GET", b"", GOOD_HEADERS, 405),
     ("DELETE", b"", GOOD_HEADERS, 405),
     ("POST", {"distinct_ids": ["a"]}, {"Content-Type": "application/json"}, 401),
     ("POST", {"distinct_ids": ["a"]}, {**GOOD_HEADERS, "Content-Type": "text/plain"}, 415),
     ("POST", {}, GOOD_HEADERS, 400),
     ("POST", {"distinct_ids": ["a"], "ids": ["b"]}, GOOD_HEADERS, 400),
     ("POST", {"distinct_ids": [str(n) for n in range(1001)]}, GOOD_HEADERS, 400),
     ("POST", b"not json", GOOD_HEADERS, 400)],
)  # fmt: skip
def test_the_fake_refuses_what_posthog_refuses(
    fake: FakePostHog, method: str, body: object, headers: dict[str, str], status: int
) -> None:
    assert request(fake, method, body, headers) == status
