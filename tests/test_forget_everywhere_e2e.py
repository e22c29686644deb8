"""Forget me everywhere, end to end (issue 11's "done when"): two installs of the example
tool record through their detached uploaders into a real collector (SQLite, PostgreSQL),
which forwards to the PostHog, Mixpanel and Amplitude fakes; one install runs ``telemetry
disable``; within its uploader's run the collector's report no longer counts it, each fake
got the deletion request its documentation describes for that install id, the other install
is untouched, and nothing of the disabled install is sent afterwards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool, poll
from fake_amplitude import API_KEY as AMPLITUDE_KEY
from fake_amplitude import SECRET_KEY as AMPLITUDE_SECRET
from fake_amplitude import FakeAmplitude, amplitude_id
from fake_mixpanel import GDPR_TOKEN, FakeMixpanel
from fake_mixpanel import TOKEN as MIXPANEL_TOKEN
from fake_posthog import PERSONAL_KEY, PROJECT_ID, FakePostHog
from fake_posthog import TEST_KEY as POSTHOG_KEY
from test_collector_e2e import Collector, cli, fresh_postgres


@pytest.fixture
def fakes() -> Iterator[tuple[FakePostHog, FakeMixpanel, FakeAmplitude]]:
    services = (FakePostHog(), FakeMixpanel(), FakeAmplitude())
    yield services
    for service in services:
        service.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def collector(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    fakes: tuple[FakePostHog, FakeMixpanel, FakeAmplitude],
) -> Iterator[Collector]:
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp_path / 'collector.sqlite3'}"
    else:
        db_url = fresh_postgres()
    posthog, mixpanel, amplitude = fakes
    env = {
        "POSTHOG_API_KEY": POSTHOG_KEY, "POSTHOG_HOST": posthog.url,
        "POSTHOG_PERSONAL_API_KEY": PERSONAL_KEY, "POSTHOG_PROJECT_ID": PROJECT_ID,
        "MIXPANEL_TOKEN": MIXPANEL_TOKEN, "MIXPANEL_HOST": mixpanel.url,
        "MIXPANEL_GDPR_TOKEN": GDPR_TOKEN, "MIXPANEL_DELETION_HOST": mixpanel.url,
        "AMPLITUDE_API_KEY": AMPLITUDE_KEY, "AMPLITUDE_HOST": amplitude.url,
        "AMPLITUDE_SECRET_KEY": AMPLITUDE_SECRET, "AMPLITUDE_DELETION_HOST": amplitude.url,
        "CLI_TELEMETRY_FORWARD_BACKOFF": "0.2",
    }  # fmt: skip
    server = Collector(db_url, env=env)
    yield server
    server.close()


def install(tmp_path: Path, name: str, collector: Collector) -> Tool:
    home = tmp_path / name
    home.mkdir()
    tool = Tool(home)
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = collector.url + "/v1/events"
    return tool


def report(collector: Collector) -> dict[str, Any]:
    result = cli("report", "--db", collector.db_url, "--since", "2d", "--json")
    assert result.returncode == 0, result.stderr
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def installs_stored(collector: Collector) -> set[str]:
    return {row[0] for row in collector.rows("select distinct install_id from events")}


def distinct_ids(service: FakePostHog | FakeMixpanel | FakeAmplitude) -> set[str]:
    return {item["distinct_id"] for item in service.stored}


def test_disable_forgets_the_install_in_the_collector_and_at_each_provider(
    tmp_path: Path,
    collector: Collector,
    fakes: tuple[FakePostHog, FakeMixpanel, FakeAmplitude],
) -> None:
    posthog, mixpanel, amplitude = fakes
    leaving, staying = (
        install(tmp_path, "leaving", collector),
        install(tmp_path, "staying", collector),
    )
    for tool in (leaving, staying):
        assert tool.run("deploy", "start", "web", "--env", "dev").returncode == 0
        assert tool.run("hello").returncode == 0
    assert poll(lambda: collector.count() == 6, timeout=30)  # 2 x (command, custom, command)
    ids = installs_stored(collector)
    gone = leaving.ids_file.read_text().split("=", 1)[1].strip()
    (kept,) = ids - {gone}
    assert poll(lambda: all(distinct_ids(service) == ids for service in fakes), timeout=30)
    before = report(collector)
    assert (before["installs"], before["invocations"]) == (2, 4)

    result = leaving.run("telemetry", "disable")
    assert result.returncode == 0, result.stderr
    assert "on its way" in result.stdout

    # The collector forgets at once: the report is that of the other install alone.
    assert poll(lambda: report(collector)["installs"] == 1, timeout=30)
    after = report(collector)
    assert after["invocations"] == 2 and after["deletion_requests"] == 1
    assert installs_stored(collector) == {kept} and collector.count() == 3
    # Each provider was asked to delete that install, as its documentation says.
    assert poll(lambda: all(service.deletions for service in fakes), timeout=30)
    assert [d["distinct_ids"] for d in posthog.deletions] == [[gone]]
    assert posthog.deletions[0]["delete_events"] is True
    assert [d["distinct_ids"] for d in mixpanel.deletions] == [[gone]]
    assert [d["amplitude_ids"] for d in amplitude.deletions] == [[amplitude_id(gone)]]
    # Once they accepted, the collector holds nothing that names the install.
    assert poll(lambda: collector.count("erasures") == 0, timeout=30)
    assert gone not in json.dumps(collector.rows("select * from deletions"))
    assert poll(leaving.uploader_stopped, timeout=20)
    assert not (leaving.state_dir / "deletion.json").exists()

    # Nothing of that install is sent afterwards; the other goes on.
    stored_of_gone = [
        len([item for item in service.stored if item["distinct_id"] == gone]) for service in fakes
    ]  # what the providers stored before: theirs to delete, on their own schedule
    for _ in range(3):
        assert leaving.run("hello").returncode == 0
    assert leaving.run("telemetry", "status").returncode == 0
    assert staying.run("hello").returncode == 0
    assert poll(lambda: report(collector)["invocations"] == 3, timeout=30)
    assert poll(lambda: all(len(service.stored) == 7 for service in fakes), timeout=30)
    assert poll(leaving.uploader_stopped, timeout=20)
    assert report(collector)["installs"] == 1
    assert installs_stored(collector) == {kept}
    assert stored_of_gone == [
        len([item for item in service.stored if item["distinct_id"] == gone]) for service in fakes
    ]
    assert not leaving.spool_dir.exists() and not leaving.ids_file.exists()
