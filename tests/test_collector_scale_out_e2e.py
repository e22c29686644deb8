"""Two collector processes on one PostgreSQL database, as several behind a reverse proxy
run (docs/operators/deploying.md): every event stored once, forwarded once, counted once.

What races, on purpose:

- the two processes start at once on an empty database (both create the schema);
- the example tool's real detached uploaders, spread over both: two tools send to one
  process, two to the other, two alternate command by command, and two go through a front
  (`BothAtOnce`) that sends every batch to both processes at the same instant, as a
  proxy's retry racing the original would, and loses one answer in four after both stored
  the batch, so the uploader sends that batch again (to both again);
- senders that post overlapping batches (each event in two of them) to both processes at
  the same instant, while the tools run;
- one provider, forwarded to by both processes (the webhook fake, configured through their
  environment): down at first, so that a backlog builds and both forwarders lease from it
  at once when it is back, and a little slow, so that their sends overlap.

Then every batch is sent to both processes again, at once: nothing new is stored and
nothing more is owed to the provider.

Checked: each event the tools recorded or the senders sent is stored once; the provider got
each stored event exactly once (counted by event id), from both processes; the answers to
racing sends counted each event as new exactly once; the rollups and the report count each
command once. The figures go to the `figures` fixture, listed at the end of the run
(docs/operators/deploying.md points there). PostgreSQL only (CLI_TELEMETRY_TEST_POSTGRES):
several processes on one SQLite file is not a deployment the docs offer.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
import urllib3
from conftest import Tool, poll
from fake_service import Refusal, Request
from fake_webhook import FakeWebhook
from loopback import QuietServer
from test_collector_e2e import CLI, event, fresh_postgres
from test_faults_e2e import forget_backoff, spool, start_uploader

from cli_telemetry.collector import tables

TOOL_TOKEN: Final = "cli-app-write-token"
SENDER_TOKEN: Final = "acme-write-token"
WEBHOOK_SECRET: Final = "whsec-shared"
PUBLIC_HOST: Final = "telemetry.example.com"
"""The name the proxy is reached by: each process is started with ``--allowed-host``."""


# -- the two processes, and what stands in front of them ------------------------------------


class CollectorProcess:
    """``click-telemetry collector serve`` on the shared database, on a port of its own,
    configured as docs/operators/deploying.md says: the tokens and the provider from the
    environment, the public name with ``--allowed-host``. Its output goes to a file (a pipe
    nobody reads would fill and stall it)."""

    def __init__(self, name: str, db_url: str, directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = directory / f"collector-{name}.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [CLI, "collector", "serve", "--db", db_url, "--port", str(self.port),
                 "--allowed-host", PUBLIC_HOST],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **env},
            )  # fmt: skip
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(30))

    def healthy(self) -> bool:
        assert self.proc.poll() is None, f"{self.name} stopped:\n{self.output()[-3000:]}"
        try:
            return self.http.request("GET", self.url + "/healthz").status == 200
        except urllib3.exceptions.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> str:
        """Stop the process (SIGTERM: its forwarder ends its send first); what it wrote."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.http.clear()
        return self.output()


Answer = tuple[int, dict[str, Any]]


def at_once(ports: list[int], body: bytes, headers: dict[str, str]) -> list[Answer]:
    """``body`` POSTed to each collector at the same instant (connected first, then sent
    together); each one's status and answer, in the order of ``ports``."""
    barrier = threading.Barrier(len(ports))
    answers: list[Answer] = [(0, {})] * len(ports)

    def send(index: int, port: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            connection.connect()
            barrier.wait(30)
            connection.request("POST", "/v1/events", body=body, headers=headers)
            response = connection.getresponse()
            answers[index] = (response.status, json.loads(response.read() or b"null"))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=pair) for pair in enumerate(ports)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    return answers


