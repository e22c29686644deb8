"""Delivery, end to end: the example tool, its detached uploader and a real loopback server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Tool, poll, script_tool
from loopback import Endpoint, closed_port

from cli_telemetry.delivery import BACKOFF_CAP, iso_seconds


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def sending(tool: Tool, endpoint: Endpoint) -> Tool:
    """The example tool, enabled, sending to the loopback endpoint."""
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint.url
    return tool


def pending(tool: Tool) -> int:
    result = tool.run("telemetry", "status", "--json")
    count: int = json.loads(result.stdout)["pending"]
    return count


def dead(pid: int) -> bool:
    """No such process, or a zombie waiting for init to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_events_arrive_in_the_wire_format(sending: Tool, endpoint: Endpoint) -> None:
    result = sending.run("deploy", "start", "web", "--env", "dev")
    assert (result.returncode, result.stderr) == (0, "")
    assert poll(lambda: len(endpoint.events) == 2, timeout=20), endpoint.requests
    [request] = endpoint.requests
    assert request["path"] == "/v1/events"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert request["headers"]["User-Agent"].startswith("cli-telemetry/")
    assert set(request["body"]) == {"batch", "sent_at"}
    assert [e["event"] for e in request["body"]["batch"]] == ["command", "deploy.finished"]
    assert poll(lambda: sending.uploader_stopped(), timeout=20)
    assert pending(sending) == 0
    status = json.loads(sending.run("telemetry", "status", "--json").stdout)
    assert status["last_upload"] is not None and status["last_error"] is None


def test_the_exit_and_the_pipe_never_wait_for_the_network(
    sending: Tool, endpoint: Endpoint
) -> None:
    endpoint.mode = "hold"
    result = sending.run("hello")  # capture_output: returns at EOF of both pipes
    assert (result.returncode, result.stdout) == (0, "Hello, world!\n")
    # The uploader is still in the middle of its request, yet the pipes were closed.
    assert poll(lambda: endpoint.holding == 1, timeout=20)
    assert not sending.uploader_stopped()


@pytest.mark.parametrize(
    ("mode", "status", "error"),
    [("status", 500, "http_500"), ("status", 503, "http_503"), ("reset", 0, None)],
)
def test_retryable_failures_keep_the_events_and_back_off(
    sending: Tool, endpoint: Endpoint, mode: str, status: int, error: str | None
) -> None:
    endpoint.mode, endpoint.status = mode, status
    sending.run("hello")
    # (Before each send the uploader writes the failure it might end in, as "interrupted".)
    assert poll(
        lambda: (
            sending.upload_state().get("failures") == 1
            and sending.upload_state().get("last_error") != "interrupted"
        ),
        timeout=20,
    )
    assert error is None or sending.upload_state()["last_error"] == error
    assert pending(sending) == 1
    assert (sending.state_dir / "uploader.stamp").stat().st_mtime > time.time() + 10
    # The next command does not try again during the backoff...
    seen = endpoint.seen
    sending.run("hello")
    assert pending(sending) == 2 and endpoint.seen == seen
    # ...and once it is over, everything arrives, once.
    endpoint.mode = "ok"
    sending.allow_next_attempt()
    sending.run("hello")
    assert poll(lambda: len(endpoint.events) == 3, timeout=20)
    assert len({e["event_id"] for e in endpoint.events}) == 3
    assert poll(lambda: sending.upload_state().get("failures") == 0, timeout=20)


def test_retry_after_is_honoured(sending: Tool, endpoint: Endpoint) -> None:
    endpoint.mode, endpoint.status, endpoint.retry_after = "status", 429, "7200"
    sending.run("hello")
    assert poll(lambda: sending.upload_state().get("last_error") == "http_429", timeout=20)
    assert (sending.state_dir / "uploader.stamp").stat().st_mtime > time.time() + 7000


