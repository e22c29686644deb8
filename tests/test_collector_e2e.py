"""The collector as a real server process on 127.0.0.1, with a real database: every test
runs against SQLite and against PostgreSQL (started by scripts/postgres.sh, which .ci/run
runs through dev.py; the PostgreSQL half skips, saying why, only where none could start)."""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import urllib3
from conftest import Tool, poll, script_tool

from cli_telemetry.events import FIELD_RULES

CLI = os.path.join(os.path.dirname(sys.executable), "click-telemetry")


class Collector:
    def __init__(
        self, db_url: str, extra: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.db_url = db_url
        self.engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [CLI, "collector", "serve", "--db", db_url, "--port", str(self.port), *(extra or [])],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(10))
        assert poll(self._healthy, timeout=30), "the collector did not start"

    def _healthy(self) -> bool:
        try:
            return self.http.request("GET", self.url + "/healthz").status == 200
        except urllib3.exceptions.HTTPError:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            return False

    def get(self, path: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
        return self.http.request("GET", self.url + path, headers=headers)

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = self.http.request(
            "POST", self.url + "/v1/events", body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        return response.status, json.loads(response.data or b"null")

    def send(self, batch: list[dict[str, Any]]) -> tuple[int, Any]:
        return self.post(
            json.dumps({"batch": batch, "sent_at": "2026-11-23T12:00:00.000Z"}).encode()
        )

    def count(self, table: str = "events") -> int:
        with self.engine.connect() as connection:
            query = sa.select(sa.func.count()).select_from(sa.table(table))
            return int(connection.execute(query).scalar_one())

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(query))]

    def close(self) -> str:
        """Stop the server; what it wrote on stderr."""
        self.engine.dispose()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        stderr = ""
        if self.proc.stderr:
            stderr = self.proc.stderr.read().decode(errors="replace")
            self.proc.stderr.close()
        self.http.clear()
        return stderr


def fresh_postgres() -> str:
    url = os.environ.get("CLI_TELEMETRY_TEST_POSTGRES")
    if not url:
        pytest.skip(
            "no PostgreSQL: CLI_TELEMETRY_TEST_POSTGRES is unset (python3 dev.py test sets it"
            " when scripts/postgres.sh can start a server)"
        )
    from cli_telemetry.collector import storage

    engine = storage.connect(url)
    storage.metadata.drop_all(engine)  # each test starts from an empty database
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def collector(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Collector]:
    url = (
        f"sqlite:///{tmp_path / 'collector.sqlite3'}"
        if request.param == "sqlite"
        else fresh_postgres()
    )
    server = Collector(url)
    yield server
    server.close()


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "event": "command",
        "timestamp": "2026-11-23T12:00:00.123Z", "tool": "acme", "tool_version": "1.4.0",
        "install_id": str(uuid.uuid4()), "command": "acme deploy start",
        "flags": ["--env", "--dry-run"], "values": {"--env": "prod", "--dry-run": True},
        "exit_code": 0, "outcome": "success", "error_type": None, "duration_ms": 12,
        "os": "linux", "os_version": "6.1.0", "arch": "x86_64", "python_version": "3.11.7",
        "ci": None, "interactive": False,
    }  # fmt: skip
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def custom(**changes: Any) -> dict[str, Any]:
    command_only = ("flags", "values", "exit_code", "outcome", "error_type", "duration_ms")
    base = event(
        event="deploy.finished", properties={"targets": 3}, **dict.fromkeys(command_only, ...)
    )
    base.update(changes)
    return base


def answer(
    stored: int,
    duplicates: int = 0,
    rejected: list[dict[str, Any]] | None = None,
    forgotten: int = 0,
) -> dict[str, Any]:
    """The collector's answer to a well-formed batch."""
    return {
        "accepted": stored + duplicates + forgotten,
        "stored": stored,
        "duplicates": duplicates,
        "forgotten": forgotten,
        "rejected": rejected or [],
    }


