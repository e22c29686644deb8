"""The uploader's logic, in process, with in-memory sinks and a real spool in a tmp HOME.
(tests/test_delivery_e2e.py runs the real detached process against a real server.)"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_proc, open_sockets
from loopback import EndpointProcess

from cli_telemetry import _paths, _uploader, delivery
from cli_telemetry._spawn import UploaderOptions
from cli_telemetry.delivery import UploadState
from cli_telemetry.sinks import Delivery, MemorySink
from cli_telemetry.sinks.http import HttpSink
from cli_telemetry.spool import Spool


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_paths.Paths]:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "DO_NOT_TRACK", "ACME_TELEMETRY_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    paths = _paths.resolve("acme")
    os.makedirs(os.path.dirname(paths.config_file))
    with open(paths.config_file, "w") as f:
        f.write("enabled = true\nconsent_policy = 1\n")
    yield paths


OPTIONS: UploaderOptions = {
    "tool": "acme", "env_prefix": "ACME", "consent": "notice", "policy_version": 1,
    "sinks": [], "max_events": 1000, "max_bytes": 2_000_000,
}  # fmt: skip


_NUMBERS = itertools.count(1)


def record(paths: _paths.Paths, count: int) -> list[str]:
    """``count`` events in the spool; their ids, which sort as they were recorded."""
    ids = [str(uuid.UUID(int=next(_NUMBERS))) for _ in range(count)]
    Spool(paths.spool_dir).append([json.dumps(envelope(i)).encode() for i in ids])
    return ids


def envelope(event_id: str) -> dict[str, Any]:
    """A command event as the library writes it (the uploader sends nothing else)."""
    return {
        "schema_version": 1, "event_id": event_id, "event": "command",
        "timestamp": "2026-11-23T10:00:00.000Z", "tool": "acme", "tool_version": "1.0",
        "install_id": "3f1c2a9b-e07d-4c55-a1e2-b3c4d5e6f708", "command": "acme",
        "flags": [], "values": {}, "exit_code": 0, "outcome": "success", "error_type": None,
        "duration_ms": 1, "os": "linux", "os_version": "6.1", "arch": "x86_64",
        "python_version": "3.11.7", "ci": None, "interactive": False,
    }  # fmt: skip


def run(sinks: Sequence[Any], seconds: float = 10) -> str:
    return _uploader.run(OPTIONS, sinks, deadline=time.monotonic() + seconds)


def state(paths: _paths.Paths) -> dict[str, Any]:
    return UploadState.load(paths.upload_state).data


def test_sends_everything_in_batches_and_empties_the_spool(paths: _paths.Paths) -> None:
    ids = record(paths, 250)
    sink = MemorySink()
    assert run([sink]) == "empty"
    assert [e["event_id"] for e in sink.events] == ids  # oldest first, each once
    assert Spool(paths.spool_dir).stats().pending == 0
    assert state(paths)["failures"] == 0 and state(paths)["last_upload"]


def test_a_retry_stops_the_run_keeps_the_events_and_backs_off(paths: _paths.Paths) -> None:
    record(paths, 3)
    sink = MemorySink(results=[Delivery("retry", "http_503", retry_after=120)])
    assert run([sink]) == "retry"
    assert Spool(paths.spool_dir).stats().pending == 3
    assert os.stat(paths.uploader_stamp).st_mtime >= time.time() + 110
    assert state(paths)["failures"] == 1 and state(paths)["last_error"] == "http_503"
    assert run([sink]) == "retry"  # still backing off: nothing sent
    assert sink.events == []
    end_backoff(paths)
    assert run([sink]) == "empty"
    assert len(sink.events) == 3
    assert state(paths)["failures"] == 0


def end_backoff(paths: _paths.Paths) -> None:
    """As if the backoff had run its course."""
    current = state(paths)
    for sink_state in current["sinks"].values():
        sink_state["retry_at_epoch"] = 0
    UploadState(current).save(paths.upload_state)


def test_a_rejected_batch_is_dropped_and_counted(paths: _paths.Paths) -> None:
    record(paths, 3)
    assert run([MemorySink(results=[Delivery("rejected", "http_400")])]) == "empty"
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 3)


@pytest.mark.parametrize(
    "how", ["DO_NOT_TRACK", "ACME_TELEMETRY_DISABLED", "config", "spool deleted"]
)
def test_consent_is_checked_again(
    paths: _paths.Paths, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    record(paths, 2)
    if how == "config":
        with open(paths.config_file, "w") as f:
            f.write("enabled = false\n")
    elif how == "spool deleted":
        Spool(paths.spool_dir).purge(remove=True)
    else:
        monkeypatch.setenv(how, "1")
    sink = MemorySink()
    assert run([sink]) in ("disabled", "empty")
    assert sink.events == []


def test_nothing_is_ever_sent_from_a_tests_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command never starts an uploader there; one started anyway sends nothing, even
    after ``telemetry enable``, and leaves the events for the test to read."""
    monkeypatch.setenv("CLI_TELEMETRY_TEST_DIR", str(tmp_path))
    paths = _paths.resolve("acme")
    assert paths.testing
    os.makedirs(os.path.dirname(paths.config_file))
    Path(paths.config_file).write_text("enabled = true\nconsent_policy = 1\n")
    record(paths, 2)
    sink = MemorySink()

    assert run([sink]) == "disabled"

    assert sink.events == []
    assert len(Spool(paths.spool_dir).peek()) == 2


