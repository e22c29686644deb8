"""The event schema, version 1: the one definition of what cli-telemetry collects.

Everything that touches an event is built from this module:

- `Event` is its static type (for mypy);
- `FIELDS` states each field once: which events carry it, the rule its value obeys, and the
  sentence PRIVACY.md says about it (``tests/test_privacy_doc.py`` holds PRIVACY.md's table
  equal to `privacy_table`);
- the library fits what it captures to those rules (`Text.fit`, `Int.fit`, `fit_version`),
  and checks every event with `check_event` before it spools it;
- the collector validates what it receives with the very same `check_event`;
- ``cli-telemetry schema`` prints the rules as JSON Schema (`Rule.json_schema`).

So a value the library records is, by construction, one its collector accepts
(``tests/test_schema_property.py`` tries that with generated tools).

The rules are plain Python predicates (string methods and set operations), not regular
expressions: the host tool checks its event on every run, and compiling one pattern costs
about 0.1 ms at import. `Rule.pattern` writes each text rule as a regular expression for JSON
Schema; a test holds the two forms equal.
"""

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal, NotRequired, TypedDict

SCHEMA_VERSION: Final = 1

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

COMMAND_EVENT: Final = "command"
IDENTIFY_EVENT: Final = "identify"
"""A custom event of anonymous traits (`Telemetry.identify`), mapped to each provider's
identify call; no `track` may use the name."""

PLACEHOLDER: Final = "<other>"
"""What the library records instead of a captured value that the schema cannot hold (a
subcommand named ``café``, an option named ``--a.b``, a Choice value ``/dev/sda``): the
event is kept, and says that something was there."""
UNLISTED: Final = "<unlisted>"
"""A subcommand word that its group resolved at run time without registering it in code
(plugins found on PATH, lazy loading): never the word itself, which may be the user's."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""Integers are bounded to what every JSON reader holds exactly (JavaScript's safe range):
PostHog, Mixpanel and most dashboards read numbers as doubles."""
MAX_PROPERTIES: Final = 32
MAX_KEY_LENGTH: Final = 64
MAX_STRING_LENGTH: Final = 256
MAX_LIST: Final = 100
MAX_COMMAND_WORDS: Final = 16
MAX_EVENT_BYTES: Final = 8192
"""An encoded event larger than this is dropped; it keeps the spool's byte bound honest."""
FUTURE_SKEW: Final = 86400.0
"""Client clocks drift; a day ahead is tolerated, more is a bad clock or a lie."""


class Event(TypedDict):
    """One flat JSON object: a command invocation (``event == "command"``) or a custom event.

    Fields marked NotRequired appear only on one of the two kinds; every other field is
    always present, possibly null. `FIELDS` holds the rule each one obeys.
    """

    schema_version: int
    event_id: str
    event: str
    timestamp: str
    tool: str
    tool_version: str
    install_id: str
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


# -- rules --------------------------------------------------------------------------------

LOWER: Final = "abcdefghijklmnopqrstuvwxyz"
UPPER: Final = LOWER.upper()
DIGITS: Final = "0123456789"
HEX: Final = "0123456789abcdef"


