"""What the erasers share: ids in the batches a provider takes, a request per batch, a JSON
answer read safely, and the error kind of a deletion that found nothing to delete."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ..sinks.base import DELIVERED, Delivery

if TYPE_CHECKING:
    from ..sinks.http import Transport

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


def post_batches(
    transport: Transport,
    url: str,
    headers: dict[str, str],
    install_ids: Sequence[str],
    size: int,
    body: Callable[[list[str]], object],
    deadline: float,
) -> Delivery:
    """POST ``body(ids)`` as JSON for each batch of ``size`` install ids, in turn; the first
    that is not delivered is the erasure's outcome (the batches sent already are sent
    again with the rest: the provider makes one task or regulation more)."""
    from ..sinks.http import json_body

    for ids in batches(install_ids, size):
        delivery = transport.post(url, json_body(body(ids)), headers, deadline)[0]
        if delivery.outcome != "delivered":
            return delivery
    return DELIVERED
