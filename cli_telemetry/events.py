"""The event schema, version 1: the one definition of what cli-telemetry collects.

Everything that touches an event is built from this module:

- `Event` is its static type (for mypy);
- `FIELDS` states each field once: which events carry it, the rule its value obeys, and the
  sentence PRIVACY.md says about it (``tests/test_privacy_doc.py`` holds PRIVACY.md's table
  equal to `privacy_table`);
- the library fits each value it captures to its field's rule as it captures it
  (`cli_telemetry._values`, where the rules of single values live: the host tool needs them
  on every run without the rest of this module);
- `check_event` is the judge: the collector runs it on each event it receives, and the
  uploader on each event before any sink is sent it;
- ``click-telemetry schema`` prints the rules as JSON Schema (`Rule.json_schema`).

So a value the library records is, by construction, one its collector accepts;
``tests/test_contract_property.py`` tries that with generated tools, and debug mode checks
each event it shows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, Final, Literal, TypedDict

from ._values import (
    CHOICE,
    DIGITS,
    DURATION_MS,
    EVENT_NAME,
    EXIT_CODE,
    FLAG,
    LOWER,
    MAX_COMMAND_WORDS,
    MAX_LIST,
    MAX_SAFE_INTEGER,
    OPTION,
    PLATFORM_WORD,
    PROPERTY_NAME,
    TOOL,
    TOOL_VERSION,
    UNLISTED,
    WORD,
    Rule,
    Text,
    _dotted,
    _error_type,
    _escape,
    _rule,
    is_uuid,
)
from ._values import COMMAND_EVENT as COMMAND_EVENT  # the collector reads them here
from ._values import DELETION_EVENT as DELETION_EVENT
from ._values import IDENTIFY_EVENT as IDENTIFY_EVENT
from ._values import SCHEMA_VERSION as SCHEMA_VERSION

Outcome = Literal["success", "error", "usage_error", "aborted", "interrupted"]
"""How an invocation ended; see `capture.classify` for the mapping from exceptions."""
OUTCOMES: Final[tuple[Outcome, ...]] = (
    "success",
    "error",
    "usage_error",
    "aborted",
    "interrupted",
)

Scalar = str | int | float | bool | None
"""A JSON scalar: the only kind of value a custom event's properties may hold."""

ClosedValue = str | int | float | bool | None | list[str | int | float | bool | None]
"""A value from a closed set (a Choice or a flag); lists come from ``multiple=True``."""


MAX_PROPERTIES: Final = 32
MAX_STRING_LENGTH: Final = 256
FUTURE_SKEW: Final = 86400.0
"""Client clocks drift; a day ahead is tolerated, more is a bad clock or a lie."""


class _EveryEvent(TypedDict):
    schema_version: int
    event_id: str
    event: str
    timestamp: str
    tool: str
    tool_version: str
    install_id: str
    command: str
    os: str
    os_version: str
    arch: str
    python_version: str
    ci: str | None
    interactive: bool


class DeletionRequest(TypedDict):
    """What ``telemetry disable`` sends: forget every record of ``install_id`` for ``tool``.

    Only the fields of every record (`DELETION_FIELDS`): it says which install to forget and
    nothing about how the tool was used, so it is sent even where usage is not (after
    ``disable``, under ``DO_NOT_TRACK``)."""

    schema_version: int
    event_id: str
    event: str
    timestamp: str
    tool: str
    install_id: str


class Event(_EveryEvent, total=False):
    """One flat JSON object: a command invocation (``event == "command"``) or a custom event.

    The fields declared here appear only on one of the two kinds (see `FIELDS`); those of
    `_EveryEvent` are always present, possibly null. (Optional keys are declared by
    ``total=False`` rather than ``NotRequired`` so that the annotations need not be
    evaluated when the host tool imports this module.)
    """

    flags: list[str]
    values: dict[str, ClosedValue]
    exit_code: int
    outcome: Outcome
    error_type: str | None
    duration_ms: int
    properties: dict[str, Scalar]


# -- rules --------------------------------------------------------------------------------


def _one_of(what: str, choices: tuple[object, ...]) -> Rule:
    """One of ``choices``, compared with their types (``True`` is not ``1``)."""

    def problem(value: Any) -> str | None:
        if any(type(value) is type(c) and value == c for c in choices):
            return None
        return f"must be one of {list(choices)}"

    return Rule(what, problem, lambda: {"enum": list(choices)})


def _nullable(rule: Rule) -> Rule:
    return Rule(
        f"null or {rule.what}",
        lambda value: None if value is None else rule.problem(value),
        lambda: {"anyOf": [{"type": "null"}, rule.json_schema()]},
    )


