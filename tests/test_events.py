"""The schema (`cli_telemetry.events`): its fields and rules, what the library fits values to,
`check_event`, what a custom event may hold, and the JSON writer."""

from __future__ import annotations

import json
import random
import re
import time
import typing
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_telemetry import _values, events
from cli_telemetry._values import MAX_SAFE_INTEGER, PLACEHOLDER, encode, fit_version
from cli_telemetry.events import (
    COMMAND_ONLY_FIELDS,
    CUSTOM_ONLY_FIELDS,
    FIELDS,
    Event,
    InvalidEvent,
    check_event,
)

# -- the fields ----------------------------------------------------------------------------


def test_the_fields_are_the_typed_event() -> None:
    names = [field.name for field in FIELDS]
    assert sorted(names) == sorted(typing.get_type_hints(Event)) and len(set(names)) == len(names)


def test_optional_keys_are_the_fields_of_one_kind_of_event() -> None:
    assert set(Event.__optional_keys__) == COMMAND_ONLY_FIELDS | CUSTOM_ONLY_FIELDS
    assert {
        "flags", "values", "exit_code", "outcome", "error_type", "duration_ms"
    } == COMMAND_ONLY_FIELDS  # fmt: skip
    assert {"properties"} == CUSTOM_ONLY_FIELDS


def test_outcomes_are_the_literal() -> None:
    assert typing.get_args(events.Outcome) == events.OUTCOMES


# -- each text rule and its regular expression say the same --------------------------------

TEXT_RULES = {
    name: rule
    for name, rule in vars(_values).items()
    if isinstance(rule, (_values.Text, _values.OptionName))
}
ALPHABET = st.characters(
    exclude_categories=["Cs"],  # no lone surrogates: JSON text cannot hold them
)
SAMPLES = st.one_of(
    st.text(ALPHABET, max_size=70),
    st.text("abcXYZ09_.:+#@/-<> é漢٣", max_size=70),
    st.sampled_from([PLACEHOLDER, _values.UNLISTED, "", "-", "--x", "+w", "/debug"]),
)


def as_python(pattern: str) -> str:
    """An ECMA 262 pattern with ``\\p{L}\\p{N}`` in classes, as Python's re writes it."""
    return re.sub(r"\[\\p\{L\}\\p\{N\}([^\]]*)\]", r"(?:[^\\W_]|[\1])", pattern)


@pytest.mark.parametrize("name", sorted(TEXT_RULES))
@given(value=SAMPLES)
def test_a_text_rule_and_its_pattern_agree(name: str, value: str) -> None:
    rule = TEXT_RULES[name]
    assert rule.fits(value) == bool(re.fullmatch(as_python(rule.pattern()), value))


@given(value=st.text(ALPHABET, max_size=80))
def test_fitted_text_always_fits(value: str) -> None:
    for rule in TEXT_RULES.values():
        if getattr(rule, "placeholder", False):
            fitted = rule.fit(value)
            assert rule.fits(fitted)
            assert fitted in (value, PLACEHOLDER)


@pytest.mark.parametrize(
    ("given_version", "recorded"),
    [
        ("1.4.0", "1.4.0"),
        ("1.4.0 (dev)", "1.4.0-dev"),
        ("v2.0.0rc1+g1234abc.d20261129", "v2.0.0rc1+g1234abc.d20261129"),
        ("  1.0  ", "1.0"),
        ("__init__", "init__"),
        ("版本 3", "3"),
        ("1" * 100, "1" * 64),
        ("(((", ""),
    ],
)
def test_fit_version(given_version: str, recorded: str) -> None:
    assert fit_version(given_version) == recorded


@given(value=st.text(ALPHABET, max_size=120))
def test_a_fitted_version_fits_or_is_empty(value: str) -> None:
    fitted = fit_version(value)
    assert fitted == "" or _values.TOOL_VERSION.fits(fitted)


