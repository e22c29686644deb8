"""Typer apps, in process, on the Typer of ``.venv`` (0.26 or later, built on its own copy of
click): however the app is built and run, every run is recorded, and nothing else changes.
Both Typer lines run the example tool end to end in tests/test_typer_e2e.py."""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from cli_telemetry import Telemetry
from cli_telemetry.describe import markdown, recorded_options


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_a_user: None) -> Iterator[Path]:
    for var in [v for v in os.environ if v.startswith("XDG_")] + ["DO_NOT_TRACK", "CI"]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    yield tmp_path


def enabled(home: Path, **options: Any) -> Telemetry:
    telemetry = Telemetry("acme", version="1", **options)
    config = home / ".config" / "acme" / "telemetry.conf"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("enabled = true\nconsent_policy = 1\n")
    return telemetry


def events(home: Path) -> list[dict[str, Any]]:
    new = home / ".local" / "state" / "acme" / "telemetry" / "spool" / "new"
    return [json.loads(p.read_text()) for p in sorted(new.glob("*.json"))] if new.is_dir() else []


def run(app: typer.Typer, *args: str) -> int:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code


def test_typer_is_the_line_without_click() -> None:
    assert hasattr(typer, "_click")
    assert not issubclass(TyperGroup, tuple(_real_click_commands()))


def _real_click_commands() -> list[type]:
    import sys

    click = sys.modules.get("click")  # other tests import it; Typer never does
    return [click.Command] if click is not None else []


def test_a_single_command_app_registered_after_instrumenting(home: Path) -> None:
    telemetry = enabled(home)
    app = telemetry.instrument(typer.Typer())

    @app.command()
    def main(name: str = "world", loud: bool = False) -> None:
        typer.echo(f"hello {name}")

    assert run(app, "--name", "Ada", "--loud") == 0
    [event] = events(home)
    assert (event["command"], event["flags"], event["outcome"]) == (
        "acme",
        ["--name", "--loud"],
        "success",
    )


def test_a_group_app_registered_before_instrumenting(home: Path) -> None:
    telemetry = enabled(home)
    app = typer.Typer()
    sub = typer.Typer()

    @app.callback()
    def root(verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False) -> None:
        pass

    @sub.command("go")
    def go(fast: bool = False) -> None:
        pass

    app.add_typer(sub, name="sub")
    telemetry.instrument(app)

    assert run(app, "-v", "sub", "go", "--no-fast") == 0
    assert run(app, "sub", "nope") == 2
    assert [(e["command"], e["flags"], e["outcome"]) for e in events(home)] == [
        ("acme sub go", ["--verbose", "--no-fast"], "success"),
        ("acme sub", [], "usage_error"),
    ]


def test_classes_the_author_names_are_still_the_ones_typer_builds(home: Path) -> None:
    telemetry = enabled(home)

    class Group(TyperGroup):
        pass

    class Command(TyperCommand):
        pass

    app = telemetry.instrument(typer.Typer())

    @app.callback(cls=Group)
    def root() -> None:
        pass

    @app.command(cls=Command)
    def one() -> None:
        pass

    @app.command()
    def two() -> None:
        pass

    built = get_command(app)
    assert isinstance(built, Group) and type(built).__name__ == "Group"
    assert isinstance(built.commands["one"], Command)
    assert run(app, "one") == 0 and run(app, "two") == 0
    assert [e["command"] for e in events(home)] == ["acme one", "acme two"]


def test_every_way_of_running_the_app_records_once(home: Path) -> None:
    """``app()`` (what a console script runs), Typer's CliRunner, and a command built with
    ``get_command``: each builds a new tree, each run is recorded once, however often the
    app was instrumented."""
    telemetry = enabled(home)
    app = typer.Typer()

    @app.command()
    def hello() -> None:
        pass

    telemetry.instrument(app)
    telemetry.instrument(app)
    with pytest.raises(SystemExit) as ended:
        app(["--help"], prog_name="acme")
    assert ended.value.code == 0
    assert run(app) == 0
    get_command(app).main([], standalone_mode=False)
    assert [(e["command"], e["outcome"]) for e in events(home)] == [("acme", "success")] * 3


