"""Hooking a click command: what ran, with which options, and how it ended.

click turns every ending into ``SystemExit`` inside ``Command.main``, and builds the
subcommands' contexts inside ``Group.invoke``, so a wrapper around ``main`` alone could tell
neither a usage error from an error nor ``acme deploy start`` from ``acme``. The hooks are
therefore instance attributes on the instrumented objects only (no global patching of click):

- ``main`` of the root: times the run and records it afterwards, whatever happened;
- ``make_context``: keeps each parsed context (the root's, then each subcommand's as it is
  resolved), the source of flags and values;
- ``invoke`` of the root: sees the first exception, before click converts it;
- ``resolve_command`` of each group: the name of the subcommand as the code registered it
  (``<unlisted>`` for a word resolved at run time), and hooks it (lazily, so commands
  added after instrumenting, or lazy groups, are covered too).

The current `Run` travels in ``ctx.meta``, which click shares across a context tree, so a
subcommand object shared with another, uninstrumented tool records nothing there.

The same hooks serve a command built on the copy of click that Typer bundles since 0.26, as
``typer._click`` (no ``Group`` or ``Option`` classes: Typer's ``TyperGroup`` and
``TyperOption`` take their place). Such a tool never imports the real click, whose import
costs tens of milliseconds, and this library must not bring it back: nothing here, nor in
the modules that read what the hooks collect, imports either click. They ask `loaded` for
the classes of a kind in the modules this process has already imported: a class whose
module was never imported has no instances, so ``isinstance`` against those alone is exact,
and costs a few dictionary look-ups. Both clicks share the attributes this library reads
(``ctx.params``, ``param.opts``, ``exc.exit_code``...), so the code is written, and
type-checked, against the real click's API. (This lives here rather than in a module of its
own because every run imports this one: a module more costs each run about 0.1 ms.)

A Typer app is not a command but what builds one on every call: `cli_telemetry._typer` has
every command it builds hooked here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ._settings import UPLOADER_OPTIONS_VARIABLE
from ._values import UNLISTED

if TYPE_CHECKING:
    import click

    from .events import Scalar

RUN_KEY: Final = "cli_telemetry.run"
INTERNAL: Final = "_cli_telemetry_internal"
"""Marks the ``telemetry`` command group: its own use is never recorded."""
_HOOKED: Final = "_cli_telemetry_hooked"
_GROUP_HOOKED: Final = "_cli_telemetry_group_hooked"
_CONTEXT_HOOKED: Final = "_cli_telemetry_context_hooked"
_DECLARED: Final = "_cli_telemetry_declared_commands"

# -- which click: each kind of class, by module and class name, in the real click and in
# Typer's copy (for `loaded`)
COMMAND: Final = (("click.core", "Command"), ("typer._click.core", "Command"))
GROUP: Final = (("click.core", "Group"), ("typer.core", "TyperGroup"))
OPTION: Final = (("click.core", "Option"), ("typer.core", "TyperOption"))
CHOICE_TYPE: Final = (("click.types", "Choice"),)
"""Typer >= 0.26 has no parameter types (`cli_telemetry.capture` reads its choices)."""
BOOL_TYPE: Final = (("click.types", "BoolParamType"),)
USAGE_ERROR: Final = (("click.exceptions", "UsageError"), ("typer._click.exceptions", "UsageError"))
CLICK_EXCEPTION: Final = (
    ("click.exceptions", "ClickException"),
    ("typer._click.exceptions", "ClickException"),
)
ABORT: Final = (("click.exceptions", "Abort"), ("typer.exceptions", "Abort"))
EXIT: Final = (("click.exceptions", "Exit"), ("typer.exceptions", "Exit"))
TYPER: Final = (("typer.main", "Typer"),)
"""A Typer app: not a command, but what builds one on every call."""
OWN_PACKAGES: Final = frozenset({"click", "typer"})
"""Where the frameworks' own exceptions (a usage error, an abort) are defined."""


