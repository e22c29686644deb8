"""Consent, end to end: the notice, the prompt, every precedence level, enable/disable."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Tool

NOTICE = "collects usage data, under a random id"
QUESTION = "Send usage data? [y/N]"


def status(tool: Tool, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = tool.run("telemetry", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- notice mode (the example tool) -----------------------------------------------------------


def test_notice_is_shown_once_on_a_terminal_and_that_run_records_nothing(tool: Tool) -> None:
    first = tool.run_tty("hello")
    assert first.returncode == 0
    assert first.stdout == "Hello, world!\n"  # the notice never goes to stdout
    assert NOTICE in first.terminal
    assert "cli-app telemetry disable" in first.terminal
    assert "https://cli-app.example/privacy" in first.terminal
    assert tool.events() == []

    second = tool.run_tty("hello")
    assert NOTICE not in second.terminal
    assert len(tool.events()) == 1
    assert status(tool)["source"] == "default"


def test_without_a_terminal_no_notice_and_nothing_is_written(tool: Tool) -> None:
    for _ in range(3):
        result = tool.run("hello")
        assert result.returncode == 0
        assert result.stderr == ""
    assert tool.files() == []
    state = status(tool)
    assert state["enabled"] is False
    assert state["source"] == "default"
    # Once a terminal has shown it, non-terminal runs record.
    tool.run_tty("hello")
    assert tool.run("hello").returncode == 0
    assert len(tool.events()) == 1


def test_policy_bump_shows_the_notice_again(make_tool: Callable[..., Tool]) -> None:
    v1 = make_tool("notice", 1)
    v1.run_tty("hello")
    v1.run("hello")
    assert len(v1.events()) == 1

    v2 = make_tool("notice", 2, home=v1.home)
    assert v2.run("hello").returncode == 0  # no terminal: the new notice can't be shown
    assert len(v2.events()) == 1
    bumped = v2.run_tty("hello")
    assert NOTICE in bumped.terminal
    assert len(v2.events()) == 1
    v2.run("hello")
    assert len(v2.events()) == 2


# -- prompt mode ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "records"), [("y", True), ("yes", True), ("n", False), ("", False)]
)
def test_prompt_asks_once_and_stores_the_answer(
    make_tool: Callable[..., Tool], answer: str, records: bool
) -> None:
    acme = make_tool("prompt")
    first = acme.run_tty("hello", answer=answer)
    assert first.returncode == 0
    assert first.stdout == "hello\n"
    assert QUESTION in first.terminal
    assert len(acme.events()) == (1 if records else 0)

    second = acme.run_tty("hello")
    assert QUESTION not in second.terminal
    assert len(acme.events()) == (2 if records else 0)
    state = status(acme)
    assert (state["enabled"], state["source"]) == (records, "config")


def test_prompt_end_of_input_means_no(make_tool: Callable[..., Tool]) -> None:
    acme = make_tool("prompt")
    result = acme.run_tty("hello", answer="\x04")  # Ctrl-D on an empty line
    assert result.returncode == 0
    assert acme.events() == []
    assert status(acme)["enabled"] is False


@pytest.mark.parametrize(
    ("how", "env"),
    [
        ("no stdin terminal", {}),
        ("CI", {"CI": "true"}),
        ("GitHub Actions", {"GITHUB_ACTIONS": "1"}),
    ],
)
def test_prompt_never_blocks_scripts_or_ci(
    make_tool: Callable[..., Tool], how: str, env: dict[str, str]
) -> None:
    acme = make_tool("prompt")
    result = acme.run_tty("hello", env=env, stdin_tty=(how != "no stdin terminal"))
    assert result.returncode == 0
    assert QUESTION not in result.terminal
    assert acme.files() == []
    plain = acme.run("hello", env=env)
    assert (plain.returncode, plain.stderr) == (0, "")
    assert acme.files() == []


def test_prompt_policy_bump_asks_again_but_no_stays_no(make_tool: Callable[..., Tool]) -> None:
    yes = make_tool("prompt", 1)
    yes.run_tty("hello", answer="y")
    assert len(yes.events()) == 1
    again = make_tool("prompt", 2, home=yes.home).run_tty("hello", answer="y")
    assert QUESTION in again.terminal

    no_home = yes.home.parent / "no-home"
    no_home.mkdir()
    no = make_tool("prompt", 1, home=no_home)
    no.run_tty("hello", answer="n")
    bumped = make_tool("prompt", 2, home=no_home).run_tty("hello", answer="y")
    assert QUESTION not in bumped.terminal
    assert no.events() == []


# -- precedence -------------------------------------------------------------------------------


def test_do_not_track_writes_nothing_at_all(tool: Tool) -> None:
    env = {"DO_NOT_TRACK": "1"}
    for args in (["hello"], ["deploy", "start", "x", "--env", "dev"], ["check", "f"], ["crash"]):
        tool.run(*args, env=env)
    tty = tool.run_tty("hello", env=env)
    assert NOTICE not in tty.terminal
    assert tool.files() == []


@pytest.mark.parametrize(
    ("env", "enabled", "source"),
    [
        ({}, True, "config"),
        ({"DO_NOT_TRACK": "1"}, False, "do_not_track"),
        ({"DO_NOT_TRACK": "true"}, False, "do_not_track"),
        ({"DO_NOT_TRACK": "0"}, True, "config"),
        ({"DO_NOT_TRACK": "false"}, True, "config"),
        ({"DO_NOT_TRACK": ""}, True, "config"),
        ({"CLI_APP_TELEMETRY_DISABLED": "1"}, False, "env"),
        ({"CLI_APP_TELEMETRY_DISABLED": "0"}, True, "config"),
        ({"DO_NOT_TRACK": "1", "CLI_APP_TELEMETRY_DISABLED": "1"}, False, "do_not_track"),
    ],
)
def test_environment_beats_the_config_file(
    tool: Tool, env: dict[str, str], enabled: bool, source: str
) -> None:
    tool.enable()
    state = status(tool, env=env)
    assert (state["enabled"], state["source"]) == (enabled, source)
    tool.run("hello", env=env)
    assert len(tool.events()) == (1 if enabled else 0)


def test_config_disable_beats_the_notice_default(tool: Tool) -> None:
    tool.run_tty("hello")  # notice shown: on by default now
    assert status(tool)["enabled"] is True
    assert tool.run("telemetry", "disable").returncode == 0
    tool.run("hello")
    state = status(tool)
    assert (state["enabled"], state["source"], state["pending"]) == (False, "config", 0)


def test_corrupt_config_is_off_and_reported_only_in_debug(tool: Tool) -> None:
    tool.config_file.parent.mkdir(parents=True)
    tool.config_file.write_text("{ not json")
    result = tool.run("hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, world!\n", "")
    assert tool.events() == []
    debug = tool.run("hello", env={"CLI_APP_TELEMETRY_DEBUG": "1"})
    assert "config file cannot be used" in debug.stderr
    assert status(tool)["source"] == "config"
    assert tool.run("telemetry", "enable").returncode == 0  # rewrites it
    tool.run("hello")
    assert len(tool.events()) == 1


# -- status, enable, disable ----------------------------------------------------------------


def test_status_reports_everything(tool: Tool) -> None:
    tool.enable()
    tool.run("hello")
    tool.run("hello")
    state = status(tool)
    assert {"enabled", "source", "install_id", "config_file", "spool_dir", "pending"} <= set(state)
    assert state["enabled"] is True
    assert state["pending"] == 2
    assert state["install_id"] == tool.events()[0]["install_id"]
    assert state["config_file"] == str(tool.config_file)
    assert state["spool_dir"] == str(tool.spool_dir)
    text = tool.run("telemetry", "status")
    assert text.returncode == 0
    assert "is on" in text.stdout and "2 event(s)" in text.stdout
    assert state["install_id"] in text.stdout


def test_enable_and_disable_say_what_changed(tool: Tool) -> None:
    enable = tool.run("telemetry", "enable")
    assert enable.stdout.count("\n") == 1 and "now enabled" in enable.stdout
    assert "already enabled" in tool.run("telemetry", "enable").stdout
    warned = tool.run("telemetry", "enable", env={"DO_NOT_TRACK": "1"})
    assert "DO_NOT_TRACK" in warned.stderr

    for _ in range(3):
        tool.run("hello")
    assert len(tool.events()) == 3 and tool.ids_file.exists()
    disable = tool.run("telemetry", "disable")
    assert disable.returncode == 0
    assert disable.stdout.count("\n") == 1
    assert "deleted 3 pending event(s)" in disable.stdout
    assert not tool.state_dir.exists()  # spool, counters and ids: all gone
    assert tool.files() == [tool.config_file]
    tool.run("hello")
    assert tool.files() == [tool.config_file]


def test_config_file_is_owner_only(tool: Tool) -> None:
    tool.enable()
    assert tool.config_file.stat().st_mode & 0o777 == 0o600
    assert tool.config_file.parent.stat().st_mode & 0o777 == 0o700


def test_prompt_is_not_asked_when_the_answer_cannot_be_saved(
    make_tool: Callable[..., Tool],
) -> None:
    acme = make_tool("prompt")
    (acme.home / ".config").write_text("a file where the config directory should be")
    result = acme.run_tty("hello", answer="y")
    assert (result.returncode, result.stdout) == (0, "hello\n")
    assert QUESTION not in result.terminal
    assert acme.events() == []


def test_prompt_is_not_asked_after_ctrl_c(make_tool: Callable[..., Tool]) -> None:
    acme = make_tool("prompt")
    acme.program[-1:] = [acme.program[-1], "interrupt"]
    result = acme.run_tty(answer="y")
    assert result.returncode == 1
    assert "Aborted!" in result.terminal
    assert QUESTION not in result.terminal
    assert acme.files() == []
