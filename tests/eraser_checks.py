"""What every provider's eraser test checks the same way (`cli_telemetry.sinks.base.Eraser`):
the outcome of the provider's answers, the deadline kept against a provider that never
answers, and no secret in what an eraser shows. The per-provider modules keep the requests
their provider's documentation describes."""

from __future__ import annotations

import threading
import time

import pytest
from fake_service import FakeService

from cli_telemetry.sinks.base import Delivery, Eraser

FORCED = pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "7", Delivery("retry", "http_429", 7.0)), (429, None, Delivery("retry", "http_429")),
     (500, None, Delivery("retry", "http_500")), (503, "2", Delivery("retry", "http_503", 2.0)),
     (400, None, Delivery("rejected", "http_400")), (401, None, Delivery("rejected", "http_401")),
     (403, None, Delivery("rejected", "http_403"))],
)  # fmt: skip
"""A provider's answers and what the eraser makes of them: throttling and server errors are
tried again (after the provider's Retry-After), refusals are final."""

INSTALL_ID = "3f1c2a9be07d4c55a1e2b3c4d5e6f708"
"""The sample events' install id (`fake_service.sample_events`)."""


def soon(seconds: float = 10) -> float:
    return time.monotonic() + seconds


def check_forced(
    eraser: Eraser, fake: FakeService, status: int, retry_after: str | None, expected: Delivery
) -> None:
    """The provider answers ``status`` once: the eraser says ``expected``."""
    fake.force(status, retry_after=retry_after)
    assert eraser.erase([INSTALL_ID], soon()) == expected


def check_deadline(eraser: Eraser, fake: FakeService) -> None:
    """A provider that reads the request and never answers: the erasure returns at its
    deadline, as a timeout to retry, however long the provider holds it (the transport's
    watchdog, `cli_telemetry.sinks.http`)."""
    fake.hold()
    results: list[Delivery] = []
    caller = threading.Thread(target=lambda: results.append(eraser.erase([INSTALL_ID], soon(1))))
    caller.start()
    caller.join(30)  # generous: without the hard deadline it would wait for the provider
    assert not caller.is_alive(), "the erasure outlived its deadline"
    assert results == [Delivery("retry", "timeout")]


def check_no_secret(eraser: Eraser, secrets: list[str], deliveries: list[Delivery]) -> None:
    """No secret in the eraser's repr, nor in what its erasures said."""
    shown = [repr(eraser), str(eraser), *(repr(d) for d in deliveries)]
    for secret in secrets:
        for text in shown:
            assert secret not in text
