"""`capture`: flags and values from real click contexts, outcomes, exit codes, CI, platform."""

from __future__ import annotations

import enum
import os
import platform
import re
import sys
from importlib.metadata import version
from typing import Any

import click
import pytest

from cli_telemetry.capture import (
    classify,
    detect_ci,
    exit_code_of,
    flags_and_values,
    option_name,
    platform_fields,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def _click_supports_enum_choice() -> bool:
    major, minor = (int(part) for part in version("click").split(".")[:2])
    return (major, minor) >= (8, 2)


ENUM_CHOICE = _click_supports_enum_choice()


def _noop(**_: Any) -> None:
    return None


def _options() -> list[click.Parameter]:
    params: list[click.Parameter] = [
        click.Option(["--mode"], type=click.Choice(["fast", "slow"])),
        click.Option(["--verbose"], is_flag=True),
        click.Option(["--color/--no-color"], default=True),
        click.Option(["--retries"], type=int, default=3),
        click.Option(["--name"], type=str, default="anonymous"),
        click.Option(["--region"], type=click.Choice(["eu", "us"]), envvar="ACME_REGION"),
        click.Option(["--owner"], type=str, envvar="ACME_OWNER"),
        click.Option(["-v", "--verbosity"], count=True),
        click.Option(["--tag"], type=click.Choice(["a", "b", "c"]), multiple=True),
        click.Option(["--label"], type=str, multiple=True),
        click.Option(["--confirm"], type=bool),
        click.Argument(["path"], required=False),
    ]
    if ENUM_CHOICE:
        params.append(click.Option(["--paint"], type=click.Choice(Color)))
    return params


def _command() -> click.Command:
    return click.Command("deploy", params=_options(), callback=_noop)


def _group() -> click.Group:
    group = click.Group(
        "acme",
        params=[
            click.Option(["--verbose"], is_flag=True),
            click.Option(["--profile"], type=str),
            click.Option(["--env"], type=click.Choice(["dev", "prod"])),
        ],
        callback=_noop,
    )
    group.add_command(_command())
    return group


EVERY = frozenset(
    opt
    for param in [*_options(), *_group().params]
    if isinstance(param, click.Option)
    for opt in param.opts + param.secondary_opts
)
"""record_values naming every option: what is recorded then is what may ever be."""


@pytest.fixture(autouse=True)
def _no_acme_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ACME_REGION", "ACME_OWNER"):
        monkeypatch.delenv(var, raising=False)


# -- flags_and_values ------------------------------------------------------------------------


def test_no_options_given_means_no_flags_even_with_defaults() -> None:
    ctx = _command().make_context("prog", [])
    assert ctx.params["retries"] == 3  # the defaults are there...
    assert ctx.params["color"] is True
    assert flags_and_values([ctx]) == ([], {})  # ...but they are not the user's


def test_default_map_values_are_not_flags() -> None:
    ctx = _command().make_context(
        "prog", [], default_map={"mode": "slow", "verbose": True, "retries": 9}
    )
    assert ctx.params["mode"] == "slow"
    assert flags_and_values([ctx]) == ([], {})


def test_closed_values_are_recorded_and_free_values_are_not() -> None:
    ctx = _command().make_context(
        "prog",
        [
            "--mode",
            "fast",
            "--verbose",
            "--no-color",
            "--retries",
            "5",
            "--name",
            "s3cr3t-name",
            "-vvv",
            "--tag",
            "a",
            "--tag",
            "c",
            "--label",
            "private-label",
            "--confirm",
            "yes",
            "/home/alice/secret.txt",
        ],
    )

    assert flags_and_values([ctx])[1] == {}  # by default, names only
    flags, values = flags_and_values([ctx], EVERY)

    assert flags == [
        "--mode",
        "--verbose",
        "--no-color",
        "--retries",
        "--name",
        "--verbosity",
        "--tag",
        "--label",
        "--confirm",
    ]
    assert values == {
        "--mode": "fast",
        "--verbose": True,
        "--no-color": False,
        "--tag": ["a", "c"],
        "--confirm": True,
    }
    text = repr((flags, values))
    for private in ("s3cr3t-name", "private-label", "secret.txt", "5", "3"):
        assert private not in text


def test_a_flag_pair_records_the_switch_given() -> None:
    on = _command().make_context("prog", ["--color"])
    off = _command().make_context("prog", ["--no-color"])
    assert flags_and_values([on]) == (["--color"], {})
    assert flags_and_values([off]) == (["--no-color"], {})
    # Named by either spelling, its value is recorded too.
    assert flags_and_values([on], frozenset({"--no-color"})) == (["--color"], {"--color": True})
    assert flags_and_values([off], frozenset({"--color"})) == (
        ["--no-color"],
        {"--no-color": False},
    )


def test_only_the_options_named_have_their_values_recorded() -> None:
    ctx = _command().make_context("prog", ["--mode", "fast", "--tag", "a", "--verbose"])
    flags, values = flags_and_values([ctx], frozenset({"--tag"}))
    assert flags == ["--mode", "--verbose", "--tag"]
    assert values == {"--tag": ["a"]}


def test_a_count_option_is_a_flag_without_a_value() -> None:
    ctx = _command().make_context("prog", ["-vv"])
    assert ctx.params["verbosity"] == 2
    assert flags_and_values([ctx]) == (["--verbosity"], {})


def test_an_int_option_is_a_flag_without_a_value() -> None:
    ctx = _command().make_context("prog", ["--retries", "0"])
    assert flags_and_values([ctx]) == (["--retries"], {})


def test_options_are_named_by_their_first_long_form() -> None:
    cmd = click.Command(
        "c",
        params=[
            click.Option(["-q", "--quiet", "--silent"], is_flag=True),
            click.Option(["-n"], type=click.Choice(["x", "y"])),
        ],
        callback=_noop,
    )
    ctx = cmd.make_context("prog", ["--silent", "-n", "y"])
    assert flags_and_values([ctx], frozenset({"-q", "-n"})) == (
        ["--quiet", "-n"],
        {"--quiet": True, "-n": "y"},
    )
    quiet = cmd.params[0]
    assert isinstance(quiet, click.Option)
    assert option_name(quiet) == "--quiet"


def test_options_from_the_environment_are_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_REGION", "eu")
    monkeypatch.setenv("ACME_OWNER", "alice-12345")
    ctx = _command().make_context("prog", [])

    flags, values = flags_and_values([ctx], EVERY)

    assert ctx.params["owner"] == "alice-12345"
    assert flags == ["--region", "--owner"]
    assert values == {"--region": "eu"}
    assert "alice-12345" not in repr((flags, values))


def test_auto_envvar_prefix_counts_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_MODE", "slow")
    monkeypatch.setenv("AUTO_NAME", "from-env-secret")
    ctx = _command().make_context("prog", [], auto_envvar_prefix="AUTO")

    flags, values = flags_and_values([ctx], EVERY)

    assert sorted(flags) == ["--mode", "--name"]
    assert values == {"--mode": "slow"}


def test_an_empty_environment_variable_is_not_a_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_REGION", "")
    ctx = _command().make_context("prog", [])
    assert flags_and_values([ctx]) == ([], {})


@pytest.mark.skipif(not ENUM_CHOICE, reason="click < 8.2 has no enum Choice")
def test_an_enum_choice_records_the_member_name() -> None:
    ctx = _command().make_context("prog", ["--paint", "BLUE"])
    assert ctx.params["paint"] is Color.BLUE
    assert flags_and_values([ctx], EVERY) == (["--paint"], {"--paint": "BLUE"})


def test_group_and_subcommand_options_are_both_recorded_once() -> None:
    group = _group()
    group_ctx = group.make_context("acme", ["--verbose", "--profile", "me@work", "deploy"])
    sub = group.get_command(group_ctx, "deploy")
    assert sub is not None
    sub_ctx = sub.make_context(
        "deploy", ["--verbose", "--mode", "slow", "--retries", "2"], parent=group_ctx
    )

    flags, values = flags_and_values([group_ctx, sub_ctx], EVERY)

    assert flags == ["--verbose", "--profile", "--mode", "--retries"]
    assert values == {"--verbose": True, "--mode": "slow"}
    assert "me@work" not in repr((flags, values))


def test_a_subcommand_option_given_only_at_its_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_REGION", "us")
    group = _group()
    group_ctx = group.make_context("acme", ["--env", "prod", "deploy"])
    sub = group.get_command(group_ctx, "deploy")
    assert sub is not None
    sub_ctx = sub.make_context("deploy", ["--tag", "b"], parent=group_ctx)

    flags, values = flags_and_values([group_ctx, sub_ctx], EVERY)

    # Declaration order within a command, root first.
    assert flags == ["--env", "--region", "--tag"]
    assert values == {"--env": "prod", "--region": "us", "--tag": ["b"]}


def test_feature_switches_record_only_the_switch_given() -> None:
    """click's "feature switch" pattern: several flags share one destination."""
    cmd = click.Command(
        "c",
        params=[
            click.Option(["--upper", "transform"], flag_value="upper"),
            click.Option(["--lower", "transform"], flag_value="lower", default=True),
        ],
        callback=_noop,
    )
    ctx = cmd.make_context("prog", ["--lower"])
    assert ctx.params["transform"] == "lower"

    flags, values = flags_and_values([ctx], frozenset({"--upper", "--lower"}))

    assert flags == ["--lower"], "--upper was not given"
    assert "--upper" not in values


def test_no_contexts_no_flags() -> None:
    assert flags_and_values([]) == ([], {})


# -- classify ---------------------------------------------------------------------------------


class CustomUsageError(click.UsageError):
    pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (None, ("success", None)),
        (KeyboardInterrupt(), ("interrupted", None)),
        (click.Abort(), ("aborted", None)),
        (EOFError(), ("aborted", None)),
        (click.UsageError("bad usage /home/alice"), ("usage_error", "UsageError")),
        (click.NoSuchOption("--nope"), ("usage_error", "NoSuchOption")),
        (click.BadParameter("bad value s3cr3t"), ("usage_error", "BadParameter")),
        (click.MissingParameter(), ("usage_error", "MissingParameter")),
        (CustomUsageError("x"), ("usage_error", "CustomUsageError")),
        (click.ClickException("failed: s3cr3t"), ("error", "ClickException")),
        (click.FileError("/etc/secret"), ("error", "FileError")),
        (click.exceptions.Exit(0), ("success", None)),
        (click.exceptions.Exit(3), ("error", None)),
        (SystemExit(0), ("success", None)),
        (SystemExit(None), ("success", None)),
        (SystemExit(2), ("error", None)),
        (SystemExit("fatal: s3cr3t"), ("error", None)),
        (ValueError("s3cr3t"), ("error", "ValueError")),
        (OSError(2, "No such file", "/home/alice/x"), ("error", "FileNotFoundError")),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else repr(v),
)
def test_classify(exc: BaseException | None, expected: tuple[str, str | None]) -> None:
    assert classify(exc, exit_code_of(exc)) == expected


