"""The on-disk spool: append on the hot path, claim/acknowledge/release for the uploader.

Layout, all owner-only (0700 directories, 0600 files)::

    spool/
      tmp/                 events being written
      new/                 one event per file, named <time_ns>-<random>.json (sorts oldest first)
      claimed/<batch id>/  events an uploader is sending
      stats.json           counters: events dropped by the bounds, corrupt files removed,
                           events refused for good (each counted once, see `settle`)
      delivered.json       which sinks already have which waiting events, and which of
                           those a sink refused (and were counted already): see `settle`
      .lock                the filelock that serialises whole-spool operations

Why a file per event: ``append`` writes the event to ``tmp/`` and renames it into ``new/``.
A rename is atomic, so a reader sees a whole event or nothing, concurrent writers never
touch the same file, and a crash mid-write leaves at most one stray temp file. The hot path
therefore needs no lock, and no filelock import (~17-30 ms). The lock serialises the
operations that move or delete many files: trim, claim, acknowledge, release and purge.

Nothing here trusts a file it did not make (the spool's directory itself is checked by
`cli_telemetry._paths.untrusted` before a run uses it): an event file is read without
following a link, only if it is a regular file, and only up to the size an event can have,
so a link to /dev/zero or a FIFO in ``new/`` is dropped as corrupt instead of exhausting or
hanging the uploader; only real directories in ``claimed/`` are batches, so a link there
moves or deletes nothing elsewhere.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Container, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from . import _append
from ._append import DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES
from ._append import DEFAULT_MAX_EVENTS as DEFAULT_MAX_EVENTS
from ._append import event_file_name as event_file_name
from ._paths import make_private_dir
from ._values import MAX_EVENT_BYTES, Record


def is_event_file(name: str) -> bool:
    """A name `event_file_name` made. Plain string tests, not a regex, because compiling
    one costs ~0.1 ms at import on the hot path."""
    return (
        len(name) == 46
        and name[20] == "-"
        and name[33] == "-"
        and name.endswith(".json")
        and name[:20].isascii()
        and name[:20].isdigit()
        and name[34:41].isascii()
        and name[34:41].isdigit()
        and all(c in "0123456789abcdef" for c in name[21:33])
    )


LOW_WATER: Final = 0.9
"""Trimming goes down to 90% of a bound, so a full spool pays the lock once per ~10% of its
capacity instead of on every invocation."""

STATE_FILE_LIMIT: Final = 64 * 1024 * 1024
"""``stats.json`` and ``delivered.json`` are read whole: a few bytes per waiting event at
most, so a file past this is not ours (it counts as corrupt)."""

STALE_TMP_SECONDS: Final = 3600.0
DEFAULT_CLAIM_TIMEOUT: Final = 600.0
"""A claimed batch older than this belonged to an uploader that died: put it back. It is far
longer than the uploader's own total deadline, so a live uploader never loses its batch."""


def _ignore(message: str) -> None:
    pass


class Batch(Record):
    """Events claimed by one uploader; ``ack``, ``release`` or ``settle`` it exactly once.

    ``delivered`` maps an event's file name to the sinks that already have it (an earlier
    run delivered it to them, or they refused it for good), so a retry skips them.
    ``refused`` names those of its events that a sink has refused already (and that were
    counted then)."""

    __slots__ = ("batch_id", "delivered", "events", "names", "refused")

    def __init__(
        self,
        batch_id: str,
        events: list[dict[str, Any]],
        names: list[str],
        delivered: dict[str, frozenset[str]] | None = None,
        refused: frozenset[str] = frozenset(),
    ) -> None:
        self.batch_id: Final = batch_id
        self.events: Final = events
        self.names: Final = names
        self.delivered: Final = delivered or {}
        self.refused: Final = refused


class SpoolStats(Record):
    """Events waiting (new and claimed), and the counters of what was lost, and why:
    dropped by the bounds, corrupt files removed, rejected for good (by one sink or more:
    each event once, see `Spool.settle`)."""

    __slots__ = ("corrupt", "dropped", "pending", "rejected")

    def __init__(self, pending: int, dropped: int, corrupt: int, rejected: int = 0) -> None:
        self.pending: Final = pending
        self.dropped: Final = dropped
        self.corrupt: Final = corrupt
        self.rejected: Final = rejected


