"""The usage report: what ``cli-telemetry report`` prints and the dashboard draws.

Every figure is one grouped query over the indexed columns (and ``event_flags`` for
options), restricted to a time window and optionally one tool. Timestamps are ISO 8601 UTC
strings of one fixed format, so comparing them as text compares them as times.
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .storage import events, flags

TOP: Final = 10


def parse_age(text: str) -> float:
    """``90d``, ``12h``, ``30m`` or ``45s`` in seconds; ValueError otherwise."""
    match = re.fullmatch(r"(\d+)([dhms])", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an age such as 7d, 12h, 30m or 45s")
    return int(match.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[match.group(2)]


def iso_ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - seconds))


def build(engine: Engine, *, since: str, tool: str | None = None) -> dict[str, Any]:
    """The report for events at or after ``since`` (ISO 8601), for one tool or all."""
    commands = sa.and_(events.c.event == "command", events.c.timestamp >= since)
    if tool:
        commands = sa.and_(commands, events.c.tool == tool)
    failed = sa.case((events.c.outcome != "success", 1), else_=0)

    def top(column: sa.ColumnElement[Any], limit: int | None = TOP) -> list[dict[str, Any]]:
        query = (
            sa.select(column.label("name"), sa.func.count().label("count"))
            .where(commands)
            .group_by(column)
            .order_by(sa.func.count().desc(), column)
            .limit(limit)
        )
        with engine.connect() as connection:
            return [{"name": name, "count": count} for name, count in connection.execute(query)]

    day = sa.func.substr(events.c.timestamp, 1, 10)
    flag_where = (
        flags.c.timestamp >= since
        if not tool
        else sa.and_(flags.c.timestamp >= since, flags.c.tool == tool)
    )
    with engine.connect() as connection:
        total, installs, errors, in_ci = connection.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(sa.distinct(events.c.install_id)),
                sa.func.coalesce(sa.func.sum(failed), 0),
                sa.func.coalesce(sa.func.sum(sa.case((events.c.ci.is_not(None), 1), else_=0)), 0),
            ).where(commands)
        ).one()
        per_command = [
            {
                "command": c,
                "count": n,
                "error_rate": round(e / n, 4),
                "avg_ms": round(float(ms or 0)),
            }
            for c, n, e, ms in connection.execute(
                sa.select(
                    events.c.command,
                    sa.func.count(),
                    sa.func.sum(failed),
                    sa.func.avg(events.c.duration_ms),
                )
                .where(commands)
                .group_by(events.c.command)
                .order_by(sa.func.count().desc(), events.c.command)
                .limit(TOP)
            )
        ]
        top_flags = [
            {"name": f, "count": n}
            for f, n in connection.execute(
                sa.select(flags.c.flag, sa.func.count())
                .where(flag_where)
                .group_by(flags.c.flag)
                .order_by(sa.func.count().desc(), flags.c.flag)
                .limit(TOP)
            )
        ]
        daily = [
            {"day": d, "invocations": n, "installs": i}
            for d, n, i in connection.execute(
                sa.select(day, sa.func.count(), sa.func.count(sa.distinct(events.c.install_id)))
                .where(commands)
                .group_by(day)
                .order_by(day)
            )
        ]
    return {
        "since": since,
        "tool": tool,
        "invocations": int(total),
        "installs": int(installs),
        "error_rate": round(int(errors) / total, 4) if total else 0.0,
        "ci_share": round(int(in_ci) / total, 4) if total else 0.0,
        "commands": per_command,
        "flags": top_flags,
        "tool_versions": top(
            events.c.tool_version if tool else events.c.tool + " " + events.c.tool_version
        ),
        "os": top(events.c.os),
        "python_versions": top(events.c.python_version),
        "daily": daily,
    }


def render(report: dict[str, Any]) -> str:
    """The report as aligned text tables for a terminal."""
    lines = [
        f"Usage since {report['since'][:10]}"
        + (f" for {report['tool']}" if report["tool"] else ""),
        f"  invocations {report['invocations']}, installs {report['installs']},"
        f" errors {report['error_rate']:.1%}, in CI {report['ci_share']:.1%}",
    ]

    def table(title: str, headers: list[str], rows: list[list[Any]]) -> None:
        lines.extend(["", title])
        if not rows:
            lines.append("  (none)")
            return
        cells = [headers] + [[str(c) for c in row] for row in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
        for row in cells:
            lines.append(
                "  "
                + "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )

    command_rows = [
        [c["command"], c["count"], f"{c['error_rate']:.1%}", c["avg_ms"]]
        for c in report["commands"]
    ]
    table("Commands", ["command", "runs", "errors", "avg ms"], command_rows)
    table("Flags", ["flag", "uses"], [[f["name"], f["count"]] for f in report["flags"]])
    for key, title in (
        ("tool_versions", "Tool versions"),
        ("os", "Operating systems"),
        ("python_versions", "Python versions"),
    ):
        table(title, ["", "runs"], [[r["name"], r["count"]] for r in report[key]])
    table(
        "Daily",
        ["day", "runs", "installs"],
        [[d["day"], d["invocations"], d["installs"]] for d in report["daily"]],
    )
    return "\n".join(lines)