class BothAtOnce:
    """A front that sends each batch to both processes at the same instant, with the public
    Host name, and answers with one of their answers, the other's the next time; but every
    `LOSE_EVERY`-th request it loses the answer, after both stored the batch: the uploader
    cannot know, and sends that batch again. It keeps every body and every answer."""

    LOSE_EVERY: Final = 4

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.answers: list[list[Answer]] = []
        self.lost = 0
        self._lock = threading.Lock()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                passed = ("content-type", "content-encoding", "authorization")
                headers = {k: v for k, v in self.headers.items() if k.lower() in passed}
                headers["Host"] = PUBLIC_HOST
                with front._lock:
                    front.requests.append((body, headers))
                    number = len(front.requests)
                answers = at_once(front.ports, body, headers)
                with front._lock:
                    front.answers.append(answers)
                    lose = number % front.LOSE_EVERY == 0
                    front.lost += lose
                if lose:
                    self.close_connection = True
                    return  # both stored it, and not a word said
                status, answer = answers[number % len(answers)]
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/events"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


Send = tuple[str, float, float, list[str]]
"""One batch the provider took: which process sent it (``via=a``), from, until, event ids."""


class SharedProvider(FakeWebhook):
    """The webhook fake both processes forward to; each names itself in the URL's query
    (``?via=a``), which the fake's path check ignores. Down (503) until `up` is set, and
    `LATENCY` slow, as a provider across a network is, so that sends overlap."""

    LATENCY: Final = 0.1

    def __init__(self) -> None:
        super().__init__(secret=WEBHOOK_SECRET)
        self.up = threading.Event()
        self.sends: list[Send] = []
        self._sends_lock = threading.Lock()

    def check(self, request: Request) -> list[dict[str, Any]]:
        if not self.up.is_set():
            raise Refusal(503, "down for maintenance")
        started = time.monotonic()
        time.sleep(self.LATENCY)  # the network, not synchronisation
        items = super().check(request)
        with self._sends_lock:
            ids = [item["dedup_id"] for item in items]
            self.sends.append((request.query, started, time.monotonic(), ids))
        return items

    def received(self) -> Counter[str]:
        """How many times each event id arrived."""
        return Counter(item["dedup_id"] for item in list(self.stored))

    def overlapping(self) -> int:
        """Pairs of sends, one from each process, that were in flight at the same time."""
        a = [(start, end) for via, start, end, _ in self.sends if via == "via=a"]
        b = [(start, end) for via, start, end, _ in self.sends if via == "via=b"]
        return sum(1 for s1, e1 in a for s2, e2 in b if s1 < e2 and s2 < e1)


# -- what the tools run, and what each run records ------------------------------------------

RecordedEvent = tuple[str, str]
"""(command, event) of one recorded event."""

COMMANDS: Final[list[tuple[tuple[str, ...], int, list[RecordedEvent]]]] = [
    (("hello", "--name", "Ada"), 0, [("cli-app hello", "command")]),
    (("deploy", "start", "web", "--env", "prod"), 0,
     [("cli-app deploy start", "command"), ("cli-app deploy start", "deploy.finished")]),
    (("check", "widget.txt"), 1, [("cli-app check", "command")]),
    (("deploy", "status", "--format", "json"), 0, [("cli-app deploy status", "command")]),
]  # fmt: skip
ROUTES: Final = ("a", "b", "alternate", "both") * 2
"""Where each tool's uploaders send: one process, the other, each in turn, both at once."""
RUNS: Final = 20
"""Commands each tool runs, one after another (the tools run side by side)."""
SENT_EVENTS: Final = 4000
BATCH: Final = 50
STEP: Final = 25
"""The senders' batches: ``BATCH`` events, each starting ``STEP`` after the previous one,
so that every event is in two batches, each sent to both processes at once."""
BACKLOG: Final = 2000
"""Rows owed to the provider before it comes back up."""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def uploader_options(endpoint: str) -> str:
    """The options a command of the example tool gives its uploader (`_spawn`)."""
    return json.dumps(
        {"tool": "cli-app", "env_prefix": "CLI_APP", "consent": "notice",
         "policy_version": 1, "max_events": 1000, "max_bytes": 50_000_000,
         "sinks": [{"name": "collector", "target": "cli_telemetry.sinks.http:HttpSink",
                    "options": {"endpoint": endpoint, "token": TOOL_TOKEN}}]}
    )  # fmt: skip