def _timestamp_problem(value: Any) -> str | None:
    """``2026-11-23T12:00:00.000Z``: UTC, ISO 8601, up to microseconds, a real date and
    time, not more than `FUTURE_SKEW` ahead of the checker's clock."""
    if not (
        isinstance(value, str)
        and (len(value) == 20 or 22 <= len(value) <= 27)
        and value.isascii()
        and value[4] == value[7] == "-"
        and value[10] == "T"
        and value[13] == value[16] == ":"
        and value[-1] == "Z"
        and (len(value) == 20 or value[19] == ".")
        and (value[:4] + value[5:7] + value[8:10]).isdigit()
        and (value[11:13] + value[14:16] + value[17:19]).isdigit()
        and (len(value) == 20 or value[20:-1].isdigit())
    ):
        return f"must be {TIMESTAMP.what}"
    # The checks above placed the digits; the day is judged by `_epoch_day`, the time here.
    day = _epoch_day(value[:10])
    hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    if day is None or hour > 23 or minute > 59 or second > 59:
        return "is not a real date and time"
    if day * 86400 + hour * 3600 + minute * 60 + second > time.time() + FUTURE_SKEW:
        return "is in the future"
    return None


@lru_cache(maxsize=1024)
def _epoch_day(text: str) -> int | None:
    """Days from 1970-01-01 to ``YYYY-MM-DD`` (digits already placed), None unless it is a
    real date (``datetime.date`` judges it). Cached: the collector checks every event's
    timestamp (they differ by the second, so `check_event` cannot remember them), and a
    batch's events share a few days; building a datetime for each was half of the check."""
    from datetime import date

    try:
        return date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - 719_163
    except ValueError:
        return None


def _dotted_schema(parts: tuple[int, int], digits: int, empty: bool) -> dict[str, Any]:
    number = f"[0-9]{{1,{digits}}}"
    body = f"{number}(\\.{number}){{{parts[0] - 1},{parts[1] - 1}}}"
    return {"type": "string", "pattern": f"^(?:{body})?$" if empty else f"^{body}$"}


def _scalar(value: Any, text: Callable[[str], bool]) -> bool:
    """null, a boolean, a whole number within `MAX_SAFE_INTEGER`, a finite number, or
    text that ``text`` accepts."""
    kind = type(value)
    if value is None or kind is bool:
        return True
    if kind is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if kind is float:
        return math.isfinite(value)
    return kind is str and text(value)


def _scalar_schema(text: dict[str, Any]) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": ["null", "boolean", "number"]},
            {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
            text,
        ]
    }


def closed_value(value: Any) -> bool:
    """An option's value as `values` holds it: a `CHOICE` word, a boolean, a number."""
    return _scalar(value, CHOICE.fits)


def property_value(value: Any) -> bool:
    """A custom property's value: a JSON scalar, text of at most `MAX_STRING_LENGTH`."""
    return _scalar(value, _short_text)


def _short_text(text: str) -> bool:
    if len(text) > MAX_STRING_LENGTH:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


PROPERTY_VALUE_WHAT: Final = (
    f"a JSON scalar: null, a boolean, a whole number within ±{MAX_SAFE_INTEGER}, a finite"
    f" number, or text of at most {MAX_STRING_LENGTH} characters"
)


def _command_problem(value: Any) -> str | None:
    """The tool's name, then up to `MAX_COMMAND_WORDS` subcommand words, space-separated,
    each a `WORD`, `UNLISTED` or `PLACEHOLDER`."""
    if isinstance(value, str):
        words = value.split(" ")
        if (
            TOOL.fits(words[0])
            and len(words) <= MAX_COMMAND_WORDS + 1
            and all(w == UNLISTED or WORD.fits(w) for w in words[1:])
        ):
            return None
    return "must be a command path such as 'acme deploy start'"


def _command_schema() -> dict[str, Any]:
    word = f"(?:{WORD.pattern()[4:-2]}|{_escape(UNLISTED)})"
    pattern = f"^{TOOL.pattern()[4:-2]}( {word}){{0,{MAX_COMMAND_WORDS}}}$"
    return {"type": "string", "pattern": pattern}