def test_only_one_uploader_runs(paths: _paths.Paths) -> None:
    from filelock import FileLock

    record(paths, 1)
    with FileLock(paths.uploader_lock):
        assert run([MemorySink()]) == "busy"


def test_claims_of_a_dead_uploader_are_sent_at_once(paths: _paths.Paths) -> None:
    ids = record(paths, 2)
    assert Spool(paths.spool_dir).claim() is not None  # its claimer "died" with it
    sink = MemorySink()
    assert run([sink]) == "empty"
    assert sorted(e["event_id"] for e in sink.events) == ids


def test_the_deadline_ends_the_run_between_batches(paths: _paths.Paths) -> None:
    """With less time left than one request may take, nothing more is started (a send cut
    short after the server stored it would be sent again)."""
    record(paths, 1)
    sink = MemorySink()
    assert run([sink], seconds=_uploader.MIN_TIME_FOR_A_BATCH - 1) == "deadline"
    assert sink.events == []
    assert state(paths).get("failures", 0) == 0  # not a failure


def test_a_sink_that_raises_is_only_that_sinks_failure() -> None:
    class Broken:
        name = "broken"

        def send(self, events: Any, deadline: float) -> Delivery:
            raise RuntimeError("bug")

        def close(self) -> None:
            pass

    good = MemorySink()
    events = [{"event_id": "1"}]
    result = delivery.deliver([(Broken(), events), (good, events)], time.monotonic() + 5)
    assert (result["broken"].outcome, result["broken"].error) == (
        "retry",
        "sink_error:RuntimeError",
    )
    assert result["memory"].outcome == "delivered"
    assert good.events == [{"event_id": "1"}]


def test_backoff_grows_with_jitter_up_to_a_cap_and_honours_retry_after() -> None:
    rng = random.Random(1)
    for failures in range(1, 20):
        base = min(delivery.BACKOFF_CAP, delivery.BACKOFF_BASE * 2 ** (failures - 1))
        delay = delivery.backoff(failures, None, rng)
        assert 0.5 * base <= delay <= 1.5 * base
    assert delivery.backoff(1, 3600, rng) >= 3600
    assert delivery.backoff(1, 10**9, rng) <= delivery.RETRY_AFTER_CAP * 1.0 + 1


def test_a_misconfigured_endpoint_waits_as_long_as_the_cap_from_the_first_failure() -> None:
    rng = random.Random(1)
    for failures in (1, 2, 30):
        delay = delivery.backoff(failures, None, rng, misconfigured=True)
        assert 0.5 * delivery.BACKOFF_CAP <= delay <= 1.5 * delivery.BACKOFF_CAP
    assert delivery.backoff(1, 10**9, rng, misconfigured=True) == delivery.RETRY_AFTER_CAP
    assert [delivery.misconfigured(kind) for kind in ("redirect:https://x.example", "redirect")]
    for kind in (None, "http_503", "timeout", "redirected", "connection"):
        assert not delivery.misconfigured(kind)


