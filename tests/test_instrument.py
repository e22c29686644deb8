"""The click hooks, in process, on tools built for each case (click's own CliRunner runs
them; the spool they write is real, in an isolated HOME)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import click
import pytest
from click.testing import CliRunner

from cli_telemetry import ConfigurationError, Telemetry
from cli_telemetry.events import check_event


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_a_user: None) -> Iterator[Path]:
    for var in [v for v in os.environ if v.startswith("XDG_")] + ["DO_NOT_TRACK", "CI"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    yield tmp_path


def enabled(home: Path, tool: str = "acme", **options: Any) -> Telemetry:
    telemetry = Telemetry(tool, version="1", **options)
    config = home / ".config" / tool / "telemetry.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("enabled = true\nconsent_policy = 1\n")
    return telemetry


def events(home: Path, tool: str = "acme") -> list[dict[str, Any]]:
    new = home / ".local" / "state" / tool / "telemetry" / "spool" / "new"
    return [json.loads(p.read_text()) for p in sorted(new.glob("*.json"))] if new.is_dir() else []


def test_callback_cannot_smuggle_a_path_into_values(home: Path) -> None:
    telemetry = enabled(home, record_values=["--profile", "--here", "--user"])

    @telemetry.instrument
    @click.command()
    @click.option(
        "--profile",
        type=click.Choice(["dev", "prod"]),
        callback=lambda ctx, param, value: f"/home/alice/.acme/{value}.toml",
    )
    @click.option("--here", is_flag=True, callback=lambda ctx, param, value: os.getcwd())
    @click.option("--user", "who", flag_value=os.environ.get("USER", "alice"))
    def cli(profile: str, here: str, who: str) -> None:
        pass

    result = CliRunner().invoke(cli, ["--profile", "dev", "--here", "--user"])
    assert result.exit_code == 0, result.output
    [event] = events(home)
    assert event["flags"] == ["--profile", "--here", "--user"]
    assert event["values"] == {"--user": True}
    raw = json.dumps(event)
    assert "alice" not in raw and os.getcwd() not in raw and ".toml" not in raw


def test_choice_values_are_recorded_and_multiple_choices_as_lists(home: Path) -> None:
    telemetry = enabled(home, record_values=["--fmt", "--tag", "-v"])

    @telemetry.instrument
    @click.command()
    @click.option("--fmt", type=click.Choice(["json", "text"], case_sensitive=False))
    @click.option("--tag", type=click.Choice(["a", "b"]), multiple=True)
    @click.option("-v", "--verbose", count=True)
    def cli(fmt: str, tag: tuple[str, ...], verbose: int) -> None:
        pass

    assert (
        CliRunner().invoke(cli, ["--fmt", "JSON", "--tag", "a", "--tag", "b", "-vv"]).exit_code == 0
    )
    [event] = events(home)
    assert event["values"] == {"--fmt": "json", "--tag": ["a", "b"]}
    assert event["flags"] == ["--fmt", "--tag", "--verbose"]


def test_plugin_groups_never_record_the_typed_word(home: Path) -> None:
    telemetry = enabled(home)

    class Plugins(click.Group):
        """Like git: any unknown word runs an external ``acme-<word>``."""

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            return super().get_command(ctx, cmd_name) or click.Command(cmd_name)

    @telemetry.instrument
    @click.group(cls=Plugins)
    def cli() -> None:
        pass

    @cli.command()
    def known() -> None:
        pass

    runner = CliRunner()
    assert runner.invoke(cli, ["alice@example.com"]).exit_code == 0
    assert runner.invoke(cli, ["known"]).exit_code == 0
    assert [e["command"] for e in events(home)] == ["acme <unlisted>", "acme known"]


def test_a_group_listing_what_it_finds_at_run_time_records_none_of_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plugins found on PATH (git-style ``acme-<name>`` executables) are listed and resolved
    at run time: their names are the user's, so neither reaches the disk."""
    telemetry = enabled(home)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "acme-acquire-megacorp-merger").write_text("#!/bin/sh\n")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    class PathPlugins(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            found = [
                name.removeprefix("acme-")
                for directory in os.environ["PATH"].split(os.pathsep)
                if os.path.isdir(directory)
                for name in os.listdir(directory)
                if name.startswith("acme-")
            ]
            return sorted([*super().list_commands(ctx), *found])

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name in self.list_commands(ctx) and cmd_name not in self.commands:
                return click.Command(cmd_name, callback=lambda: None)
            return super().get_command(ctx, cmd_name)

    @telemetry.instrument
    @click.group(cls=PathPlugins)
    def cli() -> None:
        pass

    @cli.command()
    def known() -> None:
        pass

    runner = CliRunner()
    assert runner.invoke(cli, ["acquire-megacorp-merger"]).exit_code == 0
    assert runner.invoke(cli, ["known"]).exit_code == 0
    assert [e["command"] for e in events(home)] == ["acme <unlisted>", "acme known"]
    spool = home / ".local" / "state" / "acme" / "telemetry"
    assert not any("megacorp" in p.read_text() for p in spool.rglob("*.json"))


def test_declared_commands_of_a_lazy_group_are_recorded(home: Path) -> None:
    telemetry = enabled(home)

    class Lazy(click.Group):
        """click's documented lazy-loading pattern: names in code, commands on demand."""

        lazy = ("deploy", "status")

        def list_commands(self, ctx: click.Context) -> list[str]:
            return [*super().list_commands(ctx), *self.lazy]

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            if cmd_name in self.lazy:
                return click.Command(cmd_name, callback=lambda: None)
            return super().get_command(ctx, cmd_name)

    @telemetry.instrument
    @click.group(cls=Lazy)
    def cli() -> None:
        pass

    runner = CliRunner()
    assert runner.invoke(cli, ["deploy"]).exit_code == 0
    telemetry.declare_commands(cli, Lazy.lazy)
    assert runner.invoke(cli, ["deploy"]).exit_code == 0
    assert [e["command"] for e in events(home)] == ["acme <unlisted>", "acme deploy"]


@pytest.mark.parametrize("names", [["has space"], ["<unlisted>"], [""], "deploy"])
def test_declaring_a_command_name_that_cannot_be_recorded_is_refused(
    home: Path, names: Any
) -> None:
    telemetry = enabled(home)
    group = click.Group("cli")
    if isinstance(names, str):
        telemetry.declare_commands(group, names)  # one name, not its letters
        return
    with pytest.raises(ConfigurationError, match="command name"):
        telemetry.declare_commands(group, names)


def test_names_and_values_that_do_not_fit_the_schema_are_placeholders(home: Path) -> None:
    """What the collector would refuse is never recorded as it is: the event still goes."""
    telemetry = enabled(home, record_values=["--lang", "+w"])

    class ÉchecError(Exception):
        pass

    @telemetry.instrument
    @click.group()
    def cli() -> None:
        pass

    @cli.command("déployer")
    @click.option("--lang", type=click.Choice(["C#", "café", "a b"]))
    @click.option("+w", "write", is_flag=True)
    def deploy(lang: str, write: bool) -> None:
        raise ÉchecError

    CliRunner().invoke(cli, ["déployer", "--lang", "a b", "+w"])
    CliRunner().invoke(cli, ["déployer", "--lang", "C#"])
    CliRunner().invoke(cli, ["déployer", "--lang", "café"])
    recorded = events(home)
    assert [e["command"] for e in recorded] == ["acme <other>"] * 3
    assert [e["values"] for e in recorded] == [
        {"--lang": "<other>", "+w": True},
        {"--lang": "C#"},
        {"--lang": "café"},
    ]
    assert {e["error_type"] for e in recorded} == {"ÉchecError"}
    for event in recorded:
        check_event(event)


def test_aliases_record_the_listed_name(home: Path) -> None:
    telemetry = enabled(home)

    class Prefixes(click.Group):
        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            matches = [n for n in self.list_commands(ctx) if n.startswith(cmd_name)]
            return super().get_command(ctx, matches[0]) if len(matches) == 1 else None

    @telemetry.instrument
    @click.group(cls=Prefixes)
    def cli() -> None:
        pass

    @cli.command()
    def deploy() -> None:
        pass

    assert CliRunner().invoke(cli, ["dep"]).exit_code == 0
    assert events(home)[0]["command"] == "acme deploy"


def test_ctx_exit_code_without_standalone_mode(home: Path) -> None:
    telemetry = enabled(home)

    @telemetry.instrument
    @click.command()
    @click.pass_context
    def cli(ctx: click.Context) -> None:
        ctx.exit(3)

    assert cli.main([], standalone_mode=False) == 3
    [event] = events(home)
    assert (event["exit_code"], event["outcome"]) == (3, "error")


@pytest.mark.parametrize(("code", "status"), [(256, 0), (-1, 255), (True, 1), ("message", 1)])
def test_sys_exit_codes_as_the_os_reports_them(home: Path, code: object, status: int) -> None:
    telemetry = enabled(home)

    @telemetry.instrument
    @click.command()
    def cli() -> None:
        raise SystemExit(code)

    CliRunner().invoke(cli, [])
    assert events(home)[0]["exit_code"] == status


def test_a_tool_mounted_in_another_records_all_options_once(home: Path) -> None:
    outer = enabled(home, "aaa")
    inner = enabled(home, "bbb")

    @outer.instrument
    @click.group()
    @click.option("--verbose", is_flag=True)
    def aaa(verbose: bool) -> None:
        pass

    @inner.instrument
    @click.group()
    @click.option("--fast", is_flag=True)
    def bbb(fast: bool) -> None:
        pass

    @bbb.command()
    @click.option("--mode", type=click.Choice(["x", "y"]))
    def sub(mode: str) -> None:
        pass

    aaa.add_command(bbb)
    result = CliRunner().invoke(aaa, ["--verbose", "bbb", "--fast", "sub", "--mode", "x"])
    assert result.exit_code == 0, result.output
    [event] = events(home, "aaa")
    assert event["command"] == "aaa bbb sub"
    assert event["flags"] == ["--verbose", "--fast", "--mode"]
    assert events(home, "bbb") == []


def test_chained_groups_record_each_subcommand_in_the_path(home: Path) -> None:
    telemetry = enabled(home)

    @telemetry.instrument
    @click.group(chain=True)
    def cli() -> None:
        pass

    @cli.command()
    def build() -> None:
        pass

    @cli.command()
    def push() -> None:
        pass

    assert CliRunner().invoke(cli, ["build", "push"]).exit_code == 0
    assert events(home)[0]["command"] == "acme build push"


def test_instrumenting_twice_records_once(home: Path) -> None:
    telemetry = enabled(home)

    @telemetry.instrument
    @telemetry.instrument
    @click.command()
    def cli() -> None:
        pass

    assert CliRunner().invoke(cli, []).exit_code == 0
    assert len(events(home)) == 1


def test_instrumenting_something_else_is_a_clear_type_error(home: Path) -> None:
    telemetry = enabled(home)
    with pytest.raises(TypeError, match="click command or group"):
        telemetry.instrument(lambda: None)  # type: ignore[type-var]


class SetupDone(TypedDict):
    """Set-up finished."""

    ok: bool


def test_track_outside_a_command_records_at_once(home: Path) -> None:
    telemetry = enabled(home)
    telemetry.event("setup.done", SetupDone).track({"ok": True})
    [event] = events(home)
    assert (event["event"], event["command"], event["properties"]) == (
        "setup.done",
        "acme",
        {"ok": True},
    )


def test_nothing_of_an_unlisted_command_is_recorded_but_that_it_ran(home: Path) -> None:
    """A plugin found at run time: its options, their values and its own exception class
    are its author's, not the tool's; click's own errors keep their names."""
    telemetry = enabled(home, record_values=["--format"])

    class AcquisitionFailed(Exception):
        pass

    def plugin_body(target: str, fmt: str) -> None:
        if target == "initech":
            raise AcquisitionFailed

    class Plugins(click.Group):
        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            return super().get_command(ctx, cmd_name) or click.Command(
                cmd_name,
                callback=plugin_body,
                params=[
                    click.Option(["--target"], required=True),
                    click.Option(["--format", "fmt"], type=click.Choice(["json", "text"])),
                ],
            )

    @telemetry.instrument
    @click.group(cls=Plugins)
    def cli() -> None:
        pass

    runner = CliRunner()
    runner.invoke(cli, ["acquire", "--target", "initech", "--format", "json"])
    runner.invoke(cli, ["acquire"])  # click's MissingParameter
    recorded = [(e["command"], e["flags"], e["values"], e["error_type"]) for e in events(home)]
    assert recorded == [
        ("acme <unlisted>", [], {}, "<other>"),
        ("acme <unlisted>", [], {}, "MissingParameter"),
    ]