def test_a_batch_is_stored_and_a_resend_is_not_stored_twice(collector: Collector) -> None:
    batch = [event(), custom()]
    assert collector.send(batch) == (200, answer(stored=2))
    assert collector.send(batch) == (200, answer(stored=0, duplicates=2))
    assert collector.count() == 2


def test_event_ids_of_earlier_clients_and_of_this_one_are_both_accepted(
    collector: Collector,
) -> None:
    """Clients of earlier releases made random ids (UUID4), this one makes time-ordered
    ones (UUIDv7, `_ids.new_event_id`): both are stored, and a resend of either is not."""
    from cli_telemetry._ids import new_event_id

    batch = [event(event_id=str(uuid.uuid4())), event(event_id=new_event_id()), custom()]
    batch[2]["event_id"] = new_event_id()
    assert collector.send(batch) == (200, answer(stored=3))
    assert collector.send(batch) == (200, answer(stored=0, duplicates=3))
    stored = {event_id for (event_id,) in collector.rows("select event_id from events")}
    assert stored == {e["event_id"] for e in batch}
    assert sorted(uuid.UUID(e).version or 0 for e in stored) == [4, 7, 7]


def test_gzip_bodies(collector: Collector) -> None:
    body = gzip.compress(json.dumps({"batch": [event()]}).encode())
    assert collector.post(body, {"Content-Encoding": "gzip"}) == (200, answer(stored=1))


BAD_VALUES: dict[str, Any] = {
    "schema_version": 2, "event_id": "not-a-uuid", "event": "Has Spaces",
    "timestamp": "yesterday", "tool": "Acme!", "tool_version": "1\n2",
    "install_id": "/home/alice", "command": "acme /home/alice x y",
    "flags": ["--env=prod"], "values": {"--env": {"nested": 1}}, "exit_code": "0",
    "outcome": "fine", "error_type": "Error: /home/alice", "duration_ms": -1, "os": "Linux 6",
    "os_version": "6.1.0-custom-alice", "arch": "x86 64", "python_version": "3.11",
    "ci": "GitHub Actions", "interactive": "yes", "properties": {"k": ["list"]},
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(FIELD_RULES))
def test_each_invalid_field_is_named_and_its_neighbours_are_stored(
    collector: Collector, field: str
) -> None:
    bad = (custom if field == "properties" else event)(**{field: BAD_VALUES[field]})
    status, body = collector.send([event(), bad, custom()])
    assert status == 200
    assert (body["accepted"], body["stored"]) == (2, 2)
    [rejection] = body["rejected"]
    assert (rejection["index"], rejection["field"]) == (1, field)
    assert isinstance(rejection["error"], str) and rejection["error"]
    assert collector.count() == 2  # the valid events beside it were stored
    assert collector.rows("select sum(invocations) from daily_usage") == [(1,)]


@pytest.mark.parametrize(
    ("batch", "field"),
    [
        ([event(hostname="alice-laptop")], "hostname"),
        ([event(properties={"a": 1})], "properties"),
        ([custom(flags=["--x"])], "flags"),
        ([event(outcome=...)], "outcome"),
        ([{"not": "an event"}], "event"),
        (["text"], ""),
    ],
)
def test_unknown_missing_and_misplaced_fields(
    collector: Collector, batch: list[Any], field: str
) -> None:
    status, body = collector.send(batch)
    assert status == 200
    assert (body["accepted"], body["rejected"][0]["field"]) == (0, field)
    assert collector.count() == 0


def test_a_body_that_is_not_a_batch_is_refused_whole(collector: Collector) -> None:
    status, body = collector.send([])
    assert (status, body["field"]) == (400, "batch")


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {}, 400),
        (b"[1, 2]", {}, 400),
        (b'{"batch": [], "extra": 1}', {}, 400),
        (b"{}", {"Content-Type": "text/plain"}, 415),
        (b"{}", {"Content-Encoding": "br"}, 415),
        (b"not gzip at all", {"Content-Encoding": "gzip"}, 400),
        (gzip.compress(b"{}")[:-8], {"Content-Encoding": "gzip"}, 400),
        (b" " * (9 * 1024 * 1024), {}, 413),
        (gzip.compress(b" " * (64 * 1024 * 1024)), {"Content-Encoding": "gzip"}, 413),
    ],
    ids=[
        "bad-json",
        "not-object",
        "extra-key",
        "content-type",
        "encoding",
        "bad-gzip",
        "truncated-gzip",
        "too-large",
        "gzip-bomb",
    ],
)
def test_bad_requests_get_a_precise_answer(
    collector: Collector, body: bytes, headers: dict[str, str], status: int
) -> None:
    got, answer = collector.post(body, headers)
    assert got == status
    assert isinstance(answer["error"], str) and answer["error"]
    assert collector.count() == 0