def test_another_app_in_the_process_is_not_changed(home: Path) -> None:
    telemetry = enabled(home)
    ours, theirs = typer.Typer(), typer.Typer()
    for app in (ours, theirs):
        app.command()(lambda: None)
    telemetry.instrument(ours)
    assert type(get_command(theirs)) is TyperCommand
    assert run(theirs) == 0
    assert events(home) == []
    assert run(ours) == 0
    assert len(events(home)) == 1


class Color(enum.StrEnum):
    red = "red"
    dark_blue = "dark-blue"


def test_choice_values_are_recorded_as_typed_and_free_values_are_not(home: Path) -> None:
    telemetry = enabled(home, record_values=["--color", "--size", "--tag", "--name", "--dry"])
    app = telemetry.instrument(typer.Typer())

    @app.command()
    def paint(
        color: Color = Color.red,
        size: Annotated[Literal["s", "m"], typer.Option()] = "s",
        tag: Annotated[list[Color] | None, typer.Option()] = None,
        name: str = "x",
        dry: bool = False,
    ) -> None:
        pass

    args = ["--color", "dark-blue", "--size", "m", "--tag", "red", "--tag", "dark-blue"]
    assert run(app, *args, "--name", "secret", "--no-dry") == 0
    [event] = events(home)
    assert event["flags"] == ["--color", "--size", "--tag", "--name", "--no-dry"]
    assert event["values"] == {
        "--color": "dark-blue",
        "--size": "m",
        "--tag": ["red", "dark-blue"],
        "--no-dry": False,
    }
    options, missing = recorded_options(telemetry)
    assert {name: option.values for name, option in options.items()} == {
        "--color": ["red", "dark-blue"],
        "--dry": [True, False],
        "--name": [],  # named, but free text: nothing of it is recorded
        "--size": ["s", "m"],
        "--tag": ["red", "dark-blue"],
    }
    assert missing == []


def test_errors_and_exits_are_recorded_as_for_click(home: Path) -> None:
    telemetry = enabled(home)
    app = telemetry.instrument(typer.Typer())

    @app.command()
    def fail(how: str) -> None:
        if how == "exit":
            raise typer.Exit(3)
        if how == "abort":
            raise typer.Abort()
        if how == "bad":
            raise typer.BadParameter("no")
        raise LookupError("a message that is never recorded")

    for how in ("exit", "abort", "bad", "crash"):
        run(app, how)
    assert run(app) == 2  # a missing argument
    recorded = [(e["exit_code"], e["outcome"], e["error_type"]) for e in events(home)]
    assert recorded == [
        (3, "error", None),
        (1, "aborted", None),
        (2, "usage_error", "BadParameter"),
        (1, "error", "LookupError"),
        (2, "usage_error", "MissingParameter"),
    ]


def test_the_telemetry_sub_app_works_and_is_never_recorded(home: Path) -> None:
    telemetry = enabled(home)
    app = telemetry.instrument(typer.Typer())
    app.command()(lambda: None)
    app.add_typer(telemetry.typer_app(), name="telemetry")

    result = CliRunner().invoke(app, ["telemetry", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["enabled"] is True
    help_text = CliRunner().invoke(app, ["telemetry", "--help"]).output
    assert all(name in help_text for name in ("status", "enable", "disable"))
    assert "records about its use" in help_text
    assert CliRunner().invoke(app, ["telemetry", "disable"]).exit_code == 0
    assert events(home) == []


def test_the_schema_of_the_typer_twin_is_the_click_example_s() -> None:
    """``click-telemetry schema`` reads a Typer app's options from the tree it builds."""
    from cli_app.cli import telemetry as click_telemetry
    from typer_app.cli import telemetry as typer_telemetry

    assert markdown(typer_telemetry).replace("typer-app", "cli-app") == markdown(click_telemetry)
