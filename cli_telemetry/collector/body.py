"""A request body, from its bytes to the document `validation.check_batch` judges.

`read` runs in a worker thread, never on the event loop, and every step has a bound fixed
before it starts, so that no body, however hostile, holds the loop, the GIL or the memory
for long:

1. The body is at most `MAX_BODY_BYTES`, raw and inflated; it is inflated `STEP` bytes at
   a time (zlib lets other threads run while it inflates).
2. Before any object is built, a pre-scan counts the values from the body's commas and
   brackets (`Count`), as it inflates. More than `MAX_JSON_VALUES` is a 413: 8 KB of gzip
   that inflates to millions of empty lists is refused in 5 ms, after its first 1.2 MB,
   where it was built for a second and 200 MB.
3. A large body is parsed one event at a time, each from a window of at most
   `MAX_VALUE_CHARS` characters. CPython's json parser holds the GIL for a whole call, so
   one ``json.loads`` of the body would stall the event loop (and ``/healthz``) for as long
   as the body takes: up to 100 ms for 300,000 distinct keys here. One event at a time, the
   loop waits at most for one window. A small body (`SMALL_CHARS`, `SMALL_VALUES`) costs
   no more than one window, and is parsed in one call.
4. A number of more than `MAX_INTEGER_DIGITS` digits is not converted (int() of 4,000
   digits costs time that grows with its square: 2,000 of them in one body held the GIL
   for 160 ms); it becomes `TOO_LARGE`, a value that no field of the schema accepts, so the
   event holding it is refused as any other invalid event is.

The result equals ``json.loads`` of the body wherever both succeed (a property test holds
them equal); the body must be an object, whose ``batch`` has at most
`validation.MAX_BATCH_EVENTS` events and no key that a batch does not have.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from typing import Any, Final

from .validation import MAX_BATCH_EVENTS, InvalidBatch

MAX_BODY_BYTES: Final = 8 * 1024 * 1024
"""Raw and inflated alike: 10,000 events of a few hundred bytes each fit comfortably."""

MAX_JSON_VALUES: Final = 400_000
"""The largest batch (10,000 events) with 40 values each; an event of the example tool
holds about 25 (its fields, flags and option values)."""

MAX_VALUE_CHARS: Final = 64 * 1024
"""The most text one event may take: three times an event with 100 flags, each with a
64-character value. Parsing this much holds the GIL for a few milliseconds at worst."""

SMALL_CHARS: Final = 512 * 1024
SMALL_VALUES: Final = 20_000
"""A body of at most this much text and this many values (an uploader's batch of 100
events holds about 2,600) is parsed in one call: it holds the GIL for a few milliseconds
at worst (20,000 distinct keys, here), as one large event does."""

STEP: Final = 256 * 1024
"""Bytes inflated, or counted, in one call: a call holds the GIL (zlib lets go of it while
it inflates, not while it copies), and on 256 KiB no call takes a millisecond here."""

MAX_INTEGER_DIGITS: Final = 20
"""More digits than any whole number the schema accepts (at most 2**53, 16 digits)."""

BATCH_KEYS: Final = ("batch", "sent_at")


class BodyError(ValueError):
    """A body refused as a whole: the HTTP status to answer, and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _TooLarge:
    """The value of a number with more than `MAX_INTEGER_DIGITS` digits."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<a number of more than {MAX_INTEGER_DIGITS} digits>"


TOO_LARGE: Final = _TooLarge()


def _integer(digits: str) -> int | _TooLarge:
    signed = digits[0] == "-"
    return int(digits) if len(digits) <= MAX_INTEGER_DIGITS + signed else TOO_LARGE


_DECODER: Final = json.JSONDecoder(parse_int=_integer)
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
_FIRST_WINDOW: Final = 1024


def read(raw: bytes, gzipped: bool) -> Any:
    """The document in a request body (inflated first when ``gzipped``). Raises `BodyError`
    (413 or 400) for a body too large, not UTF-8 or not JSON, and `InvalidBatch` (400) for
    one that is JSON but not a batch.

    The body is inflated and its values counted `STEP` bytes at a time, and refused as soon
    as either bound is passed: a gzip bomb costs what its first megabyte or so does."""
    if gzipped:
        body = bytearray()
        values = Count()
        for chunk in _inflate(raw):
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BodyError(413, f"the inflated body is over {MAX_BODY_BYTES} bytes")
            values.add(body, final=False)
        values.add(body, final=True)
    else:
        if len(raw) > MAX_BODY_BYTES:
            raise BodyError(413, f"the body is over {MAX_BODY_BYTES} bytes")
        values = Count()
        for end in range(STEP, len(raw) + STEP, STEP):
            values.add(raw, final=end >= len(raw), end=min(end, len(raw)))
    try:
        text = (body if gzipped else raw).decode("utf-8")  # strictly, as JSON on the wire is
    except UnicodeDecodeError:
        raise BodyError(400, "the body is not UTF-8") from None
    if len(text) <= SMALL_CHARS and values.values <= SMALL_VALUES:
        return _whole(text)
    return parse(text)


def _whole(text: str) -> dict[str, Any]:
    """A small body in one call: what `parse` gives, sooner (an uploader's batch costs a
    third of the time), and the GIL is held no longer than for one large event."""
    try:
        document = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise _not_json(exc.msg, exc.pos) from None
    except RecursionError:
        raise BodyError(400, "the body is not JSON: it is nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidBatch("body", 'must be an object {"batch": [...], "sent_at": "..."}')
    for key in document:
        if key not in BATCH_KEYS:
            raise InvalidBatch(str(key)[:64], "is not a field of the request body")
    return document


class Count:
    """At least the number of values in a JSON text, exactly that many when no string
    holds a comma or a bracket, counted without parsing it, a part at a time; `add` raises
    `BodyError` (413) once the count passes its limit (`MAX_JSON_VALUES`).

    A value is the document itself or an element of a container, and a container of n
    elements holds n - 1 commas: so the values are 1 + the commas + the containers that are
    not empty. ``[`` and ``{`` count every container; ``[]`` and ``{}`` the empty ones
    (``[ ]`` is counted as one that is not, which only errs upward). A comma or bracket in
    a string adds to the count; a ``[]`` in a string also takes away the ``[`` it holds.

    The empty containers are counted (`settle`) only once the count without them passes
    the limit: that takes longer, and a body that is not refused rarely needs it. Each
    part counts what starts in it but for its last byte, which may begin a ``[]`` that the
    next part ends.
    """

    __slots__ = ("counted", "empty", "limit", "settled", "upper")

    def __init__(self, limit: int = MAX_JSON_VALUES) -> None:
        self.limit = limit
        self.upper = 1  # 1 + the commas and containers counted so far
        self.empty = 0  # the empty containers among them, counted up to `settled`
        self.counted = 0  # bytes counted
        self.settled = 0

    @property
    def values(self) -> int:
        return self.upper - self.empty

    def add(self, text: bytes | bytearray, *, final: bool, end: int | None = None) -> None:
        """Count ``text[self.counted:end]`` (to its end by default); all of it when
        ``final``, else all but its last byte."""
        end = len(text) if end is None else end
        stop = end if final else max(self.counted, end - 1)
        start, self.counted = self.counted, stop
        for byte in (b",", b"[", b"{"):
            self.upper += text.count(byte, start, stop)
        if self.values > self.limit:
            self.settle(text)
            if self.values > self.limit:
                raise BodyError(
                    413,
                    f"the body holds more than {self.limit} JSON values (counting its"
                    " commas and brackets): send fewer events at once",
                )

    def settle(self, text: bytes | bytearray) -> None:
        """Take away the empty containers that start in what was counted."""
        start, self.settled = self.settled, self.counted
        for pair in (b"[]", b"{}"):
            self.empty += text.count(pair, start, self.counted + 1)


def count_values(text: bytes) -> int:
    """`Count` of a whole text, without a bound."""
    count = Count(limit=len(text) + 1)
    count.add(text, final=True)
    count.settle(text)
    return count.values


def _inflate(raw: bytes) -> Iterator[bytes]:
    """The gzip body ``raw`` inflated, `STEP` bytes at a time."""
    inflater = zlib.decompressobj(wbits=31)
    data = raw
    while not inflater.eof:
        try:
            chunk = inflater.decompress(data, STEP)
        except zlib.error:
            raise BodyError(400, "the body is not valid gzip") from None
        data = inflater.unconsumed_tail
        if not chunk and not data:
            raise BodyError(400, "the gzip body is truncated")
        yield chunk
    if inflater.unused_data:
        raise BodyError(400, "there is data after the gzip body")


def parse(text: str, window: int = MAX_VALUE_CHARS) -> dict[str, Any]:
    """``{"batch": [...], "sent_at": ...}`` parsed one event (and one other value) at a
    time, each within ``window`` characters (a parameter for the tests)."""
    pos = _skip(text, 0)
    if text[pos : pos + 1] != "{":
        raise InvalidBatch("body", 'must be an object {"batch": [...], "sent_at": "..."}')
    document: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "}":
        return _end(text, pos + 1, document)
    while True:
        if text[pos : pos + 1] != '"':
            raise _not_json("Expecting property name enclosed in double quotes", pos)
        key, pos = _value(text, pos, window, "a key")
        if key not in BATCH_KEYS:
            raise InvalidBatch(str(key)[:64], "is not a field of the request body")
        pos = _skip(text, pos)
        if text[pos : pos + 1] != ":":
            raise _not_json("Expecting ':' delimiter", pos)
        pos = _skip(text, pos + 1)
        if key == "batch" and text[pos : pos + 1] == "[":
            document[key], pos = _events(text, pos, window)
        else:
            document[key], pos = _value(text, pos, window, repr(key))
        pos = _skip(text, pos)
        delimiter = text[pos : pos + 1]
        if delimiter == "}":
            return _end(text, pos + 1, document)
        if delimiter != ",":
            raise _not_json("Expecting ',' delimiter", pos)
        pos = _skip(text, pos + 1)


def _events(text: str, pos: int, window: int) -> tuple[list[Any], int]:
    """The list at ``text[pos] == "["``, one element at a time; where it ends."""
    events: list[Any] = []
    pos = _skip(text, pos + 1)
    if text[pos : pos + 1] == "]":
        return events, pos + 1
    while True:
        if len(events) == MAX_BATCH_EVENTS:
            raise InvalidBatch("batch", f"must be a list of 1 to {MAX_BATCH_EVENTS} events")
        value, pos = _value(text, pos, window, f"event {len(events)}")
        events.append(value)
        pos = _skip(text, pos)
        delimiter = text[pos : pos + 1]
        if delimiter == "]":
            return events, pos + 1
        if delimiter != ",":
            raise _not_json("Expecting ',' delimiter", pos)
        pos = _skip(text, pos + 1)


def _value(text: str, pos: int, window: int, what: str) -> tuple[Any, int]:
    """The JSON value at ``pos``, and where it ends, parsed from a slice of the text that
    grows (1 KiB, then 8 times more) until the value fits, up to ``window`` characters.

    A slice can cut a value short; then either the parser fails near the slice's end (or
    in a string that the cut left open), or it reads a number that may have gone on (one
    that ends within 2 characters of the slice's end: ``1.5e`` reads as 1.5). Both mean:
    try a larger slice. Any other failure is the body's own. Objects, lists, strings and
    literals end with a character of their own, so a slice that holds one whole holds it
    exactly.
    """
    size = min(_FIRST_WINDOW, window)
    while True:
        piece = text[pos : pos + size]
        whole = pos + size >= len(text)
        try:
            value, end = _DECODER.raw_decode(piece)
        except json.JSONDecodeError as exc:
            cut = exc.pos >= len(piece) - 8 or exc.msg.startswith("Unterminated string")
            if whole or not cut:
                raise _not_json(exc.msg, pos + exc.pos) from None
        except RecursionError:
            raise BodyError(400, f"the body is not JSON: {what} is nested too deeply") from None
        else:
            number = type(value) in (int, float) or value is TOO_LARGE
            if whole or not number or end < len(piece) - 2:
                return value, pos + end
        if size >= window:
            raise BodyError(413, f"{what} is over {window} characters")
        size = min(size * 8, window)


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def _end(text: str, pos: int, document: dict[str, Any]) -> dict[str, Any]:
    if _skip(text, pos) != len(text):
        raise _not_json("Extra data", pos)
    return document


def _not_json(message: str, pos: int) -> BodyError:
    return BodyError(400, f"the body is not JSON: {message}: char {pos}")
