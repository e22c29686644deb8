"""The schema (`cli_telemetry.events`): its fields and rules, what the library fits values to,
`check_event`, what a custom event may hold, and the JSON writer."""

from __future__ import annotations

import enum
import json
import math
import re
import typing
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_telemetry import events
from cli_telemetry.events import (
    COMMAND_ONLY_FIELDS,
    CUSTOM_ONLY_FIELDS,
    FIELDS,
    MAX_KEY_LENGTH,
    MAX_PROPERTIES,
    MAX_SAFE_INTEGER,
    MAX_STRING_LENGTH,
    PLACEHOLDER,
    Event,
    InvalidEvent,
    check_custom_event,
    check_event,
    encode,
    fit_version,
)

# -- the fields ----------------------------------------------------------------------------


def test_the_fields_are_the_typed_event_in_its_order() -> None:
    assert [field.name for field in FIELDS] == list(typing.get_type_hints(Event))


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
    for name, rule in vars(events).items()
    if isinstance(rule, (events.Text, events.OptionName))
}
ALPHABET = st.characters(
    exclude_categories=["Cs"],  # no lone surrogates: JSON text cannot hold them
)
SAMPLES = st.one_of(
    st.text(ALPHABET, max_size=70),
    st.text("abcXYZ09_.:+#@/-<> é漢٣", max_size=70),
    st.sampled_from([PLACEHOLDER, events.UNLISTED, "", "-", "--x", "+w", "/debug"]),
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
    assert fitted == "" or events.TOOL_VERSION.fits(fitted)


@pytest.mark.parametrize(
    ("rule", "value", "fitted"),
    [
        (events.OS_VERSION, "6.1.0", "6.1.0"),
        (events.OS_VERSION, "1.2.3.4.5.6.7.8", "1.2.3.4.5.6"),
        (events.OS_VERSION, "1" * 50, ""),
        (events.EXIT_CODE, 2**40, 2**32 - 1),
        (events.DURATION_MS, -5, 0),
        (events.ERROR_TYPE, "ÉchecError", "ÉchecError"),
        (events.ERROR_TYPE, "Not An Identifier", PLACEHOLDER),
        (events.CHOICE, "C#", "C#"),
        (events.CHOICE, "café", "café"),
        (events.CHOICE, "/dev/sda", PLACEHOLDER),
        (events.FLAG, "+w", "+w"),
        (events.FLAG, "--a.b", PLACEHOLDER),
        (events.WORD, "déployer", PLACEHOLDER),
    ],
)
def test_fit(rule: Any, value: object, fitted: object) -> None:
    assert rule.fit(value) == fitted


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
    rows = events.privacy_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [field.name for field in FIELDS]


@pytest.mark.parametrize(
    "name",
    ["a", "deploy", "deploy.started", "cache-hit", "step_2", "x" * 64, "commands", "z9.-_"],
)
def test_valid_names_pass(name: str) -> None:
    assert check_custom_event(name, {}) == {}


def test_valid_properties_pass_and_are_returned_as_a_copy() -> None:
    properties: dict[str, object] = {
        "s": "text",
        "empty": "",
        "i": -3,
        "big": MAX_SAFE_INTEGER,
        "small": -MAX_SAFE_INTEGER,
        "f": 1.5,
        "zero": 0.0,
        "t": True,
        "f2": False,
        "n": None,
        "k" * MAX_KEY_LENGTH: "v" * MAX_STRING_LENGTH,
    }

    checked = check_custom_event("deploy.done", properties)

    assert checked == properties
    assert checked is not properties
    checked["s"] = "changed"
    checked["new"] = 1
    assert properties["s"] == "text"
    assert "new" not in properties


def test_no_properties_is_an_empty_dict() -> None:
    assert check_custom_event("ping", None) == {}


def test_exactly_the_maximum_number_of_properties_passes() -> None:
    properties = {f"p{i}": i for i in range(MAX_PROPERTIES)}
    assert check_custom_event("many", properties) == properties


# -- TypeError: the wrong kind of value ---------------------------------------------------------


@pytest.mark.parametrize("name", [None, 1, b"deploy", ["deploy"]])
def test_a_name_that_is_not_a_str_is_a_type_error(name: object) -> None:
    with pytest.raises(TypeError, match="event name must be a str"):
        check_custom_event(name, {})


@pytest.mark.parametrize("properties", [[("a", 1)], ("a", 1), "a=1", 1, {"a", "b"}])
def test_properties_that_are_not_a_dict_are_a_type_error(properties: object) -> None:
    with pytest.raises(TypeError, match="properties must be a dict"):
        check_custom_event("deploy", properties)


@pytest.mark.parametrize("key", [1, None, b"key", ("a",)])
def test_a_property_name_that_is_not_a_str_is_a_type_error(key: object) -> None:
    with pytest.raises(TypeError, match="property names must be str"):
        check_custom_event("deploy", {"ok": 1, key: "v"})


class Level(enum.IntEnum):
    LOW = 1


class Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [[1, 2], [], {"a": 1}, {}, (1,), {1}, object(), b"bytes", Level.LOW, Text("x"), 1j],
    ids=lambda v: type(v).__name__,
)
def test_a_value_that_is_not_a_json_scalar_is_a_type_error_naming_the_property(
    value: object,
) -> None:
    with pytest.raises(TypeError) as info:
        check_custom_event("deploy", {"fine": 1, "the_bad_one": value})
    message = str(info.value)
    assert "'the_bad_one'" in message
    assert type(value).__name__ in message
    assert "'fine'" not in message