def test_a_redirecting_sink_rests_for_hours_while_the_others_deliver(
    paths: _paths.Paths,
) -> None:
    ids = record(paths, 2)
    good = MemorySink("good")
    moved = MemorySink("moved", results=[Delivery("retry", "redirect:https://new.example")])
    before = time.time()
    assert run([good, moved]) == "retry"
    assert [e["event_id"] for e in good.events] == ids
    assert Spool(paths.spool_dir).stats().pending == 2  # kept for moved: it may be corrected
    rest = state(paths)["sinks"]["moved"]
    assert (rest["failures"], rest["last_error"]) == (1, "redirect:https://new.example")
    assert rest["retry_at_epoch"] >= before + 0.5 * delivery.BACKOFF_CAP
    more = record(paths, 1)
    assert run([good, moved]) == "retry"  # the others go on, it is not tried again
    assert [e["event_id"] for e in good.events] == ids + more and moved.events == []


def test_the_watchdog_ends_a_stuck_uploader() -> None:
    """Whatever blocks (a DNS lookup escapes socket timeouts), the process ends on time."""
    import subprocess
    import sys

    code = (
        "import time; from cli_telemetry import _uploader; _uploader._watchdog(0.2); time.sleep(60)"
    )
    result = subprocess.run([sys.executable, "-c", code], timeout=30, check=False)
    assert result.returncode == 3


def test_main_reads_its_options_from_the_environment(
    paths: _paths.Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopback import Endpoint

    from cli_telemetry._spawn import OPTIONS_VARIABLE

    ids = record(paths, 2)
    # In process, the watchdog would end the test run itself in 35 s.
    monkeypatch.setattr(_uploader, "_watchdog", lambda seconds: None)
    server = Endpoint()
    try:
        sinks = [{"target": "cli_telemetry.sinks.http:HttpSink", "name": "collector",
                  "options": {"endpoint": server.url, "token": None}}]  # fmt: skip
        monkeypatch.setenv(OPTIONS_VARIABLE, json.dumps({**OPTIONS, "sinks": sinks}))
        assert _uploader.main() == 0
        assert OPTIONS_VARIABLE not in os.environ  # not passed on to anything it starts
        assert [e["event_id"] for e in server.events] == ids
    finally:
        server.close()


# -- several sinks: fan-out, per-sink acknowledgement, isolation -----------------------


def test_fan_out_with_one_failing_sink_resends_only_to_it(paths: _paths.Paths) -> None:
    ids = record(paths, 3)
    good = MemorySink("good")
    flaky = MemorySink("flaky", results=[Delivery("retry", "http_503")])
    assert run([good, flaky]) == "retry"  # everything that could go went; flaky waits
    assert [e["event_id"] for e in good.events] == ids
    assert flaky.events == []
    assert Spool(paths.spool_dir).stats().pending == 3  # still owed to flaky
    assert state(paths)["sinks"]["flaky"]["failures"] == 1
    assert state(paths)["failures"] == 1 and state(paths)["last_error"] == "http_503"

    more = record(paths, 2)
    assert run([good, flaky]) == "retry"  # flaky still backing off: only good is sent
    assert [e["event_id"] for e in good.events] == ids + more
    assert flaky.events == []

    end_backoff(paths)
    assert run([good, flaky]) == "empty"
    assert [e["event_id"] for e in good.events] == ids + more  # nothing sent twice to good
    assert sorted(e["event_id"] for e in flaky.events) == sorted(ids + more)
    assert Spool(paths.spool_dir).stats().pending == 0
    assert state(paths)["failures"] == 0 and state(paths)["last_error"] is None


def test_a_sink_that_refuses_for_good_does_not_hold_the_others(paths: _paths.Paths) -> None:
    ids = record(paths, 2)
    good = MemorySink("good")
    refusing = MemorySink("refusing", results=[Delivery("rejected", "http_401")])
    assert run([good, refusing]) == "empty"
    assert [e["event_id"] for e in good.events] == ids
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 2)
    assert state(paths)["last_error"] == "http_401"