@pytest.mark.parametrize("size", [1, 10_000])
def test_batches_of_one_to_ten_thousand(collector: Collector, size: int) -> None:
    assert collector.send([event() for _ in range(size)]) == (200, answer(stored=size))
    assert collector.count() == size


def test_concurrent_writers(collector: Collector) -> None:
    def write() -> None:
        for _ in range(10):
            assert collector.send([event() for _ in range(50)])[0] == 200

    threads = [threading.Thread(target=write) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert collector.count() == 6 * 10 * 50


def test_the_example_tool_reaches_the_collector_and_the_report(
    collector: Collector, tool: Tool
) -> None:
    """The whole path: example tool -> detached uploader -> collector -> report."""
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = collector.url + "/v1/events"
    assert tool.run("deploy", "start", "web", "--env", "prod").returncode == 0
    assert poll(lambda: collector.count() == 2, timeout=30)
    rows = collector.rows("select event, command, outcome from events order by event")
    assert rows == [
        ("command", "cli-app deploy start", "success"),
        ("deploy.finished", "cli-app deploy start", None),
    ]
    ids = [event_id for (event_id,) in collector.rows("select event_id from events")]
    assert {uuid.UUID(event_id).version for event_id in ids} == {7}  # time-ordered
    result = cli("report", "--db", collector.db_url, "--since", "1d", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["invocations"] == 1
    assert report["commands"][0]["command"] == "cli-app deploy start"
    assert report["flags"] == [{"name": "--env", "count": 1}]


def test_the_example_tools_custom_events_reach_the_report_and_leave_with_their_install(
    collector: Collector, tmp_path: Path
) -> None:
    """Two installs of the example tool record ``deploy.finished`` (declared in its
    catalog: ``replicas``, a whole number, and ``dry_run``) through their real uploaders;
    ``report`` (text and --json) and the dashboard's ``/api/report`` count them, per
    property value, without being asked for a window (30 days by default). Then one
    install's ``telemetry disable`` forgets its events, and the three show what is left."""
    from conftest import Tool

    first, second = (Tool(tmp_path / name) for name in ("home1", "home2"))
    for tool, runs in (
        (first, [["--replicas", "3"], ["--replicas", "3"], ["--replicas", "40", "--dry-run"]]),
        (second, [["--replicas", "1"], ["--replicas", "1", "--dry-run"]]),
    ):
        (tool.home).mkdir()
        tool.enable()
        tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = collector.url + "/v1/events"
        for extra in runs:
            assert tool.run("deploy", "start", "web", "--env", "prod", *extra).returncode == 0
    assert poll(lambda: collector.count() == 10, timeout=60)

    def everywhere() -> list[dict[str, Any]]:
        """The custom events of ``report --json``, having checked that ``/api/report`` and
        the text report say the same."""
        result = cli("report", "--db", collector.db_url, "--json")
        assert result.returncode == 0, result.stderr
        printed = json.loads(result.stdout)
        served = json.loads(collector.get("/api/report").data)
        assert served["custom_events"] == printed["custom_events"]
        text = cli("report", "--db", collector.db_url, "--tool", "cli-app").stdout
        for entry in printed["custom_events"]:
            assert f"  {entry['event']}  {entry['count']:>5}" in text
        value: list[dict[str, Any]] = printed["custom_events"]
        return value

    def replicas(value: Any, count: int) -> dict[str, Any]:
        return {"value" if isinstance(value, int) else "range": value, "count": count}

    assert everywhere() == [
        {"tool": "cli-app", "event": "deploy.finished", "count": 5, "properties": [
            {"name": "dry_run", "count": 5, "others": 0,
             "values": [{"value": False, "count": 3}, {"value": True, "count": 2}]},
            {"name": "replicas", "count": 5, "others": 0,
             "values": [replicas(1, 2), replicas(3, 2), replicas("[32, 64)", 1)]},
        ]},
    ]  # fmt: skip
    text = cli("report", "--db", collector.db_url, "--tool", "cli-app").stdout
    assert "custom events 5," in text
    rows = [line.split() for line in text.splitlines()]
    below = rows.index(["replicas", "1", "2"])
    assert rows[below + 1 : below + 3] == [["3", "2"], ["[32,", "64)", "1"]]

    assert second.run("telemetry", "disable").returncode == 0
    assert poll(lambda: collector.count() == 6, timeout=60)
    assert everywhere() == [
        {"tool": "cli-app", "event": "deploy.finished", "count": 3, "properties": [
            {"name": "dry_run", "count": 3, "others": 0,
             "values": [{"value": False, "count": 2}, {"value": True, "count": 1}]},
            {"name": "replicas", "count": 3, "others": 0,
             "values": [replicas(3, 2), replicas("[32, 64)", 1)]},
        ]},
    ]  # fmt: skip
    assert collector.rows("select sum(occurrences) from daily_custom where property = ''") == [(3,)]


def status_of(tool: Tool) -> dict[str, Any]:
    result = tool.run("telemetry", "status", "--json")
    assert result.returncode == 0, result.stderr
    value: dict[str, Any] = json.loads(result.stdout)
    return value


def test_a_spooled_event_the_schema_refuses_is_sent_nowhere_and_counted(
    collector: Collector, tool: Tool
) -> None:
    """A spool holding one invalid event (the library never writes one: a damaged or
    hand-made file) beside valid ones: the real detached uploader judges it as the collector
    would, sends it nowhere and counts it as refused; the others are stored."""
    import time

    from cli_telemetry.spool import event_file_name

    tool.enable()
    assert tool.run("deploy", "start", "web", "--env", "prod").returncode == 0  # recorded only
    [command] = [e for e in tool.events() if e["event"] == "command"]
    forged = json.dumps({**command, "event_id": str(uuid.uuid4()), "outcome": "fine"}).encode()
    name = event_file_name(time.time_ns(), os.urandom(6).hex(), len(forged))
    (tool.spool_dir / "new" / name).write_bytes(forged)
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = collector.url + "/v1/events"
    assert tool.run("hello").returncode == 0  # records one more, and starts the uploader

    assert poll(lambda: tool.uploader_stopped() and status_of(tool)["pending"] == 0, timeout=30)
    assert sorted(collector.rows("select event, command from events")) == [
        ("command", "cli-app deploy start"),
        ("command", "cli-app hello"),
        ("deploy.finished", "cli-app deploy start"),
    ]
    final = status_of(tool)
    assert (final["pending"], final["rejected"], final["dropped"]) == (0, 1, 0)
    text = tool.run("telemetry", "status").stdout
    assert "0 (spool full), 1 (refused for good)" in text


def test_an_event_the_collector_refuses_is_dropped_and_counted_once_the_rest_stored(
    tmp_path: Path, tool: Tool
) -> None:
    """The collector's schema for the tool does not know one of its custom events (the tool
    declared it after): the real uploader sends the batch, the collector stores the others
    and names that one, which leaves the spool and is counted as refused."""
    printed = subprocess.run(
        [CLI, "schema", "cli_app.cli:telemetry", "--format", "json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
    ).stdout  # fmt: skip
    document = json.loads(printed)
    del document["$defs"]["deploy.finished"]
    (tmp_path / "older.json").write_text(json.dumps(document))
    server = Collector(
        f"sqlite:///{tmp_path / 'partial.sqlite3'}",
        extra=["--schema", str(tmp_path / "older.json")],
    )
    try:
        tool.enable()
        tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = server.url + "/v1/events"
        assert tool.run("deploy", "start", "web", "--env", "prod").returncode == 0
        assert poll(lambda: tool.uploader_stopped() and status_of(tool)["pending"] == 0, 30)
        assert server.rows("select event, command from events") == [
            ("command", "cli-app deploy start")
        ]
        final = status_of(tool)
        assert (final["pending"], final["rejected"], final["dropped"]) == (0, 1, 0)
        assert final["last_error"] == "partial_rejected" and final["last_upload"] is not None
    finally:
        server.close()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def test_report_counts_commands_flags_errors_and_days(collector: Collector) -> None:
    batch = [
        event(command="acme deploy start", flags=["--env"], values={"--env": "prod"}),
        event(command="acme deploy start", flags=["--env", "--dry-run"], outcome="error",
              exit_code=1, error_type="ClickException"),
        event(command="acme hello", flags=[], values={}, ci="github_actions"),
        custom(),
        event(tool="other", command="other run"),
    ]  # fmt: skip
    assert collector.send(batch) == (200, answer(stored=5))
    db = collector.db_url
    result = cli("report", "--db", db, "--since", "3650d", "--tool", "acme", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["invocations"], report["error_rate"], report["ci_share"]) == (3, 0.3333, 0.3333)
    assert report["commands"][0] == {
        "command": "acme deploy start", "count": 2, "error_rate": 0.5, "avg_ms": 12,
    }  # fmt: skip
    assert report["flags"] == [{"name": "--env", "count": 2}, {"name": "--dry-run", "count": 1}]
    assert report["daily"] == [{"day": "2026-11-23", "invocations": 3, "installs": 3}]
    text = cli("report", "--db", db, "--since", "3650d")
    assert text.returncode == 0
    for heading in ("Commands", "Flags", "Tool versions", "Operating systems", "Daily"):
        assert heading in text.stdout
    assert "other run" in text.stdout  # all tools without --tool


def test_prune_deletes_only_old_events(collector: Collector) -> None:
    """``collector prune`` beside a running collector, whose own retention (400 days by
    default) keeps these events: they are 100 days old."""
    import time

    hundred_days_ago = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 8640000))
    old = [event(timestamp=hundred_days_ago) for _ in range(3)]
    assert collector.send([*old, event(), event()])[0] == 200
    result = cli("collector", "prune", "--db", collector.db_url, "--older-than", "90d")
    assert (result.returncode, result.stdout) == (0, "deleted 3 event(s) older than 90d\n")
    assert collector.count() == 2
    assert collector.rows("select sum(uses) from daily_flags") == [(4,)]  # the old day's went


def test_a_bad_age_is_a_usage_error() -> None:
    result = cli("report", "--db", "sqlite://", "--since", "last week")
    assert result.returncode == 2
    assert "not an age such as 7d" in result.stderr


def test_a_tool_with_a_token_needs_it(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'tokens.sqlite3'}"
    server = Collector(db, env={"CLI_TELEMETRY_COLLECTOR_TOKENS": "acme=s3cret"})
    try:
        assert server.send([event()])[0] == 401
        body = json.dumps({"batch": [event()]}).encode()
        assert server.post(body, {"Authorization": "Bearer wrong"})[0] == 401
        assert server.post(body, {"Authorization": "Bearer s3cret"})[0] == 200
        assert server.send([event(tool="other", command="other run")])[0] == 200  # no token
        assert server.count() == 2
        # Without the token, an invalid event gets no answer about what is wrong with it.
        status, body = server.send([event(outcome="fine")])
        assert (status, body["field"]) == (401, "Authorization")
    finally:
        server.close()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"values": {"--env": "/home/alice/.ssh/id_rsa"}}, "values"),
        ({"flags": [], "values": {"--token": "s3cr3t"}}, "values"),
        ({"values": {"--env": 10**4000}}, "values"),
        ({"tool_version": "/home/alice/projects/secret"}, "tool_version"),
        ({"tool_version": "\ud800"}, "tool_version"),
        ({"python_version": "3." + "1" * 5000 + ".4"}, "python_version"),
        ({"os_version": "1" * 50}, "os_version"),
        ({"timestamp": "\u0662\u0660\u0662\u0666-01-01T00:00:00Z"}, "timestamp"),
        ({"timestamp": "2026-13-45T99:99:99Z"}, "timestamp"),
        ({"timestamp": "2099-01-01T00:00:00.000Z"}, "timestamp"),
        ({"command": "other thing"}, "command"),
    ],
)
def test_hostile_values_are_refused(
    collector: Collector, changes: dict[str, Any], field: str
) -> None:
    status, body = collector.post(
        json.dumps({"batch": [event(**changes)]}, ensure_ascii=True).encode()
    )
    assert (status, body["accepted"], body["rejected"][0]["field"]) == (200, 0, field)
    assert collector.count() == 0


