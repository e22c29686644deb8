"""The background uploader: ``python -m cli_telemetry._uploader '<json options>'``.

Started detached by `_spawn.spawn_uploader` after a command that recorded events. It may
import what it likes (urllib3, filelock, json): none of it is in the command's process.

One run, in order:

1. Take the uploader lock without waiting: if another uploader holds it, exit. So at most
   one uploader runs per tool and user, and whatever is claimed in the spool when the lock
   is won belongs to an uploader that died: it is released at once (nothing is stuck, and
   no live uploader can be sending the same batch).
2. Until the spool is empty, the deadline (30 s) passes, or a batch fails: check consent
   again (``telemetry disable`` or DO_NOT_TRACK since the command stop it), claim a batch,
   send it to every sink, acknowledge it only when delivered. A rejected batch (a 4xx other
   than 408/429) can never succeed: it is dropped and counted. A batch to retry is released,
   and the run stops: the next command's uploader tries again after a backoff (exponential,
   with jitter, at least the server's Retry-After up to a cap), written as the future mtime
   of the spawn stamp that commands look at.
3. Record the outcome for ``telemetry status``: last upload, last error (a kind, never a
   message), consecutive failures.

Nothing is printed: stdin, stdout and stderr are /dev/null. Every failure ends up as a kind
in ``upload.json``.
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
from .sinks.base import Delivery, Sink
from .spool import Spool

DEADLINE: Final = 30.0
HARD_STOP_GRACE: Final = 5.0
LINGER: Final = 1.0
"""How long an uploader with an empty spool waits for more events before it exits, so that
one uploader serves a burst of commands (whose own spawns the stamp throttles)."""
BATCH_EVENTS: Final = 100
BATCH_BYTES: Final = 512 * 1024
BACKOFF_BASE: Final = 30.0
BACKOFF_CAP: Final = 6 * 3600.0
RETRY_AFTER_CAP: Final = 24 * 3600.0


class Options:
    """What the command passes to its uploader: enough to act without importing the tool."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.tool: str = data["tool"]
        self.env_prefix: str = data["env_prefix"]
        self.consent: Any = data["consent"]
        self.policy_version: int = data["policy_version"]
        self.endpoint: str = data["endpoint"]
        self.max_events: int = data["max_events"]
        self.max_bytes: int = data["max_bytes"]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))


def read_state(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_state(path: str, state: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def backoff(failures: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds until the next attempt after ``failures`` consecutive failed runs."""
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(0, failures - 1))
    delay *= rng.uniform(0.5, 1.5)
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


def run(options: Options, sinks: Sequence[Sink], *, deadline: float) -> str:
    """One uploader run; returns why it stopped (for tests): "busy", "disabled", "empty",
    "deadline", "retry" or "error"."""
    from filelock import FileLock, Timeout

    paths = _paths.resolve(options.tool)
    if not os.path.isdir(paths.spool_dir):
        return "empty"
    lock = FileLock(paths.uploader_lock, timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        return "busy"
    try:
        fd = os.open(paths.uploader_pid, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        return _run_locked(options, sinks, paths, deadline)
    finally:
        try:
            os.unlink(paths.uploader_pid)  # a stale pid must never be signalled
        except OSError:
            pass
        lock.release()


def _run_locked(
    options: Options, sinks: Sequence[Sink], paths: _paths.Paths, deadline: float
) -> str:
    spool = Spool(paths.spool_dir, max_events=options.max_events, max_bytes=options.max_bytes)
    spool.release_all_claims()  # whoever claimed them is dead: we hold the uploader lock
    state = read_state(paths.upload_state)
    reason = "empty"
    idle_since = time.monotonic()
    while True:
        if not _consented(options, paths):
            reason = "disabled"
            break
        if time.monotonic() >= deadline:
            reason = "deadline"
            break
        batch = spool.claim(BATCH_EVENTS, BATCH_BYTES)
        if batch is None:
            if time.monotonic() - idle_since >= LINGER:
                break
            time.sleep(0.1)  # events of commands still running may yet arrive
            continue
        idle_since = time.monotonic()
        state["last_attempt"] = _iso(time.time())
        if not _consented(options, paths):  # disable may have run while we claimed
            spool.release(batch)
            reason = "disabled"
            break
        result = deliver(sinks, batch.events, deadline)
        if result.outcome == "delivered":
            spool.ack(batch)
            state.update(last_upload=_iso(time.time()), failures=0, last_error=None)
            write_state(paths.upload_state, state)  # status is current while we linger
        elif result.outcome == "rejected":
            spool.ack(batch)
            spool.count(rejected=len(batch.events))
            state["last_error"] = result.error
        else:
            spool.release(batch)
            failures = int(state.get("failures", 0)) + 1
            delay = backoff(failures, result.retry_after, random.Random())
            state.update(
                failures=failures, last_error=result.error, retry_at=_iso(time.time() + delay)
            )
            _touch(paths.uploader_stamp, time.time() + delay)
            reason = "retry"
            break
    write_state(paths.upload_state, state)
    if reason == "empty":
        _touch(paths.uploader_stamp, 0)  # the next command may start an uploader at once
    return reason


def _consented(options: Options, paths: _paths.Paths) -> bool:
    env = EnvSettings.read(options.env_prefix)
    decision = decide(
        env,
        lambda: load_config(paths.config_file),
        options.consent,
        options.policy_version,
        options.tool,
    )
    return decision.enabled and os.path.isdir(paths.spool_dir)


def _touch(path: str, mtime: float) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.utime(path, (mtime, mtime))


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def main() -> int:
    from ._spawn import OPTIONS_VARIABLE
    from .sinks.http import HttpSink

    options = Options(json.loads(os.environ.pop(OPTIONS_VARIABLE)))
    _watchdog(DEADLINE + HARD_STOP_GRACE)

    sink = HttpSink(options.endpoint)
    try:
        run(options, [sink], deadline=time.monotonic() + DEADLINE)
    except Exception as exc:  # nobody can see us: leave the kind where status shows it
        paths = _paths.resolve(options.tool)
        try:
            state = read_state(paths.upload_state)
            state["last_error"] = f"internal:{type(exc).__name__}"
            write_state(paths.upload_state, state)
        except OSError:
            pass
        return 1
    finally:
        sink.close()
    return 0


def _watchdog(seconds: float) -> None:
    """End the process after ``seconds``, whatever it is doing.

    The deadline is checked between batches and bounds each request's timeouts, but some
    waits escape socket timeouts (a DNS lookup, a TLS library): this makes the bound hard.
    A batch in flight is released by the next uploader, so nothing is lost.
    """
    import threading

    def stop() -> None:
        time.sleep(seconds)
        os._exit(3)

    threading.Thread(target=stop, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
