"""Forget me at Segment and RudderStack, end to end: with the author's ``userId`` opt-in
(``SEGMENT_USER_ID=install``, ``RUDDERSTACK_USER_ID=install``), two installs record through
a real collector (SQLite, PostgreSQL) that forwards to the Segment and RudderStack fakes;
one install runs ``telemetry disable``; the collector forgets it, and each provider's fake
deletion API gets the regulation its documentation describes, naming that install id as
the ``userId`` the sinks sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import poll
from fake_regulations import (
    ACCESS_TOKEN,
    DESTINATIONS,
    PUBLIC_API_TOKEN,
    FakeRudderStackApi,
    FakeSegmentPublicApi,
)
from fake_segment import RUDDER_KEY, SEGMENT_KEY, FakeRudderStack, FakeSegment
from test_collector_e2e import Collector, fresh_postgres
from test_forget_everywhere_e2e import install, installs_stored, report

Fakes = tuple[FakeSegment, FakeRudderStack, FakeSegmentPublicApi, FakeRudderStackApi]


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    services = (FakeSegment(), FakeRudderStack(), FakeSegmentPublicApi(), FakeRudderStackApi())
    yield services
    for service in services:
        service.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def collector(request: pytest.FixtureRequest, tmp_path: Path, fakes: Fakes) -> Iterator[Collector]:
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    else:
        db_url = fresh_postgres()
    segment, rudderstack, segment_api, rudderstack_api = fakes
    env = {
        "SEGMENT_WRITE_KEY": SEGMENT_KEY, "SEGMENT_HOST": segment.url,
        "SEGMENT_USER_ID": "install",
        "SEGMENT_PUBLIC_API_TOKEN": PUBLIC_API_TOKEN, "SEGMENT_DELETION_HOST": segment_api.url,
        "RUDDERSTACK_WRITE_KEY": RUDDER_KEY, "RUDDERSTACK_DATA_PLANE_URL": rudderstack.url,
        "RUDDERSTACK_USER_ID": "install",
        "RUDDERSTACK_ACCESS_TOKEN": ACCESS_TOKEN,
        "RUDDERSTACK_DELETION_DESTINATIONS": ",".join(DESTINATIONS),
        "RUDDERSTACK_DELETION_HOST": rudderstack_api.url,
        "CLI_TELEMETRY_FORWARD_BACKOFF": "0.2",
    }  # fmt: skip
    server = Collector(db_url, env=env)
    yield server
    server.close()


def user_ids(service: FakeSegment) -> set[str]:
    return {m["userId"] for r in service.requests for m in json.loads(r.data)["batch"]}


def test_disable_has_segment_and_rudderstack_delete_the_install(
    tmp_path: Path, collector: Collector, fakes: Fakes
) -> None:
    segment, rudderstack, segment_api, rudderstack_api = fakes
    leaving, staying = (
        install(tmp_path, "leaving", collector),
        install(tmp_path, "staying", collector),
    )
    for tool in (leaving, staying):
        assert tool.run("hello").returncode == 0
    assert poll(lambda: collector.count() == 2, timeout=30)
    ids = installs_stored(collector)
    gone = leaving.ids_file.read_text().split("=", 1)[1].strip()
    assert poll(lambda: user_ids(segment) == user_ids(rudderstack) == ids, timeout=30)

    assert leaving.run("telemetry", "disable").returncode == 0
    assert poll(lambda: report(collector)["installs"] == 1, timeout=30)
    assert poll(lambda: bool(segment_api.regulations and rudderstack_api.regulations), timeout=30)
    assert segment_api.regulations == [
        {"regulationType": "SUPPRESS_WITH_DELETE", "subjectType": "USER_ID", "subjectIds": [gone]}
    ]
    assert rudderstack_api.regulations == [
        {"regulationType": "suppress_with_delete", "destinationIds": list(DESTINATIONS),
         "users": [{"userId": gone}]}
    ]  # fmt: skip
    assert poll(lambda: collector.count("erasures") == 0, timeout=30)
    assert gone not in json.dumps(collector.rows("select * from deletions"))
    assert poll(leaving.uploader_stopped, timeout=20)
