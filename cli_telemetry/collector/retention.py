"""Retention: events older than a limit are deleted, by the running collector and by
``collector prune``.

``collector serve --retain 400d`` (the default; ``Nd`` or ``Nh``, or ``never``) runs a
`Pruner` thread that prunes when the collector starts and then every hour. 400 days is
about 13 months: enough for a report to compare a month with the same month a year before,
and no more, since what is not kept need not be protected.

Pruning deletes in chunks of `CHUNK` events, each in a transaction of its own, oldest
first, tool by tool (the ``events_tool_timestamp`` index finds them), through
`removal.remove`: each chunk's events leave with their share of the rollups and their
``outbox`` rows, so the rollups agree with the events after every chunk, and a report
read meanwhile is exact. Between chunks the pruner rests as long as the chunk took (at
least `MIN_PAUSE`): SQLite has one writer at a time, and a batch waiting for the write
lock (its busy handler polls every 100 ms at most) gets it in that pause, so ingest waits
for one chunk at most, never for the whole prune. On PostgreSQL ingest and pruning touch
different rows and hardly wait for each other; the pause keeps the pruner's share of the
server modest all the same.

Several collector processes on one PostgreSQL database would all prune on the hour: each
round takes an advisory lock first, and a process that finds it held leaves the round to
the one holding it; ``collector prune`` waits for it instead. The deletion counts
(``deletions``) older than the limit's day go too; the erasures still owed to providers
(``erasures``) are never pruned: a deletion waits until its provider has accepted it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .forget import let_go
from .removal import remove
from .tables import SCHEMA_LOCK, deletions, events
from .window import MAX_AGE_DAYS, iso_ago

log = logging.getLogger("cli_telemetry.collector")

DEFAULT: Final = "400d"
CHUNK: Final = 2000
"""Events deleted per transaction. On SQLite a chunk holds the write lock, and so ingest:
0.15 to 0.45 s for 2,000 here (`bench/collector.py`), where 5,000 took up to a second."""
MIN_PAUSE: Final = 0.15
"""Seconds between chunks at least: longer than SQLite's busy handler sleeps between two
tries for the lock (100 ms), so a waiting writer gets one in."""
EVERY: Final = 3600.0
PRUNE_LOCK: Final = SCHEMA_LOCK + 1
"""The PostgreSQL advisory lock a prune holds (next to `tables.SCHEMA_LOCK`)."""


def parse(text: str) -> float | None:
    """``--retain``: ``400d`` or ``12h`` in seconds, None for ``never``; ValueError
    otherwise."""
    text = text.strip()
    if text == "never":
        return None
    match = re.fullmatch(r"([0-9]{1,6})([dh])", text)
    seconds = int(match.group(1)) * (86400 if match.group(2) == "d" else 3600) if match else 0
    if not 0 < seconds <= MAX_AGE_DAYS * 86400:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(
            f"{shown!r} is not a retention such as 400d or 48h (at least 1h, at most"
            f" {MAX_AGE_DAYS} days), nor 'never'"
        )
    return seconds


@contextlib.contextmanager
def _one_at_a_time(engine: Engine, wait: bool) -> Iterator[bool]:
    """On PostgreSQL, hold `PRUNE_LOCK` (a session lock, on a connection of its own, while
    the chunks commit on others); yields False when it is held elsewhere and ``wait`` is
    false. SQLite serialises writers itself."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        take = sa.func.pg_advisory_lock if wait else sa.func.pg_try_advisory_lock
        got = connection.execute(sa.select(take(PRUNE_LOCK))).scalar_one()
        connection.commit()
        try:
            yield got is not False
        finally:
            if got is not False:
                connection.execute(sa.select(sa.func.pg_advisory_unlock(PRUNE_LOCK)))
                connection.commit()


def _tools(connection: Connection) -> list[str]:
    """The tools that have events, one index lookup each (``SELECT DISTINCT`` would read
    the whole index)."""
    found: list[str] = []
    while True:
        query = sa.select(sa.func.min(events.c.tool))
        if found:
            query = query.where(events.c.tool > found[-1])
        tool = connection.execute(query).scalar()
        if tool is None:
            return found
        found.append(tool)


def prune(
    engine: Engine,
    before: str,
    *,
    chunk: int = CHUNK,
    wait: bool = True,
    stop: threading.Event | None = None,
    between_chunks: Callable[[], None] | None = None,
) -> int | None:
    """Delete the events whose timestamp is before ``before`` (ISO 8601 UTC), in chunks of
    ``chunk`` (see the module docstring), and the deletion counts of the days before its
    day; returns how many events, or None when another process is pruning and ``wait`` is
    false. ``stop`` ends it between two chunks; ``between_chunks`` is called after each
    full chunk is committed (tests send a batch there)."""
    stop = stop or threading.Event()
    total = 0
    with _one_at_a_time(engine, wait) as mine:
        if not mine:
            return None
        with engine.connect() as connection:
            tools = _tools(connection)
        for tool in tools:
            while not stop.is_set():
                started = time.monotonic()
                oldest = (
                    sa.select(events.c.event_id)
                    .where(events.c.tool == tool, events.c.timestamp < before)
                    .order_by(events.c.timestamp)
                    .limit(chunk)
                )
                with engine.begin() as connection:
                    removed = remove(connection, [events.c.event_id.in_(oldest)])
                total += removed.events
                if removed.events < chunk:
                    break
                if between_chunks is not None:
                    between_chunks()
                stop.wait(max(MIN_PAUSE, time.monotonic() - started))
        if not stop.is_set():
            with engine.begin() as connection:
                connection.execute(sa.delete(deletions).where(deletions.c.day < before[:10]))
    return total


class Pruner:
    """Prunes events older than ``keep`` seconds (None: none) in a thread: at `start`, then
    every ``every`` seconds, until `stop`."""

    def __init__(
        self,
        engine: Engine,
        keep: float | None,
        *,
        every: float = EVERY,
        chunk: int = CHUNK,
        between_chunks: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.keep = keep
        self.every = every
        self.chunk = chunk
        self.between_chunks = between_chunks
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pruner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def prune_once(self) -> int | None:
        """One round: how many events it deleted, or None if another process prunes (or
        none are pruned). Each round also lets go of the forgotten installs whose refusal is
        over (`forget.let_go`), which ``--retain never`` does not stop."""
        with self.engine.begin() as connection:
            let_go(connection)
        if self.keep is None:
            return None
        before = iso_ago(self.keep)
        pruned = prune(
            self.engine, before, chunk=self.chunk, wait=False, stop=self._stopping,
            between_chunks=self.between_chunks,
        )  # fmt: skip
        if pruned:
            log.info("pruned %d events from before %s", pruned, before)
        return pruned

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.prune_once()
            except Exception:  # the database is away, say: try again next round
                log.exception("pruning failed")
            self._stopping.wait(self.every)
