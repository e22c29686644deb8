"""``telemetry.identify`` at module level, as the docs show it, in a tool run as real
processes: recorded once per change of its traits (and per install id), with a command that
is recorded, and never by the runs that record nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool, script_tool

pytestmark = pytest.mark.e2e

SCRIPT = """
import os
from typing import Literal, TypedDict

import click
from cli_telemetry import Telemetry

telemetry = Telemetry("acme", version="1.0")


class Traits(TypedDict):
    "This installation's plan."

    plan: Literal["free", "pro"]


telemetry.event("identify", Traits)
telemetry.identify({"plan": os.environ.get("ACME_PLAN", "free")})  # on every run


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
def acme(tmp_path: Path) -> Tool:
    tool = script_tool(tmp_path, SCRIPT)
    tool.env["ACME_ENDPOINT"] = ""  # the script has no sink: events stay in the spool
    tool.enable()
    return tool


def identifies(tool: Tool) -> list[Any]:
    return [e["properties"]["plan"] for e in tool.events() if e["event"] == "identify"]


def hello(tool: Tool, plan: str = "free") -> None:
    result = tool.run("hello", env={"ACME_PLAN": plan})
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")


def test_the_same_traits_are_recorded_once_per_change_and_per_install_id(acme: Tool) -> None:
    for _ in range(5):
        hello(acme)
    assert identifies(acme) == ["free"]
    assert [e["event"] for e in acme.events()].count("command") == 5

    hello(acme, "pro")
    hello(acme, "pro")
    assert identifies(acme) == ["free", "pro"]
    hello(acme, "free")  # not the last recorded: recorded again
    assert identifies(acme) == ["free", "pro", "free"]

    # What is kept is a fingerprint, privately, never the traits themselves.
    fingerprint = acme.state_dir / "identified"
    assert stat.S_IMODE(fingerprint.stat().st_mode) == 0o600
    assert "free" not in fingerprint.read_text() and "pro" not in fingerprint.read_text()

    # disable deletes it with the install id; the new id identifies again, once.
    assert acme.run("telemetry", "disable").returncode == 0
    assert not acme.state_dir.exists()
    acme.enable()
    hello(acme)
    hello(acme)
    assert identifies(acme) == ["free"]
    [install_id] = {e["install_id"] for e in acme.events()}
    assert all(e["install_id"] == install_id for e in acme.events())


def test_runs_that_record_nothing_record_no_identify(acme: Tool) -> None:
    """Status and the other ``telemetry`` subcommands, shell completion and DO_NOT_TRACK
    record nothing, an identify included: status's count does not grow as it is read."""
    for args in (
        ["telemetry", "status"],
        ["telemetry", "status", "--json"],
        ["telemetry", "--help"],
    ):
        assert acme.run(*args).returncode == 0
    # click names the variable after the program, acme_tool.py
    completion = {"_ACME_TOOL_PY_COMPLETE": "bash_complete", "COMP_WORDS": "acme he"}
    assert acme.run(env={**completion, "COMP_CWORD": "1"}).stdout == "plain,hello\n"
    acme.run("hello", env={"DO_NOT_TRACK": "1"})
    assert acme.events() == []
    assert "Waiting:     0 event(s)" in acme.run("telemetry", "status").stdout
    # --help is a use of the tool, recorded as a command: the identify goes with it.
    assert acme.run("--help").returncode == 0
    assert [e["event"] for e in acme.events()] == ["command", "identify"]
    hello(acme)
    assert [e["event"] for e in acme.events()] == ["command", "identify", "command"]
    assert "Waiting:     3 event(s)" in acme.run("telemetry", "status").stdout


def test_debug_mode_shows_an_identify_only_when_it_would_be_recorded(acme: Tool) -> None:
    debug = {"ACME_TELEMETRY_DEBUG": "1"}
    first = acme.run("hello", env=debug).stderr
    assert '"event":"identify"' in first
    hello(acme)
    again = acme.run("hello", env=debug).stderr
    assert '"event":"identify"' not in again
    assert "identify not recorded: these traits were recorded last" in again
    assert '"event":"identify"' in acme.run("hello", env={**debug, "ACME_PLAN": "pro"}).stderr
    assert identifies(acme) == ["free"]  # debug mode records nothing
    assert os.listdir(acme.spool_dir / "new") and len(acme.events()) == 2
