"""The uploader's logic, in process, with in-memory sinks and a real spool in a tmp HOME.
(tests/test_delivery_e2e.py runs the real detached process against a real server.)"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from cli_telemetry import _paths, _uploader
from cli_telemetry._spawn import UploaderOptions
from cli_telemetry.sinks import Delivery, MemorySink
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
    "endpoint": "http://unused", "token": None, "max_events": 1000, "max_bytes": 2_000_000,
}  # fmt: skip


def record(paths: _paths.Paths, count: int) -> list[str]:
    ids = [f"id-{i}" for i in range(count)]
    Spool(paths.spool_dir).append([json.dumps({"event_id": i}).encode() for i in ids])
    return ids


def run(sinks: Sequence[Any], seconds: float = 10) -> str:
    return _uploader.run(OPTIONS, sinks, deadline=time.monotonic() + seconds)


def state(paths: _paths.Paths) -> dict[str, Any]:
    return _uploader.read_state(paths.upload_state)


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
    assert run([sink]) == "empty"
    assert len(sink.events) == 3


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
    result = _uploader.deliver([Broken(), good], [{"event_id": "1"}], time.monotonic() + 5)
    assert (result.outcome, result.error) == ("retry", "sink_error:RuntimeError")
    assert good.events == [{"event_id": "1"}]


def test_backoff_grows_with_jitter_up_to_a_cap_and_honours_retry_after() -> None:
    rng = random.Random(1)
    for failures in range(1, 20):
        base = min(_uploader.BACKOFF_CAP, _uploader.BACKOFF_BASE * 2 ** (failures - 1))
        delay = _uploader.backoff(failures, None, rng)
        assert 0.5 * base <= delay <= 1.5 * base
    assert _uploader.backoff(1, 3600, rng) >= 3600
    assert _uploader.backoff(1, 10**9, rng) <= _uploader.RETRY_AFTER_CAP * 1.0 + 1


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
        monkeypatch.setenv(OPTIONS_VARIABLE, json.dumps({**OPTIONS, "endpoint": server.url}))
        assert _uploader.main() == 0
        assert OPTIONS_VARIABLE not in os.environ  # not passed on to anything it starts
        assert [e["event_id"] for e in server.events] == ids
    finally:
        server.close()
