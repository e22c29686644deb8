"""Per-day rollups of the events: what the report reads instead of every event.

A `Rollup` is the report's raw material for a span of time: command events counted per UTC
day and per combination of the columns the report groups by (``tables.USAGE_KEY``), option
uses per day, the installs seen each day, and custom events per day, name, property and
value (`value_key`). It is made in three ways, and the report's consistency test holds them
equal:

- `of_events`: from the events a transaction has just stored (in Python), for `add` to
  add to the rollup tables in that same transaction;
- `of_rows`: from the stored events of a time span (SQL), for a partial first day of a
  report and for the day ``prune`` cuts through;
- `of_tables`: read back from the rollup tables, for whole days.

Events leave by `subtract`: a deletion request forgets an install's events, retention
prunes old ones (`removal`), and the rollup of exactly the events deleted (`of_stored`,
from the rows the DELETE returned) is taken off the tables in the same transaction. A row
that reaches zero goes, so the tables hold what adding the remaining events would.

Custom events are counted per value of each property, whatever its kind, so that the
counts stay exact as events leave: a count can be subtracted, a minimum or a maximum cannot
(it would have to be looked for again among the events left), and a sum of floats taken
off in another order than it was added need not come back to what it was. A property that
is a number (an ``int`` or ``float`` the tool declared) is counted per value while the
value is a small whole number (``replicas`` of 1, 2 or 3: exactly what one wants to know),
and per power-of-two range beyond (`value_key`): a distribution, in at most about a hundred
rows a day per property however the values spread. A text property holds one of the values
the tool declared (a ``Literal``), so its values are few; a collector given the tool's
catalog (``--schema``) refuses any other, one without it stores what a modified client
sends, whose every new value costs a row a day, as every event costs one.

``identify`` (the install's traits, recorded when they change) is not rolled up: how
often traits changed says nothing about use.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import COMMAND_EVENT, DELETION_EVENT, IDENTIFY_EVENT
from . import tables

UsageKey = tuple[str, ...]
"""Values for ``tables.USAGE_KEY``: tool, day, command, outcome, versions, os, ci."""
CustomKey = tuple[str, str, str, str, str]
"""(tool, day, event, property, value) of ``tables.daily_custom``; property and value are
'' for the count of the events themselves."""
CUSTOM_KEY: Final = ("tool", "day", "event", "property", "value")
"""The key columns of ``tables.daily_custom``, in `CustomKey`'s order."""

NOT_ROLLED_UP: Final = (COMMAND_EVENT, DELETION_EVENT, IDENTIFY_EVENT)
"""Names of the records that are not custom events of the report."""

EXACT_BELOW: Final = 16
"""A number property's whole values of magnitude under this are counted each on its own;
others by `value_key`'s power-of-two ranges."""
OPEN_FROM: Final = 53
"""Magnitudes from 2**53 (past any whole number the schema allows) share one open range."""


_TEXT: Final = json.JSONEncoder(ensure_ascii=False).encode
"""Text as JSON (``json.dumps`` with an option makes an encoder on every call)."""


def value_key(value: object) -> str:
    """How ``daily_custom.value`` holds a property's value.

    Text, booleans and null as JSON (``"prod"``, ``true``, ``null``: a text "true" is not
    the boolean), whole numbers under `EXACT_BELOW` in magnitude too (``3``; ``3.0`` is
    ``3``), other numbers as the range that holds them, in interval notation:
    ``[16, 32)``, ``[2, 4)`` for 2.5, ``(0, 1)``, ``(-32, -16]``, ``[9007199254740992, ∞)``.
    """
    if isinstance(value, str):
        return _TEXT(value)
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if not isinstance(value, (int, float)):
        raise TypeError(f"not a property value: {type(value).__name__}")
    if value == int(value) and abs(value) < EXACT_BELOW:
        return str(int(value))
    magnitude = abs(value)
    if magnitude < 1:
        return "(0, 1)" if value > 0 else "(-1, 0)"
    power = math.frexp(magnitude)[1] - 1  # 2**power <= magnitude < 2**(power + 1)
    if power >= OPEN_FROM:
        low = 2**OPEN_FROM
        return f"[{low}, ∞)" if value > 0 else f"(-∞, {-low}]"
    low, high = 2**power, 2 ** (power + 1)
    return f"[{low}, {high})" if value > 0 else f"({-high}, {-low}]"


@dataclass
class Rollup:
    usage: dict[UsageKey, list[int]] = field(default_factory=dict)
    """key -> [invocations, total duration_ms]"""
    flags: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(tool, day, flag) -> uses"""
    installs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(tool, day, install_id) -> command events (see ``tables.daily_installs``)"""
    custom: Counter[CustomKey] = field(default_factory=Counter)
    """(tool, day, event, property, value) -> events (see `CustomKey`)"""

    def count(self, key: UsageKey, invocations: int, duration_ms: int) -> None:
        totals = self.usage.setdefault(key, [0, 0])
        totals[0] += invocations
        totals[1] += duration_ms

    def update(self, other: Rollup) -> None:
        for key, (invocations, duration_ms) in other.usage.items():
            self.count(key, invocations, duration_ms)
        self.flags.update(other.flags)
        self.installs.update(other.installs)
        self.custom.update(other.custom)

    def track(self, tool: str, day: str, name: str, properties: Mapping[str, Any]) -> None:
        """Count one custom event ``name`` with these ``properties``."""
        self.custom[tool, day, name, "", ""] += 1
        for key, value in properties.items():
            self.custom[tool, day, name, key, value_key(value)] += 1


def next_day(day: str) -> str:
    """``2026-11-23`` -> ``2026-11-24``."""
    return (date.fromisoformat(day) + timedelta(days=1)).isoformat()


