"""Where the collector keeps events: SQLAlchemy Core over SQLite (WAL) or PostgreSQL.

One row per event, keyed by ``event_id``: a resent event is acknowledged and not stored
twice (``INSERT ... ON CONFLICT DO NOTHING RETURNING``). The columns the report filters and
groups by are real columns; the whole event is kept as JSON beside them.

Beside the events, per-day rollups of the command events and of the custom events
(``rollups.py`` keeps them): the report over whole days reads those instead of every
event. They are written in the same transaction as the events they count, and only for the
events that transaction stored, so a batch is stored whole or not at all, rollups
included, and a resent event is never counted twice.

A batch's deletion requests are applied in that transaction too, after its events
(`forget`); retention deletes old events in chunks of transactions of their own
(`retention`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..events import DELETION_EVENT
from . import forward, retention, rollups
from .forget import forget, guard
from .removal import IDS_PER_STATEMENT
from .tables import COLUMNS, create, events, insert_rows, metadata

__all__ = ["connect", "count", "default_url", "metadata", "prune", "store"]


def default_url() -> str:
    """A SQLite file in the user's data directory (platformdirs), which is made 0700 when
    it does not exist yet: the events are nobody else's business."""
    import platformdirs

    directory = platformdirs.user_data_dir("cli-telemetry", appauthor=False)
    os.makedirs(directory, mode=0o700, exist_ok=True)  # the mode is for the last part only
    return f"sqlite:///{os.path.join(directory, 'collector.sqlite3')}"


def _create_private(url: sa.engine.URL) -> None:
    """Create a SQLite database file 0600 before SQLite does (it would make it 0644 less
    the umask), so that its -wal and -shm files, which SQLite makes with the database's
    own mode, are 0600 too. An existing file keeps the mode its owner gave it; an in-memory
    database or a ``file:`` URI is left to SQLite."""
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(path, flags, 0o600))  # an empty file is an empty database
    except FileExistsError:
        pass


def connect(url: str) -> Engine:
    """An engine with the schema created.

    SQLite runs in WAL mode (readers never block the writer) with ``synchronous=NORMAL``: a
    commit survives the collector crashing or being killed, but the last commits before a
    power loss or an OS crash may be lost (the database stays consistent). That trade is
    SQLite's own recommendation for WAL and saves an fsync per transaction.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # A ping before each transaction finds a PostgreSQL connection that the server or the
    # network dropped; a SQLite file cannot drop one, and the ping cost a statement.
    # hide_parameters: an error's message would otherwise quote the statement's values, and
    # those include install ids (a forget, a prune), which must not reach the logs.
    engine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"), hide_parameters=True)
    if engine.dialect.name == "sqlite":
        _create_private(engine.url)

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.execute("PRAGMA mmap_size=268435456")
            cursor.execute("PRAGMA wal_autocheckpoint=10000")
            cursor.close()

    create(engine, fill={"daily_custom": rollups.fill})
    return engine


EVENT_ROW: Final = ("event_id", "data", "flags", *COLUMNS)
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))
_SQLITE_INSERT: Final = (
    f"INSERT INTO events ({','.join(EVENT_ROW)}) VALUES ({','.join('?' * len(EVENT_ROW))})"  # noqa: S608
)
"""Only constant column names and placeholders: the values are bound."""


def _insert_sqlite(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """The rows whose ids are not stored yet, inserted; their ids. In the transaction that
    `store` began with ``BEGIN IMMEDIATE``, which holds SQLite's write lock from before
    the look-up: no other connection can store one of these ids in between.

    One row's INSERT run for each row (``executemany``, through the driver: SQLAlchemy's
    per-row parameter processing cost more than SQLite's own work) after a look-up of the
    ids, rather than ``INSERT ... VALUES (...), (...) ON CONFLICT DO NOTHING RETURNING``:
    SQLite spent 22 µs per event on the multi-row statement, 10 on the look-up and the
    single rows, storing 100,000 events in transactions of 400, here."""
    ids = [row[0] for row in rows]
    stored: set[str] = set()
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        chunk = ids[start : start + IDS_PER_STATEMENT]
        found = connection.exec_driver_sql(
            f"SELECT event_id FROM events WHERE event_id IN ({','.join('?' * len(chunk))})",  # noqa: S608
            tuple(chunk),
        )
        stored.update(event_id for (event_id,) in found)
    new = [row for row in rows if row[0] not in stored]
    if new:
        connection.exec_driver_sql(_SQLITE_INSERT, new)
    return {row[0] for row in new}


def store(
    engine: Engine,
    batches: Sequence[Sequence[dict[str, Any]]],
    forward_to: Sequence[str] = (),
    erase_at: Sequence[str] = (),
) -> list[int]:
    """Store validated batches in one transaction; returns how many events of each were new.
    The new events are owed to each provider named in ``forward_to`` (`forward.enqueue`),
    in the same transaction. Then the batches' deletion requests are applied (`forget`),
    each new one owed to the erasers named in ``erase_at``.

    The app hands over every batch that arrived while the previous transaction ran, so
    concurrent senders share one commit. An event repeated within or across these batches
    is counted as new for the first batch that holds it. Every deletion request of the
    transaction is applied after every event of it is stored: an event of an install that
    a request forgets is deleted even if its batch came after the request's. An event of
    an install forgotten lately is not stored (`forget.guard`), and counts as not new.
    """
    owner: dict[str, int] = {}
    fresh: dict[str, dict[str, Any]] = {}
    requests: list[dict[str, Any]] = []
    for index, batch in enumerate(batches):
        for event in batch:
            if event["event"] == DELETION_EVENT:
                requests.append(event)
            elif event["event_id"] not in owner:
                owner[event["event_id"]] = index
                fresh[event["event_id"]] = event
    encode = _ENCODER.encode
    rows = [
        (event_id, encode(event), " ".join(dict.fromkeys(event.get("flags", ()))),
         *[event.get(column) for column in COLUMNS])
        for event_id, event in sorted(fresh.items())  # one order: concurrent writers never deadlock
    ]  # fmt: skip
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # see `_insert_sqlite`
        refused = guard(connection, fresh.values(), requests)
        if refused:
            rows = [row for row in rows if row[0] not in refused]
        # Exactly the rows this transaction stored, even when two requests race with the
        # same events (PostgreSQL's RETURNING; SQLite's write lock, `_insert_sqlite`): the
        # counts are right, and the rollups count them once.
        if not rows:
            new: set[str] = set()
        elif connection.dialect.name == "sqlite":
            new = _insert_sqlite(connection, rows)
        else:
            statement, parameters = insert_rows(
                connection, events, [dict(zip(EVENT_ROW, row, strict=True)) for row in rows]
            )
            statement = statement.on_conflict_do_nothing(index_elements=["event_id"])
            result = connection.execute(statement.returning(events.c.event_id), parameters)
            new = {row[0] for row in result.fetchall()}
        rollups.add(connection, rollups.of_events(fresh[event_id] for event_id in new))
        forward.enqueue(connection, forward_to, sorted(new))
        forget(connection, requests, erase_at)
    stored = [0] * len(batches)
    for event_id in new:
        stored[owner[event_id]] += 1
    return stored


def prune(engine: Engine, before: str) -> int:
    """Delete events whose timestamp is before ``before`` (ISO 8601 UTC), with their rollups
    and outbox rows, in chunks (`retention.prune`); returns how many."""
    return retention.prune(engine, before) or 0  # None only when told not to wait


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())
