"""Where and when a bench ran, for its ``--json`` file: the figures in the docs are rendered
from those files (``scripts/docs_outputs.py``), and a reader of a figure needs to know the
commit, the machine and how busy it was (a shared 2-core machine's load changes wall times
far more than the library does; the paired ratios are what to compare)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # Windows
        return []


def context(argv: list[str]) -> dict[str, Any]:
    """What the JSON says about the run, taken when it starts (the load at the end is added
    by `write`)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "command": " ".join([".venv/bin/python", *argv]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "commit": commit or "unknown",
        "cpus": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
    }


def write(path: str, run: dict[str, Any], results: dict[str, Any]) -> None:
    document = {**run, "load_average_at_end": load_average(), "results": results}
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"written to {path}", file=sys.stderr)
