"""The fault suite: crashes and failures on every side, each tried many times, each with its
figures (written to ``$TMPDIR/cli-telemetry-figures/`` and listed at the end of the run;
docs/delivery/reliability.md says what they count).

- the uploader killed (SIGKILL) at random points, hundreds of times, against a real
  collector: no event lost, none stored twice;
- hundreds of concurrent invocations of the example tool against a collector behind a
  flaky front (503s, and answers lost after the events were stored): exactly as many
  stored;
- writes failing for want of space (EFBIG under RLIMIT_FSIZE, ENOSPC on a full tmpfs):
  the tool's output and exit code are those of the tool without telemetry, and nothing
  corrupt is left in the spool;
- the collector killed (SIGKILL) in the middle of batches: each batch stored whole or not
  at all, and everything sent again until it has arrived.

Every process is real: the example tool, its detached uploader (started as the tool starts
it, ``python -m cli_telemetry._uploader`` with its options in the environment, where a test
needs to start one itself, as the next command would), ``click-telemetry collector serve`` on
SQLite. Where a test fast-forwards a backoff (`forget_backoff`) it is saying "and then
enough time passed".
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import urllib3
from conftest import Tool, poll
from loopback import QuietServer

from cli_telemetry._spawn import OPTIONS_VARIABLE
from cli_telemetry.events import InvalidEvent, check_event
from cli_telemetry.sinks.http import HttpSink
from cli_telemetry.spool import Spool

pytestmark = pytest.mark.faults

CLI = os.path.join(os.path.dirname(sys.executable), "click-telemetry")
BASELINE = str(Path(__file__).resolve().parent.parent / "bench" / "baseline")


# -- the collector, as a process that can be killed and started again ---------------------


class CollectorProcess:
    """``click-telemetry collector serve`` on a SQLite file, on one port across restarts.
    Its output goes to a file (a pipe nobody reads would fill and stall it)."""

    def __init__(self, directory: Path) -> None:
        self.db = directory / "collector.sqlite3"
        self.log = directory / "collector.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/events"
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(5))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [CLI, "collector", "serve", "--db", f"sqlite:///{self.db}",
                 "--port", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        assert poll(self._healthy, timeout=60), self.log.read_text()[-2000:]

    def _healthy(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-2000:]
        try:
            return (
                self.http.request("GET", self.url.replace("/v1/events", "/healthz")).status == 200
            )
        except urllib3.exceptions.HTTPError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no last commit, no goodbye."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None
        self.http.clear()

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the database directly (the collector running or not)."""
        connection = sqlite3.connect(self.db, timeout=30)
        try:
            return connection.execute(sql, parameters).fetchall()
        finally:
            connection.close()

    def stored(self) -> int:
        return int(self.query("select count(*) from events")[0][0])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[CollectorProcess]:
    server = CollectorProcess(tmp_path)
    yield server
    server.close()


def duplicates_and_rollups(collector: CollectorProcess) -> dict[str, int]:
    """What "stored twice" would look like: rows sharing an event_id, or command events the
    report's per-day counts hold more (or fewer) times than the events table."""
    rows, distinct = collector.query("select count(*), count(distinct event_id) from events")[0]
    commands = collector.query("select count(*) from events where event = 'command'")[0][0]
    counted = collector.query("select coalesce(sum(invocations), 0) from daily_usage")[0][0]
    return {
        "rows": rows,
        "distinct_event_ids": distinct,
        "stored_twice": rows - distinct,
        "command_events": commands,
        "report_invocations": counted,
    }


# -- the uploader, started as the tool starts it -------------------------------------------


def uploader_options(endpoint: str, *, max_events: int = 1000) -> str:
    return json.dumps(
        {"tool": "cli-app", "env_prefix": "CLI_APP", "consent": "notice",
         "policy_version": 1, "max_events": max_events, "max_bytes": 50_000_000,
         "sinks": [{"name": "collector", "target": "cli_telemetry.sinks.http:HttpSink",
                    "options": {"endpoint": endpoint, "token": None}}]}
    )  # fmt: skip