def test_a_repeated_event_in_one_batch_is_stored_once(collector: Collector) -> None:
    one = event()
    assert collector.send([one, dict(one)]) == (200, answer(stored=1, duplicates=1))
    assert collector.rows("select sum(invocations) from daily_usage") == [(1,)]
    assert collector.rows("select sum(uses) from daily_flags") == [(2,)]


def test_concurrent_resends_of_one_batch_store_it_once(collector: Collector) -> None:
    batch = [event() for _ in range(200)]
    answers: list[tuple[int, Any]] = []

    def send() -> None:
        answers.append(collector.send(batch))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [status for status, _ in answers] == [200] * 4
    assert sum(body["stored"] for _, body in answers) == 200
    assert collector.count() == 200
    assert collector.rows("select sum(invocations) from daily_usage") == [(200,)]
    assert collector.rows("select sum(uses) from daily_flags") == [(400,)]


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (gzip.compress(b'{"batch": []}') + b"junk", {"Content-Encoding": "gzip"}),
        ('{"batch": []}'.encode("utf-16"), {}),
    ],
    ids=["data-after-gzip", "utf-16"],
)
def test_bodies_that_are_not_exactly_one_utf8_document(
    collector: Collector, body: bytes, headers: dict[str, str]
) -> None:
    assert collector.post(body, headers)[0] == 400