class Deployment:
    """The two processes (``a`` and ``b``) on one database, the provider and the front."""

    def __init__(self, db_url: str, directory: Path) -> None:
        self.db_url = db_url
        self.engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        self.provider = SharedProvider()
        self.processes: list[CollectorProcess] = []
        # The password in the environment (libpq reads PGPASSWORD), not in the arguments,
        # where ps shows it to every user, as "Deploying" says.
        address = sa.engine.make_url(db_url)
        public_url = address.set(password=None).render_as_string(hide_password=False)
        for name in ("a", "b"):  # both started before either is up: they race to create
            env = {
                "PGPASSWORD": address.password or "",
                "CLI_TELEMETRY_COLLECTOR_TOKENS": f"cli-app={TOOL_TOKEN} acme={SENDER_TOKEN}",
                "TELEMETRY_WEBHOOK_URL": f"{self.provider.endpoint}?via={name}",
                "TELEMETRY_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "CLI_TELEMETRY_FORWARD_BACKOFF": "0.1",
            }
            self.processes.append(CollectorProcess(name, public_url, directory, env))
        self.front: BothAtOnce | None = None
        try:
            for process in self.processes:
                assert poll(process.healthy, timeout=60), f"{process.name} did not start"
        except BaseException:
            self.close()
            raise
        self.front = BothAtOnce([process.port for process in self.processes])

    @property
    def ports(self) -> list[int]:
        return [process.port for process in self.processes]

    def endpoint(self, route: str, turn: int) -> str:
        a, b = (f"{process.url}/v1/events" for process in self.processes)
        assert self.front is not None
        return {"a": a, "b": b, "alternate": (a, b)[turn % 2], "both": self.front.url}[route]

    def scalar(self, query: str) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.text(query)).scalar_one())

    def close(self) -> list[str]:
        """Everything stopped (once: the test stops it to look, the fixture in any case);
        what each process wrote."""
        if self.front is not None:
            self.front.close()
            self.front = None
        outputs = [process.close() for process in self.processes]
        if self.provider.server.socket.fileno() != -1:
            self.provider.close()
        self.engine.dispose()
        return outputs


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    url = fresh_postgres()
    started = Deployment(url, tmp_path)
    yield started
    started.close()


def use(deployment: Deployment, tool: Tool, route: str, offset: int) -> Counter[RecordedEvent]:
    """``RUNS`` commands of the example tool, each as a real process that starts its real
    detached uploader (as the throttle allows) towards ``route``; what they recorded."""
    recorded: Counter[RecordedEvent] = Counter()
    for turn in range(RUNS):
        args, code, events = COMMANDS[(turn + offset) % len(COMMANDS)]
        endpoint = deployment.endpoint(route, turn)
        result = tool.run(*args, env={"CLI_APP_TELEMETRY_ENDPOINT": endpoint})
        assert result.returncode == code, result.stderr
        recorded.update(events)
    return recorded