@pytest.mark.parametrize(
    ("fit", "value", "fitted"),
    [
        (_values.fit_os_version, "6.1.0", "6.1.0"),
        (_values.fit_os_version, "1.2.3.4.5.6.7.8", "1.2.3.4.5.6"),
        (_values.fit_os_version, "1" * 50, ""),
        (_values.EXIT_CODE.fit, 2**40, 2**32 - 1),
        (_values.DURATION_MS.fit, -5, 0),
        (_values.fit_error_type, "ÉchecError", "ÉchecError"),
        (_values.fit_error_type, "Not An Identifier", PLACEHOLDER),
        (_values.CHOICE.fit, "C#", "C#"),
        (_values.CHOICE.fit, "café", "café"),
        (_values.CHOICE.fit, "/dev/sda", PLACEHOLDER),
        (_values.FLAG.fit, "+w", "+w"),
        (_values.FLAG.fit, "--a.b", PLACEHOLDER),
        (_values.WORD.fit, "déployer", PLACEHOLDER),
    ],
)
def test_fit(fit: Any, value: object, fitted: object) -> None:
    assert fit(value) == fitted


@given(value=st.text(ALPHABET, max_size=40))
def test_fitted_captured_values_pass_their_fields_rule(value: str) -> None:
    assert events.OS_VERSION.problem(_values.fit_os_version(value)) is None
    assert events.ERROR_TYPE.problem(_values.fit_error_type(value)) is None


@pytest.mark.parametrize(
    "rule",
    [field.rule for field in FIELDS],
    ids=[field.name for field in FIELDS],
)
def test_every_rule_writes_a_json_schema(rule: _values.Rule) -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(rule.json_schema())


# -- check_event -----------------------------------------------------------------------------


def command_event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "event": "command",
        "timestamp": "2026-11-23T12:00:00.123Z", "tool": "acme", "tool_version": "1.4.0",
        "install_id": str(uuid.uuid4()), "command": "acme deploy <unlisted>",
        "flags": ["--env", "<other>"], "values": {"--env": "prod"}, "exit_code": 0,
        "outcome": "success", "error_type": None, "duration_ms": 12, "os": "linux",
        "os_version": "", "arch": "x86_64", "python_version": "3.11.7", "ci": None,
        "interactive": False,
    }  # fmt: skip
    event.update(changes)
    return event


def test_a_valid_event_passes() -> None:
    check_event(command_event())
    check_event(command_event(values={"--env": ["a", 1, 2.5, True, None, "<other>"]}))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"values": {"--env": "/home/alice"}}, "values"),
        ({"values": {"--nope": "x"}}, "values"),
        ({"values": {"--env": MAX_SAFE_INTEGER + 1}}, "values"),
        ({"flags": ["--env=prod"]}, "flags"),
        ({"command": "other deploy"}, "command"),
        ({"command": "acme " + " ".join(["w"] * 17)}, "command"),
        ({"timestamp": "2026-11-23T12:00:00.1234567Z"}, "timestamp"),
        ({"error_type": "Error: /home/alice"}, "error_type"),
        ({"properties": {}}, "properties"),
        ({"machine_id": "ab" * 32}, "machine_id"),
        ({"exit_code": True}, "exit_code"),
    ],
)
def test_check_event_names_the_field_at_fault(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        check_event(command_event(**changes))
    assert info.value.field == field


def test_privacy_table_has_a_row_per_field() -> None:
    rows = [row for row in events.privacy_table().splitlines() if row.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [field.name for field in FIELDS]
    assert {row.split(" | ")[1] for row in rows} == set(typing.get_args(events.Carriers))


# -- the deletion request ----------------------------------------------------------------------


def deletion_request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "event": "deletion_request",
        "timestamp": "2026-11-23T12:00:00.123Z", "tool": "acme",
        "install_id": str(uuid.uuid4()),
    }  # fmt: skip
    request.update(changes)
    return request


def test_a_deletion_request_has_the_fields_of_every_record_and_no_usage() -> None:
    check_event(deletion_request())
    assert set(typing.get_type_hints(events.DeletionRequest)) == events.DELETION_FIELDS
    assert {f.name for f in FIELDS if f.events == "all"} == events.DELETION_FIELDS
    assert events.DELETION_FIELDS.isdisjoint({"command", "os", "tool_version", "flags"})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"command": "acme"}, "command"),  # no usage data rides along
        ({"os": "linux"}, "os"),
        ({"properties": {}}, "properties"),
        ({"install_id": "not-a-uuid"}, "install_id"),
        ({"install_id": None}, "install_id"),
        ({"tool": "Acme Tool"}, "tool"),
    ],
)
def test_a_deletion_request_with_more_or_bad_fields_is_refused(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidEvent) as info:
        check_event(deletion_request(**changes))
    assert info.value.field == field


