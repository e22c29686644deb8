"""The exact event for each way a command can end, from real runs of the example tool."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import typing
from typing import Any

import pytest
from conftest import Tool

from cli_telemetry.events import COMMAND_ONLY_FIELDS, CUSTOM_ONLY_FIELDS, Event, check_event

ALL_FIELDS = set(typing.get_type_hints(Event))
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
"""The install id is random (UUID4); a record's id is time-ordered (UUIDv7)."""
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def expected_keys(kind: str) -> set[str]:
    return ALL_FIELDS - (CUSTOM_ONLY_FIELDS if kind == "command" else COMMAND_ONLY_FIELDS)


def only_event(tool: Tool) -> dict[str, Any]:
    events = tool.events()
    assert len(events) == 1, events
    return events[0]


def assert_common(event: dict[str, Any], kind: str = "command") -> None:
    assert set(event) == expected_keys(kind)
    assert event["schema_version"] == 1
    assert UUID7.fullmatch(event["event_id"])
    assert UUID.fullmatch(event["install_id"])
    assert TIMESTAMP.fullmatch(event["timestamp"])
    assert event["tool"] == "cli-app"
    assert event["tool_version"] == "1.4.0"
    assert event["os"] == sys.platform.replace("darwin", "macos")
    assert event["python_version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert event["ci"] is None
    assert event["interactive"] is False
    check_event(event)  # what the collector accepts


@pytest.fixture
def enabled(tool: Tool) -> Tool:
    tool.enable()
    return tool


def test_success_records_flags_and_closed_values_only(enabled: Tool) -> None:
    result = enabled.run(
        "deploy", "start", "web-secret-target", "--env", "staging", "--replicas", "7",
        "--dry-run", "--token", "s3cr3t-token",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    command, custom = enabled.events()
    assert_common(command)
    assert command["event"] == "command"
    assert command["command"] == "cli-app deploy start"
    assert command["flags"] == ["--env", "--replicas", "--dry-run", "--token"]
    assert command["values"] == {"--env": "staging"}  # the one option named in record_values
    assert (command["exit_code"], command["outcome"], command["error_type"]) == (0, "success", None)
    assert isinstance(command["duration_ms"], int) and command["duration_ms"] >= 0

    assert_common(custom, kind="custom")
    assert custom["event"] == "deploy.finished"
    assert custom["command"] == "cli-app deploy start"
    assert custom["properties"] == {"replicas": 7, "dry_run": True}
    assert custom["install_id"] == command["install_id"]
    assert custom["event_id"] != command["event_id"]

    raw = "".join(p.read_text() for p in enabled.event_files())
    for secret in ("web-secret-target", "s3cr3t-token", '"7"', str(enabled.home)):
        assert secret not in raw


def test_environment_backed_option_counts_as_a_flag(enabled: Tool) -> None:
    result = enabled.run("deploy", "start", "web", env={"CLI_APP_ENV": "prod"})
    assert result.returncode == 0, result.stderr
    command = enabled.events()[0]
    assert command["flags"] == ["--env"]
    assert command["values"] == {"--env": "prod"}


def test_defaults_are_not_flags_and_group_options_are(enabled: Tool) -> None:
    assert enabled.run("-v", "hello", "--name", "Ada Lovelace").returncode == 0
    event = only_event(enabled)
    assert event["command"] == "cli-app hello"
    assert event["flags"] == ["--verbose", "--name"]
    assert event["values"] == {}  # neither is in record_values: names only
    assert "Ada" not in enabled.event_files()[0].read_text()


def test_a_flag_pair_records_the_switch_given(enabled: Tool) -> None:
    assert enabled.run("hello", "--no-shout").returncode == 0
    assert enabled.run("hello", "--shout").returncode == 0
    assert [(e["flags"], e["values"]) for e in enabled.events()] == [
        (["--no-shout"], {}),
        (["--shout"], {}),
    ]


def test_handled_error_keeps_type_not_message(enabled: Tool) -> None:
    result = enabled.run("check", "/home/someone/widget.txt")
    assert result.returncode == 1
    assert "the widget is broken" in result.stderr
    event = only_event(enabled)
    assert_common(event)
    assert (event["exit_code"], event["outcome"], event["error_type"]) == (
        1,
        "error",
        "ClickException",
    )
    raw = enabled.event_files()[0].read_text()
    assert "widget" not in raw and "someone" not in raw


def test_uncaught_exception_keeps_class_name_only(enabled: Tool) -> None:
    result = enabled.run("crash")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("RuntimeError: unexpected state")
    event = only_event(enabled)
    assert (event["exit_code"], event["outcome"], event["error_type"]) == (
        1,
        "error",
        "RuntimeError",
    )
    assert "secret" not in enabled.event_files()[0].read_text()


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["deploy", "start", "web", "--env", "staging", "--bogus-secret"], "cli-app deploy start"),
        (["deploy", "start", "web", "--env", "moon-secret"], "cli-app deploy start"),
        (["deploy", "start", "web"], "cli-app deploy start"),
        (["deploy", "secret-subcommand"], "cli-app deploy"),
        (["--secret-root-option"], "cli-app"),
    ],
)
def test_usage_errors_are_recorded_without_the_bad_input(
    enabled: Tool, args: list[str], path: str
) -> None:
    result = enabled.run(*args)
    assert result.returncode == 2
    event = only_event(enabled)
    assert_common(event)
    assert event["command"] == path
    assert (event["exit_code"], event["outcome"]) == (2, "usage_error")
    assert event["error_type"] is not None and event["error_type"].isidentifier()
    raw = enabled.event_files()[0].read_text()
    assert "secret" not in raw and "moon" not in raw and "bogus" not in raw


