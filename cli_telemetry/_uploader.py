"""The background uploader: ``python -P -m cli_telemetry._uploader``.

Started detached by `Telemetry` (through `_spawn.spawn`) after a command that recorded
events; its options arrive in the environment (`_spawn.OPTIONS_VARIABLE`). It may import
what it likes (urllib3, filelock, json): none of it is in the command's process.

One run, in order:

1. Take the uploader lock without waiting: if another uploader holds it, exit. So at most
   one uploader runs per tool and user, and whatever is claimed in the spool when the lock
   is won belongs to an uploader that died: it is released at once (nothing is stuck, and
   no live uploader can be sending the same batch).
2. Until the spool stays empty for `LINGER`, the deadline nears, or a batch fails: check
   consent again (``telemetry disable`` since the command stops it), claim a batch, send it
   to every sink, acknowledge it only when delivered. A rejected batch (a 4xx other than
   408/413/429) can never succeed: it is dropped and counted; a 413 is split. A batch to
   retry is released and the run stops: the next command's uploader tries again after a
   backoff (exponential, with jitter, at least the server's Retry-After up to a cap).
3. Before each send, the failure it might end in is already written down (the failure
   count, and the backoff as the spawn stamp's future mtime): a run that hangs until the
   watchdog kills it is then a failure like any other, not a license to retry at once. A
   delivery undoes it.

Nothing is printed: stdin, stdout and stderr are /dev/null. Every failure ends up as a kind
in ``upload.json``, which ``telemetry status`` shows.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from . import _paths
from ._settings import EnvSettings, decide, load_config
from ._spawn import UploaderOptions, next_spawn_at, running_uploader
from .sinks.base import Delivery, Sink
from .spool import Spool

DEADLINE: Final = 30.0
HARD_STOP_GRACE: Final = 5.0
MIN_TIME_FOR_A_BATCH: Final = 7.0
"""Connect and read timeouts together: with less time left, a send could be cut short after
the server stored the batch, and the batch would be sent again."""
LINGER: Final = 1.0
"""How long an uploader with an empty spool waits for more events before it exits, so that
one uploader serves a burst of commands (whose own spawns the stamp throttles)."""
BATCH_EVENTS: Final = 100
BATCH_BYTES: Final = 512 * 1024
BACKOFF_BASE: Final = 30.0
BACKOFF_CAP: Final = 6 * 3600.0
RETRY_AFTER_CAP: Final = 24 * 3600.0


def read_state(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: str, state: dict[str, Any]) -> None:
    _paths.write_private(path, json.dumps(state))


def backoff(failures: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds until the next attempt after ``failures`` consecutive failed runs."""
    exponent = min(max(0, failures - 1), 20)  # 2**20 * 30 s is far past the cap anyway
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0**exponent) * rng.uniform(0.5, 1.5)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def deliver(sinks: Sequence[Sink], events: list[dict[str, Any]], deadline: float) -> Delivery:
    """Send to every sink, each isolated from the others' failures; the worst outcome wins.

    (Remembering which sinks already have a batch, so that a retry skips them, comes with
    the providers.)
    """
    worst = Delivery("delivered")
    rank = {"delivered": 0, "rejected": 1, "retry": 2}
    for sink in sinks:
        try:
            result = sink.send(events, deadline)
        except Exception as exc:  # a sink's bug is that sink's failure
            result = Delivery("retry", f"sink_error:{type(exc).__name__}")
        if rank[result.outcome] > rank[worst.outcome] or (
            result.outcome == worst.outcome and result.retry_after
        ):
            worst = result
    return worst


