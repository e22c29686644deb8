"""The collector against hostile requests, as a real ``collector serve`` process on loopback:
who may write and read, which Host it answers, what a request may cost it and how long it
may take, where its secrets come from, and who can read its database."""

from __future__ import annotations

import base64
import gzip
import json
import os
import selectors
import socket
import stat
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import poll
from test_collector_e2e import CLI, Collector, event

from cli_telemetry.collector.body import MAX_BODY_BYTES, MAX_JSON_VALUES

TOKENS = {"CLI_TELEMETRY_COLLECTOR_TOKENS": "acme=s3cret beta=b3ta"}


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Collector]:
    """A collector with write tokens for acme and beta, and a read token."""
    server = Collector(
        f"sqlite:///{tmp_path / 'guarded.sqlite3'}",
        env={**TOKENS, "CLI_TELEMETRY_COLLECTOR_READ_TOKEN": "r3ad"},
    )
    yield server
    server.close()


def batch(*events: dict[str, object]) -> bytes:
    return json.dumps({"batch": list(events)}).encode()


def raw_request(
    port: int, head: bytes, body: bytes = b"", timeout: float = 20.0
) -> tuple[int, bytes]:
    """Send ``head`` (a request line and headers, without the blank line) and ``body`` on a
    fresh connection; the status and the whole answer, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + b"\r\nConnection: close\r\n\r\n" + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


# -- who may write ------------------------------------------------------------------------


def test_a_wrong_token_is_refused_before_the_body_is_read(guarded: Collector) -> None:
    """The headers promise a megabyte that never comes: the answer does not wait for it."""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{guarded.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000000\r\n"
        "Authorization: Bearer wrong"
    ).encode()
    status, answer = raw_request(guarded.port, head)
    assert status == 401
    assert b'WWW-Authenticate: Bearer realm="cli-telemetry"' in answer.replace(
        b"www-authenticate", b"WWW-Authenticate"
    )


def test_the_token_names_its_tool(guarded: Collector) -> None:
    """acme's token carries acme's events and those of tools without a token, never
    beta's; without a token, an event of a tool that has one is refused."""
    acme = {"Authorization": "Bearer s3cret"}
    assert guarded.post(batch(event()), acme)[0] == 200
    other = event(tool="other", command="other run")
    assert guarded.post(batch(event(), other), acme)[0] == 200
    status, body = guarded.post(batch(event(), event(tool="beta", command="beta run")), acme)
    assert (status, body["field"]) == (401, "Authorization")
    assert "beta" in body["error"]
    assert guarded.post(batch(event()))[0] == 401
    other = event(tool="other", command="other run")
    assert guarded.post(batch(other))[0] == 200  # tools without a token stay open
    assert guarded.count() == 4


def test_require_token_closes_the_collector_before_the_body(tmp_path: Path) -> None:
    server = Collector(
        f"sqlite:///{tmp_path / 'closed.sqlite3'}", extra=["--require-token"], env=TOKENS
    )
    try:
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000000"
        ).encode()
        assert raw_request(server.port, head)[0] == 401  # no token: the body is not awaited
        other = event(tool="other", command="other run")
        assert server.post(batch(other))[0] == 401
        assert server.post(batch(other), {"Authorization": "Bearer s3cret"})[0] == 401
        assert server.post(batch(event()), {"Authorization": "Bearer s3cret"})[0] == 200
        assert server.count() == 1
    finally:
        server.close()


def test_require_token_without_tokens_is_a_usage_error() -> None:
    result = subprocess.run(
        [CLI, "collector", "serve", "--db", "sqlite://", "--require-token"],
        capture_output=True, text=True, timeout=60, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("CLI_TELEMETRY_COLL")},
    )  # fmt: skip
    assert result.returncode == 2
    assert "--require-token needs a write token" in result.stderr
    assert "Traceback" not in result.stderr