def race_batches(deployment: Deployment, batches: list[bytes]) -> list[list[Answer]]:
    """Each batch to both processes at the same instant, four batches in flight at once."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {SENDER_TOKEN}",
        "Host": PUBLIC_HOST,
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda body: at_once(deployment.ports, body, headers), batches))


def drain(deployment: Deployment, tool: Tool, route: str) -> int:
    """Uploaders, started as the next commands would start them, until the tool's spool is
    empty (the front may lose their answers too); how many it took."""
    assert poll(tool.uploader_stopped, timeout=60)
    runs = 0
    while spool(tool).stats().pending:
        assert runs < 30, f"{tool.home}: the spool does not empty"
        forget_backoff(tool)  # and then enough time passed
        options = uploader_options(deployment.endpoint(route, runs))
        assert start_uploader(tool, options).wait(timeout=90) == 0
        runs += 1
    return runs


def test_two_collector_processes_store_forward_and_count_each_event_once(
    deployment: Deployment, tmp_path: Path, figures: dict[str, Any]
) -> None:
    started = time.monotonic()
    provider, front = deployment.provider, deployment.front
    assert front is not None
    tools = []
    for index in range(len(ROUTES)):
        home = tmp_path / f"home-{index}"
        home.mkdir()
        tool = Tool(home)
        tool.env["CLI_APP_TELEMETRY_TOKEN"] = TOOL_TOKEN
        tool.enable()
        tools.append(tool)
    installs = [str(uuid.uuid4()) for _ in range(20)]
    sent = [
        event(tool="acme", timestamp=now_iso(), install_id=installs[i % len(installs)])
        for i in range(SENT_EVENTS)
    ]
    batches = [
        json.dumps({"batch": sent[start : start + BATCH], "sent_at": now_iso()}).encode()
        for start in range(0, SENT_EVENTS - STEP, STEP)
    ]

    # The tools and the senders at once; the provider comes back once a backlog is owed.
    with ThreadPoolExecutor(max_workers=len(tools) + 1) as pool:
        uses: list[Future[Counter[RecordedEvent]]] = [
            pool.submit(use, deployment, tool, route, index)
            for index, (tool, route) in enumerate(zip(tools, ROUTES, strict=True))
        ]
        senders = pool.submit(race_batches, deployment, batches)
        owed = "select count(*) from outbox"
        assert poll(lambda: deployment.scalar(owed) >= BACKLOG, timeout=300)
        backlog = deployment.scalar(owed)
        provider.up.set()
        recorded = [use.result(timeout=600) for use in uses]
        raced = senders.result(timeout=600)
    seconds_running = time.monotonic() - started
    drain_runs = [drain(deployment, tool, route) for tool, route in zip(tools, ROUTES, strict=True)]

    tool_events = sum(sum(counts.values()) for counts in recorded)
    stored_total = tool_events + SENT_EVENTS
    assert poll(
        lambda: deployment.scalar(owed) == 0 and len(provider.stored) >= stored_total, timeout=300
    ), (deployment.scalar(owed), len(provider.stored))
    seconds_to_forward = time.monotonic() - started

    # Stored once: the senders' events, and each tool's, as its commands recorded them.
    with deployment.engine.connect() as connection:
        rows = connection.execute(
            sa.text("select event_id, tool, install_id, command, event, data from events")
        ).all()
    assert len(rows) == stored_total
    assert {r.event_id for r in rows if r.tool == "acme"} == {e["event_id"] for e in sent}
    per_install: dict[str, Counter[RecordedEvent]] = {}
    for r in rows:
        if r.tool == "cli-app":
            per_install.setdefault(r.install_id, Counter())[r.command, r.event] += 1
    assert sorted(map(sorted_items, per_install.values())) == sorted(map(sorted_items, recorded))

    # The racing answers counted each event as new exactly once, between both processes.
    assert all(status == 200 for pair in raced for status, _ in pair)
    assert sum(answer["stored"] for pair in raced for _, answer in pair) == SENT_EVENTS
    assert all(status == 200 for pair in front.answers for status, _ in pair)

    # Forwarded exactly once, by both processes.
    received = provider.received()
    assert received.keys() == {r.event_id for r in rows}
    assert set(received.values()) == {1}, received.most_common(3)
    by_process = Counter(via for via, _, _, _ in provider.sends)
    assert by_process["via=a"] > 0 and by_process["via=b"] > 0, by_process

    # The rollups and the report count each command once.
    commands = [json.loads(r.data) for r in rows if r.event == "command"]
    assert deployment.scalar("select sum(invocations) from daily_usage") == len(commands)
    uses_of_flags = sum(len(set(e["flags"])) for e in commands)
    assert deployment.scalar("select sum(uses) from daily_flags") == uses_of_flags
    assert deployment.scalar("select count(*) from daily_installs") == len(
        {(e["tool"], e["timestamp"][:10], e["install_id"]) for e in commands}
    )
    tool_commands = Counter(command for counts in recorded for (command, name) in counts.elements()
                            if name == "command")  # fmt: skip
    report = report_of(deployment, "cli-app")
    assert report["invocations"] == sum(tool_commands.values())
    assert report["installs"] == len(tools)
    assert {c["command"]: c["count"] for c in report["commands"]} == tool_commands
    acme = report_of(deployment, "acme")
    assert (acme["invocations"], acme["installs"]) == (SENT_EVENTS, len(installs))

    # Everything again, to both at once: nothing new stored, nothing more owed or sent.
    replayed = race_batches(deployment, batches)
    for body, headers in list(front.requests):
        replayed.append(at_once(deployment.ports, body, headers))
    assert all(status == 200 for pair in replayed for status, _ in pair)
    assert sum(answer["stored"] for pair in replayed for _, answer in pair) == 0
    assert deployment.scalar(owed) == 0
    assert deployment.scalar("select count(*) from events") == stored_total
    outputs = deployment.close()  # the forwarders stopped: nothing can arrive any more
    assert provider.received() == received
    for output in outputs:
        assert "Traceback" not in output and "forwarding failed" not in output, output[-3000:]

    won = Counter(
        "split" if a and b else "a" if a else "b" if b else "neither"
        for a, b in ((pair[0][1]["stored"], pair[1][1]["stored"]) for pair in raced)
    )
    figures.update(
        processes=2, tools=len(tools), command_runs=len(tools) * RUNS,
        events_recorded_by_tools=tool_events,
        tool_batches_through_the_front=len(front.requests), front_answers_lost=front.lost,
        uploader_runs_to_drain=sum(drain_runs), events_sent_by_racing_senders=SENT_EVENTS,
        racing_batches=len(batches), racing_sends=2 * len(batches),
        racing_pairs_stored_by_a=won["a"], racing_pairs_stored_by_b=won["b"],
        racing_pairs_stored_by_both=won["split"], racing_pairs_all_stored_before=won["neither"],
        replayed_sends=sum(len(pair) for pair in replayed), events_stored=len(rows),
        stored_twice=len(rows) - len({r.event_id for r in rows}),
        owed_when_the_provider_came_back=backlog,
        provider_refusals_while_down=len(provider.refused),
        provider_batches_from_a=by_process["via=a"], provider_batches_from_b=by_process["via=b"],
        provider_sends_in_flight_together=provider.overlapping(),
        events_forwarded=sum(received.values()), forwarded_twice=sum(
            1 for n in received.values() if n > 1),
        report_invocations=report["invocations"] + acme["invocations"],
        seconds_running=round(seconds_running, 1),
        seconds_until_all_forwarded=round(seconds_to_forward, 1),
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip


def sorted_items(counts: Counter[RecordedEvent]) -> list[tuple[RecordedEvent, int]]:
    return sorted(counts.items())


def report_of(deployment: Deployment, tool: str) -> dict[str, Any]:
    result = subprocess.run(
        [CLI, "report", "--db", deployment.db_url, "--since", "2d", "--tool", tool, "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_processes_starting_at_once_on_a_new_database_create_its_tables_once() -> None:
    """Four processes' first connections, at the same instant, on an empty database: each
    finds the tables made (before, all but one failed: pg_type_typname_nsp_index)."""
    url = fresh_postgres().replace("postgresql://", "postgresql+psycopg://")
    for attempt in range(5):
        engines = [sa.create_engine(url) for _ in range(4)]
        try:
            tables.metadata.drop_all(engines[0])
            assert create_at_once(engines) == [], attempt
            names = sa.inspect(engines[0]).get_table_names()
            assert set(names) >= set(tables.metadata.tables)
        finally:
            for engine in engines:
                engine.dispose()


def create_at_once(engines: list[sa.Engine]) -> list[str]:
    """`tables.create` on each engine, in threads let go at the same instant; the errors."""
    barrier = threading.Barrier(len(engines))
    failures: list[str] = []

    def create(engine: sa.Engine) -> None:
        barrier.wait(30)
        try:
            tables.create(engine)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:300])

    threads = [threading.Thread(target=create, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return failures
