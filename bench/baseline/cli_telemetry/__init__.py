"""A do-nothing stand-in for cli_telemetry: "the same tool without telemetry".

Put ``bench/baseline`` first on PYTHONPATH and the example tools run exactly as they would
if their author had never added telemetry: the decorator returns the command (or the Typer
app) untouched and no library code is imported. bench/overhead.py and the "unchanged output"
tests compare against it. It imports neither click nor Typer: the Typer example on Typer
0.26 and later must run without click, as it would without telemetry.
"""

from __future__ import annotations

from typing import Any, TypeVar

C = TypeVar("C")


class Telemetry:
    def __init__(self, tool: str, **options: Any) -> None:
        self.tool = tool

    def instrument(self, command: C) -> C:
        return command

    def command(self, name: str = "telemetry") -> Any:
        import click

        return click.Group(name)

    def typer_app(self, name: str = "telemetry") -> Any:
        import typer

        return typer.Typer(name=name)

    def track(self, event: str, properties: dict[str, Any] | None = None) -> None:
        pass

    def event(self, name: str, properties: Any, **options: Any) -> _Event:
        return _Event()


class Privacy:
    def __init__(self, **details: Any) -> None:
        pass


class _Event:
    def track(self, properties: Any) -> None:
        pass
