"""The upload policy, end to end: a command starts the uploader only once enough events wait
or the oldest has waited long enough (`cli_telemetry._spawn.upload_due`); a deletion
request goes at once. Real processes, a real loopback server; the other e2e tests set
``CLI_TELEMETRY_UPLOAD_AT_ONCE`` (`conftest.clean_environ`), these take it out.

Whether a command started an uploader is read from the spawn stamp: a command touches it
before it spawns (`_spawn.should_spawn`), and nothing else creates it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Tool, poll, script_tool
from loopback import Endpoint

from cli_telemetry._settings import UPLOAD_AT_ONCE_VARIABLE

SOURCE = """
import click
from cli_telemetry import Telemetry

telemetry = Telemetry("acme", version="1.0", endpoint={endpoint!r}, {policy})

@telemetry.instrument
@click.group()
def cli():
    pass

@cli.command()
def hello():
    click.echo("hello")

cli.add_command(telemetry.command())
cli()
"""


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def policy_tool(tmp_path: Path, endpoint: Endpoint, policy: str) -> Tool:
    tool = script_tool(tmp_path, SOURCE.format(endpoint=endpoint.url, policy=policy))
    del tool.env[UPLOAD_AT_ONCE_VARIABLE]
    tool.enable()
    return tool


def stamp(tool: Tool) -> Path:
    return tool.state_dir / "uploader.stamp"


def test_by_default_a_command_leaves_its_event_waiting(tool: Tool, endpoint: Endpoint) -> None:
    del tool.env[UPLOAD_AT_ONCE_VARIABLE]
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint.url
    for _ in range(3):
        result = tool.run("hello")
        assert (result.returncode, result.stdout) == (0, "Hello, world!\n")
    assert len(tool.event_files()) == 3
    assert not stamp(tool).exists()  # no command started an uploader
    assert endpoint.seen == 0


def test_the_command_that_makes_enough_events_wait_sends_them_all(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=3")
    for _ in range(2):
        assert tool.run("hello").returncode == 0
    assert not stamp(tool).exists()
    assert tool.run("hello").returncode == 0
    assert poll(lambda: len(endpoint.events) == 3, timeout=20), endpoint.requests
    assert poll(tool.uploader_stopped, timeout=20)
    assert tool.event_files() == []


def test_an_event_that_waited_long_enough_is_sent_by_the_next_command(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_seconds=3600")
    assert tool.run("hello").returncode == 0
    assert not stamp(tool).exists()
    # An hour passes: the spool's names carry the time of each event, so the waiting event
    # is renamed an hour older (the name is the only clock the policy reads).
    [waiting] = tool.event_files()
    ns = int(waiting.name[:20]) - 3601 * 10**9
    waiting.rename(waiting.with_name(f"{ns:020d}{waiting.name[20:]}"))
    assert tool.run("hello").returncode == 0
    assert poll(lambda: len(endpoint.events) == 2, timeout=20), endpoint.requests


def test_the_variable_sends_at_once(tmp_path: Path, endpoint: Endpoint) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=1000")
    assert tool.run("hello", env={UPLOAD_AT_ONCE_VARIABLE: "1"}).returncode == 0
    assert poll(lambda: len(endpoint.events) == 1, timeout=20), endpoint.requests


def test_a_deletion_request_goes_at_once_whatever_the_policy(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=1000")
    assert tool.run("hello").returncode == 0
    assert not stamp(tool).exists()
    assert tool.run("telemetry", "disable").returncode == 0
    # disable starts the uploader for its request; the next run (telemetry off) does too
    # while one waits, and the events never went: the request is all that is sent.
    assert poll(lambda: len(endpoint.events) == 1, timeout=20), endpoint.requests
    assert [event["event"] for event in endpoint.events] == ["deletion_request"]


def test_an_enabled_run_while_a_deletion_waits_starts_the_uploader(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=1000")
    endpoint.mode = "status"
    endpoint.status = 503
    assert tool.run("hello").returncode == 0
    assert tool.run("telemetry", "disable").returncode == 0
    assert poll(lambda: endpoint.seen >= 1, timeout=20)
    assert poll(tool.uploader_stopped, timeout=20)
    assert (tool.state_dir / "deletion.json").exists()  # it waits, with the backoff
    tool.enable()
    tool.allow_next_attempt()
    endpoint.mode = "ok"
    seen = endpoint.seen
    assert tool.run("hello").returncode == 0  # one event waits: not enough, but a request
    assert poll(lambda: endpoint.seen > seen, timeout=20), endpoint.requests
    assert poll(lambda: not (tool.state_dir / "deletion.json").exists(), timeout=20)


def test_a_sink_in_backoff_still_waits_for_it(tmp_path: Path, endpoint: Endpoint) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=1")
    endpoint.mode = "status"
    endpoint.status = 503
    assert tool.run("hello").returncode == 0
    assert poll(lambda: endpoint.seen == 1, timeout=20)
    assert poll(tool.uploader_stopped, timeout=20)
    assert stamp(tool).stat().st_mtime > time.time()  # the backoff, as the next spawn
    before = os.stat(stamp(tool)).st_mtime
    assert tool.run("hello").returncode == 0  # due by the policy, held by the backoff
    assert os.stat(stamp(tool)).st_mtime == before
    assert endpoint.seen == 1
    status = json.loads(tool.run("telemetry", "status", "--json").stdout)
    resting_until = status["sinks"][0]["next_attempt"]
    assert status["upload_due"] and resting_until is not None
    assert (
        f"Waiting:     2 event(s), sent with the first command after {resting_until}"
        in tool.run("telemetry", "status").stdout.splitlines()
    )


def test_status_says_when_the_waiting_events_go(tmp_path: Path, endpoint: Endpoint) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=3")
    assert tool.run("hello").returncode == 0
    assert tool.run("hello").returncode == 0
    [first, _] = sorted(tool.event_files())
    due_at = time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(first.name[:20]) / 1e9 + 3600)
    )  # the policy's default: an hour after the oldest was recorded
    status = json.loads(tool.run("telemetry", "status", "--json").stdout)
    assert (status["pending"], status["upload_due"], status["upload_due_at"]) == (2, False, due_at)
    lines = tool.run("telemetry", "status").stdout.splitlines()
    assert (
        f"Waiting:     2 event(s), sent once 3 wait or with the first command after {due_at}"
        in (lines)
    )
    assert "  collector: last delivery never; next attempt with the next upload" in lines
    # An hour passes (the names are the policy's clock): now due, by time.
    ns = int(first.name[:20]) - 3601 * 10**9
    first.rename(first.with_name(f"{ns:020d}{first.name[20:]}"))
    status = json.loads(tool.run("telemetry", "status", "--json").stdout)
    assert (status["upload_due"], status["upload_due_at"]) == (True, None)
    lines = tool.run("telemetry", "status").stdout.splitlines()
    assert "Waiting:     2 event(s), sent with the next command" in lines
    assert endpoint.seen == 0  # status only says: it sends nothing of the events


def test_status_names_no_upload_when_nothing_waits_or_telemetry_is_off(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    tool = policy_tool(tmp_path, endpoint, "upload_after_events=3")
    status = json.loads(tool.run("telemetry", "status", "--json").stdout)
    assert (status["pending"], status["upload_due"], status["upload_due_at"]) == (0, False, None)
    assert "Waiting:     0 event(s)" in tool.run("telemetry", "status").stdout.splitlines()
    assert tool.run("hello").returncode == 0
    off = tool.run("telemetry", "status", env={"DO_NOT_TRACK": "1"}).stdout.splitlines()
    assert "Waiting:     1 event(s)" in off  # nothing goes while it is off
    status = json.loads(tool.run("telemetry", "status", "--json", env={"DO_NOT_TRACK": "1"}).stdout)
    assert (status["pending"], status["upload_due"], status["upload_due_at"]) == (1, False, None)
