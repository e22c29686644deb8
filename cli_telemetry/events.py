"""The event schema, version 1: the one definition of what cli-telemetry collects.

`Event` is the source of truth. PRIVACY.md's field table is checked against it by
``tests/test_privacy_doc.py``, and the end-to-end tests check that real events carry exactly
these keys, so the promise to end users and the code cannot drift apart.
"""

import math
import re
import time
from typing import Final, Literal, NotRequired, TypedDict

SCHEMA_VERSION: Final = 1

Outcome = Literal["success", "error", "usage_error", "aborted", "interrupted"]
"""How an invocation ended; see `capture.classify` for the mapping from exceptions."""

Scalar = str | int | float | bool | None
"""A JSON scalar: the only kind of value a custom event's properties may hold."""

ClosedValue = str | int | float | bool | None | list[str | int | float | bool | None]
"""A value from a closed set (a Choice or a flag); lists come from ``multiple=True``."""

COMMAND_EVENT: Final = "command"
IDENTIFY_EVENT: Final = "identify"
"""A custom event of anonymous traits (`Telemetry.identify`), mapped to each provider's
identify call; no `track` may use the name."""


class Event(TypedDict):
    """One flat JSON object: a command invocation (``event == "command"``) or a custom event.

    Fields marked NotRequired appear only on one of the two kinds (``machine_id`` only
    where the operating system has a machine id); every other field is always present,
    possibly null.
    """

    schema_version: int
    event_id: str
    event: str
    timestamp: str
    tool: str
    tool_version: str
    install_id: str
    machine_id: NotRequired[str]
    command: str
    flags: NotRequired[list[str]]
    values: NotRequired[dict[str, ClosedValue]]
    exit_code: NotRequired[int]
    outcome: NotRequired[Outcome]
    error_type: NotRequired[str | None]
    duration_ms: NotRequired[int]
    os: str
    os_version: str
    arch: str
    python_version: str
    ci: str | None
    interactive: bool
    properties: NotRequired[dict[str, Scalar]]


COMMAND_ONLY_FIELDS: Final = frozenset(
    {"flags", "values", "exit_code", "outcome", "error_type", "duration_ms"}
)
"""Fields that only command events carry."""

CUSTOM_ONLY_FIELDS: Final = frozenset({"properties"})
"""Fields that only custom events carry."""

MAX_PROPERTIES: Final = 32
MAX_KEY_LENGTH: Final = 64
MAX_STRING_LENGTH: Final = 256
MAX_EVENT_BYTES: Final = 8192
"""An encoded event larger than this is dropped; it keeps the spool's byte bound honest."""

_EVENT_NAME: Final = r"[a-z][a-z0-9_.-]{0,63}"  # compiled on first use, off the hot path


def check_custom_event(
    name: object, properties: object, *, identify: bool = False
) -> dict[str, Scalar]:
    """Validate a custom event (or, with ``identify``, traits), returning a copy of its
    properties.

    Raises TypeError for a value of the wrong kind and ValueError for one out of bounds, so
    an author sees a precise message. At an end user's run time the caller catches these
    and drops the event instead (see `Telemetry.track`).
    """
    if not isinstance(name, str):
        raise TypeError(f"event name must be a str, not {type(name).__name__}")
    if not re.fullmatch(_EVENT_NAME, name) or name == COMMAND_EVENT:
        raise ValueError(
            f"event name {name!r} must match {_EVENT_NAME} and not be {COMMAND_EVENT!r}"
        )
    if (name == IDENTIFY_EVENT) != identify:
        raise ValueError(f"use Telemetry.identify for traits, not an event named {name!r}")
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise TypeError(f"properties must be a dict, not {type(properties).__name__}")
    if len(properties) > MAX_PROPERTIES:
        raise ValueError(f"at most {MAX_PROPERTIES} properties, got {len(properties)}")
    checked: dict[str, Scalar] = {}
    for key, value in properties.items():
        if not isinstance(key, str):
            raise TypeError(f"property names must be str, not {type(key).__name__}")
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"property name {key[:80]!r} must be 1 to {MAX_KEY_LENGTH} characters")
        if value is not None and type(value) not in (str, int, float, bool):
            raise TypeError(
                f"property {key!r} must be a JSON scalar (str, int, float, bool or None),"
                f" not {type(value).__name__}"
            )
        if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            raise ValueError(f"property {key!r} is longer than {MAX_STRING_LENGTH} characters")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"property {key!r} must be a finite number")
        checked[key] = value
    return checked


_JSON_ESCAPES: Final = (
    {i: f"\\u{i:04x}" for i in range(0x20)}
    | {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r"}
    | {0x22: '\\"', 0x5C: "\\\\"}
)


def encode(value: object) -> str:
    """Compact JSON for an event, exactly as ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)`` writes it for the types an event holds.

    The host tool writes one event per run, and importing json costs ~1 ms of a ~3 ms
    budget; an event is only dicts, lists, strings, numbers, booleans and null, for which
    JSON is this short. ``tests/test_events.py`` checks it against json itself. Anything
    else (NaN, a lone surrogate, another type) raises ValueError or TypeError.
    """
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        value.encode("utf-8")  # a lone surrogate cannot be written: raise here
        return '"' + value.translate(_JSON_ESCAPES) + '"'
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("JSON has no NaN or infinity")
        return float.__repr__(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode(item) for item in value) + "]"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
            items.append(encode(key) + ":" + encode(item))
        return "{" + ",".join(items) + "}"
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable here")


def iso_now() -> str:
    """Now, as an event's ``timestamp``: UTC, ISO 8601, to the millisecond."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