class Spool:
    """One tool's spool directory. ``report`` receives debug messages (skips, drops)."""

    def __init__(
        self,
        directory: str,
        *,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        claim_timeout: float = DEFAULT_CLAIM_TIMEOUT,
        lock_timeout: float = 10.0,
        report: Callable[[str], None] = _ignore,
    ) -> None:
        self.directory = directory
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.claim_timeout = claim_timeout
        self.lock_timeout = lock_timeout
        self.report = report
        self._tmp = os.path.join(directory, "tmp")
        self._new = os.path.join(directory, "new")
        self._claimed = os.path.join(directory, "claimed")
        self._stats = os.path.join(directory, "stats.json")
        self._delivered = os.path.join(directory, "delivered.json")
        self._last_ns = 0

    # -- the hot path: no lock, no import ------------------------------------------------

    def append(self, events: list[bytes]) -> list[str]:
        """Add encoded events atomically, then keep the spool within its bounds; returns
        the events' file names (for `discard`). A recorded run calls `_append` itself and
        never imports this module unless the spool is past a bound."""
        appended = _append.append(self.directory, events, self._last_ns)
        if appended:
            self._last_ns = int(appended[-1][:20])
        if _append.over_bounds(self.directory, self.max_events, self.max_bytes):
            self.trim(wait=False)
        return appended

    def discard(self, names: list[str]) -> None:
        """Delete the waiting events ``names`` (returned by `append`), those still there."""
        for name in names:
            _unlink(os.path.join(self._new, name))

    def _new_names(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self._new) if is_event_file(n))
        except OSError:  # missing, or unreadable: `telemetry status` must still answer
            return []

    def _batch_dirs(self) -> list[str]:
        """The claimed batches: real directories only. Anything else in ``claimed/`` (a
        link, which could lead anywhere) is no batch: never listed, moved from or emptied."""
        try:
            with os.scandir(self._claimed) as entries:
                return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        except OSError:
            return []

    # -- whole-spool operations, under the lock ----------------------------------------

    @contextmanager
    def _locked(self, timeout: float) -> Iterator[bool]:
        """Hold the spool lock; yields False (without the lock) if it could not be had."""
        from filelock import FileLock, Timeout

        make_private_dir(self.directory)
        lock = FileLock(os.path.join(self.directory, ".lock"), timeout=timeout, mode=0o600)
        try:
            lock.acquire()
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def trim(self, *, wait: bool = True) -> int:
        """Drop the oldest events until the spool is back under its low-water mark.

        Returns how many were dropped. With ``wait=False`` (the hot path) a busy lock means
        another process is already working on the spool, and this one moves on.
        """
        with self._locked(self.lock_timeout if wait else 0.0) as held:
            if not held:
                return 0
            names = self._new_names()
            sizes = [_size(os.path.join(self._new, name)) for name in names]
            total = sum(sizes)
            keep_events = max(1, int(self.max_events * LOW_WATER))
            keep_bytes = self.max_bytes * LOW_WATER
            oldest_kept = 0
            # The newest event always stays: it is the one just recorded.
            while oldest_kept < len(names) - 1 and (
                len(names) - oldest_kept > keep_events or total > keep_bytes
            ):
                total -= sizes[oldest_kept]
                oldest_kept += 1
            dropped = sum(_unlink(os.path.join(self._new, n)) for n in names[:oldest_kept])
            if dropped:
                self.report(f"spool full: dropped the {dropped} oldest events")
                self._add_stats(dropped=dropped)
            return dropped

    def claim(
        self, max_events: int = 100, max_bytes: int = 500_000, *, skip: Container[str] = ()
    ) -> Batch | None:
        """Move the oldest events (but those named in ``skip``) into a new claimed batch;
        None when there are none.

        Corrupt or truncated event files are removed (and counted); files that are not ours
        are left alone. Both are reported.
        """
        if not os.path.isdir(self.directory):
            return None
        with self._locked(self.lock_timeout) as held:
            if not held:
                self.report("spool lock busy; not claiming")
                return None
            self._release_stale()
            self._remove_stale_tmp()
            batch_id = f"{time.time_ns():020d}-{os.urandom(4).hex()}"
            claim_dir = os.path.join(self._claimed, batch_id)
            events: list[dict[str, Any]] = []
            names: list[str] = []
            size = 0
            corrupt = 0
            for name in self._new_names():
                if len(events) >= max_events:
                    break
                if name in skip:
                    continue
                path = os.path.join(self._new, name)
                event, length = _read_event(path)
                if event is None:
                    self.report(f"skipped corrupt spool file {name}")
                    corrupt += _unlink(path)
                    continue
                if events and size + length > max_bytes:
                    break
                if not names:
                    make_private_dir(claim_dir)
                os.replace(path, os.path.join(claim_dir, name))
                events.append(event)
                names.append(name)
                size += length
            self._report_foreign()
            if corrupt:
                self._add_stats(corrupt=corrupt)
            if not events:
                return None
            marks, refused = self._read_delivered()
            delivered = {n: frozenset(marks[n]) for n in names if n in marks}
            return Batch(batch_id, events, names, delivered, frozenset(refused & set(names)))

    def ack(self, batch: Batch) -> None:
        """The batch was delivered: delete it.

        Raises SpoolBusyError if the lock stays busy for ``lock_timeout``."""
        with self._locked(self.lock_timeout) as held:
            _require(held)
            claim_dir = os.path.join(self._claimed, batch.batch_id)
            for name in batch.names:
                _unlink(os.path.join(claim_dir, name))
            _rmdir(claim_dir)
            if batch.delivered or batch.refused:
                marks, refused = self._read_delivered()
                for name in batch.names:
                    marks.pop(name, None)
                self._write_delivered(marks, refused - set(batch.names))

    def release(self, batch: Batch) -> None:
        """The batch was not delivered: put its events back, in their original order.

        Raises SpoolBusyError if the lock stays busy for ``lock_timeout`` (the batch is then
        released later, as a stale claim)."""
        with self._locked(self.lock_timeout) as held:
            _require(held)
            self._release_dir(os.path.join(self._claimed, batch.batch_id))

    def settle(
        self,
        batch: Batch,
        have: Mapping[str, Collection[str]],
        needed: Collection[str],
        *,
        refused: Collection[str] = (),
        unattributed: int = 0,
    ) -> int:
        """Delete the batch's events that every ``needed`` sink now has (``have`` maps an
        event's file name to the sinks that have it, or refused it for good), and put the
        others back, remembering who has them: an event leaves the spool only when every
        sink has it, and is never sent again to a sink that has it. Returns how many events
        were deleted.

        ``refused`` names the events a sink refused for good in this attempt. Each is
        counted as rejected once, the first time any sink refuses it: an event that stays
        for other sinks is remembered as refused (in ``delivered.json``), so that a second
        sink refusing it, in this run or a later one, does not count it again (were those
        marks lost, it would be). ``unattributed`` refusals (a service that said how many,
        not which) are added as they are: nothing tells whether another sink refused the
        same events, so they cannot be de-duplicated.

        Raises SpoolBusyError if the lock stays busy (the batch is then released later as a
        stale claim, and its sinks are sent it again: they de-duplicate on ``event_id``)."""
        wanted = set(needed)
        refusing = set(refused) & set(batch.names)
        with self._locked(self.lock_timeout) as held:
            _require(held)
            claim_dir = os.path.join(self._claimed, batch.batch_id)
            marks, counted = self._read_delivered()
            counted |= batch.refused
            newly = refusing - counted
            done = 0
            for name in batch.names:
                sinks = set(have.get(name, ())) | set(batch.delivered.get(name, ()))
                path = os.path.join(claim_dir, name)
                if wanted <= sinks:
                    done += _unlink(path)
                    marks.pop(name, None)
                    counted.discard(name)
                    continue
                if sinks:
                    marks[name] = sorted(sinks)
                if name in refusing:
                    counted.add(name)
                try:
                    os.replace(path, os.path.join(self._new, name))
                except OSError:
                    pass
            _rmdir(claim_dir)
            self._write_delivered(marks, counted)
            if newly or unattributed > 0:
                self._add_stats(rejected=len(newly) + max(0, unattributed))
            return done

    def release_all_claims(self) -> int:
        """Put every claimed batch back; returns how many events.

        Only for the one uploader that holds the uploader lock: it knows every other
        claimer is dead, so it need not wait for `claim_timeout`."""
        if not os.path.isdir(self._claimed):
            return 0
        with self._locked(self.lock_timeout) as held:
            _require(held)
            count = 0
            for batch_dir in self._batch_dirs():
                path = os.path.join(self._claimed, batch_dir)
                count += len(_listdir(path))
                self._release_dir(path)
            if count:
                self.report(f"released {count} events claimed by an uploader that stopped")
            return count

    def count(self, **increments: int) -> None:
        """Add to the spool's counters (``corrupt=n`` for events no sink could map). Events a
        sink refused are counted by `settle`, once each."""
        with self._locked(self.lock_timeout) as held:
            _require(held)
            self._add_stats(**increments)

    def purge(self, *, remove: bool = False) -> int:
        """Delete every event, pending or claimed, and the counters. Returns the count.

        With ``remove``, the spool's directories and lock file go too, while the lock is
        still held (filelock notices an unlinked lock file and starts over). Raises
        SpoolBusyError if the lock stays busy.
        """
        if not os.path.isdir(self.directory):
            return 0
        with self._locked(self.lock_timeout) as held:
            _require(held)
            count = 0
            for name in self._new_names():
                count += _unlink(os.path.join(self._new, name))
            batches = set(self._batch_dirs())
            for batch_dir in _listdir(self._claimed):
                path = os.path.join(self._claimed, batch_dir)
                if batch_dir not in batches:
                    _unlink(path)  # a link (or a stray file): removed, never followed
                    continue
                for name in _listdir(path):
                    count += _unlink(os.path.join(path, name))
                _rmdir(path)
            for name in _listdir(self._tmp):
                _unlink(os.path.join(self._tmp, name))
            _unlink(self._stats)
            _unlink(self._delivered)
            if remove:
                for directory in (self._new, self._claimed, self._tmp):
                    _rmdir(directory)  # only if empty: a file someone else put there stays
                _unlink(os.path.join(self.directory, ".lock"))
                _rmdir(self.directory)
            return count

    # -- reading -----------------------------------------------------------------------

    def peek(self) -> list[tuple[str, dict[str, Any]]]:
        """The events waiting in ``new/``, oldest first, each with its file name, read
        without claiming them (the ``telemetry_events`` fixture's view). The names sort by
        time across spools too. A file that is not an event, or that went meanwhile, is
        skipped."""
        peeked = []
        for name in self._new_names():
            event, _ = _read_event(os.path.join(self._new, name))
            if event is not None:
                peeked.append((name, event))
        return peeked

    def stats(self) -> SpoolStats:
        counters = self._read_stats()
        pending = len(self._new_names())
        for batch_dir in self._batch_dirs():
            pending += sum(
                1 for n in _listdir(os.path.join(self._claimed, batch_dir)) if is_event_file(n)
            )
        return SpoolStats(
            pending,
            counters.get("dropped", 0),
            counters.get("corrupt", 0),
            counters.get("rejected", 0),
        )

    # -- helpers (callers hold the lock) -----------------------------------------------

    def _release_stale(self) -> None:
        now = time.time()
        for batch_dir in self._batch_dirs():
            path = os.path.join(self._claimed, batch_dir)
            try:
                age = now - os.stat(path).st_mtime
            except OSError:
                continue
            if age > self.claim_timeout:
                self.report(f"released batch {batch_dir} left by an uploader that stopped")
                self._release_dir(path)

    def _release_dir(self, claim_dir: str) -> None:
        for name in _listdir(claim_dir):
            try:
                os.replace(os.path.join(claim_dir, name), os.path.join(self._new, name))
            except OSError:
                pass
        _rmdir(claim_dir)

    def _remove_stale_tmp(self) -> None:
        # A writer that crashed between open and rename leaves its temp file behind.
        cutoff = time.time() - STALE_TMP_SECONDS
        for name in _listdir(self._tmp):
            path = os.path.join(self._tmp, name)
            try:
                if os.stat(path).st_mtime < cutoff:
                    _unlink(path)
            except OSError:
                pass

    def _report_foreign(self) -> None:
        for name in _listdir(self._new):
            if not is_event_file(name):
                self.report(f"ignored foreign file in spool: {name}")

    def _read_delivered(self) -> tuple[dict[str, list[str]], set[str]]:
        """The sinks that have each waiting event, and the events a sink refused.

        ``delivered.json`` maps an event's file name to a list of sinks, or, for an event a
        sink refused, to ``{"sinks": [...], "refused": true}``: an uploader of an earlier
        version reads the lists it knows and skips the rest (it sends those events again,
        and the sinks de-duplicate)."""
        import json

        from ._paths import read_private

        try:
            data = json.loads(read_private(self._delivered, STATE_FILE_LIMIT))
        except FileNotFoundError:
            return {}, set()
        except (OSError, ValueError, RecursionError):
            # Lost: the sinks that had these events are sent them again, and de-duplicate.
            self.report("spool delivery marks are corrupt; starting over")
            return {}, set()
        if not isinstance(data, dict):
            return {}, set()
        marks: dict[str, list[str]] = {}
        refused: set[str] = set()
        for name, value in data.items():
            if not isinstance(name, str):
                continue
            if isinstance(value, dict):
                if value.get("refused") is True:
                    refused.add(name)
                value = value.get("sinks")
            if isinstance(value, list):
                marks[name] = [s for s in value if isinstance(s, str)]
        return marks, refused

    def _write_delivered(self, marks: dict[str, list[str]], refused: set[str]) -> None:
        """Keep only the marks of events still waiting (trim may have dropped some)."""
        import json

        from ._paths import write_private

        names = set(marks) | refused
        if names:
            waiting = set(self._new_names())
            for batch_dir in self._batch_dirs():
                waiting.update(_listdir(os.path.join(self._claimed, batch_dir)))
            names &= waiting
        data: dict[str, Any] = {}
        for name in sorted(names):
            sinks = marks.get(name, [])
            data[name] = {"sinks": sinks, "refused": True} if name in refused else sinks
        if data:
            write_private(self._delivered, json.dumps(data))
        else:
            _unlink(self._delivered)

    def _read_stats(self) -> dict[str, int]:
        import json

        from ._paths import read_private

        try:
            data = json.loads(read_private(self._stats, STATE_FILE_LIMIT))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, RecursionError):
            self.report("spool stats file is corrupt; counting from zero")
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and type(v) is int}

    def _add_stats(self, **increments: int) -> None:
        import json

        from ._paths import write_private

        counters = self._read_stats()
        for key, value in increments.items():
            counters[key] = counters.get(key, 0) + value
        write_private(self._stats, json.dumps(counters))


def _read_event(path: str) -> tuple[dict[str, Any] | None, int]:
    """The event in ``path`` and its size, or (None, 0) if it is not one: no event is larger
    than MAX_EVENT_BYTES (larger ones are dropped before they are written), and none is a
    link, a FIFO or a device (`cli_telemetry._paths.read_private`)."""
    import json

    from ._paths import read_private

    try:
        data = read_private(path, MAX_EVENT_BYTES)
        event = json.loads(data)
    except (OSError, ValueError, RecursionError):
        return None, 0
    if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
        return None, 0
    return event, len(data)


def _require(held: bool) -> None:
    if not held:
        from .errors import SpoolBusyError

        raise SpoolBusyError("another process held the spool lock for the whole timeout")


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
        return 1
    except OSError:
        return 0


def _rmdir(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