class Rule:
    """What a value must be. `problem` says what is wrong with one (None if nothing),
    `json_schema` writes the rule for other readers, `what` says it in words."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def problem(self, value: Any) -> str | None:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError


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
        return {"type": "string", "pattern": self.pattern(), "description": self.what}


class Identifier(Rule):
    """A Python identifier (a class name) of at most ``max_length`` characters, or the
    placeholder: `str.isidentifier` is the rule, so ``ÉchecError`` is one."""

    __slots__ = ("max_length",)

    def __init__(self, what: str, max_length: int) -> None:
        super().__init__(what)
        self.max_length = max_length

    def fits(self, value: str) -> bool:
        return (len(value) <= self.max_length and value.isidentifier()) or value == PLACEHOLDER

    def fit(self, value: str) -> str:
        return value if self.fits(value) else PLACEHOLDER

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, str) and self.fits(value) else f"must be {self.what}"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.max_length, "description": self.what}


class Uuid(Rule):
    """A UUID written in lowercase hex, 8-4-4-4-12."""

    __slots__ = ()

    def problem(self, value: Any) -> str | None:
        if (
            isinstance(value, str)
            and len(value) == 36
            and value[8] == value[13] == value[18] == value[23] == "-"
            and _HEX_SET.issuperset(value[:8] + value[9:13] + value[14:18] + value[19:23])
            and _HEX_SET.issuperset(value[24:])
        ):
            return None
        return f"must be {self.what}"

    def json_schema(self) -> dict[str, Any]:
        pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        return {"type": "string", "pattern": pattern, "description": self.what}


class Timestamp(Rule):
    """``2026-11-23T12:00:00.000Z``: UTC, ISO 8601, up to microseconds, a real date and
    time, not more than `FUTURE_SKEW` ahead of the checker's clock."""

    __slots__ = ()

    def problem(self, value: Any) -> str | None:
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
            return f"must be {self.what}"
        from datetime import UTC, datetime

        try:  # the checks above placed the digits; datetime() judges them
            when = datetime(
                int(value[0:4]), int(value[5:7]), int(value[8:10]),
                int(value[11:13]), int(value[14:16]), int(value[17:19]), tzinfo=UTC,
            )  # fmt: skip
        except ValueError:
            return "is not a real date and time"
        if when.timestamp() > time.time() + FUTURE_SKEW:
            return "is in the future"
        return None

    def json_schema(self) -> dict[str, Any]:
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z$"
        return {"type": "string", "pattern": pattern, "description": self.what}


class DottedNumber(Rule):
    """``parts`` (a range) dot-separated runs of ASCII digits, each at most ``digits``
    long; with ``empty``, also the empty string."""

    __slots__ = ("digits", "empty", "parts")

    def __init__(
        self, what: str, *, parts: tuple[int, int], digits: int, empty: bool = False
    ) -> None:
        super().__init__(what)
        self.parts = parts
        self.digits = digits
        self.empty = empty

    def fits(self, value: str) -> bool:
        if value == "":
            return self.empty
        pieces = value.split(".")
        return self.parts[0] <= len(pieces) <= self.parts[1] and all(
            0 < len(p) <= self.digits and p.isascii() and p.isdigit() for p in pieces
        )

    def fit(self, value: str) -> str:
        """The leading parts that fit, or the empty string (if allowed)."""
        pieces = value.split(".")[: self.parts[1]]
        fitted = ".".join(pieces)
        if self.fits(fitted):
            return fitted
        return "" if self.empty else PLACEHOLDER

    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, str) and self.fits(value) else f"must be {self.what}"

    def json_schema(self) -> dict[str, Any]:
        low, high = self.parts
        number = f"[0-9]{{1,{self.digits}}}"
        body = f"{number}(\\.{number}){{{low - 1},{high - 1}}}"
        pattern = f"^(?:{body})?$" if self.empty else f"^{body}$"
        return {"type": "string", "pattern": pattern, "description": self.what}


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


class OneOf(Rule):
    """One of ``choices`` (compared with their types: ``True`` is not ``1``)."""

    __slots__ = ("choices",)

    def __init__(self, what: str, choices: Iterable[object]) -> None:
        super().__init__(what)
        self.choices = tuple(choices)

    def problem(self, value: Any) -> str | None:
        if any(type(value) is type(c) and value == c for c in self.choices):
            return None
        return f"must be one of {list(self.choices)}"

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}


class Bool(Rule):
    __slots__ = ()

    def problem(self, value: Any) -> str | None:
        return None if type(value) is bool else "must be true or false"

    def json_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Nullable(Rule):
    """null, or what ``rule`` accepts."""

    __slots__ = ("rule",)

    def __init__(self, rule: Rule) -> None:
        super().__init__(f"null or {rule.what}")
        self.rule = rule

    def problem(self, value: Any) -> str | None:
        return None if value is None else self.rule.problem(value)

    def json_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "null"}, self.rule.json_schema()]}


