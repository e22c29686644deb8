"""The collector's database schema: every table, in one metadata, and bulk inserts.

Storing (`storage`), the rollups (`rollups`), forwarding (`forward`), forgetting (`forget`,
`erasure`) and retention (`retention`) all read and write these tables; keeping their
definitions here lets each of those modules import the schema without importing the
others.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..events import COMMAND_EVENT

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
    sa.Column("flags", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Index("events_tool_timestamp", "tool", "timestamp"),
    sa.Index("events_tool_install", "tool", "install_id"),
)
"""``flags`` holds the options given, space-separated (an option name has no space). A table
of one row per flag cost more at ingest than everything else together; the report reads
flags from the rollups, and from this column only for a partial first day.
``events_tool_install`` finds an install's events when a deletion request forgets them."""

USAGE_KEY: Final = (
    "tool",
    "day",
    "command",
    "outcome",
    "tool_version",
    "os",
    "python_version",
    "ci",
)

daily_usage: Final = sa.Table(
    "daily_usage",
    metadata,
    *(sa.Column(name, sa.Text, primary_key=True) for name in USAGE_KEY),
    sa.Column("invocations", sa.BigInteger, nullable=False),
    sa.Column("duration_ms", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
"""Command events per UTC day and combination of what the report groups by (``ci`` is ''
outside CI): a few hundred rows a day where there are tens of thousands of events."""

daily_flags: Final = sa.Table(
    "daily_flags",
    metadata,
    sa.Column("tool", sa.Text, primary_key=True),
    sa.Column("day", sa.Text, primary_key=True),
    sa.Column("flag", sa.Text, primary_key=True),
    sa.Column("uses", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

daily_installs: Final = sa.Table(
    "daily_installs",
    metadata,
    sa.Column("tool", sa.Text, primary_key=True),
    sa.Column("day", sa.Text, primary_key=True),
    sa.Column("install_id", sa.Text, primary_key=True),
    sa.Column("events", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
"""Which installs ran a command each day (distinct counts over several days need the ids),
with how many command events each ran that day. The count is what keeps the rollup exact
when a prune or a deletion overlaps a store of the same install and day on PostgreSQL:
adding and subtracting are updates of one row, which its row lock puts one after the
other, and the row goes when it reaches zero. (Without it, a delete of the row "if the
install has no event left that day" could not see the event a concurrent store had not
committed yet, and the row went while that event stayed.)"""

daily_custom: Final = sa.Table(
    "daily_custom",
    metadata,
    sa.Column("tool", sa.Text, primary_key=True),
    sa.Column("day", sa.Text, primary_key=True),
    sa.Column("event", sa.Text, primary_key=True),
    sa.Column("property", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("occurrences", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
"""Custom events per UTC day: for each event, one row with ``property`` and ``value`` ''
(how many were recorded), and one per property and value (how many carried it), the value
as `rollups.value_key` writes it. ``identify`` is not counted (see `rollups`)."""

COLUMNS: Final = (
    "timestamp", "tool", "tool_version", "event", "command", "outcome",
    "exit_code", "duration_ms", "install_id", "os", "python_version", "ci",
)  # fmt: skip


def insert_rows(
    connection: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> tuple[Any, Any]:
    """An INSERT of ``rows`` into ``table`` for this dialect (one with ``on_conflict_do_*``),
    and the parameters to execute it with.

    PostgreSQL gets one ``INSERT ... SELECT ... FROM json_populate_recordset(rows)``: the
    rows travel as one JSON text, which the server parses. SQLAlchemy's multi-row VALUES
    (psycopg parses each long query text in Python) and arrays (escaped in Python, value by
    value) both cost more on the client than storing the rows cost the server. SQLite gets
    its usual executemany.
    """
    names = list(rows[0])
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        records = sa.func.json_populate_recordset(
            sa.literal_column(f"NULL::{table.name}"),
            sa.cast(sa.bindparam("rows", type_=sa.Text), postgresql.JSON),
        ).table_valued(*names)
        statement = postgresql.insert(table).from_select(names, sa.select(*records.c))
        return statement, {"rows": json.dumps(rows, separators=(",", ":"))}
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table), rows


outbox: Final = sa.Table(
    "outbox",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sink", sa.String(32), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("not_before", sa.Float, nullable=False, server_default="0"),
    sa.Index("outbox_sink_seq", "sink", "seq"),
    sa.Index("outbox_event", "event_id"),
)
"""One row per (provider, event) the collector still owes that provider (see `forward`).
``outbox_event`` finds the rows of events that are forgotten or pruned."""

deletions: Final = sa.Table(
    "deletions",
    metadata,
    sa.Column("event_id", sa.String(36), primary_key=True),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Index("deletions_day", "day"),
)
"""One row per deletion request received, keyed by the request's own ``event_id`` (a resent
request is counted once), with its tool and UTC day, for the report's count: no install id
(see `forget`)."""

erasures: Final = sa.Table(
    "erasures",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sink", sa.String(32), nullable=False),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("install_id", sa.String(36), nullable=False),
    sa.Column("not_before", sa.Float, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Index("erasures_sink_seq", "sink", "seq"),
    sa.UniqueConstraint("sink", "tool", "install_id", name="erasures_owed"),
)
"""One row per (provider, install) whose deletion the collector still owes that provider's
deletion API (see `erasure`): the only place an install id outlives a deletion request, and
only until the provider has accepted it."""

forgotten_installs: Final = sa.Table(
    "forgotten_installs",
    metadata,
    sa.Column("tool", sa.String(64), primary_key=True),
    sa.Column("install_digest", sa.String(64), primary_key=True),
    sa.Column("until", sa.Float, nullable=False),
    sa.Index("forgotten_installs_until", "until"),
)
"""The installs forgotten in the last `forget.REFUSE_FOR` seconds, by a one-way digest of
the id (`forget.digest`), with when that ends: `storage.store` refuses their events
meanwhile, so a batch that was still on its way when the install was forgotten (from an
uploader that ``disable`` stopped, or sent again by a proxy) is not stored after the
deletion."""

ADDED_INDEXES: Final = (
    next(i for i in events.indexes if i.name == "events_tool_install"),
    next(i for i in outbox.indexes if i.name == "outbox_event"),
)
"""Indexes added to tables that existing databases already have: `create` makes them there
(``create_all`` makes only what is missing whole, a table with its indexes)."""


ADDED_TABLES: Final = (daily_custom,)
"""Tables that databases made by an earlier release lack, and that hold what is derived
from the events they already have: `create` makes them and has them filled (its ``fill``),
in one transaction."""


SCHEMA_LOCK: Final = 0x636C692D74656C65
"""The PostgreSQL advisory lock that `create` holds ("cli-tele" in ASCII): one number that
no other use of advisory locks in the same database is likely to pick."""


def create(engine: Engine, fill: Mapping[str, Callable[[Connection], None]] | None = None) -> None:
    """Create the tables that do not exist yet.

    Several collector processes may start at once on one new PostgreSQL database; each
    would find the tables missing and create them, and all but one would fail
    (``pg_type_typname_nsp_index``: the type of a table of that name exists). So on
    PostgreSQL the check and the creation run in one transaction that first takes an
    advisory lock: the processes create the schema one after another, and the later ones
    find it there. The lock ends with the transaction (DDL is transactional in
    PostgreSQL: nothing is half created if a process dies meanwhile).

    A database made by an earlier release gets the `ADDED_INDEXES` and the count of
    ``daily_installs`` (`_count_daily_installs`) here, under the same lock. Each reads the
    whole events table once, and on PostgreSQL holds off writes meanwhile: the first start
    after an upgrade takes longer on a large database.

    It gets the `ADDED_TABLES` too, each filled by ``fill[name]`` from the events already
    stored, in the transaction that creates it: a table is there filled or not at all, and
    the process that finds it there does not fill it again. On SQLite that transaction
    holds the write lock from its start (``BEGIN IMMEDIATE``, taken only when there is
    something to upgrade): no batch is stored between the filling's read and its write,
    and a second process waits, then finds the table."""
    fill = fill or {}
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        elif _missing(connection) or _uncounted(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        missing, uncounted = _missing(connection), _uncounted(connection)
        metadata.create_all(connection)
        for index in ADDED_INDEXES:
            index.create(connection, checkfirst=True)
        if uncounted:
            _count_daily_installs(connection)
        for table in missing:
            if table.name in fill:
                fill[table.name](connection)


def _missing(connection: Connection) -> list[sa.Table]:
    inspector = sa.inspect(connection)
    return [table for table in ADDED_TABLES if not inspector.has_table(table.name)]


def _uncounted(connection: Connection) -> bool:
    """Whether ``daily_installs`` is an earlier release's, without its ``events`` count."""
    inspector = sa.inspect(connection)
    if not inspector.has_table("daily_installs"):
        return False
    return "events" not in {c["name"] for c in inspector.get_columns("daily_installs")}


def _count_daily_installs(connection: Connection) -> None:
    """Give a ``daily_installs`` table of an earlier release its ``events`` column: each
    row's count of command events, from the events themselves."""
    connection.exec_driver_sql(
        "ALTER TABLE daily_installs ADD COLUMN events BIGINT NOT NULL DEFAULT 0"
    )
    day = sa.func.substr(events.c.timestamp, 1, 10)
    counted = (
        sa.select(sa.func.count())
        .where(
            events.c.tool == daily_installs.c.tool,
            events.c.install_id == daily_installs.c.install_id,
            events.c.event == COMMAND_EVENT,
            day == daily_installs.c.day,
        )
        .scalar_subquery()
    )
    connection.execute(sa.update(daily_installs).values(events=counted))
    connection.execute(sa.delete(daily_installs).where(daily_installs.c.events <= 0))
