"""Where the background uploader sends events: the provider interface and its sinks.

A sink is anything with a ``name``, a ``send(events, deadline)`` that returns a `Delivery`,
and a ``close()``. The uploader isolates sinks from each other: an exception in one is that
sink's failure, never the others'. Nothing here is imported by a running CLI: only the
uploader process (``python -m cli_telemetry._uploader``) loads sinks and urllib3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Delivery, Sink

if TYPE_CHECKING:
    from .http import HttpSink
    from .memory import MemorySink

__all__ = ["Delivery", "HttpSink", "MemorySink", "Sink"]


def __getattr__(name: str) -> Any:
    # Lazily, so that importing the interface does not import urllib3.
    if name == "HttpSink":
        from .http import HttpSink

        return HttpSink
    if name == "MemorySink":
        from .memory import MemorySink

        return MemorySink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