def test_the_uploader_sends_the_tools_token(tmp_path: Path, tool: Tool) -> None:
    server = Collector(
        f"sqlite:///{tmp_path / 'token.sqlite3'}",
        env={"CLI_TELEMETRY_COLLECTOR_TOKENS": "cli-app=s3cret"},
    )
    try:
        tool.enable()
        tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = server.url + "/v1/events"
        tool.env["CLI_APP_TELEMETRY_TOKEN"] = "s3cret"
        assert tool.run("hello").returncode == 0
        assert poll(lambda: server.count() == 1, timeout=30)
    finally:
        server.close()


CONTRACT_TOOL = """
import click
from cli_telemetry import Telemetry

telemetry = Telemetry("acme", version="1.4.0 (dev)", record_values=["--lang"])

class ÉchecError(Exception):
    pass

@telemetry.instrument
@click.group()
def cli():
    pass

@cli.command()
@click.option("--lang", type=click.Choice(["C#", "café", "a b"]))
def build(lang):
    if lang == "café":
        raise ÉchecError()

cli.add_command(telemetry.command())
cli()
"""


def test_what_the_old_collector_refused_now_arrives(tmp_path: Path) -> None:
    """A version with a space, Choice values with punctuation, accents and spaces, and a
    non-ASCII exception class: each event reaches the real collector through the real
    detached uploader (a value the schema cannot hold arrives as <other>)."""
    server = Collector(f"sqlite:///{tmp_path / 'contract.sqlite3'}")
    try:
        acme = script_tool(tmp_path, CONTRACT_TOOL)
        acme.enable()
        acme.env["ACME_TELEMETRY_ENDPOINT"] = server.url + "/v1/events"
        for lang in ("C#", "café", "a b"):
            acme.run("build", "--lang", lang)
        assert poll(lambda: server.count() == 3, timeout=30)
        rows = server.rows("select tool_version, outcome, data from events order by timestamp")
        assert [(version, outcome) for version, outcome, _ in rows] == [
            ("1.4.0-dev", "success"),
            ("1.4.0-dev", "error"),
            ("1.4.0-dev", "success"),
        ]
        data = [json.loads(raw) for _, _, raw in rows]
        assert [d["values"] for d in data] == [
            {"--lang": "C#"},
            {"--lang": "café"},
            {"--lang": "<other>"},
        ]
        assert data[1]["error_type"] == "ÉchecError"
        assert poll(acme.uploader_stopped, timeout=30)  # a later run may still be sending
        assert acme.upload_state().get("last_error") is None
    finally:
        server.close()


