"""What the erasers share: ids in the batches a provider takes, a JSON answer read safely,
and the error kind of a deletion that found nothing to delete."""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, Final, TypeVar

from ..sinks.base import DELIVERED, Delivery

NOT_FOUND: Final = "not_found"
"""The error kind of a ``delivered`` erasure whose provider said it holds nothing for some
of the ids (PostHog found no person, Amplitude no device). Nothing is left to delete there
now; but a provider that was still ingesting an install's last events when it was asked
would have kept those, so the collector may ask again later."""


def delivered(not_found: bool) -> Delivery:
    """`DELIVERED`, or delivered with the kind `NOT_FOUND`."""
    return Delivery("delivered", NOT_FOUND) if not_found else DELIVERED


Id = TypeVar("Id", bound=Hashable)


def batches(ids: Sequence[Id], size: int) -> Iterator[list[Id]]:
    """``ids`` without repeats, in the order given, ``size`` at a time."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start : start + size]


def json_object(answer: bytes) -> dict[str, Any] | None:
    """The JSON object ``answer`` holds, or None (empty, cut short, not an object)."""
    try:
        value = json.loads(answer)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
