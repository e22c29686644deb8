"""The delivery policy: when to try again, how a send is bounded, and what ``upload.json``
remembers between uploader runs. Its one owner, imported by the uploader, by ``telemetry
status``, by the collector's forwarder and by the tests.

- `backoff`: exponential with jitter, at least the server's Retry-After (itself capped);
  a misconfigured endpoint (one that redirects) waits as long as the cap allows at once.
- `deliver`: each sink sends in a thread of its own, with a deadline, so one that raises or
  hangs fails alone while the others' answers stand; a sink that keeps its deadline leaves
  no thread behind.
- `UploadState`: ``upload.json``. Each sink keeps its own failure count and next attempt, so
  a sink that is down backs off alone while the others go on receiving events; the
  top-level ``failures``, ``last_error`` and ``retry_at`` summarise them for ``status``.

Nothing here imports urllib3, filelock or click: the tool's process reads ``upload.json``
for ``status`` through this module.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final

from .sinks.base import Delivery, Sink, is_redirect

BACKOFF_BASE: Final = 30.0
BACKOFF_CAP: Final = 6 * 3600.0
RETRY_AFTER_CAP: Final = 24 * 3600.0
"""A server may ask for a long pause, but not for longer than a day."""
UPLOAD_STATE_LIMIT: Final = 1024 * 1024
"""``upload.json`` holds a few lines per sink; a larger file is not ours."""


def backoff(
    failures: int,
    retry_after: float | None,
    rng: random.Random,
    *,
    base: float = BACKOFF_BASE,
    cap: float = BACKOFF_CAP,
    misconfigured: bool = False,
) -> float:
    """Seconds until the next attempt after ``failures`` consecutive failures: ``base``
    doubling up to ``cap``, with jitter, and at least the server's Retry-After (itself
    capped). The collector's forwarder uses it too, with its own base and cap.

    ``misconfigured`` (`misconfigured`: the endpoint redirects) waits as long as after
    the most failures: what the author has to correct will not mend itself in 30 s, and
    an endpoint tried every few minutes for hours is hammered for nothing."""
    exponent = min(max(0, failures - 1), 20)  # 2**20 * 30 s is far past the cap anyway
    if misconfigured:
        exponent = 20
    delay: float = min(cap, base * 2.0**exponent) * rng.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def misconfigured(error: str | None) -> bool:
    """Whether a failure of kind ``error`` is the endpoint's configuration, not a passing
    trouble: a redirect (`cli_telemetry.sinks.http.redirected`), which is not followed.
    The events are kept, as for any failure, in case the endpoint is corrected."""
    return is_redirect(error)


ANSWER_GRACE: Final = 0.5
"""How long past the deadline `deliver` waits for a sink's answer: a sink that keeps its
deadline (every HTTP sink does, see `cli_telemetry.sinks.http`) answers a few
milliseconds after it at worst."""


class Deliveries(dict[str, Delivery]):
    """Each sink's delivery by name, and ``unanswered``: the sinks whose send had not
    returned by the deadline (each reported as a ``timeout``). Their threads may still be
    running: such a sink object is in use, and must not be sent to again."""

    def __init__(self, results: dict[str, Delivery], unanswered: frozenset[str]) -> None:
        super().__init__(results)
        self.unanswered: Final = unanswered


def deliver(work: Sequence[tuple[Sink, list[dict[str, Any]]]], deadline: float) -> Deliveries:
    """Send each sink its events, all at once, each isolated from the others.

    Every sink sends in its own (daemon) thread: one that raises fails alone, and one that
    hangs past the deadline is reported as a ``timeout`` while the others' answers stand
    (and the run goes on without it). Returns each sink's delivery by name. The thread of
    every sink that answered has ended when this returns: a send that keeps its deadline
    leaves no thread behind. Only a sink that ignores its deadline (a custom provider's
    bug) leaves one, named in ``unanswered``.
    """
    import queue
    import threading

    answers: queue.Queue[tuple[str, Delivery]] = queue.Queue()

    def send(sink: Sink, events: list[dict[str, Any]]) -> None:
        try:
            result = sink.send(events, deadline)
            if not isinstance(result, Delivery):
                result = Delivery("retry", "sink_error:bad_result")
        except Exception as exc:  # a sink's bug is that sink's failure
            result = Delivery("retry", f"sink_error:{type(exc).__name__}")
        answers.put((sink.name, result))

    threads: dict[str, threading.Thread] = {}
    for sink, events in work:
        thread = threading.Thread(
            target=send, args=(sink, events), name=f"send:{sink.name}", daemon=True
        )
        thread.start()
        threads[sink.name] = thread
    results: dict[str, Delivery] = {}
    while len(results) < len(work):
        try:
            name, result = answers.get(timeout=max(0.0, deadline - time.monotonic()) + ANSWER_GRACE)
        except queue.Empty:
            break
        results[name] = result
        threads[name].join(ANSWER_GRACE)  # it has answered: it is returning
    unanswered = frozenset(sink.name for sink, _ in work if sink.name not in results)
    for name in unanswered:
        results[name] = Delivery("retry", "timeout")
    return Deliveries(results, unanswered)


def iso_seconds(timestamp: float) -> str:
    """``2026-11-23T12:00:00Z``: the times ``status`` shows."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