def run(options: UploaderOptions, sinks: Sequence[Sink], *, deadline: float) -> str:
    """One uploader run; returns why it stopped: "busy", "disabled", "empty", "deadline"
    or "retry"."""

    paths = _paths.resolve(options["tool"])
    if not os.path.isdir(paths.spool_dir):
        return "empty"
    if running_uploader(paths.uploader_pid) is not None:
        return "busy"  # without even importing filelock
    from filelock import FileLock, Timeout

    lock = FileLock(paths.uploader_lock, timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        return "busy"
    try:
        _paths.write_private(paths.uploader_pid, str(os.getpid()))
        return _Run(options, sinks, paths, deadline).run()
    finally:
        try:
            os.unlink(paths.uploader_pid)  # a stale pid must never be signalled
        except OSError:
            pass
        lock.release()


class _Run:
    """The state of one run, holding the uploader lock."""

    def __init__(
        self, options: UploaderOptions, sinks: Sequence[Sink], paths: _paths.Paths, deadline: float
    ) -> None:
        self.options = options
        self.sinks = sinks
        self.paths = paths
        self.deadline = deadline
        self.spool = Spool(
            paths.spool_dir, max_events=options["max_events"], max_bytes=options["max_bytes"]
        )
        self.state = read_state(paths.upload_state)
        self.batch_events = BATCH_EVENTS

    def run(self) -> str:
        self.spool.release_all_claims()  # whoever claimed them is dead: we hold the lock
        idle_since = time.monotonic()
        freed = False
        while True:
            if not self._consented():
                return "disabled"
            if self.deadline - time.monotonic() < MIN_TIME_FOR_A_BATCH:
                return "deadline"  # not a failure: the next command's uploader goes on
            batch = self.spool.claim(self.batch_events, BATCH_BYTES)
            if batch is None:
                if time.monotonic() - idle_since < LINGER:
                    time.sleep(0.1)  # events of commands still running may yet arrive
                    continue
                if freed:
                    return "empty"
                # Free the throttle, then look once more: an event appended before that,
                # whose command saw the throttle and did not spawn, is still ours.
                next_spawn_at(self.paths.uploader_stamp, 0)
                freed = True
                continue
            if freed:  # we freed the throttle but go on: take it back
                next_spawn_at(self.paths.uploader_stamp, time.time())
                freed = False
            idle_since = time.monotonic()
            if not self._consented():  # disable may have run while we claimed
                self.spool.release(batch)
                return "disabled"
            outcome = self._send(batch)
            if outcome != "sent":
                return outcome

    def _send(self, batch: Any) -> str:
        failures = int(self.state.get("failures", 0)) + 1
        rng = random.Random()
        self._record_failure(failures, "interrupted", backoff(failures, None, rng))
        result = deliver(self.sinks, batch.events, self.deadline)
        if result.outcome == "delivered":
            self.spool.ack(batch)
            self.state.update(last_upload=_iso(time.time()), failures=0, last_error=None)
            self.state.pop("retry_at", None)
            write_state(self.paths.upload_state, self.state)
            next_spawn_at(self.paths.uploader_stamp, time.time())  # undo the pessimism
            return "sent"
        if result.error == "http_413" and len(batch.events) > 1:
            self.spool.release(batch)  # too large for this endpoint: try halves
            self.batch_events = max(1, len(batch.events) // 2)
            self.state["failures"] = failures - 1
            next_spawn_at(self.paths.uploader_stamp, time.time())
            return "sent"
        if result.outcome == "rejected":
            self.spool.ack(batch)
            self.spool.count(rejected=len(batch.events))
            self.state.update(failures=failures - 1, last_error=result.error)
            write_state(self.paths.upload_state, self.state)
            next_spawn_at(self.paths.uploader_stamp, time.time())
            return "sent"
        self.spool.release(batch)
        self._record_failure(failures, result.error, backoff(failures, result.retry_after, rng))
        return "retry"

    def _record_failure(self, failures: int, error: str | None, delay: float) -> None:
        self.state.update(failures=failures, last_error=error, retry_at=_iso(time.time() + delay))
        write_state(self.paths.upload_state, self.state)
        next_spawn_at(self.paths.uploader_stamp, time.time() + delay)

    def _consented(self) -> bool:
        options = self.options
        decision = decide(
            EnvSettings.read(options["env_prefix"]),
            lambda: load_config(self.paths.config_file),
            "prompt" if options["consent"] == "prompt" else "notice",
            options["policy_version"],
            options["tool"],
        )
        return decision.enabled and os.path.isdir(self.paths.spool_dir)


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def main() -> int:
    from ._spawn import OPTIONS_VARIABLE

    os.chdir("/")  # hold no directory of the user's (it could not be unmounted)
    options: UploaderOptions = json.loads(os.environ.pop(OPTIONS_VARIABLE))
    _watchdog(DEADLINE + HARD_STOP_GRACE)
    sink = _LazyHttpSink(options["endpoint"], options.get("token"))
    try:
        run(options, [sink], deadline=time.monotonic() + DEADLINE)
    except Exception as exc:  # nobody can see us: leave the kind where status shows it
        paths = _paths.resolve(options["tool"])
        try:
            state = read_state(paths.upload_state)
            failures = int(state.get("failures", 0)) + 1
            delay = backoff(failures, None, random.Random())
            state.update(failures=failures, last_error=f"internal:{type(exc).__name__}")
            write_state(paths.upload_state, state)
            next_spawn_at(paths.uploader_stamp, time.time() + delay)
        except OSError:
            pass
        return 1
    finally:
        sink.close()
    return 0


class _LazyHttpSink:
    """The HTTP sink, built on first send: an uploader that finds the lock taken (most of a
    burst's) exits without importing urllib3 (~65 ms of CPU on a machine the user is using)."""

    name = "http"

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint = endpoint
        self.token = token
        self._sink: Sink | None = None

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        if self._sink is None:
            from .sinks.http import HttpSink

            self._sink = HttpSink(self.endpoint, token=self.token)
        return self._sink.send(events, deadline)

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()


def _watchdog(seconds: float) -> None:
    """End the process after ``seconds``, whatever it is doing.

    The deadline is checked between batches and bounds each request's timeouts, but some
    waits escape socket timeouts (a DNS lookup; a server that drips its answer a byte at a
    time resets the read timeout with every byte): this makes the bound hard. The failure
    was written down before the send, and the batch in flight is released by the next
    uploader, so nothing is lost.
    """
    import threading

    def stop() -> None:
        time.sleep(seconds)
        os._exit(3)

    threading.Thread(target=stop, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
