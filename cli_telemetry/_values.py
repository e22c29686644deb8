"""The rules of single values, and what the library writes into an event with them.

`events` is the schema's owner: its `FIELDS` table says which rule each field obeys, and
its `check_event` is what the collector runs. The rules of single values (texts such as
names, versions and choices; bounded numbers), the fitting of captured values to them
(`Text.fit`, `fit_version`, `fit_os_version`, ...), the timestamp format and the JSON
writer live here, apart, because the host tool needs them on every run: to check the
author's configuration, and to write the event it records. Importing the whole schema (its
field table, its typed dicts, the checks of composite values) would cost that run ~0.7 ms;
``tests/test_contract_property.py`` shows that what is fitted here passes `check_event`.

`Record`, the base of the package's small immutable values, lives here too: every run
needs it, and a module of its own cost ~0.1 ms of import on every run.

The rules are plain Python predicates (string methods and set operations), not regular
expressions: compiling one pattern costs about 0.1 ms at import. `Text.pattern` writes a
rule as a regular expression for JSON Schema; ``tests/test_events.py`` holds the two equal.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, Final

PLACEHOLDER: Final = "<other>"
"""What the library records instead of a captured value that the schema cannot hold (a
subcommand named ``café``, an option named ``--a.b``, a Choice value ``/dev/sda``): the
event is kept, and says that something was there."""
UNLISTED: Final = "<unlisted>"
"""A subcommand word that its group resolved at run time without registering it in code
(plugins found on PATH, lazy loading): never the word itself, which may be the user's."""
SCHEMA_VERSION: Final = 1
MAX_KEY_LENGTH: Final = 64
MAX_EVENT_BYTES: Final = 8192
"""An encoded event larger than this is dropped; it keeps the spool's byte bound honest."""
MAX_COMMAND_WORDS: Final = 16
MAX_LIST: Final = 100
MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Integers are bounded to what every JSON reader holds exactly (JavaScript's safe range):
PostHog, Mixpanel and most dashboards read numbers as doubles."""
COMMAND_EVENT: Final = "command"
IDENTIFY_EVENT: Final = "identify"
"""A custom event of anonymous traits (`Telemetry.identify`), mapped to each provider's
identify call; no `track` may use the name."""
DELETION_EVENT: Final = "deletion_request"
"""The record ``telemetry disable`` leaves behind: "forget this install id". It carries only
the fields every record has (`cli_telemetry.events.DELETION_FIELDS`), no usage data, and no
custom event may use the name."""


class Record:
    """The base of the package's small immutable values.

    A frozen dataclass costs ~0.55 ms to define and a NamedTuple ~0.1 ms, at import, on
    every run of the host tool; this base makes a slotted class with value equality and a
    readable repr for ~0.01 ms. Subclasses list their fields in ``__slots__`` and set them
    once in ``__init__`` (annotated ``Final``, so mypy rejects reassignment).
    """

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        names: tuple[str, ...] = self.__slots__
        return all(getattr(self, name) == getattr(other, name) for name in names)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, name) for name in self.__slots__))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


LOWER: Final = "abcdefghijklmnopqrstuvwxyz"
UPPER: Final = LOWER.upper()
DIGITS: Final = "0123456789"
ALNUM: Final = LOWER + UPPER + DIGITS


class Rule:
    """What a value must be: `problem` says what is wrong with one (None if nothing),
    `json_schema` writes the rule for other readers, `what` says it in words.

    Most rules are this class with a function (`_rule`); the few that the library also
    fits captured values to have a class of their own (`Text`, `OptionName`, `Int`). A
    class costs ~10 µs to define on every run of the host tool, a function ~0.5 µs.
    """

    __slots__ = ("_problem", "_schema", "what")

    def __init__(
        self,
        what: str,
        problem: Callable[[Any], str | None] | None = None,
        schema: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.what = what
        self._problem = problem
        self._schema = schema

    def problem(self, value: Any) -> str | None:
        assert self._problem is not None
        return self._problem(value)

    def json_schema(self) -> dict[str, Any]:
        assert self._schema is not None
        return self._schema()


def _rule(what: str, valid: Callable[[Any], bool], schema: Callable[[], dict[str, Any]]) -> Rule:
    """A rule whose only message is "must be <what>"."""
    return Rule(what, lambda value: None if valid(value) else f"must be {what}", schema)


class Text(Rule):
    """A string of ``min_length`` to ``max_length`` characters: the first from ``first``,
    the others from ``rest`` (plus, with ``letters``, any Unicode letter or digit, as
    `str.isalnum` defines them); or, with ``placeholder``, exactly `PLACEHOLDER`."""

    __slots__ = ("first", "letters", "max_length", "min_length", "placeholder", "rest")

    def __init__(
        self,
        what: str,
        *,
        first: str,
        rest: str,
        max_length: int,
        min_length: int = 1,
        letters: bool = False,
        placeholder: bool = False,
    ) -> None:
        super().__init__(what)
        self.first = frozenset(first)
        self.rest = frozenset(rest)
        self.max_length = max_length
        self.min_length = min_length
        self.letters = letters
        self.placeholder = placeholder

    def fits(self, value: str) -> bool:
        if not self.min_length <= len(value) <= self.max_length:
            return value == PLACEHOLDER and self.placeholder
        if not value:
            return True
        if self.letters:
            if (value[0] in self.first or value[0].isalnum()) and all(
                c in self.rest or c.isalnum() for c in value[1:]
            ):
                return True
        elif value[0] in self.first and self.rest.issuperset(value[1:]):
            return True
        return value == PLACEHOLDER and self.placeholder

    def fit(self, value: str) -> str:
        """``value`` if it fits, else `PLACEHOLDER` (for values the library captures)."""
        return value if self.fits(value) else PLACEHOLDER

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, str) and self.fits(value) else f"must be {self.what}"

    def pattern(self) -> str:
        """The rule as a regular expression (ECMA 262 with the ``u`` flag, which JSON
        Schema uses; ``\\p{L}\\p{N}`` are Unicode letters and digits)."""
        letters = r"\p{L}\p{N}" if self.letters else ""
        first = f"[{letters}{_class(self.first)}]"
        rest = f"[{letters}{_class(self.rest)}]"
        body = f"{first}{rest}{{0,{self.max_length - 1}}}"
        if self.min_length == 0:
            body = f"(?:{body})?"
        if self.placeholder:
            body = f"{body}|{_escape(PLACEHOLDER)}"
        return f"^(?:{body})$"

    def json_schema(self) -> dict[str, Any]:
        if self.letters:
            # JSON Schema's patterns are ECMA 262, where \p{L} needs the u flag, and many
            # validators (Python's jsonschema among them) use their own regex engine, which
            # has no \p{L} at all: the bounds and the words say the rest.
            return {
                "type": "string",
                "minLength": min(self.min_length, len(PLACEHOLDER)),
                "maxLength": max(self.max_length, len(PLACEHOLDER)),
                "description": self.what,
            }
        return {"type": "string", "pattern": self.pattern(), "description": self.what}


class OptionName(Rule):
    """How a user types an option: a prefix (``-``, ``--``, ``+``, ``++`` or ``/``, as
    click allows) and a name of letters, digits, ``_`` and ``-``; or, with
    ``placeholder``, `PLACEHOLDER`."""

    __slots__ = ("placeholder",)

    PREFIXES: Final = ("--", "++", "-", "+", "/")

    def __init__(self, what: str, *, placeholder: bool) -> None:
        super().__init__(what)
        self.placeholder = placeholder

    def fits(self, value: str) -> bool:
        if value == PLACEHOLDER:
            return self.placeholder
        for prefix in self.PREFIXES:
            if value.startswith(prefix):
                return _OPTION_WORD.fits(value[len(prefix) :])
        return False

    def fit(self, value: str) -> str:
        return value if self.fits(value) else PLACEHOLDER

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, str) and self.fits(value) else f"must be {self.what}"

    def pattern(self) -> str:
        body = f"(?:--|\\+\\+|-|\\+|/){_OPTION_WORD.pattern()[4:-2]}"
        return f"^(?:{body}|{_escape(PLACEHOLDER)})$" if self.placeholder else f"^{body}$"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": self.pattern(), "description": self.what}


def _class(chars: frozenset[str]) -> str:
    """A regular expression character class's body for ``chars``: sorted, runs of three or
    more consecutive letters or digits as ranges (``a-z``), special characters escaped."""
    ordered = sorted(chars)
    parts: list[str] = []
    start = 0
    for end in range(1, len(ordered) + 1):
        if (
            end < len(ordered)
            and ord(ordered[end]) == ord(ordered[end - 1]) + 1
            and ordered[end].isalnum()
            and ordered[end - 1].isalnum()
        ):
            continue
        run = [_class_char(c) for c in ordered[start:end]]
        parts.append(f"{run[0]}-{run[-1]}" if len(run) >= 3 else "".join(run))
        start = end
    return "".join(parts)


def _class_char(c: str) -> str:
    return "\\" + c if c in "\\]^-[/" else c


def _escape(text: str) -> str:
    """``text`` as a regular expression that matches it literally (in Python and in ECMA 262
    with the ``u`` flag, where only syntax characters may be escaped)."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}/" else c for c in text)