# -- who may read -------------------------------------------------------------------------


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path", ["/", "/api/report?since=7d"])
def test_the_dashboard_and_the_report_need_the_read_token(guarded: Collector, path: str) -> None:
    refused = guarded.get(path)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="cli-telemetry", charset="UTF-8"'
    assert b"s3cret" not in refused.data and b"acme" not in refused.data
    for headers in (
        {"Authorization": "Bearer s3cret"},  # a tool's token ships inside the tool: no
        basic("s3cret"),
        basic("wrong"),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer"},
    ):
        assert guarded.get(path, headers).status == 401, headers
    assert guarded.get(path, {"Authorization": "Bearer r3ad"}).status == 200
    assert guarded.get(path, basic("r3ad")).status == 200  # what a browser sends
    assert guarded.get(path, basic("r3ad", user="")).status == 200
    assert guarded.get("/healthz").status == 200  # says nothing, needs nothing


def test_write_tokens_without_a_read_token_close_the_dashboard(tmp_path: Path) -> None:
    server = Collector(f"sqlite:///{tmp_path / 'w.sqlite3'}", env=TOKENS)
    try:
        assert server.get("/").status == 401
        assert server.get("/api/report", {"Authorization": "Bearer s3cret"}).status == 401
    finally:
        server.close()
    token_file = tmp_path / "read-token"
    token_file.write_text("fr0m-a-file\n")
    server = Collector(
        f"sqlite:///{tmp_path / 'r.sqlite3'}", extra=["--read-token-file", str(token_file)]
    )
    try:  # a read token alone: the dashboard is closed, writing stays open
        assert server.get("/api/report").status == 401
        assert server.get("/api/report", basic("fr0m-a-file")).status == 200
        assert server.post(batch(event()))[0] == 200
    finally:
        server.close()


# -- which Host it answers ----------------------------------------------------------------


def test_a_host_it_does_not_serve_is_refused(guarded: Collector, tmp_path: Path) -> None:
    """A page on evil.example whose name now resolves to 127.0.0.1 (DNS rebinding) sends
    ``Host: evil.example``: it reads and writes nothing."""
    read = {"Authorization": "Bearer r3ad"}
    for host in ("evil.example", "evil.example:8787", "127.0.0.1.evil.example", ""):
        answer = guarded.get("/api/report", {**read, "Host": host})
        assert answer.status == 421, host
        assert "--allowed-host" in json.loads(answer.data)["error"]
        status, _ = guarded.post(batch(event()), {"Authorization": "Bearer s3cret", "Host": host})
        assert status == 421
    for host in ("localhost", f"localhost:{guarded.port}", "127.0.0.1", "[::1]:80", "LOCALHOST."):
        assert guarded.get("/api/report", {**read, "Host": host}).status == 200, host
    assert guarded.get("/healthz", {"Host": "evil.example"}).status == 200  # for probes
    assert guarded.count() == 0

    server = Collector(
        f"sqlite:///{tmp_path / 'named.sqlite3'}",
        extra=["--allowed-host", "telemetry.example.com"],
    )
    try:
        assert server.get("/", {"Host": "telemetry.example.com"}).status == 200
        assert server.get("/", {"Host": "localhost"}).status == 200  # loopback stays
        assert server.get("/", {"Host": "other.example.com"}).status == 421
    finally:
        server.close()


# -- what a request may cost --------------------------------------------------------------


def bomb() -> bytes:
    """About 8 KB of gzip that inflates to just under the body limit: millions of empty
    lists in one batch."""
    lists = (MAX_BODY_BYTES - len(b'{"batch":[[]]}')) // 3
    document = b'{"batch":[' + b"[]," * lists + b"[]]}"
    assert len(document) <= MAX_BODY_BYTES
    return gzip.compress(document, 9)


def test_too_many_json_values_is_a_precise_413(guarded: Collector) -> None:
    lists = b'{"batch":[' + b"[]," * MAX_JSON_VALUES + b"[]]}"  # plain JSON, 1.2 MB
    status, body = guarded.post(lists)
    assert status == 413
    assert f"more than {MAX_JSON_VALUES} JSON values" in body["error"]
    status, body = guarded.post(bomb(), {"Content-Encoding": "gzip"})
    assert status == 413 and "JSON values" in body["error"]
    assert guarded.count() == 0