def test_a_deletion_request_without_its_install_id_is_refused() -> None:
    request = deletion_request()
    del request["install_id"]
    with pytest.raises(InvalidEvent, match="install_id: is missing"):
        check_event(request)


def test_a_command_event_is_not_a_deletion_request() -> None:
    """The kind is the ``event`` field's: a command event named so is judged as a deletion
    request, and refused for its usage fields."""
    with pytest.raises(InvalidEvent) as info:
        check_event(command_event(event="deletion_request"))
    assert info.value.field in COMMAND_ONLY_FIELDS | {"tool_version", "command", "os"}


# -- encode: the hot path's JSON writer, checked against json itself --------------------------

ENCODABLE: list[object] = [
    None,
    True,
    False,
    0,
    -7,
    10**30,
    0.1,
    -0.0,
    1e16,
    1.5e-300,
    "",
    "plain",
    'quote " and backslash \\ and slash /',
    "controls \x00\x01\x08\t\n\x0b\x0c\r\x1f and DEL \x7f",
    "unicode é ß 漢字 😀 \u2028\u2029",
    [],
    [1, "two", None, [3.0]],
    {},
    {"nested": {"list": [True, False], "empty": {}}, "": "empty key"},
]


@pytest.mark.parametrize("value", ENCODABLE, ids=repr)
def test_encode_writes_what_json_writes(value: object) -> None:
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert encode(value) == expected
    assert json.loads(encode(value)) == value


def test_encode_round_trips_every_string_of_single_code_points() -> None:
    text = "".join(chr(c) for c in range(0x2FF)) + "".join(chr(c) for c in range(0xE000, 0xE0FF))
    assert json.loads(encode({"k": text})) == {"k": text}
    assert encode(text) == json.dumps(text, ensure_ascii=False)


def test_encode_escapes_each_code_point_alone_as_json_does() -> None:
    """Each on its own, so that the path a string takes (nothing to escape, or the escape
    table) is decided by that one character."""
    for c in [*range(0x2FF), 0x2028, 0x2029, 0xFEFF, 0xE000]:
        assert encode(f"a{chr(c)}") == json.dumps(f"a{chr(c)}", ensure_ascii=False), hex(c)


def test_encode_writes_tuples_as_lists_and_bool_subclass_checks_first() -> None:
    assert encode((1, 2)) == "[1,2]"
    assert encode([True, 1]) == "[true,1]"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("lone surrogate \ud800", UnicodeEncodeError),
        ({1: "int key"}, TypeError),
        ({"set": {1}}, TypeError),
        (object(), TypeError),
        (b"bytes", TypeError),
    ],
)
def test_encode_refuses_what_json_would_not_write_faithfully(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        encode(value)


# -- the timestamp rule ------------------------------------------------------------------------


def _judged_by_datetime(value: str) -> str | None:
    """The timestamp rule as it was written first, whole: ``datetime`` judges each value."""
    from datetime import UTC, datetime

    try:
        when = datetime(
            int(value[0:4]), int(value[5:7]), int(value[8:10]),
            int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return "is not a real date and time"
    return "is in the future" if when.timestamp() > time.time() + events.FUTURE_SKEW else None


def test_the_timestamp_rule_judges_dates_and_times_as_datetime_does() -> None:
    """The rule judges the day once per day (`events._epoch_day`) and the time itself: it
    must refuse exactly what ``datetime`` refuses, and what is more than a day ahead."""
    rng = random.Random(12)
    days = ["0000-01-01", "0001-01-01", "1969-12-31", "1970-01-01", "2024-02-29", "2025-02-29",
            "1900-02-29", "2000-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "2026-12-00",
            "2026-12-32", "9999-12-31"]  # fmt: skip
    times = ["00:00:00", "23:59:59", "24:00:00", "12:60:00", "12:00:60", "99:99:99"]
    values = [f"{d}T{t}.000Z" for d in days for t in times]
    for _ in range(5000):
        digits = [rng.choice("0123456789") for _ in range(14)]
        values.append("{}{}{}{}-{}{}-{}{}T{}{}:{}{}:{}{}Z".format(*digits))
    now = time.time()
    for ahead in (-86400, 0, 86400 - 5, 86400 + 5, 86400 * 2):
        values.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + ahead)))
    for value in values:
        assert events.TIMESTAMP.problem(value) == _judged_by_datetime(value), value
