"""The dashboard: ``GET /`` draws the report as charts, server-side, as inline SVG.

No JavaScript and nothing fetched from elsewhere: the page works offline, behind any
firewall, and has nothing to break in a browser's console. ``?since=7d&tool=acme`` narrow it
(the window is `window.DEFAULT_SINCE` otherwise, as for ``click-telemetry report``).

Custom events get a chart of their counts, and one chart each (the `report.TOP` most
recorded) of how often each property held each value, a bar per ``property = value``.
"""

from __future__ import annotations

from html import escape
from typing import Any, Final

from .report import event_label, shown

PALETTE: Final = ("#3b82f6", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#06b6d4")


def bars(title: str, rows: list[tuple[str, float]], *, unit: str = "", color: int = 0) -> str:
    """A horizontal bar chart: one labelled bar per row, scaled to the largest."""
    if not rows:
        return f'<section class="chart"><h2>{escape(title)}</h2><p class="empty">No data yet.</p></section>'
    top = max(value for _, value in rows) or 1
    height = 28 * len(rows) + 8
    parts = [
        f'<svg class="bars" viewBox="0 0 640 {height}" role="img" aria-label="{escape(title)}">'
    ]
    for i, (label, value) in enumerate(rows):
        y = 4 + 28 * i
        width = max(2.0, 340 * value / top)
        parts.append(
            f'<text x="0" y="{y + 17}" class="label">{escape(label[:40])}</text>'
            f'<rect x="230" y="{y}" width="{width:.1f}" height="22" rx="3"'
            f' fill="{PALETTE[color % len(PALETTE)]}"><title>{escape(label)}: {value:g}{unit}</title></rect>'
            f'<text x="{236 + width:.1f}" y="{y + 17}" class="value">{value:g}{unit}</text>'
        )
    parts.append("</svg>")
    return f'<section class="chart"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def columns(title: str, days: list[dict[str, Any]]) -> str:
    """Invocations per day as columns, daily active installs as dots joined by a line."""
    if not days:
        return f'<section class="chart wide"><h2>{escape(title)}</h2><p class="empty">No data yet.</p></section>'
    top = max(max(d["invocations"], d["installs"]) for d in days) or 1
    step = 940 / len(days)
    width = min(step * 0.7, 48)
    parts = [
        '<svg class="columns" viewBox="0 0 1000 230" role="img" aria-label="' + escape(title) + '">'
    ]
    points = []
    for i, day in enumerate(days):
        x = 40 + i * step
        h = 170 * day["invocations"] / top
        parts.append(
            f'<rect x="{x:.1f}" y="{190 - h:.1f}" width="{width:.1f}" height="{h:.1f}" rx="2"'
            f' fill="{PALETTE[0]}"><title>{day["day"]}: {day["invocations"]} runs,'
            f" {day['installs']} installs</title></rect>"
        )
        cx, cy = x + width / 2, 190 - 170 * day["installs"] / top
        points.append(f"{cx:.1f},{cy:.1f}")
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{PALETTE[1]}"/>')
    parts.append(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{PALETTE[1]}" stroke-width="2"/>'
    )
    parts.append('<line x1="30" y1="190" x2="990" y2="190" stroke="#d1d5db"/>')
    parts.append(f'<text x="40" y="212" class="label">{escape(days[0]["day"])}</text>')
    parts.append(
        f'<text x="990" y="212" class="label" text-anchor="end">{escape(days[-1]["day"])}</text>'
    )
    parts.append(f'<text x="30" y="18" class="value" text-anchor="end">{top}</text>')
    parts.append("</svg>")
    legend = (
        f'<p class="legend"><span style="color:{PALETTE[0]}">&#9632;</span> runs '
        f'<span style="color:{PALETTE[1]}">&#9679;</span> daily active installs</p>'
    )
    return f'<section class="chart wide"><h2>{escape(title)}</h2>{"".join(parts)}{legend}</section>'


def custom_event(report: dict[str, Any], entry: dict[str, Any]) -> str:
    """How often each property of one custom event held each value (its `report.TOP` most
    frequent values, then the others together)."""
    rows: list[tuple[str, float]] = []
    for prop in entry["properties"]:
        rows += [(f"{prop['name']} = {shown(value)}", value["count"]) for value in prop["values"]]
        rows += [(f"{prop['name']} = (others)", prop["others"])] if prop["others"] else []
    return bars(f"{event_label(report, entry)}: properties", rows, color=4)


def page(report: dict[str, Any]) -> str:
    scope = f" for {escape(report['tool'])}" if report["tool"] else ""
    tiles = "".join(
        f'<div class="tile"><b>{value}</b><span>{label}</span></div>'
        for value, label in (
            (f"{report['invocations']:,}", "invocations"),
            (f"{report['installs']:,}", "installs"),
            (f"{report['error_rate']:.1%}", "errors"),
            (f"{report['ci_share']:.1%}", "in CI"),
            (f"{report['custom_events_total']:,}", "custom events"),
            (f"{report['deletion_requests']:,}", "deletion requests"),
        )
    )
    charts = [
        columns("Invocations and active installs per day", report["daily"]),
        bars("Top commands", [(c["command"], c["count"]) for c in report["commands"]]),
        bars("Error rate per command", [(c["command"], round(100 * c["error_rate"], 1)) for c in report["commands"]], unit="%", color=3),
        bars("Top flags", [(f["name"], f["count"]) for f in report["flags"]], color=4),
        bars("Tool versions", [(r["name"], r["count"]) for r in report["tool_versions"]], color=1),
        bars("Operating systems", [(r["name"], r["count"]) for r in report["os"]], color=2),
        bars("Python versions", [(r["name"], r["count"]) for r in report["python_versions"]], color=5),
        bars("Custom events", [(event_label(report, e), e["count"]) for e in report["custom_events"]], color=1),
        *(custom_event(report, entry) for entry in report["custom_events"] if entry["properties"]),
    ]  # fmt: skip
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cli-telemetry{scope}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #111827; background: #f9fafb; }}
h1 {{ font-size: 1.4rem; margin: 0 0 1rem; }} h2 {{ font-size: 1rem; margin: 0 0 .5rem; }}
.tiles {{ display: flex; gap: 1rem; margin-bottom: 1.5rem; }}
.tile {{ background: #fff; border-radius: 8px; padding: .8rem 1.2rem; box-shadow: 0 1px 2px #0002; }}
.tile b {{ display: block; font-size: 1.6rem; }} .tile span {{ color: #6b7280; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 1rem; }}
.chart {{ background: #fff; border-radius: 8px; padding: 1rem; box-shadow: 0 1px 2px #0002; }}
.wide {{ grid-column: 1 / -1; }} svg {{ width: 100%; height: auto; }}
.label {{ font-size: 13px; fill: #374151; }} .value {{ font-size: 12px; fill: #6b7280; }}
.empty, .legend {{ color: #6b7280; }}
</style></head><body>
<h1>Usage since {escape(report["since"][:10])}{scope}</h1>
<div class="tiles">{tiles}</div>
<div class="grid">{"".join(charts)}</div>
</body></html>
"""