def test_a_hanging_sink_is_cut_off_at_the_deadline_and_the_others_deliver(
    paths: _paths.Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each send has SEND_TIMEOUT (here 1 s): a sink still busy then counts as
    timed out and is left behind for the rest of the run."""
    import threading

    monkeypatch.setattr(_uploader, "SEND_TIMEOUT", 1.0)

    release = threading.Event()

    class Hanging:
        name = "hanging"

        def send(self, events: Any, deadline: float) -> Delivery:
            release.wait(60)  # ignores its deadline
            return Delivery("delivered")

        def close(self) -> None:
            pass

    ids = record(paths, 2)
    good = MemorySink("good")
    try:
        started = time.monotonic()
        outcome = run([Hanging(), good], seconds=20)
        assert time.monotonic() - started < 10
    finally:
        release.set()
    assert outcome == "retry"
    assert [e["event_id"] for e in good.events] == ids
    assert state(paths)["sinks"]["hanging"]["last_error"] == "timeout"
    assert Spool(paths.spool_dir).stats().pending == 2  # owed to the hanging sink only


@needs_proc
def test_a_dripping_server_costs_one_send_timeout_and_leaves_no_thread_or_socket(
    paths: _paths.Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that drips its answer a byte a second no longer needs the process's
    watchdog: the send ends at its own deadline (SEND_TIMEOUT, here 2 s), its socket shut
    and closed, and the run goes on (here, to stop: the sink backs off)."""
    monkeypatch.setattr(_uploader, "SEND_TIMEOUT", 2.0)
    record(paths, 3)
    with EndpointProcess("drip") as server:
        threads, sockets = threading.active_count(), open_sockets()
        outcome = run([HttpSink(server.url)], seconds=30)
        assert (threading.active_count(), open_sockets()) == (threads, sockets)
    assert outcome == "retry"
    assert state(paths)["sinks"]["collector"]["last_error"] == "timeout"
    assert Spool(paths.spool_dir).stats().pending == 3


def test_a_removed_sink_no_longer_holds_events(paths: _paths.Paths) -> None:
    record(paths, 2)
    good = MemorySink("good")
    assert run([good, MemorySink("gone", results=[Delivery("retry", "http_503")])]) == "retry"
    assert Spool(paths.spool_dir).stats().pending == 2
    assert run([good]) == "empty"  # the author removed "gone": good has them all
    assert len(good.events) == 2
    assert Spool(paths.spool_dir).stats().pending == 0


def test_a_custom_provider_that_cannot_be_imported_fails_alone(paths: _paths.Paths) -> None:
    record(paths, 1)
    missing = _uploader._LazySink(
        {"target": "no_such_module.anywhere:Provider", "name": "missing", "options": {}}
    )
    good = MemorySink("good")
    assert run([missing, good]) == "retry"
    assert len(good.events) == 1
    assert state(paths)["sinks"]["missing"]["last_error"] == "load_error:ModuleNotFoundError"


def test_too_large_for_one_sink_is_split_without_a_failure(paths: _paths.Paths) -> None:
    ids = record(paths, 4)
    picky = MemorySink("picky", results=[Delivery("rejected", "http_413")])
    good = MemorySink("good")
    assert run([picky, good]) == "empty"
    assert [e["event_id"] for e in good.events] == ids  # sent once, not again after the split
    assert sorted(e["event_id"] for e in picky.events) == ids
    assert state(paths)["failures"] == 0


def test_sinks_build_from_their_description_with_an_import_path(
    paths: _paths.Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_provider.py").write_text(
        "from cli_telemetry.sinks import Delivery\n"
        "SENT = []\n"
        "class Mine:\n"
        "    def __init__(self, *, name, prefix):\n"
        "        self.name, self.prefix = name, prefix\n"
        "    def send(self, events, deadline):\n"
        "        SENT.extend(self.prefix + e['event_id'] for e in events)\n"
        "        return Delivery('delivered')\n"
        "    def close(self):\n"
        "        pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from cli_telemetry.providers import Provider

    ids = record(paths, 2)
    spec = Provider("my_provider:Mine", name="mine", prefix="x-").to_json()
    assert run([_uploader._LazySink(json.loads(json.dumps(spec)))]) == "empty"
    import my_provider  # type: ignore[import-not-found]

    assert ["x-" + i for i in ids] == my_provider.SENT


# -- events refused one by one -----------------------------------------------------------


def partial(*refused: int, unattributed: int = 0) -> Delivery:
    return Delivery("delivered", "partial_rejected", refused=refused, unattributed=unattributed)


def test_only_the_refused_events_of_a_batch_are_dropped_and_counted(paths: _paths.Paths) -> None:
    ids = record(paths, 4)
    sink = MemorySink(results=[partial(1, 3)])
    assert run([sink]) == "empty"
    assert [e["event_id"] for e in sink.events] == [ids[0], ids[2]]
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 2)
    assert state(paths)["last_error"] == "partial_rejected"
    assert state(paths)["failures"] == 0 and state(paths)["last_upload"]


def test_an_event_two_sinks_refuse_in_one_run_is_counted_once(paths: _paths.Paths) -> None:
    ids = record(paths, 3)
    a = MemorySink("a", results=[partial(1)])
    b = MemorySink("b", results=[partial(1, 2)])
    assert run([a, b]) == "empty"
    assert [e["event_id"] for e in a.events] == [ids[0], ids[2]]
    assert [e["event_id"] for e in b.events] == [ids[0]]
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 2)  # ids[1] once, ids[2] once