TOOL: Final = Text(
    "a tool name: 1-64 lowercase letters, digits, '-' or '_', not starting with '-' or '_'",
    first=LOWER + DIGITS,
    rest=LOWER + DIGITS + "_-",
    max_length=64,
)
TOOL_VERSION: Final = Text(
    "a version of 1-64 letters, digits, '.', '+', '_' or '-', starting with a letter or digit",
    first=ALNUM,
    rest=ALNUM + ".+_-",
    max_length=64,
)
EVENT_NAME: Final = Text(
    "an event name such as command or deploy.finished: a lowercase letter, then up to 63"
    " lowercase letters, digits, '_', '.' or '-'",
    first=LOWER,
    rest=LOWER + DIGITS + "_.-",
    max_length=64,
)
WORD: Final = Text(
    "a subcommand name: a letter or digit, then up to 63 letters, digits, '_', '.', ':' or '-'",
    first=ALNUM,
    rest=ALNUM + "_.:-",
    max_length=64,
    placeholder=True,
)
_OPTION_WORD: Final = Text(
    "an option's name after its prefix", first=ALNUM, rest=ALNUM + "_-", max_length=64
)
OPTION: Final = OptionName("an option name such as --dry-run, -v, +w or /debug", placeholder=False)
FLAG: Final = OptionName("an option name such as --dry-run, or <other>", placeholder=True)
CHOICE: Final = Text(
    "a choice: 1-64 letters or digits (any script), '_', '.', ':', '+', '#', '@', '/' or '-',"
    " not starting with '.', ':', '/' or '-'",
    first="_+#@",
    rest="_.:+#@/-",
    max_length=64,
    letters=True,
    placeholder=True,
)
PROPERTY_NAME: Final = Text(
    "1-64 letters, digits, '_', '.', '$' or '-'",
    first=ALNUM + "_$",
    rest=ALNUM + "_.$-",
    max_length=MAX_KEY_LENGTH,
)

