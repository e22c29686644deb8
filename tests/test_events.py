"""`events.check_custom_event`: what a custom event may hold, and the messages when it may not."""

from __future__ import annotations

import enum
import json
import math

import pytest

from cli_telemetry.events import (
    MAX_KEY_LENGTH,
    MAX_PROPERTIES,
    MAX_STRING_LENGTH,
    check_custom_event,
    encode,
)


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
        "big": 10**30,
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
    with pytest.raises(ValueError, match="'ratio' must be a finite number"):
        check_custom_event("deploy", {"ratio": value})


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