# -- ValueError: out of bounds ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Command",
        "command",
        "",
        "1abc",
        "x" * 65,
        "Deploy",
        "deploy started",
        "déploy",
        "_x",
        ".x",
        "deploy\n",
    ],
)
def test_a_bad_name_is_a_value_error(name: str) -> None:
    with pytest.raises(ValueError, match="event name"):
        check_custom_event(name, {})


def test_too_many_properties_is_a_value_error() -> None:
    properties = {f"p{i}": i for i in range(MAX_PROPERTIES + 1)}
    with pytest.raises(ValueError, match=f"at most {MAX_PROPERTIES} properties"):
        check_custom_event("many", properties)


@pytest.mark.parametrize("key", ["", "k" * (MAX_KEY_LENGTH + 1), "k" * 1000])
def test_a_property_name_of_bad_length_is_a_value_error(key: str) -> None:
    with pytest.raises(ValueError, match="property name"):
        check_custom_event("deploy", {key: 1})


def test_a_too_long_string_is_a_value_error_naming_the_property() -> None:
    with pytest.raises(ValueError, match="'long_one'"):
        check_custom_event("deploy", {"long_one": "v" * (MAX_STRING_LENGTH + 1)})


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("nan")])
def test_a_non_finite_float_is_a_value_error_naming_the_property(value: float) -> None:
    with pytest.raises(ValueError, match="'ratio' must be a JSON scalar"):
        check_custom_event("deploy", {"ratio": value})


@pytest.mark.parametrize("value", [MAX_SAFE_INTEGER + 1, -(2**63), 10**30])
def test_an_integer_past_the_safe_range_is_a_value_error(value: int) -> None:
    with pytest.raises(ValueError, match="'count' must be a JSON scalar"):
        check_custom_event("deploy", {"count": value})


def test_errors_are_not_a_mix_of_types() -> None:
    """A TypeError is not a ValueError and the other way around, so callers can tell."""
    with pytest.raises(TypeError) as type_error:
        check_custom_event("deploy", {"x": [1]})
    assert not isinstance(type_error.value, ValueError)
    with pytest.raises(ValueError) as value_error:
        check_custom_event("deploy", {"x": math.nan})
    assert not isinstance(value_error.value, TypeError)


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
