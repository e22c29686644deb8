"""The pytest plugin: the ``telemetry_events`` fixture, for the test suites of the tools built
with cli-telemetry.

pytest loads this module (the ``pytest11`` entry point ``cli_telemetry``) in every project
that has the library installed, whether its tests use telemetry or not. So it defines one
fixture and nothing else: no hook, no option, no autouse fixture, and it imports nothing of
the library until a test asks for the fixture. A project that never asks sees no change in
its tests (``tests/test_pytest_plugin.py`` runs one with and without the plugin and compares).

The fixture isolates through the library's own path resolution
(`cli_telemetry._paths.TEST_DIR_VARIABLE`), not through HOME or XDG variables: the test's
HOME, its tool's own files and every other variable stay as the test set them, it works the
same on every OS, and it reaches a tool run in process (click's or Typer's ``CliRunner``,
however the command was built) and a tool run as a subprocess with `TelemetryEvents.env`
alike, since both read the same variable. In that directory a tool records as if its user
had consented and never starts an uploader.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

if TYPE_CHECKING:
    from .events import Event

__all__ = ["TelemetryEvents", "telemetry_events"]

_SILENCERS = ("_TELEMETRY_DISABLED", "_TELEMETRY_DEBUG")
"""Suffixes of the tool variables that would keep a test's tool from recording (debug mode
prints instead of recording). Whichever tool a test runs, its prefix is not known here."""


@pytest.fixture
def telemetry_events(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> TelemetryEvents:
    """The telemetry events recorded during this test, by tools run in process or started
    with ``telemetry_events.env``; each is recorded as if its user had consented, into a
    directory of the test's own, and nothing is sent.

    The developer's environment cannot change that: their DO_NOT_TRACK and any
    ``<TOOL>_TELEMETRY_DISABLED`` or ``_DEBUG`` variable are removed for the test, and their
    real config files are never read. CI variables are left alone (``ci`` records them).
    """
    from ._paths import TEST_DIR_VARIABLE

    # Not under tmp_path: a test that lists its own tmp_path must not find ours there.
    directory = tmp_path_factory.mktemp("telemetry")
    for name in list(os.environ):
        if name == "DO_NOT_TRACK" or name.upper().endswith(_SILENCERS):
            monkeypatch.delenv(name)
    monkeypatch.setenv(TEST_DIR_VARIABLE, str(directory))
    return TelemetryEvents(directory)


class TelemetryEvents:
    """The events recorded so far in one test's directory, read afresh at each use, oldest
    first, as schema dicts (`cli_telemetry.events.Event`): iterate, ``len()``, index, or use
    the helpers below.

    Each event is checked with the collector's own check (`cli_telemetry.events.check_event`)
    as it is read, so a test never passes on an event the collector would refuse.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        """Every tool's files, in ``<directory>/<tool>/``."""

    @property
    def env(self) -> dict[str, str]:
        """The environment for a subprocess whose events this fixture should see: a copy of
        ``os.environ`` as the fixture set it (with whatever the test changed since)."""
        return dict(os.environ)

    def all(self) -> list[Event]:
        """Every event recorded so far, by every tool, oldest first."""
        from . import _paths
        from ._paths import TEST_DIR_VARIABLE
        from .events import InvalidEvent, check_event
        from .spool import Spool

        found: list[tuple[str, Event]] = []
        environ = {TEST_DIR_VARIABLE: str(self.directory)}
        for tool in sorted(os.listdir(self.directory)):
            spool = Spool(_paths.resolve(tool, environ).spool_dir)
            for name, event in spool.peek():
                try:
                    check_event(event)
                except InvalidEvent as exc:
                    raise AssertionError(
                        f"{tool} recorded an event the collector would refuse ({exc}): {event}"
                    ) from None
                found.append((name, cast("Event", event)))
        found.sort(key=lambda named: named[0])  # the file names sort by time
        return [event for _, event in found]

    def filter(
        self, *, command: str | None = None, event: str | None = None, tool: str | None = None
    ) -> list[Event]:
        """The events of ``command`` (as recorded: ``"acme deploy start"``, the tool's name
        first), named ``event`` (``"command"``, or a custom event's name), of ``tool``; each
        given criterion must hold."""
        return [
            recorded
            for recorded in self.all()
            if (command is None or recorded["command"] == command)
            and (event is None or recorded["event"] == event)
            and (tool is None or recorded["tool"] == tool)
        ]

    def commands(self, command: str | None = None) -> list[Event]:
        """The ``command`` records, one per run (of ``command`` only, if given)."""
        return self.filter(command=command, event="command")

    def custom(self, event: str | None = None) -> list[Event]:
        """The custom events (and ``identify`` records), or only those named ``event``."""
        return [
            recorded
            for recorded in self.all()
            if recorded["event"] != "command" and (event is None or recorded["event"] == event)
        ]

    def last(
        self, *, command: str | None = None, event: str | None = None, tool: str | None = None
    ) -> Event:
        """The newest event that `filter` would return; LookupError, which says what was
        recorded instead, if there is none."""
        matching = self.filter(command=command, event=event, tool=tool)
        if matching:
            return matching[-1]
        wanted = {"command": command, "event": event, "tool": tool}
        criteria = ", ".join(f"{k}={v!r}" for k, v in wanted.items() if v is not None)
        recorded = [(e["event"], e["command"]) for e in self.all()]
        raise LookupError(f"no event with {criteria or 'any fields'}; recorded: {recorded}")

    def __iter__(self) -> Iterator[Event]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self.all())

    def __getitem__(self, index: int) -> Event:
        return self.all()[index]

    def __repr__(self) -> str:
        return f"<TelemetryEvents {self.all()!r}>"