def test_classify_uses_the_exit_code_for_clean_endings() -> None:
    assert classify(None, 1) == ("error", None)
    assert classify(SystemExit(0), 0) == ("success", None)
    assert classify(click.exceptions.Exit(0), 5) == ("error", None)


def test_classify_never_returns_a_message() -> None:
    for exc in (ValueError("s3cr3t"), click.UsageError("s3cr3t"), click.ClickException("s3cr3t")):
        _, error_type = classify(exc, 1)
        assert error_type is not None
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", error_type)
        assert "s3cr3t" not in error_type


# -- exit_code_of -----------------------------------------------------------------------------


class NoCode(click.ClickException):
    exit_code = None  # type: ignore[assignment]  # an author's subclass may hold anything


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (None, 0),
        (SystemExit(), 0),
        (SystemExit(None), 0),
        (SystemExit(0), 0),
        (SystemExit(3), 3),
        (SystemExit("message"), 1),
        (SystemExit(False), 0),  # sys.exit(not ok), a common idiom
        (SystemExit(True), 1),
        (click.exceptions.Exit(), 0),
        (click.exceptions.Exit(4), 4),
        (click.ClickException("x"), 1),
        (click.UsageError("x"), 2),
        (click.NoSuchOption("--x"), 2),
        (click.BadParameter("x"), 2),
        (click.Abort(), 1),
        (KeyboardInterrupt(), 1),
        (ValueError("x"), 1),
        (RuntimeError("x"), 1),
        (click.exceptions.Exit(True), 1),  # ctx.exit(ok) under standalone_mode=False
        (click.exceptions.Exit(256), 0 if os.name == "posix" else 256),
        (NoCode("x"), 0),  # click ends in sys.exit(None): status 0
    ],
    ids=lambda v: repr(v),
)
def test_exit_code_of(exc: BaseException | None, code: int) -> None:
    result = exit_code_of(exc)
    assert result == code
    assert type(result) is int, "the event's exit_code is a JSON number, never true/false"


