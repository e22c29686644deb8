"""What a command's telemetry costs in instructions: ``python bench/instructions.py``.

Wall times on a shared machine move with its load more than with the library, so this
counts instructions instead (``valgrind --tool=callgrind``, which must be installed): one
steady-state recorded run of the example tool's ``hello`` (telemetry on, ids created, the
endpoint unreachable, so no uploader), one with ``DO_NOT_TRACK=1``, and one without
telemetry (``bench/baseline``'s stand-in first on PYTHONPATH, and an empty directory there
on the other sides, as in bench/overhead.py), each with ``PYTHONHASHSEED=0`` so that a
count repeats to a few thousand instructions. Then where a recorded run's share goes:
the instructions of importing each module of the library that the run imports, one after
the other on top of click (so each row is that module's own: its dependencies are in the
rows above it), the size of its bytecode, and what is left for the run's own work.

A tiny module costs some 0.3 million instructions to import (finding it, reading it,
making it), and bytecode some 23 thousand per kB to load, before its module-level code
runs: that is the floor a recorded run's modules set, and why the hot path imports as
few, and as small, modules as it can. ``--json PATH`` writes the results there
(bench/measured.py); the docs render them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import measured  # bench/measured.py, beside this script
from processes import compile_sources, example_tool, user_environ

ROOT = Path(__file__).resolve().parent.parent
BASELINE = str(ROOT / "bench" / "baseline")
HOT_PATH = (
    "cli_telemetry",
    "cli_telemetry._values",
    "cli_telemetry._settings",
    "cli_telemetry.telemetry",
    "cli_telemetry.instrument",
    "cli_telemetry.recording",
    "cli_telemetry._paths",
    "cli_telemetry.capture",
    "cli_telemetry._ids",
    "cli_telemetry._append",
)
"""The library's modules a steady-state recorded run imports, each after those it imports
(`check_hot_path` holds the list to what a run really imports)."""
LISTED = """
import sys
sys.argv = ["cli-app", "hello"]
import cli_app.cli
try:
    cli_app.cli.main()
except SystemExit:
    pass
sys.stderr.write("MODULES:" + " ".join(m for m in sys.modules if m.startswith("cli_telemetry")))
"""


def instructions(argv: list[str], env: dict[str, str], cwd: str) -> int:
    """The instructions callgrind counts for ``argv`` (children not followed)."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env, cwd=cwd, capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count: {result.stderr[-500:]}")
    return int(found.group(1))


def check_hot_path(env: dict[str, str], cwd: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LISTED], env=env, cwd=cwd, capture_output=True, text=True
    )
    line = [x for x in result.stderr.splitlines() if x.startswith("MODULES:")][-1]
    imported = set(line[len("MODULES:") :].split())
    if imported != set(HOT_PATH):
        raise SystemExit(f"HOT_PATH is out of date: a run imports {sorted(imported)}")


def bytecode_kb(module: str) -> float:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return os.path.getsize(importlib.util.cache_from_source(spec.origin)) / 1000


def render(results: dict[str, Any], part: str | None = None) -> list[str]:
    """The lines printed for the results (as in the ``--json`` file); ``part="runs"``: the
    first table only (the README's)."""
    without = results["runs"]["without telemetry"]
    lines = [f"{'run of `cli-app hello`':<28}{'instructions':>14}{'ratio':>8}"]
    for name, count in results["runs"].items():
        lines.append(f"{name:<28}{count / 1e6:>13.1f}M{count / without:>8.3f}")
    if part == "runs":
        return lines
    lines += ["", f"{'a recorded run imports':<28}{'bytecode':>10}{'instructions':>14}"]
    for row in results["imports"]:
        lines.append(f"{row['module']:<28}{row['kb']:>8.1f}kB{row['instructions'] / 1e3:>13.0f}K")
    total = sum(row["instructions"] for row in results["imports"])
    work = results["runs"]["recording"] - without - total
    lines.append(f"{'all of them':<28}{'':>10}{total / 1e6:>13.2f}M")
    rest = "the rest: the run's own work"
    lines.append(f"{rest:<28}{'':>10}{work / 1e6:>13.2f}M")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    tool = example_tool()
    run = measured.context(sys.argv)
    compile_sources()
    home = tempfile.mkdtemp(prefix="cli-telemetry-instructions-")
    empty = os.path.join(home, "empty")
    os.mkdir(empty)
    env = user_environ()
    env.update(HOME=home, PYTHONHASHSEED="0", PYTHONPATH=empty)
    env["CLI_APP_ENDPOINT"] = "http://127.0.0.1:9/v1/events"  # unreachable: no uploader
    spool = Path(home, ".local/state/cli-app/telemetry/spool/new")
    try:
        subprocess.run([tool, "telemetry", "enable"], env=env, cwd=home, check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([tool, "hello"], env=env, cwd=home, check=True, capture_output=True)
        check_hot_path(env, home)
        python = [sys.executable, tool, "hello"]  # the console script, not its launcher
        runs = {}
        for name, extra in (
            ("without telemetry", {"PYTHONPATH": BASELINE}),
            ("DO_NOT_TRACK=1", {"DO_NOT_TRACK": "1"}),
            ("recording", {}),
        ):
            for event in spool.glob("*.json"):
                event.unlink()  # each recorded run finds the spool empty: steady state
            runs[name] = instructions(python, {**env, **extra}, home)
            print(f"{name}: {runs[name]}", file=sys.stderr)
        imports = []
        chain = "import click"
        before = instructions([sys.executable, "-c", chain], env, home)
        for module in HOT_PATH:
            chain += f"; import {module}"
            after = instructions([sys.executable, "-c", chain], env, home)
            kb = round(bytecode_kb(module), 1)
            imports.append({"module": module, "kb": kb, "instructions": after - before})
            before = after
        results = {"runs": runs, "imports": imports}
        print("\n".join(render(results)))
        if args.json:
            measured.write(args.json, run, results)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
