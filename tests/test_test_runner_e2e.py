"""A tool run by a test records nothing, unless the test asks the ``telemetry_events`` fixture.

The machine of an author who runs their tool in their own tests has telemetry on (the
notice was shown there once): those runs must neither record nor upload. Each test here
starts from such a machine (a HOME whose config file says "on", an endpoint on loopback)
and runs the tool as an author's test would: in process with click's or Typer's
``CliRunner``, under pytest or not (unittest sets no variable), and as a subprocess, which
inherits ``PYTEST_CURRENT_TEST`` (`cli_telemetry._settings.detect_test_runner`). None of
them asks for `as_a_user`, the suite's own opt-in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import typer
from click.testing import CliRunner
from conftest import Tool, poll
from loopback import Endpoint
from typer.testing import CliRunner as TyperRunner

from cli_telemetry import Telemetry
from cli_telemetry._settings import UPLOAD_AT_ONCE_VARIABLE
from cli_telemetry.pytest_plugin import TelemetryEvents

pytestmark = pytest.mark.e2e


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An author's HOME, where telemetry is on for ``acme``."""
    for var in [v for v in os.environ if v.startswith("XDG_")] + ["DO_NOT_TRACK"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".config" / "acme" / "telemetry.conf"
    config.parent.mkdir(parents=True)
    config.write_text("enabled = true\nconsent_policy = 1\n")
    return tmp_path


def acme(endpoint: Endpoint) -> tuple[Telemetry, click.Group]:
    telemetry = Telemetry("acme", version="1", endpoint=endpoint.url)

    @telemetry.instrument
    @click.group()
    def cli() -> None:
        pass

    @cli.command()
    def hello() -> None:
        click.echo("hello")

    cli.add_command(telemetry.command())
    return telemetry, cli


def state(home: Path) -> Path:
    return home / ".local" / "state" / "acme" / "telemetry"


def test_click_runner_under_pytest_records_and_sends_nothing(
    machine: Path, endpoint: Endpoint
) -> None:
    telemetry, cli = acme(endpoint)
    result = CliRunner().invoke(cli, ["hello"])
    assert (result.exit_code, result.output) == (0, "hello\n")
    # Nothing written: no spool, no ids, and so no uploader either (it is started after an
    # event is appended, and its throttle stamp lives in this directory).
    assert not state(machine).exists()
    status = telemetry.status()
    assert (status.enabled, status.source, status.pending) == (False, "test_runner", 0)
    shown = CliRunner().invoke(cli, ["telemetry", "status"]).output.splitlines()[0]
    assert shown == (
        "Telemetry for acme is off: a test runner is running the tool, pytest"
        " (PYTEST_CURRENT_TEST is set); a test records only when it asks for the"
        " telemetry_events fixture."
    )
    assert endpoint.seen == 0


def test_a_cli_runner_outside_pytest_is_a_test_runner_too(
    machine: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As under unittest, which sets no variable: the runner's capture of stdout tells."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    _, cli = acme(endpoint)
    assert CliRunner().invoke(cli, ["hello"]).exit_code == 0
    assert not state(machine).exists()
    shown = CliRunner().invoke(cli, ["telemetry", "status", "--json"]).output
    assert json.loads(shown)["reason"].startswith(
        "a test runner is running the tool, click's CliRunner;"
    )


def test_typers_runner_outside_pytest_is_a_test_runner_too(
    machine: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    telemetry = Telemetry("acme", version="1", endpoint=endpoint.url)
    app = telemetry.instrument(typer.Typer())

    @app.command()
    def hello() -> None:
        typer.echo("hello")

    @app.command()
    def status() -> None:
        typer.echo(telemetry.status().reason)

    assert TyperRunner().invoke(app, ["hello"]).output == "hello\n"
    assert not state(machine).exists()
    # The Typer of .venv (0.26 or later) captures with a runner of its own; earlier ones
    # subclass click's, which is told apart the same way.
    reason = TyperRunner().invoke(app, ["status"]).output
    assert reason.startswith("a test runner is running the tool, Typer's CliRunner;")


def test_a_run_with_neither_sign_is_a_users_run_and_records(
    machine: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule is exactly those two signs: the same command, called as a console script
    calls it, with pytest's variable gone, records (and sends) as a user's run does."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST")
    monkeypatch.setenv(UPLOAD_AT_ONCE_VARIABLE, "1")  # one event: sent now, not at 20
    telemetry, cli = acme(endpoint)
    assert cli.main(["hello"], standalone_mode=False) is None
    assert telemetry.status().pending == 1
    assert poll(lambda: len(endpoint.events) == 1, timeout=20), "the uploader sent nothing"


def test_the_fixture_asks_to_record(
    machine: Path, endpoint: Endpoint, telemetry_events: TelemetryEvents
) -> None:
    telemetry, cli = acme(endpoint)
    assert CliRunner().invoke(cli, ["hello"]).exit_code == 0
    assert [e["command"] for e in telemetry_events] == ["acme hello"]
    assert not state(machine).exists()  # into the fixture's directory, never sent
    assert telemetry.status().reason.startswith("CLI_TELEMETRY_TEST_DIR is set (a test)")


# -- a test that starts the tool as a process --------------------------------------------------


@pytest.fixture
def sending(tool: Tool, endpoint: Endpoint) -> Tool:
    """The example tool, on, with an endpoint: a user's run would send to it."""
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint.url
    return tool


def test_a_process_a_test_starts_records_and_sends_nothing(
    sending: Tool, endpoint: Endpoint
) -> None:
    """``subprocess.run(["acme", ...])`` in a test: the child inherits PYTEST_CURRENT_TEST
    from the test's environment (the suite's Tool takes it out; this test puts it back)."""
    under_test = {"PYTEST_CURRENT_TEST": os.environ["PYTEST_CURRENT_TEST"]}
    result = sending.run("hello", env=under_test)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, world!\n", "")
    assert sending.event_files() == [] and not (sending.state_dir / "ids").exists()
    status = json.loads(sending.run("telemetry", "status", "--json", env=under_test).stdout)
    assert (status["enabled"], status["source"]) == (False, "test_runner")
    # The same run without the variable is a user's: it records and sends.
    assert sending.run("hello").returncode == 0
    assert poll(lambda: len(endpoint.events) == 1, timeout=20), "the uploader sent nothing"
    assert [e["command"] for e in endpoint.events] == ["cli-app hello"]


def test_a_process_started_with_the_fixtures_environment_records_there(
    sending: Tool, telemetry_events: TelemetryEvents
) -> None:
    fixture = {"CLI_TELEMETRY_TEST_DIR": telemetry_events.env["CLI_TELEMETRY_TEST_DIR"]}
    under_test = {"PYTEST_CURRENT_TEST": os.environ["PYTEST_CURRENT_TEST"], **fixture}
    assert sending.run("hello", env=under_test).returncode == 0
    assert [e["command"] for e in telemetry_events] == ["cli-app hello"]
    assert sending.event_files() == []