def test_a_tools_schema_holds_its_custom_events_to_their_declaration(tmp_path: Path) -> None:
    """``collector serve --schema FILE``: acme's custom events must be declared in the file
    that ``click-telemetry schema`` printed, and match it; other tools are not affected."""
    tool_module = tmp_path / "acme_tool.py"
    tool_module.write_text(
        "from typing import Literal, TypedDict\n"
        "from cli_telemetry import Telemetry\n"
        "telemetry = Telemetry('acme', version='1')\n"
        "class Done(TypedDict):\n"
        "    'A deployment finished.'\n"
        "    targets: int\n"
        "    mode: Literal['fast', 'slow']\n"
        "telemetry.event('deploy.finished', Done)\n"
    )
    printed = subprocess.run(
        [CLI, "schema", "acme_tool:telemetry", "--format", "json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
    ).stdout  # fmt: skip
    (tmp_path / "acme.schema.json").write_text(printed)
    server = Collector(
        f"sqlite:///{tmp_path / 'schema.sqlite3'}",
        extra=["--schema", str(tmp_path / "acme.schema.json")],
    )
    try:
        batch = [
            custom(properties={"targets": 3, "mode": "fast"}),
            custom(event="deploy.started", properties={"targets": 3, "mode": "fast"}),
            custom(properties={"targets": 3, "mode": "/home/alice"}),
            custom(properties={"targets": 3}),
            event(),
            custom(tool="other", command="other run", properties={"free": "text"}),
        ]
        status, body = server.send(batch)
        assert (status, body["accepted"]) == (200, 3)
        assert [(r["index"], r["field"]) for r in body["rejected"]] == [
            (1, "event"),
            (2, "properties"),
            (3, "properties"),
        ]
        assert "is not a declared event of acme" in body["rejected"][0]["error"]
        assert "property 'mode' must be one of ['fast', 'slow']" in body["rejected"][1]["error"]
    finally:
        server.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read it as JSON"),
        ('{"title": "x"}', "not a click-telemetry schema"),
        ('{"x-cli-telemetry": {"tool": "acme", "schema_version": 9}, "$defs": {}}', "version 9"),
        (
            '{"x-cli-telemetry": {"tool": "acme", "schema_version": 1}, "$defs": {"a.b":'
            ' {"properties": {"properties": {"type": "object"}}}}}',
            "closed object schema",
        ),
    ],
)
def test_a_schema_file_it_cannot_use_stops_the_collector(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = cli("collector", "serve", "--db", "sqlite://", "--schema", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_earlier_clients_machine_id_is_accepted_and_not_stored(collector: Collector) -> None:
    """Clients of an earlier release sent a hashed machine id under schema 1: their events
    are stored without it (events.WITHDRAWN), not refused."""
    old = event(machine_id="ab" * 32)
    assert collector.send([old]) == (200, answer(stored=1))
    [(data,)] = collector.rows("select data from events")
    assert "machine_id" not in json.loads(data)


def test_the_dashboard_escapes_what_it_shows(collector: Collector) -> None:
    """The only markup a stored value may hold is the schema's own placeholders; the
    dashboard shows them as text, never as tags."""
    marked = event(command="acme <unlisted>", flags=["<other>"], values={}, ci="generic")
    assert collector.send([marked]) == (200, answer(stored=1))
    page = collector.http.request("GET", collector.url + "/?since=3650d").data.decode()
    assert "acme &lt;unlisted&gt;" in page
    assert "&lt;other&gt;" in page
    assert "<unlisted>" not in page and "<other>" not in page