def start_uploader(tool: Tool, options: str, batch_events: int = 100) -> subprocess.Popen[bytes]:
    """The uploader as `_spawn` starts it (``python -P``, the options in the environment,
    stdio on /dev/null), with ``batch_events`` per batch: smaller batches put more batch
    boundaries, and so more kill points, in each run."""
    code = f"from cli_telemetry import _uploader as u; u.BATCH_EVENTS = {batch_events}; u.main()"
    return subprocess.Popen(
        [sys.executable, "-P", "-c", code],
        env={**tool.env, OPTIONS_VARIABLE: options},
        cwd=tool.home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def forget_backoff(tool: Tool) -> None:
    """As if every backoff had run its course (``upload.json`` and the spawn stamp)."""
    state = tool.upload_state()
    if state:
        for sink in state.get("sinks", {}).values():
            sink["retry_at_epoch"] = 0
        (tool.state_dir / "upload.json").write_text(json.dumps(state))
    stamp = tool.state_dir / "uploader.stamp"
    if stamp.exists():
        os.utime(stamp, (time.time() - 60, time.time() - 60))


def spool(tool: Tool, max_events: int = 1000) -> Spool:
    return Spool(str(tool.spool_dir), max_events=max_events, max_bytes=50_000_000)


def like(template: dict[str, Any], count: int, **fields: Any) -> list[dict[str, Any]]:
    """``count`` copies of an event the tool recorded, each with an event_id of its own."""
    return [{**template, **fields, "event_id": str(uuid.uuid4())} for _ in range(count)]


def recorded_event(tool: Tool) -> dict[str, Any]:
    """One event as the example tool records it (nothing uploaded)."""
    before = {path.name for path in tool.event_files()}
    assert tool.run("hello", env={"CLI_APP_TELEMETRY_ENDPOINT": ""}).returncode == 0
    [new] = [path for path in tool.event_files() if path.name not in before]
    event: dict[str, Any] = json.loads(new.read_text())
    return event


def claimed_ids(tool: Tool) -> set[str]:
    claimed = tool.spool_dir / "claimed"
    return {
        json.loads(path.read_text())["event_id"]
        for path in (claimed.glob("*/*.json") if claimed.is_dir() else [])
    }


# -- 1. the uploader killed at random points -----------------------------------------------

KILLS = 200


def test_uploader_killed_at_random_points_loses_nothing_and_stores_nothing_twice(
    tool: Tool, collector: CollectorProcess, figures: dict[str, Any]
) -> None:
    """Each round tops the spool up, starts an uploader (5 events a batch) and kills it with
    SIGKILL after a random delay: starting up, waiting for the lock, claiming, sending,
    between the collector's answer and the acknowledgement, settling. Then uploaders run
    undisturbed until the spool is empty: every event recorded is stored once, unchanged."""
    started = time.monotonic()
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    tool.enable()
    template = recorded_event(tool)
    recorded = {template["event_id"]: template}
    options = uploader_options(collector.url)
    points = {"before_the_lock": 0, "holding_the_lock": 0, "a_batch_claimed": 0,
              "a_batch_stored_not_acknowledged": 0}  # fmt: skip
    for _ in range(KILLS):
        if spool(tool).stats().pending < 150:  # a backlog: each run has batches to send
            fresh = like(template, 100)
            spool(tool).append([json.dumps(event).encode() for event in fresh])
            recorded.update((event["event_id"], event) for event in fresh)
        forget_backoff(tool)
        uploader = start_uploader(tool, options, batch_events=5)
        try:
            uploader.wait(timeout=rng.uniform(0.0, 0.5))
        except subprocess.TimeoutExpired:
            pass  # alive at the chosen moment, as intended
        uploader.kill()
        uploader.wait(timeout=30)
        pid_file = tool.state_dir / "uploader.pid"
        held = pid_file.exists() and pid_file.read_text() == str(uploader.pid)
        points["holding_the_lock" if held else "before_the_lock"] += 1
        in_flight = claimed_ids(tool)
        if in_flight:
            points["a_batch_claimed"] += 1
            marks = ",".join("?" * len(in_flight))
            query = f"select event_id from events where event_id in ({marks})"  # noqa: S608
            stored = {row[0] for row in collector.query(query, tuple(in_flight))}
            points["a_batch_stored_not_acknowledged"] += stored == in_flight
    kills_done = time.monotonic() - started
    runs = 0
    while spool(tool).stats().pending:
        assert runs < 50, "the spool does not empty"
        forget_backoff(tool)
        assert start_uploader(tool, options).wait(timeout=60) == 0
        runs += 1
    stored_events = {
        event_id: json.loads(data)
        for event_id, data in collector.query("select event_id, data from events")
    }
    counts = duplicates_and_rollups(collector)
    stats = spool(tool).stats()
    strays = sorted(p.name for p in tool.state_dir.rglob("*.tmp"))
    figures.update(
        seed=seed, kills=KILLS, **points, events_recorded=len(recorded),
        events_stored=len(stored_events), lost=len(recorded.keys() - stored_events.keys()),
        unknown_stored=len(stored_events.keys() - recorded.keys()), **counts,
        changed=sum(stored_events.get(k) != v for k, v in recorded.items()),
        spool_corrupt=stats.corrupt, spool_rejected=stats.rejected, spool_dropped=stats.dropped,
        stray_temp_files=len(strays), runs_to_drain=runs,
        seconds_killing=round(kills_done, 1), seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert stored_events.keys() == recorded.keys()
    assert counts["stored_twice"] == 0
    assert counts["report_invocations"] == counts["command_events"] == len(recorded)
    assert figures["changed"] == 0
    assert (stats.pending, stats.corrupt, stats.rejected, stats.dropped) == (0, 0, 0, 0)
    assert points["a_batch_stored_not_acknowledged"] > 0, "no kill hit the window that matters"


# -- 2. concurrent invocations against a flaky collector -----------------------------------


class FlakyFront:
    """A front for the collector that fails on purpose, counting what it did: one request
    in three (every 3rd) gets a 503 and goes no further; one in six (every 4th that is not
    a 3rd) is stored by the collector but its answer is lost (the connection closes
    without one: the sender cannot know its events arrived, and must send them again).
    The others pass both ways."""

    def __init__(self, target_port: int) -> None:
        self.counts = {"requests": 0, "refused_503": 0, "answers_lost": 0, "passed": 0}
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with front._lock:
                    front.counts["requests"] += 1
                    number = front.counts["requests"]
                if number % 3 == 0:
                    front._count("refused_503")
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                connection = http.client.HTTPConnection("127.0.0.1", target_port, timeout=30)
                try:
                    connection.request(
                        "POST", self.path, body=body,
                        headers={k: v for k, v in self.headers.items()
                                 if k.lower() in ("content-type", "content-encoding")},
                    )  # fmt: skip
                    answer = connection.getresponse()
                    status, data = answer.status, answer.read()
                finally:
                    connection.close()
                if number % 4 == 0:
                    front._count("answers_lost")
                    self.close_connection = True
                    return  # stored, and not a word said
                front._count("passed")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def _count(self, what: str) -> None:
        with self._lock:
            self.counts[what] += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


INVOCATIONS = 200


def test_concurrent_invocations_against_a_flaky_collector_store_each_event_once(
    tool: Tool, collector: CollectorProcess, figures: dict[str, Any]
) -> None:
    """200 runs of the example tool at once, their uploaders (the ones they start, then
    the next ones, with batches of 10) against a collector behind `FlakyFront`: each
    run's output is untouched, and exactly 200 events are stored."""
    started = time.monotonic()
    front = FlakyFront(collector.port)
    try:
        tool.enable()
        tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = front.url

        def invoke(i: int) -> subprocess.Popen[str]:
            return subprocess.Popen(
                tool.command("hello", "--name", str(i)), env=tool.env, cwd=tool.home,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip

        procs = [invoke(i) for i in range(INVOCATIONS)]
        outputs = [proc.communicate(timeout=600) for proc in procs]
        invoked = time.monotonic() - started
        assert poll(tool.uploader_stopped, timeout=60)
        by_their_uploaders = collector.stored()
        assert [proc.returncode for proc in procs] == [0] * INVOCATIONS
        assert sorted(out for out, _ in outputs) == sorted(
            f"Hello, {i}!\n" for i in range(INVOCATIONS)
        )
        assert [err for _, err in outputs] == [""] * INVOCATIONS
        rounds = 0  # uploaders started as the next commands would start them
        while collector.stored() < INVOCATIONS or spool(tool).stats().pending:
            assert rounds < 100, f"stuck at {collector.stored()} stored"
            assert poll(tool.uploader_stopped, timeout=60)
            forget_backoff(tool)
            start_uploader(tool, uploader_options(front.url), batch_events=10).wait(timeout=60)
            rounds += 1
        counts = duplicates_and_rollups(collector)
        stats = spool(tool).stats()
        figures.update(
            invocations=INVOCATIONS, outputs_untouched=INVOCATIONS,
            **{f"front_{k}": v for k, v in front.counts.items()},
            stored_by_the_uploaders_they_started=by_their_uploaders,
            later_uploader_runs=rounds, events_stored=collector.stored(), **counts,
            installs=collector.query("select count(distinct install_id) from events")[0][0],
            spool_rejected=stats.rejected, spool_dropped=stats.dropped,
            seconds_invoking=round(invoked, 1), seconds=round(time.monotonic() - started, 1),
        )  # fmt: skip
        assert counts["rows"] == counts["distinct_event_ids"] == INVOCATIONS
        assert counts["report_invocations"] == INVOCATIONS
        assert figures["installs"] == 1
        assert (stats.rejected, stats.dropped, stats.corrupt) == (0, 0, 0)
        assert front.counts["refused_503"] > 0 and front.counts["answers_lost"] > 0
    finally:
        front.close()


# -- 3. no space left -----------------------------------------------------------------------

DISK_COMMANDS: list[list[str]] = [
    ["hello", "--name", "Ada"],
    ["deploy", "start", "web", "--env", "prod", "--replicas", "2"],  # two events
    ["check", "widget.txt"],  # an error
    ["crash"],  # a traceback
    ["deploy", "start", "web", "--bogus"],  # a usage error
]


@pytest.fixture(scope="module")
def without_telemetry(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str, str]]:
    """Each of DISK_COMMANDS run by the tool without telemetry (bench/baseline first on
    PYTHONPATH: a do-nothing stand-in for cli_telemetry)."""
    home = tmp_path_factory.mktemp("baseline") / "home"
    home.mkdir()
    tool = Tool(home)
    results = []
    for args in DISK_COMMANDS:
        result = tool.run(*args, env={"PYTHONPATH": BASELINE})
        assert "cli_telemetry" not in result.stderr
        results.append((result.returncode, result.stdout, result.stderr))
    return results


def integrity(state: Path) -> dict[str, Any]:
    """What a failed write may have left under a tool's state directory ``state``: every
    event file (waiting or claimed) must hold a whole event of the schema, every JSON file
    must parse, and no temp file may be left."""
    spool_dir = state / "spool"
    events, broken = [], []
    for path in [*spool_dir.glob("new/*"), *spool_dir.glob("claimed/*/*")]:
        try:
            event = json.loads(path.read_bytes())
            check_event(event)
            events.append(event["event_id"])
        except (ValueError, InvalidEvent, KeyError, TypeError):
            broken.append(path.name)
    unreadable = []
    for path in [spool_dir / "stats.json", spool_dir / "delivered.json", state / "upload.json"]:
        try:
            json.loads(path.read_bytes())
        except FileNotFoundError:
            pass
        except ValueError:
            unreadable.append(path.name)
    leftovers = [p.name for p in spool_dir.glob("tmp/*")] + [p.name for p in state.rglob("*.tmp")]
    return {"events": events, "broken": broken, "unreadable": unreadable, "leftovers": leftovers}


NAMESPACE_DRIVER = """
import fcntl, json, os, shutil, subprocess, sys, time
state_root, pages, out, commands, env = sys.argv[1], int(sys.argv[2]), sys.argv[3], \\
    json.loads(sys.argv[4]), json.loads(sys.argv[5])
before = state_root + ".before"
shutil.copytree(state_root, before, symlinks=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", state_root],
               check=True)
shutil.copytree(before, state_root, symlinks=True, dirs_exist_ok=True)
filler = os.path.join(state_root, "filler")
fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
size = 0
try:  # fill the file system, then give back `pages` pages
    while True:
        size += os.write(fd, b"x" * 4096)
except OSError:
    pass
os.ftruncate(fd, max(0, size - pages * 4096) // 4096 * 4096)
os.close(fd)
results = []
for args in commands:
    r = subprocess.run([sys.executable, "-m", "cli_app", *args], env=env, cwd=env["HOME"],
                       input="", capture_output=True, text=True, timeout=120)
    results.append((r.returncode, r.stdout, r.stderr))
lock = os.path.join(state_root, "cli-app", "telemetry", "uploader.lock")
deadline = time.monotonic() + 60
while os.path.exists(lock) and time.monotonic() < deadline:  # the uploader they started
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            time.sleep(0.05)
os.remove(filler)
shutil.copytree(state_root, out, symlinks=True)
print(json.dumps(results))
"""


def unshare_works() -> bool:
    try:
        return (
            subprocess.run(
                ["unshare", "--user", "--map-root-user", "--mount", "true"],
                capture_output=True, timeout=30, check=False,
            ).returncode == 0
        )  # fmt: skip
    except OSError:
        return False


@pytest.mark.parametrize(
    "fault",
    ["efbig-0", "efbig-60", "efbig-200", "efbig-450", "efbig-600", "enospc-0", "enospc-1",
     "enospc-2", "enospc-4"],
)  # fmt: skip
def test_a_full_disk_changes_nothing_the_user_sees_and_leaves_nothing_corrupt(
    tool: Tool,
    collector: CollectorProcess,
    tmp_path: Path,
    fault: str,
    without_telemetry: list[tuple[int, str, str]],
    figures: dict[str, Any],
) -> None:
    """Three events wait; then five commands (a success, one with a custom event, an
    error, a traceback, a usage error) run while writing fails, and so does the uploader
    they start. ``efbig-N``: no file may grow past N bytes (RLIMIT_FSIZE, inherited by the
    uploader), so writes fail with EFBIG wherever they cross the limit, halfway through a
    file too (the ids file is 50 bytes, upload.json 140 to 300, an event 400 to 500).
    ``enospc-N``: the state directory is a tmpfs with N pages free (ENOSPC; in a mount
    namespace of its own). The output and exit codes are the tool's without telemetry;
    every event file left is whole, every state file readable, no temp file is left; once
    there is space again every event left is delivered, and stored once."""
    started = time.monotonic()
    kind, amount = fault.split("-")
    tool.enable()
    for _ in range(3):  # waiting when the disk fills: the uploader has work
        assert tool.run("hello", env={"CLI_APP_TELEMETRY_ENDPOINT": ""}).returncode == 0
    waiting = {event["event_id"] for event in tool.events()}
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = collector.url
    state_root = tool.home / ".local" / "state"
    if kind == "efbig":

        def no_space() -> None:
            # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG.
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (int(amount), int(amount)))

        results = []
        for args in DISK_COMMANDS:
            result = subprocess.run(
                tool.command(*args), env=tool.env, input="", capture_output=True,
                text=True, timeout=120, check=False, cwd=tool.home, preexec_fn=no_space,
            )  # fmt: skip
            results.append((result.returncode, result.stdout, result.stderr))
        assert poll(tool.uploader_stopped, timeout=60)
    else:
        if not unshare_works():
            pytest.skip("no user and mount namespaces here (unshare -rm): no tmpfs to fill")
        driver = tmp_path / "driver.py"
        driver.write_text(NAMESPACE_DRIVER)
        out = tmp_path / "state-after"
        run = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", sys.executable, str(driver),
             str(state_root), amount, str(out), json.dumps(DISK_COMMANDS),
             json.dumps(tool.env)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        results = [tuple(r) for r in json.loads(run.stdout)]
        if state_root.exists():
            subprocess.run(["rm", "-rf", str(state_root)], check=True)
        out.rename(state_root)  # the tmpfs went with its namespace: here is its copy
    for args, got, expected in zip(DISK_COMMANDS, results, without_telemetry, strict=True):
        assert got == expected, args
    left = integrity(tool.state_dir)
    stored_while_full = {row[0] for row in collector.query("select event_id from events")}
    # Space again: the next uploader delivers every event that was written.
    forget_backoff(tool)
    assert start_uploader(tool, uploader_options(collector.url)).wait(timeout=60) == 0
    stored = {row[0] for row in collector.query("select event_id from events")}
    counts = duplicates_and_rollups(collector)
    figures.update(
        commands=len(DISK_COMMANDS), outputs_as_without_telemetry=len(DISK_COMMANDS),
        waiting_before=len(waiting),
        events_written=len((stored_while_full | set(left["events"])) - waiting),
        stored_while_full=len(stored_while_full),
        stored_but_not_acknowledged=len(stored_while_full & set(left["events"])),
        broken_event_files=len(left["broken"]), unreadable_state_files=len(left["unreadable"]),
        leftover_temp_files=len(left["leftovers"]),
        stored_with_space_again=len(stored - stored_while_full),
        stored_twice=counts["stored_twice"], seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert (left["broken"], left["unreadable"], left["leftovers"]) == ([], [], [])
    assert waiting <= set(left["events"]) | stored_while_full  # none lost to a failed write
    assert set(left["events"]) <= stored
    assert counts["stored_twice"] == 0
    assert spool(tool).stats().pending == 0


# -- 4. the collector killed in the middle of batches --------------------------------------

COLLECTOR_KILLS = 15
GROUP = 20  # events per uploader batch, each batch its own install_id
SENT_SIZE = 50  # events per batch of our own


def test_a_collector_killed_mid_batch_stores_each_batch_whole_or_not_at_all(
    tool: Tool, collector: CollectorProcess, figures: dict[str, Any]
) -> None:
    """While uploaders send batches of 20 (one run after another, as commands start them)
    and two senders of ours send batches of 50 through the same HTTP sink (so the
    collector's group commit holds several batches at once), the collector is killed with
    SIGKILL 15 times, each at a random moment after it has stored something again, and
    started again. Right after each kill, each
    batch's rows are counted in the database: all or none. Then the work stops growing,
    and everything is sent again until it has arrived: each batch is there whole, once.

    The uploader's batches are known because its spool holds nothing else: it claims the
    oldest 20 events each time, and they are appended 20 at a time (between runs), each 20
    with an install_id of their own. A batch that fails is put back and claimed again
    whole."""
    started = time.monotonic()
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    tool.enable()
    template = recorded_event(tool)
    for path in tool.event_files():  # only the groups: the batches line up with them
        path.unlink()
    groups: dict[str, int] = {}  # install_id -> events: one per batch
    options = uploader_options(collector.url)
    killing = threading.Event()
    killing.set()
    stop = threading.Event()
    runs = {"uploader_runs": 0, "uploader_runs_that_failed": 0, "our_sends": 0,
            "our_sends_that_failed": 0}  # fmt: skip

    def uploaders() -> None:
        while not stop.is_set():
            if killing.is_set() and spool(tool).stats().pending < 5 * GROUP:
                for _ in range(5):
                    install_id = str(uuid.uuid4())
                    batch = like(template, GROUP, install_id=install_id)
                    spool(tool).append([json.dumps(event).encode() for event in batch])
                    groups[install_id] = GROUP
            elif not spool(tool).stats().pending:
                return
            forget_backoff(tool)
            start_uploader(tool, options, batch_events=GROUP).wait(timeout=120)
            runs["uploader_runs"] += 1
            runs["uploader_runs_that_failed"] += bool(tool.upload_state().get("failures"))

    def sender() -> None:
        sink = HttpSink(collector.url)
        while killing.is_set() and not stop.is_set():
            batch = like(template, SENT_SIZE, install_id=str(uuid.uuid4()))
            groups[batch[0]["install_id"]] = SENT_SIZE
            while not stop.is_set():
                runs["our_sends"] += 1
                if sink.send(batch, time.monotonic() + 10).outcome == "delivered":
                    break
                runs["our_sends_that_failed"] += 1
                stop.wait(0.05)  # the collector is down: knock again shortly
        sink.close()

    def partial_batches() -> list[tuple[str, int]]:
        rows = collector.query("select install_id, count(*) from events group by install_id")
        return [(install_id, n) for install_id, n in rows if n != groups.get(install_id)]

    threads = [threading.Thread(target=work) for work in (uploaders, sender, sender)]
    for thread in threads:
        thread.start()
    checks, rows_at_kills = 0, []
    try:
        for _ in range(COLLECTOR_KILLS):
            before = collector.stored()  # kill only while batches are arriving
            assert poll(lambda: collector.stored() > before, timeout=60)  # noqa: B023
            stop.wait(rng.uniform(0.0, 0.6))
            collector.kill()
            assert partial_batches() == []
            checks += len(groups)
            rows_at_kills.append(collector.stored())
            collector.start()
        killing.clear()  # no new work: what was made must now arrive
        seconds_killing = time.monotonic() - started
        for thread in threads:
            thread.join(timeout=300)
            assert not thread.is_alive(), "not everything arrived"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    counts = duplicates_and_rollups(collector)
    stored_batches = collector.query("select install_id, count(*) from events group by install_id")
    figures.update(
        seed=seed, collector_kills=COLLECTOR_KILLS, batches=len(groups),
        events=sum(groups.values()), rows_at_each_kill=rows_at_kills,
        batch_checks_after_kills=checks, partial_batches=0, **runs,
        stored_batches=len(stored_batches), **counts,
        seconds_killing=round(seconds_killing, 1), seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    assert dict(stored_batches) == groups
    assert counts["rows"] == counts["distinct_event_ids"] == sum(groups.values())
    assert counts["report_invocations"] == counts["command_events"] == sum(groups.values())
    assert spool(tool).stats().pending == 0
    assert rows_at_kills == sorted(set(rows_at_kills)), "a kill found nothing new stored"