def test_usage_error_keeps_flags_parsed_before_it(enabled: Tool) -> None:
    assert enabled.run("deploy", "start", "web", "--dry-run", "--replicas", "many").returncode == 2
    event = only_event(enabled)
    assert "--dry-run" in event["flags"]
    assert "many" not in enabled.event_files()[0].read_text()


def test_declining_a_confirmation_is_aborted(enabled: Tool) -> None:
    result = enabled.run("reset", input="n\n")
    assert result.returncode == 1
    assert "Aborted!" in result.stderr
    event = only_event(enabled)
    assert (event["exit_code"], event["outcome"], event["error_type"]) == (1, "aborted", None)


def test_ctrl_c_is_interrupted(enabled: Tool) -> None:
    proc = subprocess.Popen(
        enabled.command("watch"),
        env=enabled.env,
        cwd=enabled.home,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("Watching")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Aborted!" in stderr
    event = only_event(enabled)
    assert (event["command"], event["outcome"], event["exit_code"]) == (
        "cli-app watch",
        "interrupted",
        1,
    )


@pytest.mark.parametrize(
    ("args", "path"),
    [(["--help"], "cli-app"), (["deploy", "--help"], "cli-app deploy"), (["--version"], "cli-app")],
)
def test_help_and_version_are_successful_invocations(
    enabled: Tool, args: list[str], path: str
) -> None:
    result = enabled.run(*args)
    assert result.returncode == 0
    event = only_event(enabled)
    assert (event["command"], event["outcome"], event["exit_code"]) == (path, "success", 0)


def test_the_telemetry_command_is_never_recorded(tool: Tool) -> None:
    for args in (["telemetry", "status"], ["telemetry", "enable"], ["telemetry", "status"]):
        assert tool.run(*args).returncode == 0
        assert tool.run(*args, "--json" if args[-1] == "status" else "--help").returncode == 0
    assert tool.events() == []
    assert not tool.ids_file.exists()


def test_shell_completion_is_not_an_invocation(enabled: Tool) -> None:
    script = os.path.join(os.path.dirname(sys.executable), "cli-app")
    result = subprocess.run(
        [script],
        env={**enabled.env, "_CLI_APP_COMPLETE": "bash_complete", "COMP_WORDS": "cli-app de",
             "COMP_CWORD": "1"},
        capture_output=True, text=True, timeout=60, check=False, cwd=enabled.home,
    )  # fmt: skip
    assert result.returncode == 0
    assert "deploy" in result.stdout
    assert enabled.events() == []


def test_install_id_is_stable_and_events_are_distinct(enabled: Tool) -> None:
    for _ in range(3):
        assert enabled.run("hello").returncode == 0
    events = enabled.events()
    assert len({e["install_id"] for e in events}) == 1
    assert len({e["event_id"] for e in events}) == 3


def test_ci_and_interactive_are_detected(enabled: Tool) -> None:
    assert enabled.run("hello", env={"GITHUB_ACTIONS": "true", "CI": "true"}).returncode == 0
    assert only_event(enabled)["ci"] == "github_actions"
    enabled.event_files()[0].unlink()
    result = enabled.run_tty("hello")
    assert result.returncode == 0
    assert only_event(enabled)["interactive"] is True


def test_debug_mode_prints_events_and_records_nothing(enabled: Tool) -> None:
    result = enabled.run("hello", env={"CLI_APP_TELEMETRY_DEBUG": "1"})
    assert result.returncode == 0
    assert result.stdout == "Hello, world!\n"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("cli-telemetry: would record")
    import json

    event = json.loads(lines[1])
    assert event["command"] == "cli-app hello"
    assert set(event) == expected_keys("command")
    assert event["install_id"] == "00000000-0000-0000-0000-000000000000"  # none made yet
    assert len(lines) == 2, "a first run's event is one the collector takes: no warning"
    assert enabled.events() == []