def of_events(events: Iterable[dict[str, Any]]) -> Rollup:
    """The rollup of validated events."""
    rollup = Rollup()
    for event in events:
        if event["event"] != COMMAND_EVENT:
            if event["event"] not in NOT_ROLLED_UP:
                rollup.track(event["tool"], event["timestamp"][:10], event["event"],
                             event["properties"])  # fmt: skip
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
"""The columns of ``events`` that `of_stored` reads (a DELETE returns them), besides the
custom events' ``data`` (`stored_columns`)."""


def stored_columns() -> list[sa.ColumnElement[Any]]:
    """What a DELETE returns for `of_stored`: the `STORED_COLUMNS`, and ``data`` (the whole
    event, for its properties) of custom events only: a prune of command events need not
    carry every event's JSON back."""
    events = tables.events
    data = sa.case((events.c.event != COMMAND_EVENT, events.c.data), else_=sa.null())
    return [*(events.c[name] for name in STORED_COLUMNS), data.label("data")]


def of_stored(rows: Iterable[Mapping[Any, Any]]) -> Rollup:
    """The rollup of stored events, given as rows of `stored_columns`."""
    rollup = Rollup()
    commands = []
    for row in rows:
        if row["event"] == COMMAND_EVENT:
            commands.append({**row, "flags": row["flags"].split(" ") if row["flags"] else []})
        elif row["event"] not in NOT_ROLLED_UP:
            properties = json.loads(row["data"]).get("properties") or {}
            rollup.track(row["tool"], row["timestamp"][:10], row["event"], properties)
    rollup.update(of_events(commands))
    return rollup


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
    for tool_name, timestamp, name, data in _custom_events(connection, since, until, tool):
        properties = json.loads(data).get("properties") or {}
        rollup.track(tool_name, timestamp[:10], name, properties)
    return rollup


def _custom_events(
    connection: Connection, since: str, until: str | None, tool: str | None
) -> Iterator[Any]:
    """(tool, timestamp, event, data) of the stored custom events in a span, streamed (on
    PostgreSQL through a server-side cursor: `fill` reads every one)."""
    events = tables.events
    where = [events.c.event.not_in(NOT_ROLLED_UP), events.c.timestamp >= since]
    if until is not None:
        where.append(events.c.timestamp < until)
    if tool:
        where.append(events.c.tool == tool)
    query = sa.select(events.c.tool, events.c.timestamp, events.c.event, events.c.data)
    yield from connection.execute(query.where(*where).execution_options(yield_per=5000))


def fill(connection: Connection) -> None:
    """Fill an empty ``daily_custom`` from every custom event stored (`tables.create` calls
    it when it makes the table in a database of an earlier release)."""
    rollup = Rollup()
    for tool, timestamp, name, data in _custom_events(connection, "", None, None):
        rollup.track(tool, timestamp[:10], name, json.loads(data).get("properties") or {})
    add(connection, rollup)


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
    custom = tables.daily_custom
    key = [custom.c[name] for name in CUSTOM_KEY]
    for *values, occurrences in connection.execute(
        sa.select(*key, custom.c.occurrences).where(
            custom.c.day >= since_day, *([custom.c.tool == tool] if tool else [])
        )
    ):
        rollup.custom[tuple(values)] += int(occurrences)
    return rollup


@cache
def _sqlite_upserts() -> tuple[str, str, str, str]:
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
        f"INSERT INTO daily_custom ({', '.join(CUSTOM_KEY)}, occurrences)"  # noqa: S608
        f" VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT ({', '.join(CUSTOM_KEY)})"
        " DO UPDATE SET occurrences = occurrences + excluded.occurrences",
    )


def add(connection: Connection, rollup: Rollup) -> None:
    """Add ``rollup`` to the rollup tables (upserts, in key order so that concurrent
    transactions lock rows in one order and never deadlock)."""
    if connection.dialect.name == "sqlite":
        usage_sql, flags_sql, installs_sql, custom_sql = _sqlite_upserts()
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
        if rollup.custom:
            connection.exec_driver_sql(
                custom_sql, [(*k, n) for k, n in sorted(rollup.custom.items())]
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
    if rollup.custom:
        custom = tables.daily_custom
        upsert, parameters = tables.insert_rows(
            connection,
            custom,
            [
                {**dict(zip(CUSTOM_KEY, key, strict=True)), "occurrences": occurrences}
                for key, occurrences in sorted(rollup.custom.items())
            ],
        )
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=list(CUSTOM_KEY),
                set_={"occurrences": custom.c.occurrences + upsert.excluded.occurrences},
            ),
            parameters,
        )


def subtract(connection: Connection, rollup: Rollup) -> None:
    """Take ``rollup``, of events this transaction has deleted, off the rollup tables;
    rows that reach zero go. In key order and table order, as `add`. An install's row for a
    day goes when its count does: retention deletes a day's events up to a time, and the
    rest of the day keeps its installs."""
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
    if rollup.custom:
        custom = tables.daily_custom
        key = [custom.c[name] == sa.bindparam(f"k_{name}") for name in CUSTOM_KEY]
        rows = [
            {**{f"k_{name}": value for name, value in zip(CUSTOM_KEY, k, strict=True)}, "n": n}
            for k, n in sorted(rollup.custom.items())
        ]
        connection.execute(
            sa.update(custom)
            .where(*key)
            .values(occurrences=custom.c.occurrences - sa.bindparam("n")),
            rows,
        )
        connection.execute(
            sa.delete(custom).where(*key, custom.c.occurrences <= 0),
            [{k: v for k, v in row.items() if k != "n"} for row in rows],
        )
