"""`collector.body`: the parser that reads a batch one event at a time gives what
``json.loads`` gives (or refuses what it refuses), whatever the text and wherever its
slices cut it; and the pre-scan refuses what would cost too much before building it."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_collector_e2e import event

from cli_telemetry.collector.body import (
    MAX_BODY_BYTES,
    MAX_JSON_VALUES,
    TOO_LARGE,
    BodyError,
    Count,
    count_values,
    parse,
    read,
)
from cli_telemetry.collector.validation import MAX_BATCH_EVENTS, InvalidBatch, check_batch

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**19), 10**19),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=30,
)
SPACES = st.text(" \t\r\n", max_size=3)


@st.composite
def bodies(draw: st.DrawFn) -> str:
    """A batch body as any sender might write it: any values, keys in any order, any
    whitespace between tokens (and sometimes an unknown key)."""
    members: dict[str, Any] = {"batch": draw(st.lists(VALUES, max_size=8))}
    if draw(st.booleans()):
        members["sent_at"] = draw(VALUES)
    if draw(st.integers(0, 9)) == 0:
        members[draw(st.sampled_from(["extra", "Batch"]))] = 1
    space = draw(SPACES)

    def dump(value: Any) -> str:
        indent = draw(st.sampled_from([None, 0, 2]))
        text = json.dumps(value, indent=indent, ensure_ascii=draw(st.booleans()))
        return text.replace(",", f",{space}") if indent is None else text

    items = [f"{space}{json.dumps(k)}{space}:{space}{dump(v)}" for k, v in members.items()]
    keys = list(members)
    if "batch" in keys and keys.index("batch") == 0 and draw(st.booleans()):
        items.reverse()
    return f"{space}{{{','.join(items)}}}{draw(SPACES)}"


def outcome(function: Any, *args: Any) -> Any:
    """What ``function`` returns, comparable (NaN-free floats as their repr), or "refused"."""
    try:
        return json.dumps(function(*args), sort_keys=True)
    except (ValueError, RecursionError):
        return "refused"


def reference(text: str) -> Any:
    """json.loads, then the checks `parse` makes of a body's shape."""
    document = json.loads(text)
    if not isinstance(document, dict) or not set(document) <= {"batch", "sent_at"}:
        raise ValueError("not a batch")
    return document


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=bodies(), window=st.sampled_from([8, 13, 64, 4096]), cut=st.integers(0, 400))
def test_parse_is_json_loads_whatever_the_slices(text: str, window: int, cut: int) -> None:
    """Windows as small as 8 characters make the slices cut numbers, strings, escapes and
    literals; the body cut short anywhere must be refused by both."""
    whole = outcome(reference, text)
    assert outcome(parse, text, 1 << 20) == whole  # a large body's way
    assert outcome(read, text.encode(), False) == whole  # a small body's way
    try:
        small = json.dumps(parse(text, window), sort_keys=True)
    except BodyError as exc:  # a valid body is read whole or refused as too large
        assert whole == "refused" or exc.status == 413
    except InvalidBatch:
        assert whole == "refused"
    else:
        assert small == whole
    truncated = text[: len(text) * cut // 400]
    assert outcome(parse, truncated, 1 << 20) == outcome(reference, truncated)
    assert outcome(read, truncated.encode(), False) == outcome(reference, truncated)


@pytest.mark.parametrize(
    "text",
    [
        '{"batch": [1.5e10]}',
        '{"batch": [-Infinity, NaN, true, null]}',
        '{"batch": ["\\u00e9\\ud83d\\ude00", "a\\"b"]}',
        '{"batch": [12345678901234567890]}',
        '{"sent_at": "x", "batch": []}',
        '{"batch": [{}], "batch": [[]]}',
    ],
)
@pytest.mark.parametrize("window", [1, 2, 3, 5, 8, 100])
def test_values_cut_at_every_place(text: str, window: int) -> None:
    expected = json.dumps(json.loads(text))
    try:
        assert json.dumps(parse(text, window)) == expected
    except BodyError as exc:
        assert exc.status == 413  # a value longer than the window: never a wrong value


def test_a_number_of_many_digits_is_a_value_no_field_accepts() -> None:
    """Not converted (int() of 4,000 digits costs its square), and refused by the schema
    where an int is refused: the event holding it is refused, its neighbours kept."""
    document = parse('{"batch": [' + "9" * 4000 + ", -" + "1" * 20 + ", " + "1" * 21 + "]}")
    assert document["batch"] == [TOO_LARGE, -int("1" * 20), TOO_LARGE]
    good, bad = event(), event(values={"--env": TOO_LARGE})
    accepted, [rejection] = check_batch({"batch": [good, bad]})
    assert (accepted, rejection.index, rejection.field) == ([good], 1, "values")


@pytest.mark.parametrize(
    ("text", "status", "message"),
    [
        ("[1, 2]", None, "must be an object"),
        ('{"batch": [1], "extra": [' + "[]," * 10 + "[]]}", None, "is not a field"),
        ('{"batch": [1,]}', 400, "Expecting value"),
        ('{"batch": [1] x', 400, "Expecting ',' delimiter"),
        ('{"batch": [1]} x', 400, "Extra data"),
        ('{"batch": [' + "[" * 5000 + "]" * 5000 + "]}", 400, "nested too deeply"),
        ('{"batch": ["' + "x" * 70_000 + '"]}', 413, "event 0 is over 65536 characters"),
        ('{"batch": [' + "0," * MAX_BATCH_EVENTS + "0]}", None, "1 to 10000 events"),
    ],
)
def test_bodies_refused_whole(text: str, status: int | None, message: str) -> None:
    with pytest.raises((BodyError, InvalidBatch)) as caught:
        parse(text)
    assert message in str(caught.value)
    if status is not None:
        assert isinstance(caught.value, BodyError) and caught.value.status == status


def tally(value: Any) -> tuple[int, str]:
    """The values in a document, and all its text (keys and strings)."""
    if isinstance(value, (dict, list)):
        parts = [tally(v) for v in (value.values() if isinstance(value, dict) else value)]
        keys = "".join(value) if isinstance(value, dict) else ""
        return 1 + sum(n for n, _ in parts), keys + "".join(t for _, t in parts)
    return 1, value if isinstance(value, str) else ""


@given(value=VALUES)
def test_the_count_of_values_is_never_below_the_values(value: Any) -> None:
    """Exact when no text holds a comma or a bracket; never below, whatever the text."""
    values, text = tally(value)
    for separators in ((",", ":"), (", ", ": ")):
        counted = count_values(json.dumps(value, separators=separators).encode())
        assert counted >= values
        if not set(text) & set(",[]{}"):
            assert counted == values
    assert count_values(b'[[], {}, [1, [2, {}]], {"a": [3]}]') == 11


@given(value=VALUES, cuts=st.lists(st.integers(0, 2000), max_size=6))
def test_the_count_is_the_same_in_parts(value: Any, cuts: list[int]) -> None:
    """Counted a part at a time, as a gzip body is while it inflates: a body of n values
    passes a limit of n, and not a limit of n - 1, wherever the parts end."""
    text = json.dumps(value, separators=(",", ":")).encode()
    exact = count_values(text)

    def count_in_parts(limit: int) -> None:
        count = Count(limit)
        for end in sorted(min(cut, len(text)) for cut in cuts):
            count.add(text, final=False, end=end)
        count.add(text, final=True)

    count_in_parts(exact)
    with pytest.raises(BodyError):
        count_in_parts(exact - 1)


def holding(values: int) -> bytes:
    """A body of exactly ``values`` JSON values: 9,999 events of 40, and the rest."""
    rest = values - 2 - 9_999 * 40 - 1
    return json.dumps({"batch": [[0] * 39] * 9_999, "sent_at": [0] * rest}).encode()


def test_the_pre_scan_counts_values_before_building_any() -> None:
    assert count_values(holding(MAX_JSON_VALUES)) == MAX_JSON_VALUES
    assert len(read(holding(MAX_JSON_VALUES), gzipped=False)["batch"]) == 9_999
    with pytest.raises(BodyError) as caught:
        read(gzip.compress(holding(MAX_JSON_VALUES + 1)), gzipped=True)
    assert caught.value.status == 413
    assert f"more than {MAX_JSON_VALUES} JSON values" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "gzipped", "status"),
    [
        (b" " * (MAX_BODY_BYTES + 1), False, 413),
        (gzip.compress(b" " * (MAX_BODY_BYTES + 1)), True, 413),
        (b"not gzip", True, 400),
        (gzip.compress(b"{}")[:-8], True, 400),
        (gzip.compress(b"{}") + b"junk", True, 400),
        ('{"batch": []}'.encode("utf-16"), False, 400),
    ],
)
def test_bytes_refused(raw: bytes, gzipped: bool, status: int) -> None:
    with pytest.raises(BodyError) as caught:
        read(raw, gzipped)
    assert caught.value.status == status