class UploadState:
    """``upload.json``, read once, changed in memory, written back with `save`.

    Every value that is read is made well-formed on loading: a state that is not (a hand
    edit, a disk error, another version) would otherwise raise in every run, and the sinks
    would never be sent anything again. A bad failure count counts as one failure; a retry
    time further away than any backoff can be (the clock was set back) is brought back to
    that bound.
    """

    def __init__(self, data: dict[str, Any] | None = None, *, now: float | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})
        self.sinks = _sink_states(self.data.get("sinks"), time.time() if now is None else now)
        self.data["sinks"] = self.sinks

    @classmethod
    def load(cls, path: str, *, now: float | None = None) -> UploadState:
        """The state in ``path``; a missing, damaged or foreign file is the empty state (read
        with `cli_telemetry._paths.read_private`: no link, FIFO or device, bounded)."""
        from ._paths import read_private

        try:
            data = json.loads(read_private(path, UPLOAD_STATE_LIMIT))
        except (OSError, ValueError, RecursionError):
            data = {}
        return cls(data if isinstance(data, dict) else {}, now=now)

    def save(self, path: str) -> None:
        from ._paths import write_private

        write_private(path, json.dumps(self.data))

    # -- what status shows -----------------------------------------------------------

    @property
    def last_upload(self) -> str | None:
        value = self.data.get("last_upload")
        return value if isinstance(value, str) else None

    @property
    def last_error(self) -> str | None:
        value = self.data.get("last_error")
        return value if isinstance(value, str) else None

    # -- per sink --------------------------------------------------------------------

    def failures(self, sink: str) -> int:
        return max(0, int(self.sinks.get(sink, {}).get("failures", 0)))

    def sink_last_upload(self, sink: str) -> str | None:
        """When ``sink`` last took events (``status`` shows it), or None."""
        value = self.sinks.get(sink, {}).get("last_upload")
        return value if isinstance(value, str) else None

    def sink_last_error(self, sink: str) -> str | None:
        """The kind of ``sink``'s last failure or refusal, until a clean delivery."""
        value = self.sinks.get(sink, {}).get("last_error")
        return value if isinstance(value, str) else None

    def retry_at(self, sink: str) -> float:
        """When ``sink`` may be sent to again (epoch seconds; 0 when it is not resting)."""
        return float(self.sinks.get(sink, {}).get("retry_at_epoch", 0))

    def ready(self, sinks: Iterable[str], now: float) -> list[str]:
        """The sinks of ``sinks`` that are not backing off at ``now``."""
        return [name for name in sinks if self.retry_at(name) <= now]

    def next_attempt(self, sinks: Sequence[str], now: float) -> float:
        """The earliest time one of ``sinks`` may be sent to: ``now`` if one is ready."""
        return max(now, min((self.retry_at(name) for name in sinks), default=now))

    def snapshot(self, sink: str) -> dict[str, Any]:
        return dict(self.sinks.get(sink, {}))

    def restore(self, sink: str, snapshot: dict[str, Any]) -> None:
        """Undo what a send wrote down in advance (it did not fail after all)."""
        self.sinks[sink] = dict(snapshot)

    def record_failure(
        self,
        sink: str,
        failures: int,
        error: str | None,
        retry_after: float | None,
        rng: random.Random,
        *,
        now: float | None = None,
    ) -> None:
        """``sink`` failed for the ``failures``-th time in a row: it rests for a backoff
        (the longest at once if its endpoint is `misconfigured`)."""
        now = time.time() if now is None else now
        delay = backoff(failures, retry_after, rng, misconfigured=misconfigured(error))
        self.sinks[sink] = {
            **self.sinks.get(sink, {}),
            "failures": failures,
            "last_error": error,
            "retry_at": iso_seconds(now + delay),
            "retry_at_epoch": now + delay,
        }

    def record_delivery(
        self, sink: str, *, error: str | None = None, now: float | None = None
    ) -> None:
        """``sink`` took events: its failures are forgotten. ``error`` is the kind of a
        delivery that refused some events for good (``partial_rejected``), the last error
        ``status`` shows until a delivery without one."""
        when = iso_seconds(time.time() if now is None else now)
        self.sinks[sink] = {"last_upload": when}
        if error is not None:
            self.sinks[sink]["last_error"] = error
        self.data["last_upload"] = when

    def record_refusal(self, sink: str, snapshot: dict[str, Any], error: str | None) -> None:
        """``sink`` refused events for good: not a failure to back off from, but the last
        error ``status`` shows."""
        self.sinks[sink] = {**snapshot, "last_error": error}

    def summarise(self, sinks: Sequence[str]) -> None:
        """The top-level summary ``status`` shows: the worst sink's failure count, and the
        error of a sink that is failing (or else of one that refused events for good)."""
        states = [self.sinks.get(name, {}) for name in sinks]
        failing = [s for s in states if s.get("failures")]
        self.data["failures"] = max((int(s["failures"]) for s in failing), default=0)
        erring = failing or [s for s in states if s.get("last_error")]  # failing, or refused
        self.data["last_error"] = erring[-1].get("last_error") if erring else None
        retry_at = [s["retry_at"] for s in failing if s.get("retry_at")]
        if retry_at:
            self.data["retry_at"] = min(retry_at)
        else:
            self.data.pop("retry_at", None)

    def record_crash(self, error: str, rng: random.Random, *, now: float | None = None) -> float:
        """The uploader itself failed (not a sink): count it, and return when to retry."""
        failures = int(self.data.get("failures", 0) or 0) + 1
        self.data.update(failures=failures, last_error=error)
        return (time.time() if now is None else now) + backoff(failures, None, rng)


def _sink_states(value: object, now: float) -> dict[str, dict[str, Any]]:
    states: dict[str, dict[str, Any]] = {}
    for name, state in value.items() if isinstance(value, dict) else ():
        if not isinstance(name, str) or not isinstance(state, dict):
            continue
        failures, retry_at = state.get("failures", 0), state.get("retry_at_epoch", 0)
        if type(failures) is not int or failures < 0:
            state["failures"] = 1
        if type(retry_at) not in (int, float) or not math.isfinite(retry_at):
            state["retry_at_epoch"] = now
        elif retry_at > now + max(BACKOFF_CAP, RETRY_AFTER_CAP) * 1.5:
            state["retry_at_epoch"] = now + max(BACKOFF_CAP, RETRY_AFTER_CAP) * 1.5
        states[name] = state
    return states