def largest_batch() -> bytes:
    """10,000 events, each with more values than the example tool records, gzipped: the
    most work a body can ask of the collector's parser and checks before it is refused
    (these name acme, which has a token the request does not carry). Their ids count up,
    so the body is 52 KB, which the server reads in one go: before the fix, the request
    then ran from its last byte to its answer without letting another in."""
    flags = [f"--option-{i}" for i in range(6)]
    many = event(flags=flags, values=dict.fromkeys(flags, "value"))
    document = {"batch": [{**many, "event_id": str(uuid.UUID(int=i))} for i in range(10_000)]}
    return gzip.compress(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("worst", "at_once", "status"), [("gzip-bomb", 16, b"413"), ("largest-batch", 4, b"401")]
)
def test_healthz_answers_while_a_worst_case_body_is_refused(
    tmp_path: Path, worst: str, at_once: int, status: bytes
) -> None:
    """Rounds of hostile bodies sent at once, without a token, while /healthz is asked
    again and again: health answers arrive while bodies sent before them are still being
    refused. Were the bodies read on the event loop, none could: the loop would run each
    body's request, queued before the health request, from its last byte to its answer."""
    server = Collector(f"sqlite:///{tmp_path / 'worst.sqlite3'}", env=TOKENS)
    payload = bomb() if worst == "gzip-bomb" else largest_batch()
    request = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode() + payload
    during: list[float] = []  # latencies of the health answers that came while bodies flew
    statuses: list[bytes] = []
    try:
        for _ in range(5):
            during += in_flight_round(server.port, request, at_once, statuses)
        assert server.count() == 0
    finally:
        server.close()
    assert statuses == [status] * 5 * at_once
    print(
        f"\n{worst}: /healthz answered {len(during)} times while bodies were in flight;"
        f" latency ms: median {statistics.median(during or [0]) * 1000:.1f},"
        f" max {max(during, default=0) * 1000:.1f}"
    )
    assert during, "/healthz never answered while a body was being refused"


def in_flight_round(port: int, request: bytes, at_once: int, statuses: list[bytes]) -> list[float]:
    """Send ``request`` on ``at_once`` connections, then ask /healthz again and again until
    the last of them is answered; the latencies of the health answers read before that.
    One thread and one selector read every socket, the requests' first, so a health answer
    read in the same turn as the last request's counts for nothing."""
    health_request = (
        f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    ).encode()
    during: list[float] = []
    with selectors.DefaultSelector() as selector:
        answers: dict[socket.socket, bytes] = {}
        for _ in range(at_once):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            s.sendall(request)
            selector.register(s, selectors.EVENT_READ, "request")
            answers[s] = b""
        health: socket.socket | None = None
        asked, health_answer = 0.0, b""
        while answers:
            if health is None:
                health = socket.create_connection(("127.0.0.1", port), timeout=60)
                asked, health_answer = time.perf_counter(), b""
                health.sendall(health_request)
                selector.register(health, selectors.EVENT_READ, "health")
            ready = selector.select(timeout=120)
            assert ready, "the collector went silent"
            for key, _ in sorted(ready, key=lambda item: item[0].data != "request"):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                chunk = sock.recv(65536)
                if key.data == "request":
                    answers[sock] += chunk
                    if not chunk:
                        statuses.append(answers.pop(sock).split(b" ", 2)[1])
                elif chunk:
                    health_answer += chunk
                    continue
                elif answers:  # a health answer, whole, while requests are unanswered
                    assert health_answer.startswith(b"HTTP/1.1 200")
                    during.append(time.perf_counter() - asked)
                if not chunk:
                    selector.unregister(sock)
                    sock.close()
                    health = None if sock is health else health
        if health is not None:
            selector.unregister(health)
            health.close()
    return during


def test_a_request_that_takes_too_long_is_cut_off(tmp_path: Path) -> None:
    """``--request-timeout 1``: headers that never end get the connection closed; a body
    that never ends gets a 408 (which the uploader retries later)."""
    server = Collector(f"sqlite:///{tmp_path / 'slow.sqlite3'}", extra=["--request-timeout", "1"])
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
            assert s.recv(65536) == b""  # closed by the server (our 30 s would raise)
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100"
        ).encode()
        status, answer = raw_request(server.port, head, body=b'{"batch": [')
        assert status == 408
        assert b"within 1 s" in answer
        assert server.get("/healthz").status == 200
    finally:
        server.close()


