"""Validation of a batch against event schema version 1, field by field.

A collector must store nothing it was not promised: an unknown field is rejected, not
ignored, so nothing private slips in through a modified client. Each check names the field
it failed on, so a 400 tells the sender exactly what is wrong. `FIELD_CHECKS` covers exactly
the keys of `events.Event` (tests/test_collector_validation.py holds them together).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from ..events import (
    COMMAND_EVENT,
    COMMAND_ONLY_FIELDS,
    CUSTOM_ONLY_FIELDS,
    MAX_KEY_LENGTH,
    MAX_PROPERTIES,
    MAX_STRING_LENGTH,
    SCHEMA_VERSION,
)

MAX_BATCH_EVENTS: Final = 10_000


class InvalidBatch(ValueError):
    """Why a batch was refused; ``field`` names where (``batch[3].flags``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# re.ASCII everywhere: without it \d also matches Arabic-Indic and other digits.
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", re.ASCII)
_NAME: Final = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
_TOOL_VERSION: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_VERSION: Final = re.compile(r"\d{1,9}(\.\d{1,9}){0,5}|", re.ASCII)
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_OPTION: Final = re.compile(r"--?[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_CHOICE: Final = re.compile(r"[A-Za-z0-9_.:+-][A-Za-z0-9_.:+/ -]{0,63}")
"""A value from a closed set: a word, never free text (no leading / or ~, no control)."""
FUTURE_SKEW: Final = 86400.0
"""Client clocks drift; a day ahead is tolerated, more is a bad clock or a lie."""
_COMMAND: Final = re.compile(
    r"[a-z0-9][a-z0-9_-]{0,63}( ([A-Za-z0-9][A-Za-z0-9_.:-]{0,63}|<unlisted>)){0,16}"
)
"""The tool, then subcommand names as groups list them: never a path or free text."""
_OUTCOMES: Final = frozenset({"success", "error", "usage_error", "aborted", "interrupted"})

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})

Check = Callable[[Any], str | None]
"""Returns None if the value is valid, else what is wrong with it."""