PLATFORM_WORD: Final = Text(
    "1-32 lowercase letters, digits, '_', '.' or '-'",
    first=LOWER + DIGITS + "_.-",
    rest=LOWER + DIGITS + "_.-",
    max_length=32,
    placeholder=True,
)


def fit_version(version: str) -> str:
    """An author's version as `TOOL_VERSION` holds it: each run of other characters
    becomes one ``-``, everything before the first letter or digit goes, and so does a
    trailing ``-``; it is cut to 64 characters (``"1.4.0 (dev)"`` → ``"1.4.0-dev"``).
    Empty when no letter or digit is left."""
    allowed = TOOL_VERSION.rest
    out: list[str] = []
    for c in version:
        if c in allowed:
            out.append(c)
        elif out and out[-1] != "-":
            out.append("-")
    fitted = "".join(out).strip("-")[: TOOL_VERSION.max_length].rstrip("-")
    while fitted and fitted[0] not in TOOL_VERSION.first:
        fitted = fitted[1:]
    return fitted


class Int(Rule):
    """A whole number (never a boolean) from ``low`` to ``high``."""

    __slots__ = ("high", "low")

    def __init__(self, what: str, low: int, high: int) -> None:
        super().__init__(what)
        self.low = low
        self.high = high

    def fit(self, value: int) -> int:
        """The nearest bound for a number out of range."""
        return min(self.high, max(self.low, value))

    def problem(self, value: Any) -> str | None:
        if type(value) is int and self.low <= value <= self.high:
            return None
        return f"must be a whole number from {self.low} to {self.high}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.low, "maximum": self.high}


EXIT_CODE: Final = Int("an exit status", -(2**31), 2**32 - 1)
DURATION_MS: Final = Int("milliseconds", 0, 7 * 24 * 3600 * 1000)


_HEX: Final = frozenset("0123456789abcdef")


def is_uuid(value: Any) -> bool:
    """A UUID written in lowercase hex, 8-4-4-4-12 (the event and install ids)."""
    return (
        isinstance(value, str)
        and len(value) == 36
        and value[8] == value[13] == value[18] == value[23] == "-"
        and _HEX.issuperset(value[:8] + value[9:13] + value[14:18] + value[19:23])
        and _HEX.issuperset(value[24:])
    )


def _dotted(value: Any, parts: tuple[int, int], digits: int, empty: bool) -> bool:
    """``parts`` (a range) dot-separated runs of at most ``digits`` ASCII digits; with
    ``empty``, also the empty string."""
    if not isinstance(value, str):
        return False
    if value == "":
        return empty
    pieces = value.split(".")
    return parts[0] <= len(pieces) <= parts[1] and all(
        0 < len(p) <= digits and p.isascii() and p.isdigit() for p in pieces
    )


def fit_os_version(release: str) -> str:
    """The leading parts of a dotted version that `OS_VERSION` holds, or the empty string:
    ``1.2.3.4.5.6.7`` is recorded as ``1.2.3.4.5.6``, a part of more than 9 digits as ``""``."""
    fitted = ".".join(release.split(".")[:6])
    return fitted if _dotted(fitted, (1, 6), 9, True) else ""


def _error_type(value: Any) -> bool:
    """A Python identifier (a class name) of at most 128 characters, or the placeholder:
    `str.isidentifier` is the rule, so ``ÉchecError`` is one."""
    return isinstance(value, str) and (
        (len(value) <= 128 and value.isidentifier()) or value == PLACEHOLDER
    )


def fit_error_type(name: str) -> str:
    return name if _error_type(name) else PLACEHOLDER


@functools.cache
def _json_escapes() -> dict[int, str]:
    """What JSON escapes in a string, for ``str.translate``: built when a string first
    needs it (most events have none), not at import on every run."""
    return (
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
        if value.isprintable() and '"' not in value and "\\" not in value:
            return '"' + value + '"'  # nothing to escape: no control character either
        return '"' + value.translate(_json_escapes()) + '"'
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


def iso_time(epoch: float) -> str:
    """An event's ``timestamp`` for ``epoch`` (``time.time()``): UTC, ISO 8601, to the
    millisecond."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}Z"
    )
