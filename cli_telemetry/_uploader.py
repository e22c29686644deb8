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
   408/413/429) can never succeed: it is dropped for that sink and counted; a 413 is split.
   A sink that takes a batch but refuses some of its events (`Delivery.refused`) has the
   others; the refused ones are dropped for it and counted, and still go to the other
   sinks. Each event is counted once, however many sinks refuse it (`Spool.settle`). A
   batch to retry is released and the run stops: the next command's uploader tries again
   after a backoff (exponential, with jitter, at least the server's Retry-After up to a
   cap).
3. Before each send, the failure it might end in is already written down (the failure
   count, and the backoff as the spawn stamp's future mtime): a run that hangs until the
   watchdog kills it is then a failure like any other, not a license to retry at once. A
   delivery undoes it.

Nothing is printed: stdin, stdout and stderr are /dev/null. Every failure ends up as a kind
in ``upload.json``, which ``telemetry status`` shows.
"""

from __future__ import annotations

from ._spawn import lower_priority

if __name__ == "__main__":
    # Started as the uploader, not imported (a frozen app's uploader does this in
    # `_spawn.run_if_frozen_uploader`): before the imports below, most of the run's CPU.
    lower_priority()

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
from .delivery import BACKOFF_CAP, UploadState, deliver
from .sinks.base import PARTIAL, Delivery, Forgetting, Sink
from .spool import Batch, Spool

DEADLINE: Final = 30.0
HARD_STOP_GRACE: Final = 5.0
MIN_TIME_FOR_A_BATCH: Final = 7.0
"""Connect and read timeouts together: with less time left, a send could be cut short after
the server stored the batch, and the batch would be sent again."""
SEND_TIMEOUT: Final = MIN_TIME_FOR_A_BATCH
"""How long one send to one sink may take: past it, the sink counts as timed out (a custom
provider may ignore its deadline) and the run goes on with the others."""
LINGER: Final = 1.0
"""How long an uploader with an empty spool waits for more events before it exits, so that
one uploader serves a burst of commands (whose own spawns the stamp throttles)."""
CLOSE_TIMEOUT: Final = 2.0
BATCH_EVENTS: Final = 100
BATCH_BYTES: Final = 512 * 1024
CREDENTIAL_ERRORS: Final = frozenset({"http_401", "http_403", "http_404"})
"""A sink that refuses a deletion request with these refuses the token or the address (a
token rotated in a later release of the tool, a collector moved), not the request: unlike
an event, the request is not dropped for it, but waits with the backoff, up to its lifetime
(`cli_telemetry.deletion.LIFETIME`)."""


def well_formed(event: dict[str, Any]) -> bool:
    """An event of the schema, as the collector would accept it (`events.check_event`),
    once the fields the schema has withdrawn are taken out of it (`events.drop_withdrawn`).

    The library writes nothing else, but the spool may hold a damaged or foreign file, or
    an event written before an upgrade changed the rules: every sink is sent only what the
    schema allows (a provider would store whatever an event holds), and such a file is
    dropped and counted, not retried ahead of every other event for good."""
    from .events import InvalidEvent, check_event, drop_withdrawn

    drop_withdrawn(event)
    try:
        check_event(event)
    except InvalidEvent:
        return False
    return True


def run(options: UploaderOptions, sinks: Sequence[Sink], *, deadline: float) -> str:
    """One uploader run; returns why it stopped: "busy", "disabled", "empty", "deadline",
    "forgotten" (the last deletion request of a ``disable`` reached every sink, and nothing
    of ours is left), "retry" (a sink is backing off: what it lacks waits in the spool) or
    "untrusted" (the directories changed hands since the command looked, see
    `_paths.untrusted`)."""

    paths = _paths.resolve(options["tool"])
    if paths.testing:
        return "disabled"  # a test's events are for the test to read, never sent
    if not os.path.isdir(paths.spool_dir) and not os.path.exists(paths.deletion_file):
        return "empty"
    if _paths.untrusted(paths) is not None:
        return "untrusted"
    if running_uploader(paths.uploader_pid) is not None:
        return "busy"  # without even importing filelock
    now = time.time()
    names = [sink.name for sink in sinks]
    state = UploadState.load(paths.upload_state, now=now)
    if sinks and not state.ready(names, now):
        # Every sink is backing off (the throttle was reset, or commands raced it): leave
        # as cheaply as we came, and tell the next commands when to try again.
        next_spawn_at(paths.uploader_stamp, state.next_attempt(names, now))
        return "retry"
    from filelock import FileLock, Timeout

    lock = FileLock(paths.uploader_lock, timeout=0, mode=0o600)
    try:
        lock.acquire()
    except Timeout:
        return "busy"
    result = "crashed"
    try:
        _paths.write_private(paths.uploader_pid, str(os.getpid()))
        # upload.json is read again under the lock: a run that ended meanwhile rewrote it.
        result = _Run(options, sinks, paths, deadline).run()
        return result
    finally:
        try:
            os.unlink(paths.uploader_pid)  # a stale pid must never be signalled
        except OSError:
            pass
        if result == "forgotten":
            _leave_nothing(paths)
        lock.release()


def _leave_nothing(paths: _paths.Paths) -> None:
    """After the last deletion request of a ``disable`` has reached every sink (and nothing
    was enabled since): delete what the runs that sent it left, as ``disable`` deleted the
    rest, so that no file of ours stays behind. Holding the lock: no other run is here."""
    for path in (paths.upload_state, paths.uploader_stamp, paths.uploader_lock):
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        os.rmdir(paths.state_dir)  # only if empty: a file someone else put there stays
    except OSError:
        pass


class _Run:
    """The state of one run, holding the uploader lock (``upload.json`` is
    `cli_telemetry.delivery.UploadState`)."""

    def __init__(
        self, options: UploaderOptions, sinks: Sequence[Sink], paths: _paths.Paths, deadline: float
    ) -> None:
        self.options = options
        self.sinks = list(sinks)
        self.names = [sink.name for sink in sinks]
        self.paths = paths
        self.deadline = deadline
        self.spool = Spool(
            paths.spool_dir, max_events=options["max_events"], max_bytes=options["max_bytes"]
        )
        self.state = UploadState.load(paths.upload_state)
        self.batch_events = BATCH_EVENTS
        self.hung: set[str] = set()
        self.rng = random.Random()

    def run(self) -> str:
        _paths.remove_stale_temporaries(self.paths.state_dir, time.time())
        if os.path.exists(self.paths.deletion_file):
            self._forget()  # first, and whatever the consent: see `cli_telemetry.deletion`
            if not os.path.exists(self.paths.deletion_file) and not os.path.isdir(
                self.paths.spool_dir
            ):
                return "forgotten"  # every sink has it, and telemetry is still off
        self.spool.release_all_claims()  # whoever claimed them is dead: we hold the lock
        idle_since = time.monotonic()
        freed = False
        seen: set[str] = set()  # events this run handled: those still here wait for others
        while True:
            if not self._consented():
                return "disabled"
            if self.deadline - time.monotonic() < MIN_TIME_FOR_A_BATCH:
                return "deadline"  # not a failure: the next command's uploader goes on
            ready = self._ready()
            if not ready:
                self._set_stamp()
                return "retry"
            batch = self.spool.claim(self.batch_events, BATCH_BYTES, skip=seen)
            if batch is None:
                if time.monotonic() - idle_since < LINGER:
                    time.sleep(0.1)  # events of commands still running may yet arrive
                    continue
                if freed:
                    return "retry" if len(self._ready()) < len(self.sinks) else "empty"
                # Free the throttle, then look once more: an event appended before that,
                # whose command saw the throttle and did not spawn, is still ours.
                self._set_stamp(free=True)
                freed = True
                continue
            if freed:  # we freed the throttle but go on: take it back
                next_spawn_at(self.paths.uploader_stamp, time.time())
                freed = False
            idle_since = time.monotonic()
            if not self._consented():  # disable may have run while we claimed
                self.spool.release(batch)
                return "disabled"
            seen.update(batch.names)
            retry_names = self._send(batch, ready)
            seen.difference_update(retry_names)

    def _forget(self) -> None:
        """Hand the waiting deletion requests to the ready sinks that lack them; a sink
        that cannot take deletions (no ``forget``) is done with them at once. Requests past
        their lifetime go unsent."""
        from . import deletion

        now = time.time()
        pending = [p for p in deletion.read(self.paths.deletion_file) if not p.expired(now)]
        ready = self._ready()
        forgetting = {
            sink.name: forgetter for sink in ready if (forgetter := _forgetting(sink)) is not None
        }
        unable = {sink.name for sink in ready} - set(forgetting)
        work: list[tuple[Sink, list[dict[str, Any]]]] = []
        for name, forgetter in forgetting.items():
            requests = [dict(p.request) for p in pending if name in p.waiting_for()]
            if requests:
                work.append((_Forgetter(forgetter), requests))
        before = {sink.name: self.state.snapshot(sink.name) for sink, _ in work}
        for sink, _ in work:
            failures = self.state.failures(sink.name) + 1
            self.state.record_failure(sink.name, failures, "interrupted", None, self.rng)
        if work:
            self._save()
        results = deliver(work, min(self.deadline, time.monotonic() + SEND_TIMEOUT))
        done = set(unable)
        for sink, _ in work:
            result = results[sink.name]
            if result.outcome == "delivered":
                done.add(sink.name)  # taken (or refused in its answer: never taken)
                self.state.record_delivery(sink.name, error=None)
            elif result.outcome == "rejected" and result.error not in CREDENTIAL_ERRORS:
                done.add(sink.name)  # refused for good (a 400): it can never take it
                self.state.record_refusal(sink.name, before[sink.name], result.error)
            else:  # a failure, or our credentials refused: it waits, with the backoff
                failures = self.state.failures(sink.name)
                self.state.record_failure(
                    sink.name, failures, result.error, result.retry_after, self.rng
                )
                if sink.name in results.unanswered:
                    self.hung.add(sink.name)
        pending = [p.with_done(done) for p in pending]
        waiting = [p for p in pending if p.waiting_for()]
        deletion.write(self.paths.deletion_file, waiting)
        if work:
            self._save()
        if waiting:
            # The next spawn: when the first sink of this run that lacks one may try again;
            # if only sinks this run does not have lack it, not before the backoff's cap
            # (a command that has them starts an uploader then, or status does).
            lacking = {name for p in waiting for name in p.waiting_for()}
            here = sorted(lacking & set(self.names))
            at = self.state.next_attempt(here, now) if here else now + BACKOFF_CAP
            next_spawn_at(self.paths.uploader_stamp, at)

    def _ready(self) -> list[Sink]:
        """The sinks not backing off (and not hung in this run)."""
        ready = set(self.state.ready(self.names, time.time())) - self.hung
        return [sink for sink in self.sinks if sink.name in ready]

    def _send(self, batch: Batch, ready: list[Sink]) -> list[str]:
        """Send the batch to the ready sinks that lack its events; settle it. Returns the
        names of events to claim again in this run (after a 413, in smaller batches)."""
        malformed = {
            name
            for event, name in zip(batch.events, batch.names, strict=True)
            if not well_formed(event)
        }
        # An event the schema refuses is refused for good, here as the collector would:
        # no sink is sent it (it is dropped for all of them and counted as rejected, once).
        # Our own writer never makes one; a damaged file, or one from before an upgrade, can.
        work = []
        owed: dict[str, list[str]] = {}  # the file names of the events each sink is sent
        for sink in ready:
            pairs = [
                (event, name)
                for event, name in zip(batch.events, batch.names, strict=True)
                if sink.name not in batch.delivered.get(name, ()) and name not in malformed
            ]
            if pairs:
                work.append((sink, [event for event, _ in pairs]))
                owed[sink.name] = [name for _, name in pairs]
        # The failure each send might end in is written down first (see the module doc).
        before = {sink.name: self.state.snapshot(sink.name) for sink, _ in work}
        for sink, _ in work:
            failures = self.state.failures(sink.name) + 1
            self.state.record_failure(sink.name, failures, "interrupted", None, self.rng)
        if work:
            self._save()
        results = deliver(work, min(self.deadline, time.monotonic() + SEND_TIMEOUT))
        everyone = set(self.names)
        have: dict[str, set[str]] = {
            name: set(everyone) if name in malformed else set() for name in batch.names
        }
        refused: set[str] = set(malformed)  # refused for good by a sink or the schema
        unattributed = 0  # and those it refused without saying which (counted as they are)
        again: list[str] = []
        for sink, events in work:
            result, names = results[sink.name], owed[sink.name]
            if result.outcome == "delivered":
                for name in names:
                    have[name].add(sink.name)  # taken, or refused: it is done with them
                named = {names[i] for i in result.refused if 0 <= i < len(names)}
                refused |= named
                unattributed += min(result.unattributed, len(names) - len(named))
                partly = bool(named or result.unattributed)
                self.state.record_delivery(
                    sink.name, error=(result.error or PARTIAL) if partly else None
                )
            elif result.error == "http_413" and len(events) > 1:
                self.state.restore(sink.name, before[sink.name])  # not a failure
                self.batch_events = max(1, len(batch.events) // 2)  # too large: try halves
                again = batch.names
            elif result.outcome == "rejected":
                for name in names:
                    have[name].add(sink.name)  # it will never take them: dropped for it
                refused.update(names)
                self.state.record_refusal(sink.name, before[sink.name], result.error)
            else:
                failures = self.state.failures(sink.name)
                self.state.record_failure(
                    sink.name, failures, result.error, result.retry_after, self.rng
                )
                if sink.name in results.unanswered:
                    self.hung.add(sink.name)  # its thread may still be sending: leave it be
        self._save()
        self.spool.settle(batch, have, self.names, refused=refused, unattributed=unattributed)
        return again

    def _save(self) -> None:
        self.state.summarise(self.names)
        self.state.save(self.paths.upload_state)
        self._set_stamp()

    def _set_stamp(self, *, free: bool = False) -> None:
        """The next spawn time: at once (subject to the throttle) while a sink can take
        events, else when the first backing-off sink may try again."""
        now = time.time()
        at = self.state.next_attempt(self.names, now)
        next_spawn_at(self.paths.uploader_stamp, 0 if free and at <= now else at)

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


def main() -> int:
    from ._spawn import OPTIONS_VARIABLE

    os.chdir("/")  # hold no directory of the user's (it could not be unmounted)
    options: UploaderOptions = json.loads(os.environ.pop(OPTIONS_VARIABLE))
    _watchdog(DEADLINE + HARD_STOP_GRACE)
    sinks = [_LazySink(spec) for spec in options["sinks"]]
    try:
        run(options, sinks, deadline=time.monotonic() + DEADLINE)
    except Exception as exc:  # nobody can see us: leave the kind where status shows it
        paths = _paths.resolve(options["tool"])
        try:
            state = UploadState.load(paths.upload_state)
            retry_at = state.record_crash(f"internal:{type(exc).__name__}", random.Random())
            state.save(paths.upload_state)
            next_spawn_at(paths.uploader_stamp, retry_at)
        except OSError:
            pass
        return 1
    finally:
        _close(sinks)
    return 0


def _close(sinks: Sequence[Sink]) -> None:
    """Close every sink, each bounded: a custom provider whose close hangs must not keep
    the process alive until the watchdog."""
    import threading

    threads = [threading.Thread(target=sink.close, daemon=True) for sink in sinks]
    for thread in threads:
        thread.start()
    end = time.monotonic() + CLOSE_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))


class _LazySink:
    """A sink built on its first use: an uploader that finds the lock taken (most of a
    burst's) exits without importing urllib3 (~65 ms of CPU on a machine the user is
    using), and a custom provider that cannot be imported is that sink's failure alone."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.name = str(spec["name"])
        self._sink: Sink | None = None
        self._error: Delivery | None = None

    def built(self) -> Sink | Delivery:
        """The sink, or the failure to build it (tried once per run)."""
        if self._sink is None and self._error is None:
            from .providers import Provider

            try:
                self._sink = Provider.from_json(self.spec).build()
            except Exception as exc:
                self._error = Delivery("retry", f"load_error:{type(exc).__name__}")
        return self._sink if self._sink is not None else self._error  # type: ignore[return-value]

    def send(self, events: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        sink = self.built()
        return sink if isinstance(sink, Delivery) else sink.send(events, deadline)

    def forget(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        sink = self.built()
        if isinstance(sink, Delivery):
            return sink
        if not isinstance(sink, Forgetting):  # `_forgetting` never hands one over
            return Delivery("rejected", "no_deletions")
        return sink.forget(requests, deadline)

    def close(self) -> None:
        if self._sink is not None:
            try:
                self._sink.close()
            except Exception:
                pass


def _forgetting(sink: Sink) -> Forgetting | None:
    """``sink``, if it passes deletion requests on (`Forgetting`), else None. A lazy sink
    is built to know; one that cannot be built is kept, and fails as a send would."""
    if isinstance(sink, _LazySink):
        inner = sink.built()
        return sink if isinstance(inner, (Delivery, Forgetting)) else None
    return sink if isinstance(sink, Forgetting) else None


class _Forgetter:
    """A sink's ``forget`` in the shape `deliver` calls (``send``)."""

    def __init__(self, sink: Forgetting) -> None:
        self.name = sink.name
        self._sink = sink

    def send(self, requests: Sequence[dict[str, Any]], deadline: float) -> Delivery:
        return self._sink.forget(requests, deadline)

    def close(self) -> None:
        pass


def _watchdog(seconds: float) -> None:
    """End the process after ``seconds``, whatever it is doing.

    The deadline is checked between batches, and each HTTP request is cut short at it
    however slowly a server answers (`cli_telemetry.sinks.http`), but some waits escape
    every socket: a DNS lookup that hangs, a custom provider that ignores its deadline.
    This makes the bound hard for them. The failure was written down before the send, and
    the batch in flight is released by the next uploader, so nothing is lost.
    """
    import threading

    def stop() -> None:
        time.sleep(seconds)
        os._exit(3)

    threading.Thread(target=stop, daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
