"""The report's window, as an age: ``--since 30d`` of ``click-telemetry report``,
``?since=30d`` of the dashboard and ``/api/report``, ``--older-than`` of ``collector prune``.

Plain Python: ``click-telemetry`` reads `DEFAULT_SINCE` for its ``--help`` without the
``collector`` extra.
"""

from __future__ import annotations

import re
import time
from typing import Final

DEFAULT_SINCE: Final = "30d"
"""The window of ``click-telemetry report`` and of the dashboard (and ``/api/report``) when
none is given: one default, so that the two never disagree about the same collector.

30 days rather than 7: custom events are rarer than commands (a deploy a day where there
are dozens of commands), and a week of them shows little; a month holds four of each
weekday, so a weekly rhythm does not tilt it, and draws a trend in the daily chart. The
rollups make it cheap: a longer window reads more rows of daily rollups, not more events.
"""

MAX_AGE_DAYS: Final = 36500
"""A century: further back than any event, and within what a date can hold (an age of
10**12 days has no date, and was a 500)."""


def parse_age(text: str) -> float:
    """``90d``, ``12h``, ``30m`` or ``45s`` in seconds, at most `MAX_AGE_DAYS` days;
    ValueError otherwise."""
    match = re.fullmatch(r"([0-9]{1,12})([dhms])", text.strip())
    if not match:
        shown = text if len(text) <= 40 else text[:40] + "..."
        if re.fullmatch(r"[0-9]+[dhms]", text.strip()):
            raise ValueError(f"{shown!r} is too far back: an age is at most {MAX_AGE_DAYS} days")
        raise ValueError(f"{shown!r} is not an age such as 7d, 12h, 30m or 45s")
    seconds = int(match.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[match.group(2)]
    if seconds > MAX_AGE_DAYS * 86400:
        raise ValueError(f"{text.strip()!r} is too far back: an age is at most {MAX_AGE_DAYS} days")
    return seconds


def iso_ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - seconds))
