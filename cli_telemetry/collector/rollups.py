"""Per-day rollups of command events: what the report reads instead of every event.

A `Rollup` is the report's raw material for a span of time: command events counted per UTC
day and per combination of the columns the report groups by (``tables.USAGE_KEY``), option
uses per day, and the installs seen each day. It is made in three ways, and the report's
consistency test holds them equal:

- `of_events`: from the events a transaction has just stored (in Python), for `add` to
  add to the rollup tables in that same transaction;
- `of_rows`: from the stored events of a time span (SQL), for a partial first day of a
  report and for the day ``prune`` cuts through;
- `of_tables`: read back from the rollup tables, for whole days.

Events leave by `subtract`: a deletion request forgets an install's events, retention
prunes old ones (`removal`), and the rollup of exactly the events deleted (`of_stored`,
from the rows the DELETE returned) is taken off the tables in the same transaction. A row
that reaches zero goes, so the tables hold what adding the remaining events would.

Only command events are rolled up (custom events are not in the report).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import COMMAND_EVENT
from . import tables

UsageKey = tuple[str, ...]
"""Values for ``tables.USAGE_KEY``: tool, day, command, outcome, versions, os, ci."""


@dataclass
class Rollup:
    usage: dict[UsageKey, list[int]] = field(default_factory=dict)
    """key -> [invocations, total duration_ms]"""
    flags: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(tool, day, flag) -> uses"""
    installs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(tool, day, install_id) -> command events (see ``tables.daily_installs``)"""

    def count(self, key: UsageKey, invocations: int, duration_ms: int) -> None:
        totals = self.usage.setdefault(key, [0, 0])
        totals[0] += invocations
        totals[1] += duration_ms

    def update(self, other: Rollup) -> None:
        for key, (invocations, duration_ms) in other.usage.items():
            self.count(key, invocations, duration_ms)
        self.flags.update(other.flags)
        self.installs.update(other.installs)


def next_day(day: str) -> str:
    """``2026-11-23`` -> ``2026-11-24``."""
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def of_events(events: Iterable[dict[str, Any]]) -> Rollup:
    """The rollup of validated events."""
    rollup = Rollup()
    for event in events:
        if event["event"] != COMMAND_EVENT:
            continue
        tool, day = event["tool"], event["timestamp"][:10]
        key = (tool, day, event["command"], event["outcome"], event["tool_version"],
               event["os"], event["python_version"], event["ci"] or "")  # fmt: skip
        rollup.count(key, 1, event["duration_ms"])
        for flag in dict.fromkeys(event["flags"]):
            rollup.flags[tool, day, flag] += 1
        rollup.installs[tool, day, event["install_id"]] += 1
    return rollup


STORED_COLUMNS: Final = (
    "event", "tool", "timestamp", "command", "outcome", "tool_version", "os",
    "python_version", "ci", "duration_ms", "flags", "install_id",
)  # fmt: skip
"""The columns of ``events`` that `of_stored` reads (a DELETE returns them)."""


def of_stored(rows: Iterable[Mapping[Any, Any]]) -> Rollup:
    """The rollup of stored events, given as rows with the `STORED_COLUMNS`."""
    return of_events(
        {**row, "flags": row["flags"].split(" ") if row["flags"] else []}
        for row in rows
        if row["event"] == COMMAND_EVENT
    )


def of_rows(
    connection: Connection, *, since: str, until: str | None = None, tool: str | None = None
) -> Rollup:
    """The rollup of the stored events with ``since <= timestamp < until`` (ISO 8601 text;
    a bare day such as ``2026-11-24`` as ``until`` ends the day before)."""
    events = tables.events
    day = sa.func.substr(events.c.timestamp, 1, 10)
    where = [events.c.event == COMMAND_EVENT, events.c.timestamp >= since]
    if until is not None:
        where.append(events.c.timestamp < until)
    if tool:
        where.append(events.c.tool == tool)
    ci = sa.func.coalesce(events.c.ci, sa.literal_column("''"))
    key = (events.c.tool, day, events.c.command, events.c.outcome, events.c.tool_version,
           events.c.os, events.c.python_version, ci)  # fmt: skip
    rollup = Rollup()
    usage = sa.select(*key, sa.func.count(), sa.func.sum(events.c.duration_ms))
    for *values, invocations, duration_ms in connection.execute(usage.where(*where).group_by(*key)):
        rollup.count(tuple(values), int(invocations), int(duration_ms or 0))
    for tool_name, day_name, flags in connection.execute(
        sa.select(events.c.tool, day, events.c.flags).where(*where, events.c.flags != "")
    ):
        for flag in flags.split(" "):
            rollup.flags[tool_name, day_name, flag] += 1
    install = (events.c.tool, day, events.c.install_id)
    installs = sa.select(*install, sa.func.count()).where(*where).group_by(*install)
    for tool_name, day_name, install_id, count in connection.execute(installs):
        rollup.installs[tool_name, day_name, install_id] += int(count)
    return rollup


def of_tables(connection: Connection, *, since_day: str, tool: str | None = None) -> Rollup:
    """The rollup of the days from ``since_day`` on, as the rollup tables hold it."""
    usage, flags, installs = tables.daily_usage, tables.daily_flags, tables.daily_installs
    rollup = Rollup()
    key = [usage.c[name] for name in tables.USAGE_KEY]
    query = sa.select(*key, usage.c.invocations, usage.c.duration_ms)
    for *values, invocations, duration_ms in connection.execute(
        query.where(usage.c.day >= since_day, *([usage.c.tool == tool] if tool else []))
    ):
        rollup.count(tuple(values), int(invocations), int(duration_ms))
    for tool_name, day, flag, uses in connection.execute(
        sa.select(flags.c.tool, flags.c.day, flags.c.flag, flags.c.uses).where(
            flags.c.day >= since_day, *([flags.c.tool == tool] if tool else [])
        )
    ):
        rollup.flags[tool_name, day, flag] += int(uses)
    for tool_name, day, install_id, count in connection.execute(
        sa.select(installs.c.tool, installs.c.day, installs.c.install_id, installs.c.events).where(
            installs.c.day >= since_day, *([installs.c.tool == tool] if tool else [])
        )
    ):
        rollup.installs[tool_name, day, install_id] += int(count)
    return rollup


@cache
def _sqlite_upserts() -> tuple[str, str, str]:
    """SQLite's upserts, written out: building SQLAlchemy's upsert constructs for each
    transaction cost more than the upserts themselves (~1 ms per transaction, measured).
    Only constant names and placeholders go into the text; values are bound."""
    key = ", ".join(tables.USAGE_KEY)
    marks = ", ".join("?" * (len(tables.USAGE_KEY) + 2))
    return (
        f"INSERT INTO daily_usage ({key}, invocations, duration_ms) VALUES ({marks})"  # noqa: S608
        f" ON CONFLICT ({key}) DO UPDATE SET invocations = invocations + excluded.invocations,"
        " duration_ms = duration_ms + excluded.duration_ms",
        "INSERT INTO daily_flags (tool, day, flag, uses) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (tool, day, flag) DO UPDATE SET uses = uses + excluded.uses",
        "INSERT INTO daily_installs (tool, day, install_id, events) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (tool, day, install_id) DO UPDATE SET events = events + excluded.events",
    )


def add(connection: Connection, rollup: Rollup) -> None:
    """Add ``rollup`` to the rollup tables (upserts, in key order so that concurrent
    transactions lock rows in one order and never deadlock)."""
    if connection.dialect.name == "sqlite":
        usage_sql, flags_sql, installs_sql = _sqlite_upserts()
        if rollup.usage:
            rows = [(*key, n, ms) for key, (n, ms) in sorted(rollup.usage.items())]
            connection.exec_driver_sql(usage_sql, rows)
        if rollup.flags:
            connection.exec_driver_sql(
                flags_sql, [(*k, n) for k, n in sorted(rollup.flags.items())]
            )
        if rollup.installs:
            connection.exec_driver_sql(
                installs_sql, [(*k, n) for k, n in sorted(rollup.installs.items())]
            )
        return
    usage, flags, installs = tables.daily_usage, tables.daily_flags, tables.daily_installs
    if rollup.usage:
        upsert, parameters = tables.insert_rows(
            connection,
            usage,
            [
                {
                    **dict(zip(tables.USAGE_KEY, key, strict=True)),
                    "invocations": invocations,
                    "duration_ms": duration_ms,
                }
                for key, (invocations, duration_ms) in sorted(rollup.usage.items())
            ],
        )
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=list(tables.USAGE_KEY),
                set_={
                    "invocations": usage.c.invocations + upsert.excluded.invocations,
                    "duration_ms": usage.c.duration_ms + upsert.excluded.duration_ms,
                },
            ),
            parameters,
        )
    if rollup.flags:
        upsert, parameters = tables.insert_rows(
            connection,
            flags,
            [
                {"tool": tool, "day": day, "flag": flag, "uses": uses}
                for (tool, day, flag), uses in sorted(rollup.flags.items())
            ],
        )
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=["tool", "day", "flag"],
                set_={"uses": flags.c.uses + upsert.excluded.uses},
            ),
            parameters,
        )
    if rollup.installs:
        insert, parameters = tables.insert_rows(
            connection,
            installs,
            [
                {"tool": tool, "day": day, "install_id": install_id, "events": count}
                for (tool, day, install_id), count in sorted(rollup.installs.items())
            ],
        )
        connection.execute(
            insert.on_conflict_do_update(
                index_elements=["tool", "day", "install_id"],
                set_={"events": installs.c.events + insert.excluded.events},
            ),
            parameters,
        )


def subtract(connection: Connection, rollup: Rollup) -> None:
    """Take ``rollup``, of events this transaction has deleted, off the rollup tables;
    rows that reach zero go. In key order, as `add`. An install's row for a day goes when
    its count does: retention deletes a day's events up to a time, and the rest of the day
    keeps its installs."""
    usage, flags, installs = tables.daily_usage, tables.daily_flags, tables.daily_installs
    if rollup.usage:
        key = [usage.c[name] == sa.bindparam(f"k_{name}") for name in tables.USAGE_KEY]
        rows = [
            {**{f"k_{name}": value for name, value in zip(tables.USAGE_KEY, k, strict=True)},
             "n": invocations, "ms": duration_ms}
            for k, (invocations, duration_ms) in sorted(rollup.usage.items())
        ]  # fmt: skip
        connection.execute(
            sa.update(usage)
            .where(*key)
            .values(
                invocations=usage.c.invocations - sa.bindparam("n"),
                duration_ms=usage.c.duration_ms - sa.bindparam("ms"),
            ),
            rows,
        )
        connection.execute(
            sa.delete(usage).where(*key, usage.c.invocations <= 0),
            [{k: v for k, v in row.items() if k.startswith("k_")} for row in rows],
        )
    if rollup.flags:
        key = [
            flags.c.tool == sa.bindparam("k_tool"),
            flags.c.day == sa.bindparam("k_day"),
            flags.c.flag == sa.bindparam("k_flag"),
        ]
        rows = [
            {"k_tool": tool, "k_day": day, "k_flag": flag, "n": uses}
            for (tool, day, flag), uses in sorted(rollup.flags.items())
        ]
        connection.execute(
            sa.update(flags).where(*key).values(uses=flags.c.uses - sa.bindparam("n")), rows
        )
        connection.execute(
            sa.delete(flags).where(*key, flags.c.uses <= 0),
            [{k: v for k, v in row.items() if k != "n"} for row in rows],
        )
    if rollup.installs:
        key = [
            installs.c.tool == sa.bindparam("k_tool"),
            installs.c.day == sa.bindparam("k_day"),
            installs.c.install_id == sa.bindparam("k_install"),
        ]
        rows = [
            {"k_tool": tool, "k_day": day, "k_install": install, "n": count}
            for (tool, day, install), count in sorted(rollup.installs.items())
        ]
        connection.execute(
            sa.update(installs).where(*key).values(events=installs.c.events - sa.bindparam("n")),
            rows,
        )
        connection.execute(
            sa.delete(installs).where(*key, installs.c.events <= 0),
            [{k: v for k, v in row.items() if k != "n"} for row in rows],
        )