def test_a_refused_event_still_goes_to_the_other_sinks_and_counts_once_across_runs(
    paths: _paths.Paths,
) -> None:
    ids = record(paths, 3)
    a = MemorySink("a", results=[partial(1)])
    b = MemorySink("b", results=[Delivery("retry", "http_503")])
    assert run([a, b]) == "retry"
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (3, 1)  # all three still owed to b
    end_backoff(paths)
    b_refuses = MemorySink("b", results=[partial(0, 1)])  # the same event, and another
    assert run([a, b_refuses]) == "empty"
    assert [e["event_id"] for e in a.events] == [ids[0], ids[2]]  # a is not sent them again
    assert [e["event_id"] for e in b_refuses.events] == [ids[2]]  # b was sent ids[1] too
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 2)


def test_a_whole_batch_rejection_counts_what_another_sink_refused_once(
    paths: _paths.Paths,
) -> None:
    record(paths, 3)
    a = MemorySink("a", results=[partial(2)])
    b = MemorySink("b", results=[Delivery("retry", "http_503")])
    assert run([a, b]) == "retry"
    end_backoff(paths)
    assert run([a, MemorySink("b", results=[Delivery("rejected", "http_400")])]) == "empty"
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 3)


def test_refusals_without_indexes_are_counted_as_they_are(paths: _paths.Paths) -> None:
    """OTLP says how many, not which: every event leaves, the count is added."""
    ids = record(paths, 3)
    sink = MemorySink(results=[partial(unattributed=2)])
    assert run([sink]) == "empty"
    assert [e["event_id"] for e in sink.events] == ids
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 2)


def test_a_partial_delivery_without_an_error_kind_shows_as_partial(paths: _paths.Paths) -> None:
    """A custom provider need not name the kind: status still says why events went."""
    record(paths, 2)
    assert run([MemorySink(results=[Delivery("delivered", refused=(0,))])]) == "empty"
    assert Spool(paths.spool_dir).stats().rejected == 1
    assert state(paths)["last_error"] == "partial_rejected"


def test_indexes_outside_the_batch_refuse_nothing(paths: _paths.Paths) -> None:
    """A custom provider's bug: indexes it was not sent are not anyone's events."""
    record(paths, 2)
    assert run([MemorySink(results=[Delivery("delivered", refused=(2, -1))])]) == "empty"
    assert Spool(paths.spool_dir).stats().rejected == 0
    assert state(paths)["last_error"] is None


@pytest.mark.parametrize(
    "sinks",
    [
        "not an object",
        {"memory": "not an object"},
        {"memory": {"failures": "three", "retry_at_epoch": "soon"}},
        {"memory": {"failures": None, "retry_at_epoch": None}},
        {"memory": {"failures": -2, "retry_at_epoch": 1e308 * 10}},  # inf
    ],
)
def test_a_damaged_upload_state_does_not_stop_every_run(paths: _paths.Paths, sinks: object) -> None:
    """upload.json is ours, but a disk error, a hand edit or another version can leave
    anything there: the run goes on, as if the sink had failed once."""
    ids = record(paths, 2)
    with open(paths.upload_state, "w") as f:
        json.dump({"failures": 1, "sinks": sinks}, f)
    sink = MemorySink()
    assert run([sink]) == "empty"
    assert [e["event_id"] for e in sink.events] == ids
    assert state(paths)["sinks"]["memory"]["last_upload"]