def test_exit_code_of_matches_click_standalone_mode() -> None:
    """Cross-check against what click itself makes of the same exceptions."""

    def run(exc: BaseException) -> int:
        def fail() -> None:
            raise exc

        cmd = click.Command("c", callback=fail)
        try:
            cmd.main([], standalone_mode=True, prog_name="c")
        except SystemExit as exit_:
            return exit_code_of(exit_)
        return 0

    for exc in (click.ClickException("x"), click.UsageError("x"), click.exceptions.Exit(4)):
        assert run(exc) == exit_code_of(exc)


# -- detect_ci --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"GITHUB_ACTIONS": "true"}, "github_actions"),
        ({"GITHUB_ACTIONS": "true", "CI": "true"}, "github_actions"),
        ({"GITLAB_CI": "true", "CI": "true"}, "gitlab"),
        ({"CI": "true"}, "generic"),
        ({"CI": "1"}, "generic"),
        ({"CI": "false"}, None),
        ({"CI": "FALSE"}, None),
        ({"CI": "0"}, None),
        ({"CI": ""}, None),
        ({"GITHUB_ACTIONS": "false"}, None),
        ({"GITHUB_ACTIONS": "false", "CI": "true"}, "generic"),
        ({}, None),
        ({"HOME": "/home/u", "PATH": "/usr/bin"}, None),
    ],
)
def test_detect_ci(env: dict[str, str], expected: str | None) -> None:
    assert detect_ci(env) == expected