class Scalars(Rule):
    """null, a boolean, a whole number within `MAX_SAFE_INTEGER`, a finite number, or
    text that ``text`` accepts."""

    __slots__ = ("_text_schema", "text")

    def __init__(self, what: str, text: Callable[[str], bool], text_schema: dict[str, Any]) -> None:
        super().__init__(what)
        self.text = text
        self._text_schema = text_schema

    def fits(self, value: Any) -> bool:
        kind = type(value)
        if value is None or kind is bool:
            return True
        if kind is int:
            return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
        if kind is float:
            return math.isfinite(value)
        return kind is str and self.text(value)

    def problem(self, value: Any) -> str | None:
        return None if self.fits(value) else f"must be {self.what}"

    def json_schema(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": ["null", "boolean", "number"]},
                {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
                self._text_schema,
            ]
        }


class Command(Rule):
    """The tool's name, then up to `MAX_COMMAND_WORDS` subcommand words, space-separated,
    each a `WORD`, `UNLISTED` or `PLACEHOLDER`."""

    __slots__ = ()

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be {self.what}"
        words = value.split(" ")
        if not TOOL.fits(words[0]) or len(words) > MAX_COMMAND_WORDS + 1:
            return f"must be {self.what}"
        if not all(w == UNLISTED or WORD.fits(w) for w in words[1:]):
            return f"must be {self.what}"
        return None

    def json_schema(self) -> dict[str, Any]:
        word = f"(?:{WORD.pattern()[4:-2]}|{_escape(UNLISTED)})"
        tool = TOOL.pattern()[4:-2]
        pattern = f"^{tool}( {word}){{0,{MAX_COMMAND_WORDS}}}$"
        return {"type": "string", "pattern": pattern, "description": self.what}


class OptionName(Rule):
    """How a user types an option: a prefix (``-``, ``--``, ``+``, ``++`` or ``/``, as
    click allows) and a name of letters, digits, ``_`` and ``-``; or the placeholder."""

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


class Flags(Rule):
    __slots__ = ()

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, list) or len(value) > MAX_LIST:
            return f"must be a list of at most {MAX_LIST} option names"
        if not all(isinstance(v, str) and FLAG.fits(v) for v in value):
            return "must hold option names such as --dry-run"
        return None

    def json_schema(self) -> dict[str, Any]:
        return {"type": "array", "maxItems": MAX_LIST, "items": FLAG.json_schema()}


class Values(Rule):
    """Option name → a closed value, or a list of them (``multiple=True``)."""

    __slots__ = ()

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, dict) or len(value) > MAX_LIST:
            return f"must be an object of at most {MAX_LIST} option values"
        for key, item in value.items():
            if not (isinstance(key, str) and OPTION.fits(key)):
                return f"has a key that is not an option name: {str(key)[:40]!r}"
            items = item if isinstance(item, list) else [item]
            if len(items) > MAX_LIST or not all(CLOSED_VALUE.fits(v) for v in items):
                return f"{key} must be a choice word, a boolean, a number, or a list of them"
        return None

    def json_schema(self) -> dict[str, Any]:
        closed = CLOSED_VALUE.json_schema()
        return {
            "type": "object",
            "maxProperties": MAX_LIST,
            "propertyNames": OPTION.json_schema(),
            "additionalProperties": {
                "anyOf": [closed, {"type": "array", "maxItems": MAX_LIST, "items": closed}]
            },
        }


class Properties(Rule):
    """A custom event's properties: at most `MAX_PROPERTIES` names of 1 to
    `MAX_KEY_LENGTH` characters, each with a `PROPERTY_VALUE`."""

    __slots__ = ()

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, dict) or len(value) > MAX_PROPERTIES:
            return f"must be an object of at most {MAX_PROPERTIES} properties"
        for key, item in value.items():
            if not (isinstance(key, str) and PROPERTY_NAME.fits(key)):
                return f"has a property name that is not {PROPERTY_NAME.what}: {str(key)[:40]!r}"
            if not PROPERTY_VALUE.fits(item):
                return f"{key} must be {PROPERTY_VALUE.what}"
        return None

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "maxProperties": MAX_PROPERTIES,
            "propertyNames": PROPERTY_NAME.json_schema(),
            "additionalProperties": PROPERTY_VALUE.json_schema(),
        }


