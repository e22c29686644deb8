"""An in-memory sink, for tests of the uploader's logic (never instead of a real server)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import DELIVERED, Delivery


class MemorySink:
    """Keeps every event it is sent, and every deletion request (`deletions`); answers
    with ``results`` in turn, then delivers. Of a delivery that refuses events
    (``Delivery("delivered", refused=...)``) it keeps the others."""

    def __init__(self, name: str = "memory", results: Sequence[Delivery] = ()) -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.deletions: list[dict[str, Any]] = []
        self.closed = False
        self._results = list(results)

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        result = self._results.pop(0) if self._results else DELIVERED
        if result.outcome == "delivered":
            self.events.extend(e for i, e in enumerate(events) if i not in result.refused)
        return result

    def forget(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        result = self._results.pop(0) if self._results else DELIVERED
        if result.outcome == "delivered":
            self.deletions.extend(requests)
        return result

    def close(self) -> None:
        self.closed = True
