"""The collector against hostile requests, as a real ``collector serve`` process on loopback:
who may write and read, which Host it answers, what a request may cost it and how long it
may take, where its secrets come from, and who can read its database."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_collector_e2e import CLI, Collector, event

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
