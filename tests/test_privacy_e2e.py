"""What never leaves the user's machine, end to end: real tools, the real detached uploader,
a real HTTP endpoint on loopback; each check reads the disk and the wire."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool, poll, script_tool
from loopback import Endpoint

SECRET_CONTEXT = "arn:aws:eks:us-east-1:123456789012:cluster/prod"
SECRET_PLUGIN = "acquire-megacorp-merger"

USERS_DATA_TOOL = """
import os
import click
from cli_telemetry import Telemetry

telemetry = Telemetry("acme", version="1.0")


class PathPlugins(click.Group):
    '''git-style: any acme-<name> executable on PATH is a subcommand.'''

    def found(self):
        return sorted(
            name[len("acme-"):]
            for directory in os.environ["PATH"].split(os.pathsep) if os.path.isdir(directory)
            for name in os.listdir(directory) if name.startswith("acme-")
        )

    def list_commands(self, ctx):
        return sorted([*super().list_commands(ctx), *self.found()])

    def get_command(self, ctx, name):
        if name in self.found():
            return click.Command(name, callback=lambda: click.echo("plugin ran"))
        return super().get_command(ctx, name)


@telemetry.instrument
@click.group(cls=PathPlugins)
def cli():
    pass


@cli.command()
@click.option("--context", type=click.Choice(os.environ["KUBE_CONTEXTS"].split(",")))
def use(context):
    click.echo("using it")


cli.add_command(telemetry.command())
cli()
"""


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def everything_written(home: Path) -> str:
    return "\n".join(
        p.read_bytes().decode(errors="replace") for p in home.rglob("*") if p.is_file()
    )


def test_a_choice_and_plugins_from_the_users_data_stay_on_their_machine(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    """A Choice built from the user's kube contexts, and a plugin found on their PATH: the
    command's name and the option's name are recorded, neither run-time value, on disk or
    on the wire."""
    plugins = tmp_path / "bin"
    plugins.mkdir()
    (plugins / f"acme-{SECRET_PLUGIN}").write_text("#!/bin/sh\n")
    acme = script_tool(tmp_path, USERS_DATA_TOOL)
    acme.env["KUBE_CONTEXTS"] = f"{SECRET_CONTEXT},dev"
    acme.env["PATH"] = f"{plugins}{os.pathsep}{acme.env['PATH']}"
    acme.enable()

    acme.env["ACME_TELEMETRY_ENDPOINT"] = endpoint.url
    assert acme.run("use", "--context", SECRET_CONTEXT).stdout == "using it\n"
    assert acme.run(SECRET_PLUGIN).stdout == "plugin ran\n"
    assert poll(lambda: len(endpoint.events) == 2, timeout=30), endpoint.requests

    sent = [(e["command"], e["flags"], e["values"]) for e in endpoint.events]
    assert sent == [("acme use", ["--context"], {}), ("acme <unlisted>", [], {})]
    wire = json.dumps(endpoint.requests)
    assert SECRET_CONTEXT not in wire and "123456789012" not in wire
    assert SECRET_PLUGIN not in wire and "megacorp" not in wire
    written = everything_written(acme.home)
    assert SECRET_CONTEXT not in written and SECRET_PLUGIN not in written


ID_FIELDS = ("event_id", "install_id")


def ids(events: list[dict[str, Any]]) -> set[str]:
    return {event[field] for event in events for field in ID_FIELDS}


def test_after_disable_and_enable_nothing_links_new_events_to_old_ones(
    tool: Tool, endpoint: Endpoint
) -> None:
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint.url
    tool.run("deploy", "start", "web", "--env", "dev")
    assert poll(lambda: len(endpoint.events) == 2, timeout=30)
    before = list(endpoint.events)
    assert tool.run("telemetry", "disable").returncode == 0
    # The one record disable sends names the old id and nothing else of it.
    assert poll(lambda: len(endpoint.events) == 3, timeout=30)
    (deletion,) = endpoint.events[2:]
    assert deletion["event"] == "deletion_request"
    assert {deletion["install_id"]} == {e["install_id"] for e in before}
    tool.enable()
    tool.run("deploy", "start", "web", "--env", "dev")
    assert poll(lambda: len(endpoint.events) == 5, timeout=30)
    after = endpoint.events[3:]

    assert ids(before).isdisjoint(ids(after))
    assert len({e["install_id"] for e in before}) == len({e["install_id"] for e in after}) == 1
    # Nothing else in an event is derived from the machine or the user: every field other
    # than the ids and the time is the same for the same command.
    for old, new in zip(before, after, strict=True):
        same = {k: v for k, v in old.items() if k not in (*ID_FIELDS, "timestamp", "duration_ms")}
        assert same == {k: v for k, v in new.items() if k in same}
