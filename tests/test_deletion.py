"""The deletion request ``disable`` leaves (`cli_telemetry.deletion`): its file, and how the
uploader hands it on, in process with in-memory sinks and a real state directory.
(tests/test_forgetting_e2e.py runs ``disable`` and the detached uploader against a real
collector.)"""

from __future__ import annotations

import json
import os
import stat
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from test_uploader import OPTIONS, envelope, record

from cli_telemetry import Telemetry, _append, _paths, _uploader, deletion
from cli_telemetry._ids import load_or_create_ids
from cli_telemetry.delivery import UploadState
from cli_telemetry.events import check_event
from cli_telemetry.providers import PostHog, Segment, Webhook
from cli_telemetry.sinks import Delivery, MemorySink
from cli_telemetry.spool import Spool

INSTALL_ID = "3f1c2a9b-e07d-4c55-a1e2-b3c4d5e6f708"


@pytest.fixture
def paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_a_user: None
) -> Iterator[_paths.Paths]:
    """A state directory after ``disable``: the config says off, the spool is gone. (The
    tools run in process here record as a user's run would: `as_a_user`.)"""
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "DO_NOT_TRACK", "ACME_TELEMETRY_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    paths = _paths.resolve("acme")
    os.makedirs(os.path.dirname(paths.config_file))
    Path(paths.config_file).write_text("enabled = false\nconsent_policy = 1\n")
    _paths.make_private_dir(paths.state_dir)
    yield paths


def leave(
    paths: _paths.Paths,
    install_id: str = INSTALL_ID,
    since: float | None = None,
    to: tuple[str, ...] = ("collector", "webhook"),
) -> None:
    """A request as ``disable`` leaves it, for the sinks ``to``."""
    now = time.time() if since is None else since
    deletion.add(paths.deletion_file, deletion.request_for("acme", install_id, now), now, to)


def run(sinks: Sequence[Any]) -> str:
    return _uploader.run(OPTIONS, sinks, deadline=time.monotonic() + 10)


class EventsOnly:
    """A sink with no ``forget``: a provider's event API."""

    def __init__(self, name: str = "posthog") -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        self.events.extend(events)
        return Delivery("delivered")

    def close(self) -> None:
        pass


# -- the file ----------------------------------------------------------------------------------


def test_a_request_is_a_valid_record_with_no_usage_data() -> None:
    request = deletion.request_for("acme", INSTALL_ID, time.time())
    check_event(request)
    assert set(request) == {
        "schema_version",
        "event_id",
        "event",
        "timestamp",
        "tool",
        "install_id",
    }
    assert request["event"] == "deletion_request" and request["install_id"] == INSTALL_ID


def test_requests_wait_in_a_private_file_and_several_may_wait(paths: _paths.Paths) -> None:
    leave(paths)
    leave(paths, install_id=str(uuid.uuid4()))
    waiting = deletion.read(paths.deletion_file)
    assert waiting[0].request["install_id"] == INSTALL_ID
    assert len(waiting) == 2 and all(p.done == frozenset() for p in waiting)
    assert stat.S_IMODE(os.stat(paths.deletion_file).st_mode) == 0o600


def test_a_damaged_entry_is_skipped_and_reported_and_the_others_kept(paths: _paths.Paths) -> None:
    leave(paths)
    data = json.loads(Path(paths.deletion_file).read_text())
    good = data["requests"][0]
    data["requests"] = [
        {**good, "request": {**good["request"], "command": "acme deploy"}},  # usage data
        {**good, "done": "collector"},
        "garbage",
        good,
    ]
    Path(paths.deletion_file).write_text(json.dumps(data))
    said: list[str] = []
    waiting = deletion.read(paths.deletion_file, said.append)
    assert [p.request for p in waiting] == [good["request"]]
    assert len(said) == 3 and all("skipped an entry" in line for line in said)


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_a_file_that_is_not_ours_holds_none(paths: _paths.Paths, content: bytes) -> None:
    Path(paths.deletion_file).write_bytes(content)
    os.chmod(paths.deletion_file, 0o600)
    said: list[str] = []
    assert deletion.read(paths.deletion_file, said.append) == []
    assert len(said) == (0 if content == b"[1, 2]" else 1)


