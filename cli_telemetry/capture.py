"""What an invocation turns into: flags, closed-set values, outcome, platform, CI.

Everything here reads; nothing writes. Privacy is decided here, by construction: option
*names* are taken from the command's declared parameters (never from argv); values only of
the options the author named (``record_values``), and only when they belong to a closed set
written in code; exceptions only by class name. Every value is fitted to the schema's rule
(`cli_telemetry.events`), so nothing captured can be refused by the collector.

The command may be built on the real click or on Typer's copy: nothing here imports either
(see `cli_telemetry.instrument`, which says why and how).
"""

from __future__ import annotations

import enum
import math
import os
import sys
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Final, cast

from ._values import (
    CHOICE,
    EXIT_CODE,
    FLAG,
    MAX_LIST,
    MAX_SAFE_INTEGER,
    PLACEHOLDER,
    PLATFORM_WORD,
    fit_error_type,
    fit_os_version,
)
from .instrument import (
    ABORT,
    BOOL_TYPE,
    CHOICE_TYPE,
    CLICK_EXCEPTION,
    EXIT,
    OPTION,
    OWN_PACKAGES,
    USAGE_ERROR,
    loaded,
)

if TYPE_CHECKING:
    import click

    from .events import ClosedValue, Outcome

_GIVEN_BY_USER: Final = frozenset({"COMMANDLINE", "ENVIRONMENT"})
"""The ``ParameterSource`` members (each click has its own enum) of a user's options."""


def option_name(param: click.Option, value: object = None) -> str:
    """The name a user knows an option by: its first long form, e.g. ``--dry-run``; for a
    boolean flag with an off switch (``--shout/--no-shout``) set to false, the off switch,
    so that the name alone says which the user chose. Fitted to the schema."""
    opts = param.opts
    if value is False and param.is_flag and param.secondary_opts:
        opts = param.secondary_opts
    for opt in opts:
        if opt.startswith("--"):
            return FLAG.fit(opt)
    return FLAG.fit(opts[0] if opts else f"--{param.name}")


def flags_and_values(
    contexts: Iterable[click.Context], record_values: AbstractSet[str] = frozenset()
) -> tuple[list[str], dict[str, ClosedValue]]:
    """The options a user gave (command line or environment), and the closed-set values of
    those named in ``record_values`` (by any of their spellings, e.g. ``--format``).

    ``contexts`` are the parsed contexts from the root to the invoked command, so a group's
    options count too. Defaults, prompts and default maps are not the user's flags.
    """
    flags: list[str] = []
    values: dict[str, ClosedValue] = {}
    options = loaded(OPTION)
    for ctx in contexts:
        for parameter in ctx.command.params:
            if not isinstance(parameter, options) or parameter.name is None:
                continue
            param = cast("click.Option", parameter)
            source = ctx.get_parameter_source(param.name)
            if getattr(source, "name", None) not in _GIVEN_BY_USER:
                continue
            if _other_switch_was_given(ctx, param):
                continue
            value = ctx.params.get(param.name)
            name = option_name(param, value)
            if name in flags:
                continue
            flags.append(name)
            if (
                record_values
                and name != PLACEHOLDER
                and param.name in ctx.params
                and not record_values.isdisjoint(param.opts + param.secondary_opts)
            ):
                closed = _closed_value(param, value)
                if closed is not None:
                    values[name] = closed[0]
    if len(flags) > MAX_LIST:
        flags = flags[:MAX_LIST]
        values = {name: value for name, value in values.items() if name in flags}
    return flags, values


def _other_switch_was_given(ctx: click.Context, param: click.Option) -> bool:
    """For feature switches (several flags sharing one destination, e.g. ``--upper`` and
    ``--lower`` both setting ``transform``), only the switch whose value was set counts."""
    shared = [p for p in ctx.command.params if p.name == param.name and p is not param]
    if not shared or not param.is_flag:
        return False
    return bool(ctx.params.get(param.name) != param.flag_value)


def _closed_value(param: click.Option, value: object) -> tuple[ClosedValue] | None:
    """``(value,)`` as recorded, when ``value`` provably comes from a closed set the author
    declared (`recordable_values` lists what that set may give).

    The value itself is checked, not only the declared type: an option's callback may have
    turned a choice into a path. A count is an unbounded number, so it is not closed.
    """
    if param.count:
        return None
    choices = _choices(param)
    if choices is not None:
        many = isinstance(value, (list, tuple))
        items: list[str | int | float | bool | None] = []
        for item in value if isinstance(value, (list, tuple)) else [value]:
            item = _typed_value(param, item)
            recorded = _choice_value(item) if item in choices else None
            if recorded is None:
                return None
            items.append(recorded)
        return (items[:MAX_LIST],) if many else (items[0],)
    if param.is_flag and not param.is_bool_flag:
        return (True,)  # a switch such as --upper: its name says which; its value is not ours
    if isinstance(value, bool) and (param.is_flag or _is_bool(param)):
        return (value,)
    return None