def _class(chars: frozenset[str]) -> str:
    """A regular expression character class's body for ``chars`` (sorted, escaped)."""
    return "".join("\\" + c if c in "\\]^-[/" else c for c in sorted(chars))


def _escape(text: str) -> str:
    """``text`` as a regular expression that matches it literally (in Python and in ECMA 262
    with the ``u`` flag, where only syntax characters may be escaped)."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}/" else c for c in text)


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


_HEX_SET: Final = frozenset(HEX)
ALNUM: Final = LOWER + UPPER + DIGITS

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
CLOSED_VALUE: Final = Scalars(
    "a choice word, a boolean, or a number", CHOICE.fits, CHOICE.json_schema()
)
PROPERTY_NAME: Final = Text(
    "1-64 letters, digits, '_', '.', '$' or '-'",
    first=ALNUM + "_$",
    rest=ALNUM + "_.$-",
    max_length=MAX_KEY_LENGTH,
)
PROPERTY_VALUE: Final = Scalars(
    f"a JSON scalar: null, a boolean, a whole number within ±{MAX_SAFE_INTEGER}, a finite"
    f" number, or text of at most {MAX_STRING_LENGTH} characters",
    lambda text: len(text) <= MAX_STRING_LENGTH and _utf8(text),
    {"type": "string", "maxLength": MAX_STRING_LENGTH},
)
ERROR_TYPE: Final = Identifier("an exception's class name (a Python identifier)", 128)
EXIT_CODE: Final = Int("an exit status", -(2**31), 2**32 - 1)
DURATION_MS: Final = Int("milliseconds", 0, 7 * 24 * 3600 * 1000)
OS_VERSION: Final = DottedNumber(
    "a dotted version number of at most 6 parts, or empty", parts=(1, 6), digits=9, empty=True
)
PLATFORM_WORD: Final = Text(
    "1-32 lowercase letters, digits, '_', '.' or '-'",
    first=LOWER + DIGITS + "_.-",
    rest=LOWER + DIGITS + "_.-",
    max_length=32,
    placeholder=True,
)


class Field:
    """One field of `Event`: which events carry it (``all``, ``command`` or ``custom``),
    whether it may be missing, its rule, and what PRIVACY.md says of it."""

    __slots__ = ("description", "events", "name", "optional", "rule")

    def __init__(
        self,
        name: str,
        events: Literal["all", "command", "custom"],
        rule: Rule,
        description: str,
        *,
        optional: bool = False,
    ) -> None:
        self.name = name
        self.events = events
        self.rule = rule
        self.description = description
        self.optional = optional


FIELDS: Final = (
    Field("schema_version", "all", OneOf("the schema version", [SCHEMA_VERSION]),
          "The version of this format, `1`."),
    Field("event_id", "all", Uuid("a UUID in lowercase hex"),
          "A random id for this record, so that a record sent twice is counted once."),
    Field("event", "all", EVENT_NAME,
          "`command`, or the name of a custom event the author declared, e.g."
          " `deploy.finished`."),
    Field("timestamp", "all",
          Timestamp("a UTC ISO 8601 time such as 2026-11-23T12:00:00.000Z"),
          "When the command started, or when a custom event was recorded (UTC, to the"
          " millisecond)."),
    Field("tool", "all", TOOL, "The tool's name, e.g. `acme`."),
    Field("tool_version", "all", TOOL_VERSION,
          "The tool's version, as its author declared it (characters other than letters,"
          " digits and `.+_-` become `-`)."),
    Field("install_id", "all", Uuid("a UUID in lowercase hex"),
          "A random id made once for this tool and your user account; see \"The id\""
          " below."),
    Field("command", "all", Command("a command path such as 'acme deploy start'"),
          "The command's name as the tool defines it in its code, e.g. `acme deploy start`"
          " (never what you typed if you used an alias; a subcommand the tool only finds"
          f" at run time, such as a plugin, is `{UNLISTED}`)."),
    Field("flags", "command", Flags("option names"),
          "The *names* of the options you gave, on the command line or through an"
          " environment variable, e.g. `[\"--env\", \"--dry-run\"]`. Never their values."
          " Options left at their defaults are not listed."),
    Field("values", "command", Values("option values"),
          "Values only of the options the author chose to record, and only when the value"
          " is one of a fixed list written in the tool's code (e.g. `{\"--format\":"
          " \"json\"}`); usually empty."),
    Field("exit_code", "command", EXIT_CODE, "The command's exit status, e.g. `0` or `2`."),
    Field("outcome", "command", OneOf("an outcome", OUTCOMES),
          "`success`, `error`, `usage_error` (the command line was wrong), `aborted` or"
          " `interrupted` (Ctrl-C)."),
    Field("error_type", "command", Nullable(ERROR_TYPE),
          "For a failure, the *type* of error only, e.g. `FileNotFoundError` or"
          " `NoSuchOption`; never its message. `null` on success."),
    Field("duration_ms", "command", DURATION_MS,
          "How long the command ran, in milliseconds."),
    Field("os", "all", PLATFORM_WORD, "`linux`, `macos`, `windows`, ..."),
    Field("os_version", "all", OS_VERSION,
          "The OS kernel's version number only, e.g. `6.1.0` (not its full build string)."),
    Field("arch", "all", PLATFORM_WORD,
          "The processor architecture, e.g. `x86_64` or `arm64`."),
    Field("python_version", "all",
          DottedNumber("a version such as 3.12.4", parts=(3, 3), digits=6),
          "e.g. `3.12.4`."),
    Field("ci", "all", Nullable(Text("a CI provider name", first=LOWER + DIGITS + "_",
                                     rest=LOWER + DIGITS + "_", max_length=32)),
          "The name of the CI service the command ran in (e.g. `github_actions`; `generic`"
          " if only `CI` is set), otherwise `null`."),
    Field("interactive", "all", Bool("true or false"),
          "Whether stdin and stderr were a terminal (a person) rather than a script."),
    Field("properties", "custom", Properties("properties"),
          "The properties the author declared for that custom event (or, for `identify`,"
          " the traits): names with plain values, e.g. `{\"replicas\": 3}`; text only from"
          " a fixed list written in the tool's code."),
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
"""(allowed, required) fields of each kind of event."""
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


class InvalidEvent(ValueError):
    """Why an event breaks the schema: ``field`` names where, ``message`` what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_event(event: Any, valid: set[tuple[str, type, Any]] | None = None) -> None:
    """Raise `InvalidEvent` unless ``event`` is exactly a valid event of this schema.

    The library checks each event it records with this before spooling it, and the
    collector each event it receives. ``valid`` remembers the scalar fields already found
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
    allowed, required = _COMMAND_FIELDS if command else _CUSTOM_FIELDS
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
    if event["command"].split(" ", 1)[0] != event["tool"]:
        raise InvalidEvent("command", "must start with the tool's name")
    if command:
        unflagged = set(event["values"]) - set(event["flags"])
        if unflagged:
            raise InvalidEvent("values", f"has options not in flags: {sorted(unflagged)[:3]}")


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
    if not EVENT_NAME.fits(name) or name == COMMAND_EVENT:
        raise ValueError(
            f"event name {name!r} must be {EVENT_NAME.what}, and not {COMMAND_EVENT!r}"
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
        if not PROPERTY_NAME.fits(key):
            raise ValueError(f"property name {key[:80]!r} must be {PROPERTY_NAME.what}")
        if value is not None and type(value) not in (str, int, float, bool):
            raise TypeError(
                f"property {key!r} must be a JSON scalar (str, int, float, bool or None),"
                f" not {type(value).__name__}"
            )
        if not PROPERTY_VALUE.fits(value):
            raise ValueError(f"property {key!r} must be {PROPERTY_VALUE.what}")
        checked[key] = value
    return checked


def privacy_table() -> str:
    """The field table of PRIVACY.md (and of ``cli-telemetry schema``), in Markdown."""
    rows = ["| Field | Events | What it holds |", "|---|---|---|"]
    for field in FIELDS:
        rows.append(f"| `{field.name}` | {field.events} | {field.description} |")
    return "\n".join(rows)


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
