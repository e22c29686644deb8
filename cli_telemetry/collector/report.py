"""The usage report: what ``click-telemetry report`` prints and the dashboard draws.

Its figures come from a `rollups.Rollup` of the window: the daily rollup tables for whole
days, the events themselves for a partial first day. Timestamps are ISO 8601 UTC strings of
one fixed format, so comparing them as text compares them as times.

Command events give the usage figures; custom events are counted per name, and per value of
each of their properties (a number property per small whole value or power-of-two range:
see `rollups`).

Beside them, how many deletion requests each tool got (``deletions``, see `forget`): those
are kept by day only, so the window's first day counts whole.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .rollups import Rollup, next_day, of_rows, of_tables
from .tables import deletions

TOP: Final = 10


def build(
    engine: Engine, *, since: str, tool: str | None = None, rollups: bool = True
) -> dict[str, Any]:
    """The report for the events at or after ``since`` (ISO 8601), for one tool or all.

    Whole UTC days come from the daily rollups; a window that starts inside a day (``7d``
    from now does) counts that first, partial day from the events themselves, so the report
    is exact for any ``since``. ``rollups=False`` counts every day from the events: the
    slow reference that tests hold the fast path to.
    """
    first_whole_day = since[:10] if since[10:] == "T00:00:00.000Z" else next_day(since[:10])
    with engine.connect() as connection:
        if not rollups:
            counted = of_rows(connection, since=since, tool=tool)
        else:
            counted = of_tables(connection, since_day=first_whole_day, tool=tool)
            if first_whole_day != since[:10]:
                counted.update(of_rows(connection, since=since, until=first_whole_day, tool=tool))
        forgotten = deletion_requests(connection, since_day=since[:10], tool=tool)
    return summarise(counted, since=since, tool=tool, deletion_requests=forgotten)


def deletion_requests(connection: Connection, *, since_day: str, tool: str | None) -> Counter[str]:
    """How many deletion requests each tool got from ``since_day`` on."""
    query = (
        sa.select(deletions.c.tool, sa.func.count())
        .where(deletions.c.day >= since_day, *([deletions.c.tool == tool] if tool else []))
        .group_by(deletions.c.tool)
    )
    return Counter({name: int(count) for name, count in connection.execute(query)})


def summarise(
    counted: Rollup,
    *,
    since: str,
    tool: str | None,
    deletion_requests: Counter[str] | None = None,
) -> dict[str, Any]:
    """The report's figures from a rollup of its window (and the deletion requests of each
    tool in it). Ties rank by name."""
    total = errors = in_ci = 0
    commands: dict[str, list[int]] = {}  # command -> [runs, errors, total duration_ms]
    tool_versions: Counter[str] = Counter()
    systems: Counter[str] = Counter()
    pythons: Counter[str] = Counter()
    days: Counter[str] = Counter()
    for key, (invocations, duration_ms) in counted.usage.items():
        name, day, command, outcome, tool_version, os_name, python_version, ci = key
        failed = invocations if outcome != "success" else 0
        total += invocations
        errors += failed
        in_ci += invocations if ci else 0
        figures = commands.setdefault(command, [0, 0, 0])
        figures[0] += invocations
        figures[1] += failed
        figures[2] += duration_ms
        tool_versions[tool_version if tool else f"{name} {tool_version}"] += invocations
        systems[os_name] += invocations
        pythons[python_version] += invocations
        days[day] += invocations
    installs_per_day = Counter(day for day, _ in {(d, i) for _, d, i in counted.installs})
    custom = custom_events(counted)
    flags: Counter[str] = Counter()
    for (_, _, flag), uses in counted.flags.items():
        flags[flag] += uses
    ranked = sorted(commands.items(), key=lambda item: (-item[1][0], item[0]))[:TOP]
    return {
        "since": since,
        "tool": tool,
        "invocations": total,
        "installs": len({install_id for _, _, install_id in counted.installs}),
        "error_rate": round(errors / total, 4) if total else 0.0,
        "ci_share": round(in_ci / total, 4) if total else 0.0,
        "commands": [
            {
                "command": command,
                "count": runs,
                "error_rate": round(failed / runs, 4),
                "avg_ms": round(duration_ms / runs),
            }
            for command, (runs, failed, duration_ms) in ranked
        ],
        "flags": top(flags),
        "tool_versions": top(tool_versions),
        "os": top(systems),
        "python_versions": top(pythons),
        "daily": [
            {"day": day, "invocations": days[day], "installs": installs_per_day[day]}
            for day in sorted(days)
        ],
        "custom_events_total": sum(entry["count"] for entry in custom),
        "custom_events": custom[:TOP],
        "deletion_requests": sum((deletion_requests or Counter()).values()),
        "deletion_requests_by_tool": [
            {"name": name, "count": count}
            for name, count in sorted((deletion_requests or Counter()).items())
        ],
    }


def custom_events(counted: Rollup) -> list[dict[str, Any]]:
    """Each custom event (of each tool) with its count and, for each property, how many
    carried it and the `TOP` values they held (``others`` counts the rest). Events rank by
    count, properties by name, values by count; ties by name."""
    events: Counter[tuple[str, str]] = Counter()
    held: dict[tuple[str, str], dict[str, Counter[str]]] = {}
    for (name, _, event, prop, value), count in counted.custom.items():
        if not prop:
            events[name, event] += count
        else:
            held.setdefault((name, event), {}).setdefault(prop, Counter())[value] += count
    result = []
    for (name, event), count in sorted(events.items(), key=lambda i: (-i[1], i[0])):
        properties = []
        for prop, values in sorted(held.get((name, event), {}).items()):
            ranked = sorted(values.items(), key=lambda i: (-i[1], i[0]))
            properties.append({
                "name": prop, "count": sum(values.values()),
                "values": [{**decode(value), "count": n} for value, n in ranked[:TOP]],
                "others": sum(n for _, n in ranked[TOP:]),
            })  # fmt: skip
        result.append({"tool": name, "event": event, "count": count, "properties": properties})
    return result


def decode(value: str) -> dict[str, Any]:
    """A `rollups.value_key` as the JSON report shows it: ``{"value": "prod"}``,
    ``{"value": 3}``, or for a range of numbers ``{"range": "[16, 32)"}``."""
    if value[0] in "[(":
        return {"range": value}
    return {"value": json.loads(value)}


def shown(entry: dict[str, Any]) -> str:
    """A value of `decode` as text: ``prod``, ``true``, ``null``, ``3``, ``[16, 32)``."""
    if "range" in entry:
        return str(entry["range"])
    value = entry["value"]
    if isinstance(value, str) and value.isprintable():
        return value
    # Not a printable text: a JSON literal, so that a control character (an escape
    # sequence, a newline) sent by a client without --schema cannot drive the terminal
    # or forge a row of the table.
    return json.dumps(value)


def top(counts: Counter[str]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [{"name": name, "count": count} for name, count in ranked]


def render(report: dict[str, Any]) -> str:
    """The report as aligned text tables for a terminal."""
    lines = [
        f"Usage since {report['since'][:10]}"
        + (f" for {report['tool']}" if report["tool"] else ""),
        f"  invocations {report['invocations']}, installs {report['installs']},"
        f" errors {report['error_rate']:.1%}, in CI {report['ci_share']:.1%},"
        f" custom events {report['custom_events_total']},"
        f" deletion requests {report['deletion_requests']}",
    ]

    def table(title: str, headers: list[str], rows: list[list[Any]], left: int = 1) -> None:
        """Aligned columns: the first ``left`` to the left, the others to the right."""
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
                    c.ljust(w) if i < left else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )

    command_rows = [
        [c["command"], c["count"], f"{c['error_rate']:.1%}", c["avg_ms"]]
        for c in report["commands"]
    ]
    table("Commands", ["command", "runs", "errors", "avg ms"], command_rows)
    table("Flags", ["flag", "uses"], [[f["name"], f["count"]] for f in report["flags"]])
    table(
        "Custom events",
        ["event", "count"],
        [[event_label(report, e), e["count"]] for e in report["custom_events"]],
    )
    for entry in report["custom_events"]:
        if not entry["properties"]:
            continue
        rows = []
        for prop in entry["properties"]:
            values = [[shown(v), v["count"]] for v in prop["values"]]
            values += [["(others)", prop["others"]]] if prop["others"] else []
            rows += [[prop["name"] if i == 0 else "", *row] for i, row in enumerate(values)]
        title = f"{event_label(report, entry)} properties"
        table(title, ["property", "value", "count"], rows, left=2)
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
    table(
        "Deletion requests",
        ["tool", "requests"],
        [[r["name"], r["count"]] for r in report["deletion_requests_by_tool"]],
    )
    return "\n".join(lines)


def event_label(report: dict[str, Any], entry: dict[str, Any]) -> str:
    """A custom event's name, after its tool's when the report covers every tool."""
    return str(entry["event"]) if report["tool"] else f"{entry['tool']} {entry['event']}"