def recordable_values(param: click.Option) -> tuple[list[ClosedValue], bool]:
    """What `_closed_value` may record for ``param`` (named in ``record_values``), and
    whether it records a list of them: for ``click-telemetry schema``."""
    many = bool(param.multiple or param.nargs != 1)
    if param.count:
        return [], many
    choices = _choices(param)
    if choices is not None:
        values = [_choice_value(choice) for choice in choices]
        unique = {(type(v), v): v for v in values if v is not None}  # True is not 1
        return list(unique.values()), many
    if param.is_flag and not param.is_bool_flag:
        return [True], many
    if param.is_flag or _is_bool(param):
        return [True, False], many
    return [], many


def _choices(param: object) -> list[object] | None:
    """The choices of ``param`` written in code, as its values hold them, or None when it
    has none: a ``click.Choice``'s (an enum's members, on click 8.2 and later), or, on
    Typer >= 0.26, the values of the ``Enum`` or ``Literal`` it is annotated with (an
    option's values are then given by `_typed_value`)."""
    kind = getattr(param, "type", None)
    if kind is not None:
        return list(kind.choices) if isinstance(kind, loaded(CHOICE_TYPE)) else None  # type: ignore[attr-defined]
    declared = getattr(_descriptor(param), "choices", None)
    if isinstance(declared, tuple):
        return [_typed_value(param, choice) for choice in declared]
    return None


def _typed_value(param: object, value: object) -> object:
    """``value`` as the user typed it, for a Typer >= 0.26 option: an ``Enum`` member by
    its value, as on the earlier Typer line, whose ``Choice`` holds the values (so both
    lines record the same). A click parameter's value is returned as it is."""
    if _descriptor(param) is not None:
        import enum

        if isinstance(value, enum.Enum):
            return value.value
    return value


def _is_bool(param: object) -> bool:
    """``param`` takes a boolean value (click's ``BOOL`` type, or a ``bool`` annotation)."""
    kind = getattr(param, "type", None)
    if kind is not None:
        return isinstance(kind, loaded(BOOL_TYPE))
    return getattr(_descriptor(param), "annotation", None) is bool


def _descriptor(param: object) -> object | None:
    """What Typer >= 0.26 knows of an option's type (its options have no click type)."""
    if getattr(param, "type", None) is not None:
        return None
    return getattr(param, "type_descriptor", None)


def _choice_value(item: object) -> str | int | float | bool | None:
    """A Choice's member as recorded (an enum by its name; what the schema cannot hold as
    `PLACEHOLDER`), or None for a kind of value no event holds."""
    if isinstance(item, enum.Enum):
        return CHOICE.fit(item.name)
    if isinstance(item, str):
        return CHOICE.fit(item)
    if isinstance(item, bool):
        return item
    if isinstance(item, int):
        return item if abs(item) <= MAX_SAFE_INTEGER else PLACEHOLDER
    if isinstance(item, float):
        return item if math.isfinite(item) else PLACEHOLDER
    return None


def classify(exc: BaseException | None, exit_code: int) -> tuple[Outcome, str | None]:
    """Outcome and error type (a class name, never a message) of an invocation.

    ``exc`` is the first exception seen leaving the command, before click turns
    KeyboardInterrupt into Abort (Typer: into an exit with 130) and everything into
    SystemExit.
    """
    if exc is None:
        return ("success" if exit_code == 0 else "error"), None
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", None
    if isinstance(exc, (*loaded(ABORT), EOFError)):
        return "aborted", None
    if isinstance(exc, loaded(USAGE_ERROR)):
        return "usage_error", fit_error_type(type(exc).__name__)
    if isinstance(exc, (*loaded(EXIT), SystemExit)):
        return ("success" if exit_code == 0 else "error"), None
    return "error", fit_error_type(type(exc).__name__)


def is_clicks(exc: BaseException | None) -> bool:
    """``exc`` is one of click's or Typer's own exceptions (a usage error, an abort): its
    class name is the framework's, whatever command raised it."""
    return exc is not None and type(exc).__module__.split(".", 1)[0] in OWN_PACKAGES