def _string(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            return f"must be {what}"
        return None

    return check


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _int(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not int or not low <= value <= high:
            return f"must be a whole number from {low} to {high}"
        return None

    return check


def _bool(value: Any) -> str | None:
    return None if type(value) is bool else "must be true or false"


def _schema_version(value: Any) -> str | None:
    return None if value == SCHEMA_VERSION and type(value) is int else f"must be {SCHEMA_VERSION}"


def _flags(value: Any) -> str | None:
    if not isinstance(value, list) or len(value) > 100:
        return "must be a list of at most 100 option names"
    if not all(isinstance(v, str) and _OPTION.fullmatch(v) for v in value):
        return "must hold option names such as --dry-run"
    return None


def _plain(value: Any, int_limit: int) -> bool | None:
    """Whether a null, boolean or number is acceptable (ints within ``int_limit``, floats
    finite); None when ``value`` is none of those, for the caller to judge."""
    if value is None or type(value) is bool:
        return True
    if type(value) is int:
        return abs(value) <= int_limit
    if type(value) is float:
        return math.isfinite(value)
    return None


def _scalar(value: Any) -> bool:
    """A property value: JSON scalar, bounded, and writable as UTF-8."""
    plain = _plain(value, 2**63)
    if plain is not None:
        return plain
    return isinstance(value, str) and len(value) <= MAX_STRING_LENGTH and _utf8(value)


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _choice(value: Any) -> bool:
    """An option's value from a closed set: a choice word, a boolean, a bounded number."""
    plain = _plain(value, 2**53)
    if plain is not None:
        return plain
    return isinstance(value, str) and bool(_CHOICE.fullmatch(value))


def _timestamp(value: Any) -> str | None:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return "must be a UTC ISO 8601 time such as 2026-11-23T12:00:00.000Z"
    try:  # the pattern placed the digits; datetime() judges them (strptime is 10x slower)
        when = datetime(
            int(value[0:4]), int(value[5:7]), int(value[8:10]),
            int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        return "is not a real date and time"
    if when.timestamp() > time.time() + FUTURE_SKEW:
        return "is in the future"
    return None


def _values(value: Any) -> str | None:
    if not isinstance(value, dict) or len(value) > 100:
        return "must be an object of at most 100 option values"
    for key, item in value.items():
        if not _OPTION.fullmatch(key):
            return f"has a key that is not an option name: {key[:40]!r}"
        items = item if isinstance(item, list) else [item]
        if len(items) > 100 or not all(_choice(v) for v in items):
            return f"{key} must be a choice word, a boolean, or a list of them"
    return None


def _properties(value: Any) -> str | None:
    if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
        return f"must be an object of at most {MAX_PROPERTIES} properties"
    for key, item in value.items():
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            return f"has a property name longer than {MAX_KEY_LENGTH} characters"
        if not _scalar(item):
            return f"{key} must be a JSON scalar (text of at most {MAX_STRING_LENGTH})"
    return None


FIELD_CHECKS: Final[dict[str, Check]] = {
    "schema_version": _schema_version,
    "event_id": _string(_UUID, "a UUID in lowercase hex"),
    "event": _string(_NAME, "an event name such as command or deploy.finished"),
    "timestamp": _timestamp,
    "tool": _string(re.compile(r"[a-z0-9][a-z0-9_-]{0,63}"), "a tool name"),
    "tool_version": _string(_TOOL_VERSION, "a version such as 1.4.0 (64 characters at most)"),
    "install_id": _string(_UUID, "a UUID in lowercase hex"),
    "machine_id": _string(_HEX64, "64 lowercase hex digits"),
    "command": _string(_COMMAND, "a command path such as 'acme deploy start'"),
    "flags": _flags,
    "values": _values,
    "exit_code": _int(-(2**31), 2**32 - 1),
    "outcome": lambda v: None if v in _OUTCOMES else f"must be one of {sorted(_OUTCOMES)}",
    "error_type": _optional(_string(re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}"), "a class name")),
    "duration_ms": _int(0, 7 * 24 * 3600 * 1000),
    "os": _string(re.compile(r"[a-z0-9_.-]{1,32}"), "an OS name such as linux"),
    "os_version": _string(_VERSION, "a dotted version number, or empty"),
    "arch": _string(re.compile(r"[a-z0-9_.-]{1,32}"), "an architecture such as x86_64"),
    "python_version": _string(
        re.compile(r"\d{1,4}\.\d{1,4}\.\d{1,6}", re.ASCII), "a version such as 3.12.4"
    ),
    "ci": _optional(_string(re.compile(r"[a-z0-9_]{1,32}"), "a CI provider name")),
    "interactive": _bool,
    "properties": _properties,
}

OPTIONAL: Final = frozenset({"machine_id"})


_COMMAND_FIELDS: Final = (
    frozenset(FIELD_CHECKS) - CUSTOM_ONLY_FIELDS,
    frozenset(FIELD_CHECKS) - CUSTOM_ONLY_FIELDS - OPTIONAL,
)
_CUSTOM_FIELDS: Final = (
    frozenset(FIELD_CHECKS) - COMMAND_ONLY_FIELDS,
    frozenset(FIELD_CHECKS) - COMMAND_ONLY_FIELDS - OPTIONAL,
)
"""(allowed, required) fields of each kind of event."""


def check_event(event: Any, where: str, valid: set[tuple[str, type, Any]] | None = None) -> None:
    """Raise InvalidBatch unless ``event`` is exactly a valid schema-1 event.

    ``valid`` remembers the scalar fields already found valid in this batch (a batch repeats
    its tool, versions, platform and commands in every event): each is checked once. The
    type is part of the key, so ``True`` is never taken for an already checked ``1``."""
    if not isinstance(event, dict):
        raise InvalidBatch(where, "must be an event object")
    if "event" not in event:
        raise InvalidBatch(f"{where}.event", "is missing")
    problem = FIELD_CHECKS["event"](event["event"])
    if problem:  # first: the kind of event decides which fields belong
        raise InvalidBatch(f"{where}.event", problem)
    command = event["event"] == COMMAND_EVENT
    allowed, required = _COMMAND_FIELDS if command else _CUSTOM_FIELDS
    if not event.keys() <= allowed:  # set operations in C: the common case costs little
        for key in event:
            if key not in allowed:
                raise InvalidBatch(f"{where}.{str(key)[:64]}", "is not a field of schema 1")
    if not event.keys() >= required:
        for key in sorted(required):
            if key not in event:
                raise InvalidBatch(f"{where}.{key}", "is missing")
    if valid is None:
        valid = set()
    for key, value in event.items():
        memo = (key, type(value), value) if type(value) in _SCALARS else None
        if memo is not None and memo in valid:
            continue
        problem = FIELD_CHECKS[key](value)
        if problem:
            raise InvalidBatch(f"{where}.{key}", problem)
        if memo is not None:
            valid.add(memo)
    if event["command"].split(" ", 1)[0] != event["tool"]:
        raise InvalidBatch(f"{where}.command", "must start with the tool's name")
    if command:
        unflagged = set(event["values"]) - set(event["flags"])
        if unflagged:
            raise InvalidBatch(
                f"{where}.values", f"has options not in flags: {sorted(unflagged)[:3]}"
            )


def check_batch(body: Any) -> list[dict[str, Any]]:
    """The events of a request body ``{"batch": [...], "sent_at": "..."}``, all valid."""
    if not isinstance(body, dict):
        raise InvalidBatch("body", 'must be an object {"batch": [...], "sent_at": "..."}')
    for key in body:
        if key not in ("batch", "sent_at"):
            raise InvalidBatch(str(key)[:64], "is not a field of the request body")
    if "sent_at" in body and not (
        isinstance(body["sent_at"], str) and _TIMESTAMP.fullmatch(body["sent_at"])
    ):
        raise InvalidBatch("sent_at", "must be a UTC ISO 8601 time")
    batch = body.get("batch")
    if not isinstance(batch, list) or not 0 < len(batch) <= MAX_BATCH_EVENTS:
        raise InvalidBatch("batch", f"must be a list of 1 to {MAX_BATCH_EVENTS} events")
    valid: set[tuple[str, type, Any]] = set()
    for index, event in enumerate(batch):
        check_event(event, f"batch[{index}]", valid)
    return batch