def test_detect_ci_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli_telemetry.capture import _CI_VARIABLES

    for var, _ in _CI_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    assert detect_ci() is None
    monkeypatch.setenv("BUILDKITE", "true")
    assert detect_ci() == "buildkite"


# -- platform_fields --------------------------------------------------------------------------


def test_platform_fields() -> None:
    fields = platform_fields()

    assert set(fields) == {"os", "os_version", "arch", "python_version"}
    assert all(isinstance(value, str) for value in fields.values())
    assert re.fullmatch(r"\d+(\.\d+)*", fields["os_version"]) or fields["os_version"] == ""
    assert fields["python_version"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert platform.python_version().startswith(fields["python_version"])
    expected_os = {"Darwin": "macos"}.get(platform.system(), platform.system().lower())
    assert fields["os"] == expected_os
    assert fields["arch"] == platform.machine().lower()
    if hasattr(os, "uname"):
        assert os.uname().release.startswith(fields["os_version"])


# -- what only runs on macOS and Windows ---------------------------------------------------
# The branches are chosen by what exists when they run (os.uname, os.tcgetpgrp, os.name);
# taken away or set here, the paths that only run there run here.


def test_platform_fields_on_macos(monkeypatch: pytest.MonkeyPatch) -> None:
    """Darwin is recorded as macos; the kernel's release only, never the host name or the
    full version string (which names the build and the machine's owner on some systems)."""
    uname = os.uname_result(
        ("Darwin", "alices-macbook.local", "23.4.0", "Darwin Kernel Version 23.4.0: root", "arm64")
    )
    monkeypatch.setattr(os, "uname", lambda: uname)
    fields = platform_fields()
    assert (fields["os"], fields["os_version"], fields["arch"]) == ("macos", "23.4.0", "arm64")
    assert "alice" not in repr(fields)


def test_platform_fields_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """No os.uname: the platform module answers, and Windows' AMD64 is recorded lowercase."""
    monkeypatch.delattr(os, "uname")
    monkeypatch.setattr(platform, "version", lambda: "10.0.22631")
    monkeypatch.setattr(platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(platform, "node", lambda: pytest.fail("the host name was read"))
    fields = platform_fields()
    recorded = (fields["os"], fields["os_version"], fields["arch"])
    assert recorded == ("windows", "10.0.22631", "amd64")
    assert fields["python_version"] == "{}.{}.{}".format(*sys.version_info[:3])


def test_in_foreground_without_tcgetpgrp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no job control, so a console program is always in the foreground; a
    POSIX system without tcgetpgrp is not trusted to be (no question is asked)."""
    from cli_telemetry.capture import in_foreground

    monkeypatch.delattr(os, "tcgetpgrp")
    with monkeypatch.context() as m:
        m.setattr(os, "name", "nt")
        on_windows = in_foreground()
    assert on_windows is True
    assert in_foreground() is False


@pytest.mark.parametrize(("os_name", "code"), [("posix", 0), ("nt", 256)])
def test_exit_status_beyond_a_byte_is_kept_on_windows(
    monkeypatch: pytest.MonkeyPatch, os_name: str, code: int
) -> None:
    """POSIX keeps the low 8 bits of sys.exit(256) (exit status 0); Windows keeps it all."""
    with monkeypatch.context() as m:
        m.setattr(os, "name", os_name)
        result = exit_code_of(SystemExit(256))
    assert result == code