def test_a_retry_time_past_any_backoff_is_brought_back_to_the_bound(
    paths: _paths.Paths,
) -> None:
    """A retry time years ahead (the clock was set back after it was written) must not
    silence a sink for years."""
    record(paths, 1)
    years = time.time() + 3 * 365 * 24 * 3600
    with open(paths.upload_state, "w") as f:
        json.dump({"sinks": {"memory": {"failures": 3, "retry_at_epoch": years}}}, f)
    sink = MemorySink()
    assert run([sink]) == "retry"  # still backing off, but no longer for years
    assert os.stat(paths.uploader_stamp).st_mtime <= time.time() + 1.5 * delivery.RETRY_AFTER_CAP


@pytest.mark.parametrize(
    "damage",
    [
        {"install_id": None},
        {"timestamp": "yesterday"},
        {"event": 3},
        {"tool": ...},
        {"values": {"--context": "/home/alice/.kube/config"}},
        {"hostname": "alice-laptop"},
    ],
    ids=["no-install-id", "bad-time", "bad-name", "no-tool", "free-value", "unknown-field"],
)
def test_an_event_the_schema_refuses_is_sent_nowhere_and_counted_not_retried_forever(
    paths: _paths.Paths, damage: dict[str, Any]
) -> None:
    good = record(paths, 1)
    bad = {**envelope(str(uuid.uuid4())), **damage}
    Spool(paths.spool_dir).append(
        [json.dumps({k: v for k, v in bad.items() if v is not ...}).encode()]
    )
    more = record(paths, 1)
    sink = MemorySink()
    assert run([sink]) == "empty"
    assert [e["event_id"] for e in sink.events] == good + more
    stats = Spool(paths.spool_dir).stats()
    assert (stats.pending, stats.rejected) == (0, 1)


def test_when_every_sink_rests_the_uploader_leaves_without_taking_the_lock(
    paths: _paths.Paths,
) -> None:
    """Nothing to do: not even filelock is imported (~30 ms of the user's CPU), and the
    throttle is set to the first sink's next attempt, so commands stop spawning."""
    import subprocess
    import sys

    record(paths, 1)
    sink = MemorySink(results=[Delivery("retry", "http_503", retry_after=600)])
    assert run([sink]) == "retry"
    os.utime(paths.uploader_stamp, (0, 0))  # as if the throttle had been reset
    code = (
        "import json, sys, time; from cli_telemetry import _uploader;"
        " from cli_telemetry.sinks import MemorySink;"
        f" options = json.loads({json.dumps(json.dumps(OPTIONS))});"
        " result = _uploader.run(options, [MemorySink()], deadline=time.monotonic() + 10);"
        " print(result, 'filelock' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.split() == ["retry", "False"]
    assert os.stat(paths.uploader_stamp).st_mtime >= time.time() + 500
    assert Spool(paths.spool_dir).stats().pending == 1


def test_a_field_the_schema_withdrew_is_never_sent(paths: _paths.Paths) -> None:
    """An event spooled by an earlier release (with the hashed machine id it no longer
    collects) goes to the sinks without that field."""
    old = {**envelope(str(uuid.uuid4())), "machine_id": "ab" * 32}
    Spool(paths.spool_dir).append([json.dumps(old).encode()])
    sink = MemorySink()
    assert run([sink]) == "empty"
    assert [set(e) for e in sink.events] == [set(old) - {"machine_id"}]


def test_temporary_files_a_killed_writer_left_are_removed(paths: _paths.Paths) -> None:
    """A state file's write cut between its temporary file and the rename leaves the
    temporary file; the next uploader removes it once it is surely nobody's."""
    record(paths, 1)
    old = os.path.join(paths.state_dir, "upload.json.0123456789abcdef.tmp")
    fresh = os.path.join(paths.state_dir, "upload.json.fedcba9876543210.tmp")
    for path in (old, fresh):
        with open(path, "w") as f:
            f.write("{")
    past = time.time() - 2 * _paths.STALE_TEMPORARY_SECONDS
    os.utime(old, (past, past))
    assert run([MemorySink()]) == "empty"
    assert not os.path.exists(old)
    assert os.path.exists(fresh)  # a writer may be about to rename it