def test_connections_beyond_the_limit_get_a_503(tmp_path: Path) -> None:
    server = Collector(f"sqlite:///{tmp_path / 'busy.sqlite3'}", extra=["--limit-concurrency", "4"])
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(4)]
    try:
        assert poll(lambda: server.get("/healthz").status == 503, timeout=20)
        for s in idle:
            s.close()
        assert poll(lambda: server.get("/healthz").status == 200, timeout=20)
    finally:
        for s in idle:
            s.close()
        server.close()


# -- where secrets come from --------------------------------------------------------------


def test_tokens_come_from_a_file_not_from_argv(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# tool=secret, one a line\nacme=fr0m-a-file\n\nbeta = b3ta \n")
    server = Collector(
        f"sqlite:///{tmp_path / 'file.sqlite3'}", extra=["--token-file", str(tokens)]
    )
    try:
        assert server.post(batch(event()))[0] == 401
        assert server.post(batch(event()), {"Authorization": "Bearer fr0m-a-file"})[0] == 200
        beta = event(tool="beta", command="beta run")
        assert server.post(batch(beta), {"Authorization": "Bearer b3ta"})[0] == 200
        cmdline = Path(f"/proc/{server.proc.pid}/cmdline")
        if cmdline.exists():
            assert b"fr0m-a-file" not in cmdline.read_bytes()
    finally:
        server.close()


def test_a_token_on_the_command_line_still_works_and_warns(tmp_path: Path) -> None:
    server = Collector(f"sqlite:///{tmp_path / 'argv.sqlite3'}", extra=["--token", "acme=s3cret"])
    try:
        assert server.post(batch(event()))[0] == 401
        assert server.post(batch(event()), {"Authorization": "Bearer s3cret"})[0] == 200
    finally:
        stderr = server.close()
    assert "--token is deprecated" in stderr
    assert "CLI_TELEMETRY_COLLECTOR_TOKENS" in stderr and "s3cret" not in stderr


@pytest.mark.parametrize(
    "content", ["acme:s3cret-in-the-file\n", "=s3cret-in-the-file\n", "Acme!=s3cret-in-the-file\n"]
)
def test_a_bad_token_file_stops_the_collector_without_printing_the_secret(
    tmp_path: Path, content: str
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("beta=fine\n" + content)
    result = subprocess.run(
        [CLI, "collector", "serve", "--db", "sqlite://", "--token-file", str(tokens)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "line 2" in result.stderr
    assert "s3cret-in-the-file" not in result.stderr and "Traceback" not in result.stderr


# -- who can read the database ------------------------------------------------------------


@pytest.mark.usefixtures("permissive_umask")
def test_the_sqlite_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    """Even under umask 0: the database, its -wal and -shm files 0600, the data directory
    it makes 0700."""
    data = tmp_path / "data"
    server = Collector(
        f"sqlite:///{tmp_path / 'private.sqlite3'}", env={"XDG_DATA_HOME": str(data)}
    )
    try:
        assert server.send([event()])[0] == 200
        files = [tmp_path / f"private.sqlite3{suffix}" for suffix in ("", "-wal", "-shm")]
        assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {
            f.name: 0o600 for f in files
        }
    finally:
        server.close()
    result = subprocess.run(
        [CLI, "collector", "prune", "--older-than", "1d"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "XDG_DATA_HOME": str(data), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    directory = data / "cli-telemetry"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "collector.sqlite3").stat().st_mode) == 0o600


# -- what a query may ask -----------------------------------------------------------------


def test_an_age_out_of_range_is_a_400(tmp_path: Path) -> None:
    server = Collector(f"sqlite:///{tmp_path / 'age.sqlite3'}")
    try:
        for path in ("/api/report", "/"):
            for since in ("999999999999d", "9" * 5000 + "s", "36501d", "876025h"):
                answer = server.get(f"{path}?since={since}")
                assert answer.status == 400, (path, since)
                assert b"at most 36500 days" in answer.data
            assert server.get(f"{path}?since=36500d").status == 200
    finally:
        server.close()
    result = subprocess.run(
        [CLI, "report", "--db", "sqlite://", "--since", "999999999999d"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "at most 36500 days" in result.stderr