@pytest.mark.parametrize("status", [301, 307, 308])
def test_a_redirecting_endpoint_is_named_in_status_and_not_hammered(
    sending: Tool, endpoint: Endpoint, status: int
) -> None:
    """http → https, say: the redirect is not followed (the token would go along), the
    events wait, the endpoint rests for hours, and status says why, naming the target by
    its origin only (its path and query may hold a secret)."""
    endpoint.mode, endpoint.status = "status", status
    endpoint.location = "https://telemetry.example.com/v1/events?token=s3cret"
    before = time.time()
    assert sending.run("hello").returncode == 0
    assert poll(lambda: sending.upload_state().get("last_error", "").startswith("redirect"), 20)
    assert poll(lambda: sending.uploader_stopped(), timeout=20)
    kind = "redirect:https://telemetry.example.com"
    status_json = json.loads(sending.run("telemetry", "status", "--json").stdout)
    [collector] = status_json["sinks"]
    assert (status_json["last_error"], status_json["pending"]) == (kind, 1)
    assert collector["name"] == "collector" and collector["last_error"] == kind
    assert (collector["failures"], collector["last_upload"]) == (1, None)
    # Its next attempt is hours away (the longest backoff at once), and so is the next spawn.
    far = before + 0.5 * BACKOFF_CAP
    assert sending.upload_state()["sinks"]["collector"]["retry_at_epoch"] >= far
    assert collector["next_attempt"] >= iso_seconds(far)
    stamp = (sending.state_dir / "uploader.stamp").stat().st_mtime
    assert stamp >= far
    text = sending.run("telemetry", "status").stdout
    assert f"Last error:  {kind}\n" in text
    assert f"  collector: last delivery never; last error {kind}, 1 failure(s) in a row;" in text
    assert "its endpoint redirects to https://telemetry.example.com; redirects are not" in text
    assert "s3cret" not in text + json.dumps(status_json) + json.dumps(sending.upload_state())
    # The next commands record, and start no uploader: the stamp is untouched.
    for _ in range(3):
        assert sending.run("hello").returncode == 0
    assert (sending.state_dir / "uploader.stamp").stat().st_mtime == stamp
    assert (endpoint.seen, pending(sending)) == (1, 4)
    # Once the endpoint is corrected, every event arrives.
    endpoint.mode = "ok"
    sending.allow_next_attempt()
    sending.run("hello")
    assert poll(lambda: len(endpoint.events) == 5, timeout=20)