def _flags_problem(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        return f"must be a list of at most {MAX_LIST} option names"
    if not all(isinstance(v, str) and FLAG.fits(v) for v in value):
        return "must hold option names such as --dry-run"
    return None


def _flags_schema() -> dict[str, Any]:
    return {"type": "array", "maxItems": MAX_LIST, "items": FLAG.json_schema()}


def _values_problem(value: Any) -> str | None:
    """Option name → a closed value, or a list of them (``multiple=True``)."""
    if not isinstance(value, dict) or len(value) > MAX_LIST:
        return f"must be an object of at most {MAX_LIST} option values"
    for key, item in value.items():
        if not (isinstance(key, str) and OPTION.fits(key)):
            return f"has a key that is not an option name: {str(key)[:40]!r}"
        items = item if isinstance(item, list) else [item]
        if len(items) > MAX_LIST or not all(closed_value(v) for v in items):
            return f"{key} must be a choice word, a boolean, a number, or a list of them"
    return None


def _values_schema() -> dict[str, Any]:
    closed = _scalar_schema(CHOICE.json_schema())
    return {
        "type": "object",
        "maxProperties": MAX_LIST,
        "propertyNames": OPTION.json_schema(),
        "additionalProperties": {
            "anyOf": [closed, {"type": "array", "maxItems": MAX_LIST, "items": closed}]
        },
    }


def _properties_problem(value: Any) -> str | None:
    """At most `MAX_PROPERTIES` names that `PROPERTY_NAME` accepts, each with a value that
    `property_value` accepts."""
    if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
        return f"must be an object of at most {MAX_PROPERTIES} properties"
    for key, item in value.items():
        if not (isinstance(key, str) and PROPERTY_NAME.fits(key)):
            return f"has a property name that is not {PROPERTY_NAME.what}: {str(key)[:40]!r}"
        if not property_value(item):
            return f"{key} must be {PROPERTY_VALUE_WHAT}"
    return None


def _properties_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": MAX_PROPERTIES,
        "propertyNames": PROPERTY_NAME.json_schema(),
        "additionalProperties": _scalar_schema({"type": "string", "maxLength": MAX_STRING_LENGTH}),
    }


