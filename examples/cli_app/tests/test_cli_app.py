"""The example tool's own tests, as a tool's author would write them: each runs the tool (in
process with click's CliRunner, or as a real process) and asserts what it printed and what
its telemetry recorded, with the library's ``telemetry_events`` fixture (a pytest plugin
that comes with cli-telemetry: nothing to configure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_app.cli import cli
from click.testing import CliRunner

from cli_telemetry.pytest_plugin import TelemetryEvents


def test_hello_records_the_switch_given(telemetry_events: TelemetryEvents) -> None:
    result = CliRunner().invoke(cli, ["hello", "--name", "Ada", "--shout"])

    assert result.output == "HELLO, ADA!\n"
    event = telemetry_events.last(command="cli-app hello")
    assert event["flags"] == ["--name", "--shout"]  # names only: "Ada" is nowhere
    assert event["outcome"] == "success"
    assert event["exit_code"] == 0
    assert "Ada" not in str(telemetry_events.all())


def test_deploy_records_its_choice_and_its_custom_event(telemetry_events: TelemetryEvents) -> None:
    result = CliRunner().invoke(
        cli,
        ["deploy", "start", "web", "--replicas", "3", "--token", "s3cret"],
        env={"CLI_APP_ENV": "prod"},
    )

    assert result.exit_code == 0, result.output
    command = telemetry_events.last(command="cli-app deploy start", event="command")
    assert command["flags"] == ["--env", "--replicas", "--token"]
    assert command["values"] == {"--env": "prod"}  # a Choice named in record_values
    [finished] = telemetry_events.custom("deploy.finished")
    assert finished["properties"] == {"replicas": 3, "dry_run": False}
    assert finished["command"] == "cli-app deploy start"
    assert "s3cret" not in str(telemetry_events.all())


def test_failures_record_their_kind_and_never_their_message(
    telemetry_events: TelemetryEvents,
) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["check", "widget.txt"]).exit_code == 1
    assert runner.invoke(cli, ["deploy", "stop"]).exit_code == 2

    check, stop = telemetry_events.commands()
    assert (check["outcome"], check["error_type"]) == ("error", "ClickException")
    assert (stop["command"], stop["outcome"]) == ("cli-app deploy", "usage_error")
    assert "widget" not in str(telemetry_events.all())


def test_telemetry_disable_stops_recording(telemetry_events: TelemetryEvents) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["hello"])
    assert runner.invoke(cli, ["telemetry", "disable"]).exit_code == 0
    runner.invoke(cli, ["hello"])

    assert telemetry_events.all() == []  # disable deleted the first run's event too
    status = runner.invoke(cli, ["telemetry", "status"]).output
    assert "Telemetry for cli-app is off: turned off in the config file." in status


def test_do_not_track_records_nothing(telemetry_events: TelemetryEvents) -> None:
    result = CliRunner().invoke(cli, ["hello"], env={"DO_NOT_TRACK": "1"})

    assert result.output == "Hello, world!\n"
    assert len(telemetry_events) == 0


def test_the_installed_command_records_too(
    telemetry_events: TelemetryEvents, tmp_path: Path
) -> None:
    """A real process, with the fixture's environment: the same events, and no uploader."""
    result = subprocess.run(
        [sys.executable, "-m", "cli_app", "deploy", "status", "--format", "json"],
        env=telemetry_events.env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.stdout == '{"deployments": []}\n', result.stderr
    [event] = telemetry_events.all()
    assert event["command"] == "cli-app deploy status"
    assert event["values"] == {"--format": "json"}