TWO_SINKS = """
import os

import click
from cli_telemetry import Telemetry
from cli_telemetry.providers import Collector

telemetry = Telemetry(
    "acme",
    version="1.0",
    endpoint=os.environ["ACME_MAIN"],
    sinks=[Collector(os.environ["ACME_MOVED"], name="backup")],
)


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


def test_status_lists_each_sink_when_one_of_two_fails(tmp_path: Path, endpoint: Endpoint) -> None:
    moved = Endpoint()
    try:
        moved.mode, moved.status, moved.location = "status", 308, "/v2/events"
        acme = script_tool(tmp_path, TWO_SINKS)
        acme.env |= {"ACME_MAIN": endpoint.url, "ACME_MOVED": moved.url}
        acme.enable()
        assert acme.run("hello").returncode == 0
        assert poll(lambda: len(endpoint.events) == 1 and moved.seen == 1, timeout=20)
        assert poll(lambda: acme.uploader_stopped(), timeout=20)
        status = json.loads(acme.run("telemetry", "status", "--json").stdout)
        main, backup = status["sinks"]
        assert main["name"] == "collector" and main["last_upload"] is not None
        assert (main["last_error"], main["failures"], main["next_attempt"]) == (None, 0, None)
        origin = moved.url.rsplit("/v1", 1)[0]  # the Location is relative: the same host
        assert backup["name"] == "backup" and backup["last_upload"] is None
        assert (backup["last_error"], backup["failures"]) == (f"redirect:{origin}", 1)
        assert backup["next_attempt"] is not None
        assert status["pending"] == 1  # delivered to one, waiting for the other
        lines = acme.run("telemetry", "status").stdout.splitlines()
        sinks = lines[lines.index("Sinks:") + 1 :]
        assert sinks[0] == (
            f"  collector: last delivery {main['last_upload']}; next attempt with the next upload"
        )
        assert sinks[1] == (
            f"  backup: last delivery never; last error redirect:{origin}, 1 failure(s) in a"
            f" row; next attempt after {backup['next_attempt']}"
        )
        assert sinks[2].startswith(f"    its endpoint redirects to {origin};")
    finally:
        moved.close()


def test_a_refused_connection_keeps_the_events(tool: Tool) -> None:
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = closed_port()
    result = tool.run("hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, world!\n", "")
    assert poll(lambda: tool.upload_state().get("last_error") == "connection", timeout=20)
    assert pending(tool) == 1
    status = json.loads(tool.run("telemetry", "status", "--json").stdout)
    assert status["last_error"] == "connection" and status["last_upload"] is None


def test_a_rejected_batch_is_dropped_and_counted(sending: Tool, endpoint: Endpoint) -> None:
    endpoint.mode, endpoint.status = "status", 400
    sending.run("deploy", "start", "web", "--env", "dev")
    assert poll(lambda: sending.upload_state().get("last_error") == "http_400", timeout=20)
    assert poll(lambda: sending.uploader_stopped(), timeout=20)
    status = json.loads(sending.run("telemetry", "status", "--json").stdout)
    assert (status["pending"], status["rejected"]) == (0, 2)


def test_kill_9_of_the_uploader_loses_nothing(sending: Tool, endpoint: Endpoint) -> None:
    endpoint.mode = "hold"
    sending.run("hello")
    assert poll(lambda: endpoint.holding == 1, timeout=20)
    pid = int((sending.state_dir / "uploader.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    assert poll(lambda: sending.uploader_stopped(), timeout=20)
    endpoint.mode = "ok"
    sending.allow_next_attempt()
    sending.run("hello")
    assert poll(lambda: len(endpoint.events) == 2, timeout=20)
    assert len({e["event_id"] for e in endpoint.events}) == 2


def test_a_disabled_tool_sends_nothing(sending: Tool, endpoint: Endpoint) -> None:
    for env in ({"DO_NOT_TRACK": "1"}, {"CLI_APP_TELEMETRY_DISABLED": "1"}):
        assert sending.run("hello", env=env).returncode == 0
    assert not (sending.state_dir / "uploader.stamp").exists()  # no uploader was started
    sending.run("deploy", "status")  # a marker: once it arrives, anything earlier would have
    assert poll(lambda: len(endpoint.events) == 1, timeout=20)
    assert poll(lambda: sending.uploader_stopped(), timeout=20)
    assert [e["command"] for e in endpoint.events] == ["cli-app deploy status"]


def test_disable_stops_a_running_uploader_and_nothing_is_sent_after(
    sending: Tool, endpoint: Endpoint
) -> None:
    endpoint.mode = "hold"
    sending.run("hello")
    assert poll(lambda: endpoint.holding == 1, timeout=20)
    pid = int((sending.state_dir / "uploader.pid").read_text())
    install_id = (sending.ids_file).read_text().split("=", 1)[1].strip()
    endpoint.mode = "ok"
    result = sending.run("telemetry", "disable")
    assert result.returncode == 0, result.stderr
    assert dead(pid)  # the uploader is gone: it can send nothing more
    # All that follows is the deletion request for the id disable deleted (see
    # tests/test_forgetting_e2e.py); once it has arrived, nothing of ours is left.
    assert poll(lambda: not sending.state_dir.exists(), timeout=30)
    assert [(e["event"], e["install_id"]) for e in endpoint.events] == [
        ("deletion_request", install_id)
    ]
    assert sending.run("hello").returncode == 0
    assert sending.run("telemetry", "status").returncode == 0
    assert not sending.state_dir.exists()
    assert len(endpoint.events) == 1


def test_the_uploaders_endpoint_and_token_are_not_in_its_arguments(
    sending: Tool, endpoint: Endpoint
) -> None:
    """Any user of the machine can read a process's arguments (``ps``): the endpoint (which
    may hold credentials) and the token travel in the uploader's environment, which only
    its own user can read."""
    endpoint.mode = "hold"
    secret_url = endpoint.url.replace("http://", "http://user:s3cret-in-url@")
    sending.env["CLI_APP_TELEMETRY_ENDPOINT"] = secret_url
    sending.env["CLI_APP_TELEMETRY_TOKEN"] = "s3cret-token"
    sending.run("hello")
    assert poll(lambda: endpoint.holding == 1, timeout=20)
    pid = int((sending.state_dir / "uploader.pid").read_text())
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        arguments = f.read()
    assert b"cli_telemetry._uploader" in arguments
    assert b"s3cret" not in arguments
    environ = os.stat(f"/proc/{pid}/environ")
    assert environ.st_uid == os.getuid() and environ.st_mode & 0o077 == 0
    endpoint.release.set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_uploader_runs_at_the_lowest_cpu_priority(sending: Tool, endpoint: Endpoint) -> None:
    """The user's next command must not share a core with the uploader on equal terms
    (`_spawn.lower_priority`)."""
    endpoint.mode = "hold"
    result = sending.run("hello")
    assert result.returncode == 0
    assert poll(lambda: endpoint.holding == 1, timeout=20)
    pid = int((sending.state_dir / "uploader.pid").read_text())
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[16]) == 19  # the niceness: field 19 of stat(5), 17th after the name
    endpoint.release.set()


def test_a_hundred_concurrent_commands_with_a_flaky_server_lose_and_duplicate_nothing(
    sending: Tool, endpoint: Endpoint
) -> None:
    endpoint.mode, endpoint.fail_every = "flaky", 3
    procs = [
        subprocess.Popen(
            sending.command("hello"), env=sending.env, cwd=sending.home,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for _ in range(100)
    ]  # fmt: skip
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert (proc.returncode, err) == (0, b"")

    # Keep nudging (as later commands would) until the spool is drained.
    def drained() -> bool:
        if sending.uploader_stopped() and pending(sending) > 0:
            sending.allow_next_attempt()
            sending.run("hello")
        return pending(sending) == 0 and sending.uploader_stopped()

    assert poll(drained, timeout=120, interval=0.5)
    ids = [e["event_id"] for e in endpoint.events]
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert len(ids) >= 100
    assert [e["command"] for e in endpoint.events].count("cli-app hello") == len(ids)


def test_the_uploader_never_imports_from_the_current_directory(
    sending: Tool, endpoint: Endpoint, tmp_path: Path
) -> None:
    """Running a tool inside an untrusted checkout must not run the checkout's code."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    marker = tmp_path / "PWNED"
    for module in ("filelock", "urllib3"):
        (checkout / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').write('{module}')\n")
    result = subprocess.run(
        sending.command("hello"), env=sending.env, cwd=checkout, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert poll(lambda: len(endpoint.events) == 1, timeout=20)
    assert not marker.exists()


def test_an_ignored_sigterm_is_not_inherited_so_disable_still_stops_it(
    sending: Tool, endpoint: Endpoint
) -> None:
    endpoint.mode = "hold"
    subprocess.run(
        ["sh", "-c", "trap '' TERM; exec \"$@\"", "sh", *sending.command("hello")],
        env=sending.env, cwd=sending.home, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert poll(lambda: endpoint.holding == 1, timeout=20)
    pid = int((sending.state_dir / "uploader.pid").read_text())
    assert sending.run("telemetry", "disable").returncode == 0
    assert dead(pid)


@pytest.mark.parametrize(
    ("grace", "returncode", "error"),
    [(1.0, 0, "timeout"), (-1.0, 3, "interrupted")],
    ids=["deadline", "watchdog"],
)
def test_a_server_that_drips_its_answer_is_a_failure_with_a_backoff(
    sending: Tool, endpoint: Endpoint, grace: float, returncode: int, error: str
) -> None:
    """A drip-fed answer escapes socket timeouts. The uploader stops waiting for the sink at
    its deadline (here 2 s instead of 30) and backs it off; and if the watchdog has to end
    the process first (here at 1 s), the failure was written before the send: either way
    the next command does not hammer the endpoint again."""
    import json as json_

    from cli_telemetry._spawn import OPTIONS_VARIABLE

    sending.env["CLI_APP_TELEMETRY_ENDPOINT"] = ""  # record only; we start the uploader
    sending.run("hello")
    endpoint.mode = "drip"
    options = {"tool": "cli-app", "env_prefix": "CLI_APP", "consent": "notice",
               "policy_version": 1, "max_events": 1000, "sinks": [{"name": "collector",
               "target": "cli_telemetry.sinks.http:HttpSink",
               "options": {"endpoint": endpoint.url, "token": None}}],
               "max_bytes": 2_000_000}  # fmt: skip
    code = (
        "from cli_telemetry import _uploader as u;"
        f" u.DEADLINE, u.HARD_STOP_GRACE, u.MIN_TIME_FOR_A_BATCH = 2.0, {grace}, 0.0; u.main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env={**sending.env, OPTIONS_VARIABLE: json_.dumps(options)},
        cwd=sending.home, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == returncode
    assert (sending.upload_state()["failures"], sending.upload_state()["last_error"]) == (1, error)
    assert (sending.state_dir / "uploader.stamp").stat().st_mtime > time.time() + 10
    assert pending(sending) == 1  # released, or still claimed and released by the next one