def test_a_link_in_its_place_is_not_followed(paths: _paths.Paths, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    leave(paths)
    os.replace(paths.deletion_file, elsewhere)
    os.symlink(elsewhere, paths.deletion_file)
    said: list[str] = []
    assert deletion.read(paths.deletion_file, said.append) == []
    assert said and "UnsafeFile" in said[0]


# -- the uploader hands it on -------------------------------------------------------------------


def test_the_uploader_sends_it_though_telemetry_is_off_then_deletes_it(
    paths: _paths.Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DO_NOT_TRACK", "1")  # it carries no usage data: nothing stops it
    leave(paths)
    collector, webhook = MemorySink("collector"), MemorySink("webhook")
    assert run([collector, webhook]) == "forgotten"  # and nothing else is sent
    assert [r["install_id"] for r in collector.deletions] == [INSTALL_ID]
    assert collector.deletions == webhook.deletions and collector.events == []
    assert not os.path.exists(paths.state_dir)  # as disable left it: nothing of ours


def test_a_sink_that_cannot_forget_is_done_with_it_at_once(paths: _paths.Paths) -> None:
    """A custom provider without ``forget`` (a built-in provider's event sink is never one
    a request is for: `deletion.EVENTS_ONLY`)."""
    leave(paths, to=("collector", "custom"))
    provider = EventsOnly("custom")
    run([MemorySink("collector"), provider])
    assert provider.events == []  # never sent as an event
    assert not os.path.exists(paths.deletion_file)


def test_a_sink_that_fails_gets_it_again_after_its_backoff_and_the_others_once(
    paths: _paths.Paths,
) -> None:
    leave(paths)
    collector = MemorySink("collector", results=[Delivery("retry", "http_503", 30.0)])
    webhook = MemorySink("webhook")
    assert run([collector, webhook]) == "disabled"
    (waiting,) = deletion.read(paths.deletion_file)
    assert waiting.done == {"webhook"} and collector.deletions == []
    state = UploadState.load(paths.upload_state)
    assert state.data["sinks"]["collector"]["last_error"] == "http_503"
    assert state.next_attempt(["collector"], time.time()) >= time.time() + 29  # Retry-After
    # Commands start no uploader before then (the spawn stamp's mtime, see _spawn)...
    assert os.stat(paths.uploader_stamp).st_mtime >= time.time() + 29
    # ...and one started anyway sends the collector nothing, the webhook nothing again.
    assert run([collector, webhook]) == "disabled"
    assert collector.deletions == [] and len(webhook.deletions) == 1

    state.data["sinks"]["collector"]["retry_at_epoch"] = 0  # its backoff is over
    state.save(paths.upload_state)
    run([collector, webhook])
    assert [r["install_id"] for r in collector.deletions] == [INSTALL_ID]
    assert len(webhook.deletions) == 1
    assert not os.path.exists(paths.state_dir)


def test_a_refusal_for_good_ends_it_for_that_sink(paths: _paths.Paths) -> None:
    leave(paths, to=("collector",))
    run([MemorySink("collector", results=[Delivery("rejected", "http_400")])])
    assert not os.path.exists(paths.deletion_file)


@pytest.mark.parametrize("error", ["http_401", "http_403", "http_404"])
def test_a_refusal_of_our_token_or_address_keeps_it(paths: _paths.Paths, error: str) -> None:
    """A token rotated in a later release, a collector that moved: the request is not the
    problem, so it waits (with the backoff) instead of being dropped as an event would."""
    leave(paths)
    assert run([MemorySink("collector", results=[Delivery("rejected", error)])]) == "disabled"
    (waiting,) = deletion.read(paths.deletion_file)
    assert waiting.done == frozenset()
    assert UploadState.load(paths.upload_state).data["sinks"]["collector"]["last_error"] == error


def test_a_file_nobody_changed_for_its_lifetime_goes_unread(paths: _paths.Paths) -> None:
    """Where no uploader runs any more (the tool is not run again, or only under
    DO_NOT_TRACK), the install id still does not outlive the request's lifetime."""
    leave(paths)
    assert deletion.waiting(paths, time.time())
    old = time.time() - deletion.LIFETIME - 60
    os.utime(paths.deletion_file, (old, old))
    assert not deletion.waiting(paths, time.time())
    assert not os.path.exists(paths.deletion_file)


@pytest.mark.parametrize(
    ("sinks", "left"),
    [
        ([PostHog(api_key="phc_test"), Segment(write_key="wk")], False),  # event APIs only
        ([PostHog(api_key="phc_test"), Webhook(url="https://h.example/hook", secret="s")], True),
    ],
)
def test_a_request_is_left_only_where_a_sink_can_take_it(
    paths: _paths.Paths, sinks: list[Any], left: bool
) -> None:
    config = Telemetry("acme", version="1", sinks=sinks)._config
    load_or_create_ids(paths.ids_file)
    assert deletion.leave(config, paths, time.time()) is left
    assert os.path.exists(paths.deletion_file) is left


def test_a_request_past_its_lifetime_goes_unsent(paths: _paths.Paths) -> None:
    leave(paths, since=time.time() - deletion.LIFETIME - 60, to=("collector",))
    leave(paths, install_id=str(uuid.uuid4()), to=("collector",))
    collector = MemorySink("collector")
    run([collector])
    assert len(collector.deletions) == 1 and collector.deletions[0]["install_id"] != INSTALL_ID
    assert not os.path.exists(paths.deletion_file)


def test_it_goes_first_however_full_the_spool_and_the_events_follow(
    paths: _paths.Paths,
) -> None:
    """A new install id's events (telemetry enabled again) wait behind the old id's
    deletion, and a full spool never pushes the request out."""
    Path(paths.config_file).write_text("enabled = true\nconsent_policy = 1\n")
    leave(paths)
    spool = Spool(paths.spool_dir, max_events=10)
    spool.append([json.dumps(envelope(str(uuid.uuid4()))).encode() for _ in range(25)])
    kept = spool.stats().pending
    order: list[str] = []

    class Recording(MemorySink):
        def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
            order.append("events")
            return super().send(events, deadline)

        def forget(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery:
            order.append("deletion")
            return super().forget(requests, deadline)

    sink = Recording("collector")
    assert run([sink]) == "empty"
    assert order[0] == "deletion" and set(order[1:]) == {"events"}
    assert len(sink.events) == kept > 0
    assert len(sink.deletions) == 1


def test_nothing_is_sent_from_a_tests_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TELEMETRY_TEST_DIR", str(tmp_path / "t"))
    paths = _paths.resolve("acme")
    _paths.make_private_dir(paths.state_dir)
    leave(paths)
    sink = MemorySink("collector")
    assert run([sink]) == "disabled" and sink.deletions == []
    assert os.path.exists(paths.deletion_file)


def test_a_request_waits_for_a_sink_this_run_lacks_and_goes_to_no_new_one(
    paths: _paths.Paths,
) -> None:
    """disable ran with the collector's endpoint given by a variable; a later run has
    only a webhook, and one after that both, and a sink added since."""
    leave(paths, to=("collector",))
    webhook, collector, added = MemorySink("webhook"), MemorySink("collector"), MemorySink("new")
    run([webhook])
    assert webhook.deletions == []  # not one the request is for: it never had the id
    (waiting,) = deletion.read(paths.deletion_file)
    assert waiting.waiting_for() == ["collector"]
    assert os.stat(paths.uploader_stamp).st_mtime >= time.time() + 3600  # nothing to do here
    run([webhook, collector, added])
    assert [r["install_id"] for r in collector.deletions] == [INSTALL_ID]
    assert webhook.deletions == added.deletions == []
    assert not os.path.exists(paths.state_dir)


def test_the_events_of_the_deleted_id_never_follow_it(paths: _paths.Paths) -> None:
    """``disable`` purged the spool before leaving the request; should an event of the old
    id still be there (a spool restored from a backup), telemetry is off: it is not sent,
    and the spool is not the uploader's to delete."""
    record(paths, 3)
    leave(paths, to=("collector",))
    sink = MemorySink("collector")
    assert run([sink]) == "disabled"
    assert sink.events == [] and len(sink.deletions) == 1
    assert os.path.isdir(paths.spool_dir) and not os.path.exists(paths.deletion_file)


def test_an_event_recorded_while_disable_runs_is_taken_back(
    paths: _paths.Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command that read the old ids before ``disable`` deleted them, and appends after
    ``disable`` emptied the spool: it finds the ids gone and takes its event back, so no
    event of the forgotten id waits to be sent after its deletion request."""
    import click
    from click.testing import CliRunner

    Path(paths.config_file).write_text("enabled = true\nconsent_policy = 1\n")
    telemetry = Telemetry("acme", version="1")

    @telemetry.instrument
    @click.command()
    def acme() -> None:
        click.echo("done")

    append = _append.append  # what a recorded run appends with

    def disable_meanwhile(directory: str, events: list[bytes], after_ns: int = 0) -> list[str]:
        os.unlink(paths.ids_file)  # as disable does, before it empties the spool
        return append(directory, events, after_ns)

    monkeypatch.setattr(_append, "append", disable_meanwhile)
    result = CliRunner().invoke(acme, [])
    assert (result.exit_code, result.output) == (0, "done\n")
    assert Spool(paths.spool_dir).stats().pending == 0

    monkeypatch.setattr(_append, "append", append)  # and without disable, it records
    load_or_create_ids(paths.ids_file)
    CliRunner().invoke(acme, [])
    assert Spool(paths.spool_dir).stats().pending == 1