def exit_code_of(exc: BaseException | None) -> int:
    """The process exit status that ``exc`` leads to, as Python and click compute it (a
    status no OS has, such as ``sys.exit(2**40)`` on Windows, at the schema's bound)."""
    return EXIT_CODE.fit(_exit_code_of(exc))


def _exit_code_of(exc: BaseException | None) -> int:
    if exc is None:
        return 0
    if isinstance(exc, SystemExit):
        return _status(exc.code)
    if isinstance(exc, loaded(EXIT) + loaded(CLICK_EXCEPTION)):
        # click exits with this code (sys.exit), so it becomes what sys.exit makes of it;
        # an author's subclass may hold anything there.
        return _status(getattr(exc, "exit_code", 1))
    return 1


def _status(code: object) -> int:
    """What ``sys.exit(code)`` makes the process's exit status."""
    if code is None:
        return 0
    if not isinstance(code, int):
        return 1
    # int(): sys.exit(True) is 1. POSIX keeps the low 8 bits: sys.exit(256) exits 0.
    return int(code) & 0xFF if os.name == "posix" else int(code)


# Checked in order; the first variable present names the provider. Generic CI last.
_CI_VARIABLES: Final = (
    ("GITHUB_ACTIONS", "github_actions"),
    ("GITLAB_CI", "gitlab"),
    ("CIRCLECI", "circleci"),
    ("TRAVIS", "travis"),
    ("BUILDKITE", "buildkite"),
    ("JENKINS_URL", "jenkins"),
    ("TF_BUILD", "azure_pipelines"),
    ("BITBUCKET_BUILD_NUMBER", "bitbucket"),
    ("TEAMCITY_VERSION", "teamcity"),
    ("CODEBUILD_BUILD_ID", "aws_codebuild"),
    ("DRONE", "drone"),
    ("APPVEYOR", "appveyor"),
    ("SEMAPHORE", "semaphore"),
    ("CIRRUS_CI", "cirrus"),
    ("CI", "generic"),
)


def detect_ci(env: Mapping[str, str] | None = None) -> str | None:
    """The CI provider's name, "generic" for an unnamed one, or None outside CI."""
    environ = os.environ if env is None else env
    for var, name in _CI_VARIABLES:
        value = environ.get(var, "")
        if value and value.lower() not in ("0", "false"):
            return name
    return None


def platform_fields() -> dict[str, str]:
    """os, os_version, arch and python_version.

    On POSIX, ``os.uname()`` answers without importing ``platform``; only its ``sysname``,
    ``release`` and ``machine`` are read (never ``nodename``, the host name). The release
    is cut to its leading dotted number so a custom kernel name cannot carry anything
    personal.
    """
    if hasattr(os, "uname"):
        uname = os.uname()
        system, release, machine = uname.sysname, uname.release, uname.machine
    else:  # Windows
        import platform

        system, release, machine = "Windows", platform.version(), platform.machine()
    return {
        "os": PLATFORM_WORD.fit({"Darwin": "macos"}.get(system, system.lower())),
        "os_version": fit_os_version(_version_prefix(release)),
        "arch": PLATFORM_WORD.fit(machine.lower()),
        "python_version": "{}.{}.{}".format(*sys.version_info[:3]),
    }


def _version_prefix(release: str) -> str:
    """The leading dotted number of ``release``: "6.1.0" of "6.1.0-18-amd64"."""
    end = 0
    while end < len(release) and (release[end].isdigit() or release[end] == "."):
        end += 1
    return ".".join(part for part in release[:end].split(".") if part.isascii() and part)


def is_interactive() -> bool:
    """stdin and stderr are both terminals (a person is probably there)."""
    try:
        return bool(sys.stdin and sys.stdin.isatty() and sys.stderr and sys.stderr.isatty())
    except (ValueError, OSError):  # closed or detached streams
        return False


def in_foreground() -> bool:
    """This process is the terminal's foreground job: reading stdin will not stop it.

    A tool started with ``&`` still has a terminal on stdin, but reading it would stop the
    job (SIGTTIN) until the user brings it back.
    """
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (AttributeError, OSError, ValueError):  # no tcgetpgrp on Windows; closed stdin
        return os.name == "nt"


def stderr_is_tty() -> bool:
    try:
        return bool(sys.stderr and sys.stderr.isatty())
    except (ValueError, OSError):
        return False
