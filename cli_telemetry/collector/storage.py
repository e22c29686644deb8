"""Where the collector keeps events: SQLAlchemy Core over SQLite (WAL) or PostgreSQL.

One row per event, keyed by ``event_id``: a resent event is acknowledged and not stored
twice (``INSERT ... ON CONFLICT DO NOTHING``). A batch is one transaction, so it is stored
whole or not at all. The columns the report groups by are real columns (indexed); the
whole event is kept as JSON beside them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata: Final = sa.MetaData()

events: Final = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column(
        "received_at",
        sa.DateTime(timezone=True),
        nullable=False,
        server_default=sa.func.current_timestamp(),
    ),
    sa.Column("timestamp", sa.String(32), nullable=False),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("tool_version", sa.String(200), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("outcome", sa.String(16)),
    sa.Column("exit_code", sa.BigInteger),
    sa.Column("duration_ms", sa.BigInteger),
    sa.Column("install_id", sa.String(36), nullable=False),
    sa.Column("os", sa.String(32), nullable=False),
    sa.Column("python_version", sa.String(32), nullable=False),
    sa.Column("ci", sa.String(32)),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("events_tool_timestamp", "tool", "timestamp"),
    sa.Index("events_tool_command", "tool", "command"),
)

flags: Final = sa.Table(
    "event_flags",
    metadata,
    sa.Column(
        "event_id",
        sa.String(36),
        sa.ForeignKey("events.event_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("flag", sa.String(80), primary_key=True),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.String(32), nullable=False),
    sa.Index("event_flags_tool_timestamp", "tool", "timestamp"),
)
"""One row per option given, so "top flags" is a GROUP BY, not a scan of every event's JSON."""

COLUMNS: Final = (
    "timestamp", "tool", "tool_version", "event", "command", "outcome",
    "exit_code", "duration_ms", "install_id", "os", "python_version", "ci",
)  # fmt: skip


def default_url() -> str:
    """A SQLite file in the user's data directory (platformdirs)."""
    import platformdirs

    directory = platformdirs.user_data_dir("cli-telemetry", appauthor=False, ensure_exists=True)
    return f"sqlite:///{os.path.join(directory, 'collector.sqlite3')}"


def connect(url: str) -> Engine:
    """An engine with the schema created; SQLite in WAL mode (readers never block writers)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    metadata.create_all(engine)
    return engine


def store(engine: Engine, batch: Sequence[dict[str, Any]]) -> int:
    """Store a validated batch in one transaction; returns how many events were new."""
    rows = [
        {"event_id": event["event_id"], "data": json.dumps(event, separators=(",", ":")),
         **{column: event.get(column) for column in COLUMNS}}
        for event in batch
    ]  # fmt: skip
    unique = list({row["event_id"]: row for row in rows}.values())  # a batch may repeat one
    by_id = {event["event_id"]: event for event in batch}
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(events).on_conflict_do_nothing(index_elements=["event_id"])
    with engine.begin() as connection:
        # RETURNING names exactly the rows this transaction stored, even when two requests
        # race with the same events: the count is right, and their flags go in once.
        result = connection.execute(statement.returning(events.c.event_id), unique)
        new = {row[0] for row in result.fetchall()}
        flag_rows = [
            {
                "event_id": row["event_id"],
                "flag": flag,
                "tool": row["tool"],
                "timestamp": row["timestamp"],
            }
            for row in unique
            if row["event_id"] in new
            for flag in dict.fromkeys(by_id[row["event_id"]].get("flags", []))
        ]
        if flag_rows:
            connection.execute(insert(flags).on_conflict_do_nothing(), flag_rows)
        return len(new)


def prune(engine: Engine, before: str) -> int:
    """Delete events whose timestamp is before ``before`` (ISO 8601 UTC); returns how many."""
    with engine.begin() as connection:
        connection.execute(sa.delete(flags).where(flags.c.timestamp < before))
        return int(
            connection.execute(sa.delete(events).where(events.c.timestamp < before)).rowcount
        )


def count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())
