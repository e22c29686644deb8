"""The contract, tried with generated tools: every event the library records passes the
collector's validation (`cli_telemetry.collector.validation.check_batch`, what the collector
runs on each request), whatever names, choices, versions, exception classes and custom
properties an author's click tool has."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypedDict
from unittest import mock

import click
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cli_telemetry import ConfigurationError, Telemetry
from cli_telemetry._settings import RECORD_UNDER_TEST_VARIABLE
from cli_telemetry._values import MAX_SAFE_INTEGER, OPTION, fit_version
from cli_telemetry.collector.validation import check_batch

TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=30
)
WORDS = st.one_of(TEXT, st.sampled_from(["C#", "café", "a b", "/dev/sda", "x86_64", "ÉchecError"]))
TOOLS = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
EVENTS = st.from_regex(r"[a-z][a-z0-9_.-]{0,30}", fullmatch=True).filter(
    lambda name: name not in ("command", "identify")
)
KEYS = st.from_regex(r"[A-Za-z_$][A-Za-z0-9_.$-]{0,20}", fullmatch=True)


@contextmanager
def isolated_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as home:
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CI"))}
        environ.pop("DO_NOT_TRACK", None)
        environ.pop("GITHUB_ACTIONS", None)
        environ[RECORD_UNDER_TEST_VARIABLE] = "1"  # a user's run, though pytest runs it
        with mock.patch.dict(os.environ, {**environ, "HOME": home}, clear=True):
            yield Path(home)


def spooled(home: Path, tool: str) -> list[dict[str, Any]]:
    import json

    new = home / ".local" / "state" / tool / "telemetry" / "spool" / "new"
    return [json.loads(p.read_text()) for p in sorted(new.glob("*.json"))]


CHOICE_MEMBERS = st.one_of(
    WORDS,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),  # infinity too: click compares, the schema cannot hold it
)


class Plugins(click.Group):
    """A plugin group that caches what it finds: any unknown word becomes a command, added
    to ``commands`` as it is resolved (the run-time word must still not be recorded)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            found = click.Command(cmd_name, params=[click.Option(["--plugin-flag"])])
            self.add_command(found)
        return found


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tool=TOOLS,
    version=st.one_of(TEXT, st.sampled_from(["1.4.0 (dev)", "v2.0.0rc1+g1234abc"])),
    group=WORDS,
    sub=WORDS,
    plugin=st.one_of(st.none(), WORDS),
    prefix=st.sampled_from(["--", "-", "+", "++"]),
    option=WORDS,
    choices=st.lists(CHOICE_MEMBERS, min_size=1, max_size=5, unique_by=repr),
    nargs=st.sampled_from([1, 2]),
    pick=st.integers(0, 4),
    error=st.one_of(st.none(), WORDS),
    exit_with=st.one_of(st.none(), st.integers(-(2**40), 2**40), st.booleans()),
    event=EVENTS,
    properties=st.dictionaries(
        KEYS,
        st.one_of(
            st.lists(
                st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40),
                min_size=1,
                max_size=3,
            ),
            st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
            st.floats(allow_nan=False, allow_infinity=False),
            st.booleans(),
        ),
        max_size=5,
    ),
)
def test_every_event_the_library_records_passes_the_collectors_validation(
    tool: str,
    version: str,
    group: str,
    sub: str,
    plugin: str | None,
    prefix: str,
    option: str,
    choices: list[Any],
    nargs: int,
    pick: int,
    error: str | None,
    exit_with: int | bool | None,
    event: str,
    properties: dict[str, Any],
) -> None:
    assume(not group.startswith("-") and not sub.startswith("-"))
    assume(plugin is None or (plugin != sub and not plugin.startswith("-")))
    opt = prefix + option
    try:
        declared = click.Option([opt, "choice"], type=click.Choice(choices), nargs=nargs)
    except (TypeError, ValueError):
        assume(False)  # click itself refuses this declaration
    record = [opt] if OPTION.fits(opt) else []
    with isolated_home() as home:
        config = home / ".config" / tool / "telemetry.conf"
        config.parent.mkdir(parents=True)
        config.write_text("enabled = true\nconsent_policy = 1\n")
        try:
            telemetry = Telemetry(tool, version=version, record_values=record, strict=True)
        except ConfigurationError:
            assert not fit_version(version)  # only a version with nothing to keep is refused
            return
        fields: dict[str, Any] = {}
        values: dict[str, Any] = {}
        for key, value in properties.items():
            if isinstance(value, list):
                fields[key] = Literal[tuple(value)]
                value = value[0]
            else:
                fields[key] = type(value)
            values[key] = value
        make_typed_dict: Any = TypedDict  # the fields are generated: no literal for mypy
        custom: Any = telemetry.event(
            event, make_typed_dict("Properties", fields), description="Generated."
        )

        @telemetry.instrument
        @click.group(group, cls=Plugins)
        def cli() -> None:
            pass

        ran: list[bool] = []

        @cli.command(sub, params=[declared])
        @click.pass_context
        def run(ctx: click.Context, choice: Any) -> None:
            ran.append(True)
            custom.track(values)
            if error is not None:
                raise type(error, (Exception,), {})()
            if exit_with is not None:
                ctx.exit(exit_with)  # a bool too: ctx.exit(ok)

        value = [str(choices[(pick + i) % len(choices)]) for i in range(nargs)]
        CliRunner().invoke(cli, [sub, opt, *value])
        if plugin is not None:
            CliRunner().invoke(cli, [plugin, "--plugin-flag", "from-the-plugin"])
        recorded = spooled(home, tool)
    # A declaration click parses oddly may end in a usage error before the command runs.
    expected = ["command", event] if ran else ["command"]
    assert [e["event"] for e in recorded] == expected + (["command"] if plugin else [])
    accepted, rejected = check_batch({"batch": recorded})
    assert [r.to_json() for r in rejected] == []
    assert len(accepted) == len(recorded)
    command = recorded[0]
    assert command["command"].split(" ")[0] == tool
    if not record:
        assert command["values"] == {}  # not named: never recorded
    if plugin is not None:
        assert (recorded[-1]["command"], recorded[-1]["flags"]) == (f"{tool} <unlisted>", [])
