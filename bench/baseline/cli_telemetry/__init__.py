"""A do-nothing stand-in for cli_telemetry: "the same tool without telemetry".

Put ``bench/baseline`` first on PYTHONPATH and the example tool runs exactly as it would if
its author had never added telemetry: the decorator returns the command untouched and no
library code is imported. bench/overhead.py and the "unchanged output" tests compare
against it.
"""

from __future__ import annotations

from typing import Any, TypeVar

import click

C = TypeVar("C", bound=click.Command)


class Telemetry:
    def __init__(self, tool: str, **options: Any) -> None:
        self.tool = tool

    def instrument(self, command: C) -> C:
        return command

    def command(self, name: str = "telemetry") -> click.Group:
        return click.Group(name)

    def track(self, event: str, properties: dict[str, Any] | None = None) -> None:
        pass

    def event(self, name: str, properties: Any, **options: Any) -> _Event:
        return _Event()


class _Event:
    def track(self, properties: Any) -> None:
        pass
