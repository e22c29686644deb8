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
        with mock.patch.dict(os.environ, {**environ, "HOME": home}, clear=True):
            yield Path(home)


def spooled(home: Path, tool: str) -> list[dict[str, Any]]:
    import json

    new = home / ".local" / "state" / tool / "telemetry" / "spool" / "new"
    return [json.loads(p.read_text()) for p in sorted(new.glob("*.json"))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tool=TOOLS,
    version=st.one_of(TEXT, st.sampled_from(["1.4.0 (dev)", "v2.0.0rc1+g1234abc"])),
    group=WORDS,
    sub=WORDS,
    prefix=st.sampled_from(["--", "-", "+", "++"]),
    option=WORDS,
    choices=st.lists(WORDS, min_size=1, max_size=5, unique=True),
    pick=st.integers(0, 4),
    error=st.one_of(st.none(), WORDS),
    event=EVENTS,
    properties=st.dictionaries(
        KEYS,
        st.one_of(
            st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=3),
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
    prefix: str,
    option: str,
    choices: list[str],
    pick: int,
    error: str | None,
    event: str,
    properties: dict[str, Any],
) -> None:
    assume(not group.startswith("-") and not sub.startswith("-"))
    opt = prefix + option
    try:
        declared = click.Option([opt, "choice"], type=click.Choice(choices))
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
        @click.group(group)
        def cli() -> None:
            pass

        ran: list[bool] = []

        @cli.command(sub, params=[declared])
        def run(choice: str) -> None:
            ran.append(True)
            custom.track(values)
            if error is not None:
                raise type(error, (Exception,), {})()

        value = choices[pick % len(choices)]
        CliRunner().invoke(cli, [sub, opt, value])
        recorded = spooled(home, tool)
    # A declaration click parses oddly may end in a usage error before the command runs.
    assert [e["event"] for e in recorded] == ["command", event] if ran else ["command"]
    accepted, rejected = check_batch({"batch": recorded})
    assert [r.to_json() for r in rejected] == []
    assert len(accepted) == len(recorded)
    command = recorded[0]
    assert command["command"].split(" ")[0] == tool
    if not record:
        assert command["values"] == {}  # not named: never recorded
