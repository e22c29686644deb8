"""Signing webhook requests, and verifying them on the receiving side: standard library only.

The webhook sink (`cli_telemetry.sinks.webhook`) sends two headers with each request when
it has a secret::

    X-CLI-Telemetry-Timestamp: 1795428001
    X-CLI-Telemetry-Signature: v1=<64 lowercase hex digits>

The timestamp is the time of sending in whole Unix seconds; the signature is the lowercase
hex HMAC-SHA256, keyed by the shared secret (UTF-8), of the timestamp, a dot, and the raw
request body: ``f"{timestamp}.".encode() + body`` (Stripe's and Slack's scheme). Signing the
timestamp with the body lets a receiver refuse a captured request replayed later: it accepts
a timestamp only within ``tolerance`` seconds of its own clock, either way.

``v1`` names the scheme so that another can be added without breaking receivers. A header
may carry several comma-separated signatures (say, while a secret is being rotated); one
match is enough, and schemes a receiver does not know are ignored.

This module is what a receiver imports (``from cli_telemetry.webhook_signature import
verify_signature``): it must stay free of urllib3 and of the rest of the sink code, so that a
web application can check requests without the uploader's dependencies.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from typing import Final

TIMESTAMP_HEADER: Final = "X-CLI-Telemetry-Timestamp"
SIGNATURE_HEADER: Final = "X-CLI-Telemetry-Signature"
SCHEME: Final = "v1"
DEFAULT_TOLERANCE: Final = 300
"""Seconds a receiver accepts between the request's timestamp and its clock: five minutes,
as Stripe and Slack, for clocks that are not quite in step and requests that are retried by
a proxy; a replay must come within that window."""
_MAX_TIMESTAMP_DIGITS: Final = 15
"""Whole Unix seconds have 10 digits until the year 2286; 15 leave room for any clock, and
keep every accepted timestamp an exact float."""

__all__ = [
    "DEFAULT_TOLERANCE",
    "SCHEME",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "sign",
    "signature_headers",
    "verify_signature",
]


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The ``v1`` signature (lowercase hex, without the ``v1=``) of ``body`` sent at
    ``timestamp``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_headers(
    secret: str | bytes, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The two headers that sign ``body``, with the current time (or ``now``)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{SCHEME}={sign(secret, timestamp, body)}",
    }


def verify_signature(
    secret: str | bytes,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` (the X-CLI-Telemetry-Signature header) signs ``body`` (the raw
    request body, before any JSON parsing) at ``timestamp`` (the X-CLI-Telemetry-Timestamp
    header) with ``secret``, and ``timestamp`` is within ``tolerance`` seconds of ``now``
    (default: this machine's clock), in the past or the future.

    Never raises, whatever the request holds: a missing or malformed header is simply not
    a valid signature. A timestamp has at most 15 digits (a longer one cannot be near any
    clock, and turning thousands of digits into an int raises or costs time). A
    ``tolerance`` or ``now`` that is not a finite number, or a negative tolerance, accepts
    nothing: ``nan`` would otherwise compare false with every age, and let any replay
    through. The comparison takes the same time wherever the strings differ
    (`hmac.compare_digest`).
    """
    if not secret or not isinstance(secret, str | bytes):
        return False
    if not isinstance(timestamp, str) or not isinstance(signature, str):
        return False
    if not isinstance(body, bytes | bytearray):
        return False
    if not _finite(tolerance) or tolerance < 0:
        return False
    current = time.time() if now is None else now
    if not _finite(current):
        return False
    timestamp = timestamp.strip()
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return False
    if abs(current - int(timestamp)) > tolerance:
        return False
    try:
        expected = sign(secret, timestamp, bytes(body)).encode()
    except UnicodeEncodeError:  # a str secret with a lone surrogate: no sender could use it
        return False
    valid = False
    for part in signature.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME:
            # no early exit: every candidate is compared
            candidate = value.strip().encode("utf-8", "replace")
            valid = hmac.compare_digest(expected, candidate) or valid
    return valid


def _finite(value: object) -> bool:
    """A real number, not nan or an infinity (a bool is not a number of seconds; an int too
    large for a float is not one either)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