def loaded(kind: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    """The classes of ``kind`` (module and class names) whose modules are imported."""
    found = []
    for module_name, name in kind:
        module = sys.modules.get(module_name)
        cls = getattr(module, name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


class Run:
    """One invocation of an instrumented command, filled in as click works.

    ``exception`` is the first exception seen leaving the command (before click converts
    it), ``final`` what left ``main``; ``parsed`` is False for shell completion, which is
    not a use; ``internal`` marks the telemetry command itself. ``unlisted`` is set once a
    group resolved a subcommand its code did not register (a plugin found on the user's
    machine): nothing of that command's, its options or its errors, is recorded.
    """

    __slots__ = (
        "contexts",
        "custom",
        "exception",
        "final",
        "internal",
        "parsed",
        "path",
        "started",
        "started_at",
        "unlisted",
    )

    def __init__(self, started: float, started_at: float) -> None:
        self.started = started  # time.perf_counter(), for the duration
        self.started_at = started_at  # time.time(), the event's timestamp
        self.path: list[str] = []
        self.contexts: list[click.Context] = []
        self.exception: BaseException | None = None
        self.final: BaseException | None = None
        self.parsed = False
        self.internal = False
        self.unlisted = False
        self.custom: list[tuple[str, dict[str, Scalar], float]] = []

    def contexts_with(self, exc: BaseException | None) -> list[click.Context]:
        """The parsed contexts, plus the one a usage error was raised in (partly parsed)."""
        partial: click.Context | None = getattr(exc, "ctx", None)
        if (
            not self.unlisted
            and isinstance(exc, loaded(USAGE_ERROR))
            and partial is not None
            and all(ctx is not partial for ctx in self.contexts)
        ):
            return [*self.contexts, partial]
        return self.contexts


def instrument(command: object, runs: list[Run], finish: Callable[[Run], None]) -> None:
    """Hook ``command`` (a click command or group, on either click, or a Typer app): each
    invocation pushes a `Run` on ``runs`` (where custom events recorded meanwhile find it)
    and hands it to ``finish`` once the command has ended."""
    if isinstance(command, loaded(TYPER)):
        from ._typer import instrument_app

        instrument_app(command, lambda built: instrument(built, runs, finish))  # type: ignore[arg-type]
        return
    if not isinstance(command, loaded(COMMAND)):
        raise TypeError(
            f"instrument() takes a click command or group or a Typer app, not"
            f" {type(command).__name__}; put @telemetry.instrument above"
            " @click.group()/@click.command()"
        )
    _hook(command, runs, finish)  # type: ignore[arg-type]


def _hook(command: click.Command, runs: list[Run], finish: Callable[[Run], None]) -> None:
    if getattr(command, _HOOKED, False):
        return
    original_main = command.main
    original_make_context = command.make_context
    original_invoke = command.invoke

    def main(*args: Any, **kwargs: Any) -> Any:
        if getattr(sys, "frozen", False) and UPLOADER_OPTIONS_VARIABLE in os.environ:
            from ._spawn import run_if_frozen_uploader  # PyInstaller: its own uploader

            run_if_frozen_uploader()
        run = Run(started=time.perf_counter(), started_at=time.time())
        runs.append(run)
        try:
            result = original_main(*args, **kwargs)
        except BaseException as exc:
            run.final = exc
            runs.remove(run)
            finish(run)
            _hide_own_frames(exc)
            raise  # a bare raise adds no frame of ours back
        runs.remove(run)
        finish(run)
        return result

    def make_context(
        info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        run = runs[-1] if runs else None
        # Shell completion parses "resiliently" to suggest words; that is not a use.
        if run is not None and not extra.get("resilient_parsing") and parent is None:
            run.parsed = True
        try:
            ctx = original_make_context(info_name, args, parent=parent, **extra)
        except BaseException as exc:
            if run is not None and run.exception is None:
                run.exception = exc
            raise
        # Mounted inside another instrumented tool, the run is the outer tool's.
        outer = ctx.meta.get(RUN_KEY)
        if isinstance(outer, Run):
            outer.contexts.append(ctx)
        elif run is not None:
            ctx.meta[RUN_KEY] = run
            run.contexts.append(ctx)
        return ctx

    def invoke(ctx: click.Context) -> Any:
        try:
            return original_invoke(ctx)
        except BaseException as exc:
            run = ctx.meta.get(RUN_KEY)
            if isinstance(run, Run) and run.exception is None:
                run.exception = exc
            raise

    command.main = main  # type: ignore[method-assign]
    command.make_context = make_context  # type: ignore[method-assign]
    command.invoke = invoke  # type: ignore[method-assign]
    setattr(command, _HOOKED, True)
    if isinstance(command, loaded(GROUP)):
        _hook_group(command)  # type: ignore[arg-type]


def _hide_own_frames(exc: BaseException) -> None:
    """Unlink this module's frames from ``exc``'s traceback.

    A crash of the tool must print the same traceback with telemetry as without it, so the
    wrappers above take themselves out of it (traceback links are writable since 3.7).
    """
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    exc.__traceback__ = tb
    while tb is not None and tb.tb_next is not None:
        if tb.tb_next.tb_frame.f_code.co_filename == __file__:
            tb.tb_next = tb.tb_next.tb_next
        else:
            tb = tb.tb_next


def _hook_group(group: click.Group) -> None:
    if getattr(group, _GROUP_HOOKED, False):
        return
    original_resolve = group.resolve_command

    def resolve_command(
        ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # What the code registered, before resolving: a group may cache what it found at
        # run time (a plugin) in its commands as it resolves it.
        registered = frozenset(group.commands)
        name, cmd, rest = original_resolve(ctx, args)
        run = ctx.meta.get(RUN_KEY)
        if isinstance(run, Run) and cmd is not None and not run.unlisted:
            word = _listed_name(group, registered, name, cmd)
            run.path.append(word)
            if getattr(cmd, INTERNAL, False):
                run.internal = True
            if word == UNLISTED:
                run.unlisted = True  # its contexts, and those below it, are not collected
            else:
                _hook_subcommand(cmd)
        return name, cmd, rest

    group.resolve_command = resolve_command  # type: ignore[method-assign]
    setattr(group, _GROUP_HOOKED, True)


def declare_commands(group: click.Group, names: list[str]) -> None:
    """Names of ``group``'s subcommands that its code resolves at run time, to record as
    they are (see `Telemetry.declare_commands`)."""
    setattr(group, _DECLARED, frozenset(getattr(group, _DECLARED, ())) | frozenset(names))


def _listed_name(
    group: click.Group, registered: frozenset[str], typed: str | None, cmd: click.Command
) -> str:
    """The subcommand's name as the code registered it, never a word from elsewhere.

    Only ``registered`` (``group.commands``, what the code added) and the names the author
    declared count:
    ``list_commands`` may list what a group finds at run time (plugins on PATH, entries of
    the user's config), and so may the words it resolves (aliases, prefixes, git-style
    plugins named after whatever was typed). A word known neither way is `UNLISTED`; an
    alias is recorded under the command's own name where that is known.
    """
    known = registered | getattr(group, _DECLARED, frozenset())
    if typed is not None and typed in known:
        return typed
    if cmd.name is not None and cmd.name in known:
        return cmd.name
    return UNLISTED


def _hook_subcommand(command: click.Command) -> None:
    if not getattr(command, _CONTEXT_HOOKED, False) and not getattr(command, _HOOKED, False):
        original_make_context = command.make_context

        def make_context(
            info_name: str | None,
            args: list[str],
            parent: click.Context | None = None,
            **extra: Any,
        ) -> click.Context:
            ctx = original_make_context(info_name, args, parent=parent, **extra)
            run = ctx.meta.get(RUN_KEY)
            if isinstance(run, Run) and not run.unlisted:
                run.contexts.append(ctx)
            return ctx

        command.make_context = make_context  # type: ignore[method-assign]
        setattr(command, _CONTEXT_HOOKED, True)
    if isinstance(command, loaded(GROUP)):
        _hook_group(command)  # type: ignore[arg-type]