TIMESTAMP: Final = Rule(
    "a UTC ISO 8601 time such as 2026-11-23T12:00:00.000Z",
    _timestamp_problem,
    lambda: {
        "type": "string",
        "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$",
    },
)
UUID: Final = _rule(
    "a UUID in lowercase hex",
    is_uuid,
    lambda: {
        "type": "string",
        "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    },
)
ERROR_TYPE: Final = _rule(
    "an exception's class name (a Python identifier of at most 128 characters)",
    _error_type,
    lambda: {"type": "string", "maxLength": 128},
)
OS_VERSION: Final = _rule(
    "a dotted version number of at most 6 parts, or empty",
    lambda value: _dotted(value, (1, 6), 9, True),
    lambda: _dotted_schema((1, 6), 9, True),
)


Carriers = Literal["all", "usage", "command", "custom"]
"""Which records carry a field: ``all`` of them (the deletion request too), the ``usage``
events (command and custom events), or only ``command`` or ``custom`` events."""


class Field:
    """One field of `Event`: which records carry it (`Carriers`), whether it may be
    missing, its rule, what PRIVACY.md's table says of it (``description``), and what a
    tool's privacy page says of it in plain words (``plain``, completing "Each record holds
    ...": fields that share one phrase are said once; ``{tool}`` is the tool's name). A
    field without ``plain`` holds only what the tool declares, which the page lists from
    the declarations themselves."""

    __slots__ = ("description", "events", "name", "optional", "plain", "rule")

    def __init__(
        self,
        name: str,
        events: Carriers,
        rule: Rule,
        description: str,
        *,
        plain: str | None,
        optional: bool = False,
    ) -> None:
        self.name = name
        self.events = events
        self.rule = rule
        self.description = description
        self.plain = plain
        self.optional = optional


_WHICH_RECORD: Final = (
    "the name of the tool, the kind of record, and a code that tells this record apart from"
    " the others"
)
_WHETHER_IT_WORKED: Final = (
    'whether the command worked, and if not, the kind of error (such as "file not found"),'
    " but never the error's message"
)
_SYSTEM: Final = "your operating system (such as Windows, macOS or Linux) and its version number"


FIELDS: Final = (
    Field("schema_version", "all", _one_of("the schema version", (SCHEMA_VERSION,)),
          "The version of this format, `1`.", plain=_WHICH_RECORD),
    Field("event_id", "all", UUID,
          "An id for this record, so that a record sent twice is counted once: the time the"
          " record was made (as in `timestamp`, to the millisecond) followed by random bits;"
          " only random bits for a deletion request.",
          plain=_WHICH_RECORD),
    Field("event", "all", EVENT_NAME,
          "`command`, the name of a custom event the author declared, e.g."
          " `deploy.finished`, or `deletion_request` (sent once by `telemetry disable`).",
          plain=_WHICH_RECORD),
    Field("timestamp", "all", TIMESTAMP,
          "When the command started, when a custom event was recorded, or when telemetry"
          " was disabled (UTC, to the millisecond).", plain="the date and time"),
    Field("tool", "all", TOOL, "The tool's name, e.g. `acme`.", plain=_WHICH_RECORD),
    Field("tool_version", "usage", TOOL_VERSION,
          "The tool's version, as its author declared it (characters other than letters,"
          " digits and `.+_-` become `-`).", plain="the version of {tool}"),
    Field("install_id", "all", UUID,
          "A random id made once for this tool and your user account, from nothing about"
          " you or your computer; `telemetry disable` deletes it, and a new one is"
          " unrelated.",
          plain="a random number that stays the same for your copy of {tool} (see below)"),
    Field("command", "usage", Rule("a command path", _command_problem, _command_schema),
          "The command's name as the tool defines it in its code, e.g. `acme deploy start`"
          " (never what you typed if you used an alias; a subcommand the tool only finds"
          f" at run time, such as a plugin, is `{UNLISTED}`).",
          plain="which of {tool}'s commands you ran (such as `{tool} --help`)"),
    Field("flags", "command", Rule("option names", _flags_problem, _flags_schema),
          "The *names* of the options you gave, on the command line or through an"
          " environment variable, e.g. `[\"--env\", \"--dry-run\"]`. Never their values."
          " Options left at their defaults are not listed.",
          plain="the names of the options you gave (the words that start with `--`, such as"
          " `--verbose`), but not what you typed after them"),
    Field("values", "command", Rule("option values", _values_problem, _values_schema),
          "Values only of the options the author chose to record, and only when the value"
          " is one of a fixed list written in the tool's code (e.g. `{\"--format\":"
          " \"json\"}`); usually empty.", plain=None),
    Field("exit_code", "command", EXIT_CODE, "The command's exit status, e.g. `0` or `2`.",
          plain=_WHETHER_IT_WORKED),
    Field("outcome", "command", _one_of("an outcome", OUTCOMES),
          "`success`, `error`, `usage_error` (the command line was wrong), `aborted` or"
          " `interrupted` (Ctrl-C).", plain=_WHETHER_IT_WORKED),
    Field("error_type", "command", _nullable(ERROR_TYPE),
          "For a failure, the *type* of error only, e.g. `FileNotFoundError` or"
          " `NoSuchOption`; never its message. `null` on success.", plain=_WHETHER_IT_WORKED),
    Field("duration_ms", "command", DURATION_MS,
          "How long the command ran, in milliseconds.", plain="how long the command took"),
    Field("os", "usage", PLATFORM_WORD, "`linux`, `macos`, `windows`, ...", plain=_SYSTEM),
    Field("os_version", "usage", OS_VERSION,
          "The OS kernel's version number only, e.g. `6.1.0` (not its full build string).",
          plain=_SYSTEM),
    Field("arch", "usage", PLATFORM_WORD,
          "The processor architecture, e.g. `x86_64` or `arm64`.",
          plain="the kind of processor (such as Intel or Arm)"),
    Field("python_version", "usage",
          _rule("a version such as 3.12.4", lambda value: _dotted(value, (3, 3), 6, False),
                lambda: _dotted_schema((3, 3), 6, False)),
          "e.g. `3.12.4`.",
          plain="the version of Python (the language {tool} is written in) on your computer"),
    Field("ci", "usage", _nullable(Text("a CI provider name", first=LOWER + DIGITS + "_",
                                      rest=LOWER + DIGITS + "_", max_length=32)),
          "The name of the CI service the command ran in (e.g. `github_actions`; `generic`"
          " if only `CI` is set), otherwise `null`.",
          plain="if a service that tests programs by itself ran {tool}, that service's name"
          " (such as GitHub Actions)"),
    Field("interactive", "usage", _rule("true or false", lambda value: type(value) is bool,
                                      lambda: {"type": "boolean"}),
          "Whether stdin and stderr were a terminal (a person) rather than a script.",
          plain="whether a person typed the command, or another program started it"),
    Field("properties", "custom", Rule("properties", _properties_problem, _properties_schema),
          "The properties the author declared for that custom event (or, for `identify`,"
          " the traits): names with plain values, e.g. `{\"replicas\": 3}`; text only from"
          " a fixed list written in the tool's code.", plain=None),
)  # fmt: skip
"""Every field, in `Event`'s order (``tests/test_events.py`` holds the two together)."""

FIELD_RULES: Final[Mapping[str, Rule]] = {field.name: field.rule for field in FIELDS}
COMMAND_ONLY_FIELDS: Final = frozenset(f.name for f in FIELDS if f.events == "command")
"""Fields that only command events carry."""
CUSTOM_ONLY_FIELDS: Final = frozenset(f.name for f in FIELDS if f.events == "custom")
"""Fields that only custom events carry."""
_OPTIONAL: Final = frozenset(f.name for f in FIELDS if f.optional)
_COMMAND_FIELDS: Final = (
    frozenset(FIELD_RULES) - CUSTOM_ONLY_FIELDS,
    frozenset(FIELD_RULES) - CUSTOM_ONLY_FIELDS - _OPTIONAL,
)
_CUSTOM_FIELDS: Final = (
    frozenset(FIELD_RULES) - COMMAND_ONLY_FIELDS,
    frozenset(FIELD_RULES) - COMMAND_ONLY_FIELDS - _OPTIONAL,
)
DELETION_FIELDS: Final = frozenset(f.name for f in FIELDS if f.events == "all")
"""The fields of a `DeletionRequest`: all required, no others allowed."""
_DELETION_FIELDS: Final = (DELETION_FIELDS, DELETION_FIELDS)
"""(allowed, required) fields of each kind of record."""
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


WITHDRAWN: Final = frozenset({"machine_id"})
"""Fields that earlier releases sent under this schema version and that are collected no
longer (``machine_id``, a hash of the machine's id: see `cli_telemetry._ids`). An event that
still holds one (from an old client, or spooled before an upgrade) has it taken out by the
collector and the uploader, and is otherwise judged as any other."""


def drop_withdrawn(event: Any) -> None:
    """Take the `WITHDRAWN` fields out of ``event`` (in place)."""
    if isinstance(event, dict):
        for key in WITHDRAWN.intersection(event):
            del event[key]


class InvalidEvent(ValueError):
    """Why an event breaks the schema: ``field`` names where, ``message`` what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_event(event: Any, valid: set[tuple[str, type, Any]] | None = None) -> None:
    """Raise `InvalidEvent` unless ``event`` is exactly a valid event of this schema.

    The collector checks each event it receives with this, and the uploader each event
    before any sink is sent it. ``valid`` remembers the scalar fields already found
    valid (a batch repeats its tool, versions, platform and commands in every event): each
    is checked once. The type is part of the key, so ``True`` is never taken for an already
    checked ``1``.
    """
    if not isinstance(event, dict):
        raise InvalidEvent("", "must be an event object")
    if "event" not in event:
        raise InvalidEvent("event", "is missing")
    problem = EVENT_NAME.problem(event["event"])
    if problem:  # first: the kind of event decides which fields belong
        raise InvalidEvent("event", problem)
    command = event["event"] == COMMAND_EVENT
    deletion = event["event"] == DELETION_EVENT
    allowed, required = (
        _COMMAND_FIELDS if command else _DELETION_FIELDS if deletion else _CUSTOM_FIELDS
    )
    if not event.keys() <= allowed:  # set operations in C: the common case costs little
        for key in event:
            if key not in allowed:
                raise InvalidEvent(str(key)[:64], f"is not a field of schema {SCHEMA_VERSION}")
    if not event.keys() >= required:
        for key in sorted(required):
            if key not in event:
                raise InvalidEvent(key, "is missing")
    if valid is None:
        valid = set()
    for key, value in event.items():
        memo = (key, type(value), value) if type(value) in _SCALARS else None
        if memo is not None and memo in valid:
            continue
        problem = FIELD_RULES[key].problem(value)
        if problem:
            raise InvalidEvent(key, problem)
        if memo is not None:
            valid.add(memo)
    if deletion:
        return
    if event["command"].split(" ", 1)[0] != event["tool"]:
        raise InvalidEvent("command", "must start with the tool's name")
    if command:
        unflagged = set(event["values"]) - set(event["flags"])
        if unflagged:
            raise InvalidEvent("values", f"has options not in flags: {sorted(unflagged)[:3]}")


def privacy_table() -> str:
    """The field table of PRIVACY.md (and of ``click-telemetry schema``), in Markdown."""
    rows = ["| Field | Records | What it holds |", "|---|---|---|"]
    for field in FIELDS:
        rows.append(f"| `{field.name}` | {field.events} | {field.description} |")
    rows += [
        "",
        "*all*: every record, the deletion request included; *usage*: command and custom"
        " events; *command*, *custom*: those only.",
    ]
    return "\n".join(rows)
