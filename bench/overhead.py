"""How much slower is a command with telemetry? ``python bench/overhead.py [--pairs N]``.

Runs the example tool's ``hello`` with telemetry on (recording to the spool, in steady
state: consent given, ids created) against the same command without telemetry (the tool
with ``bench/baseline``'s do-nothing stand-in for cli_telemetry first on PYTHONPATH, and an
empty directory there on the other side, so both search as many directories), paired
and interleaved (ABBA, so drift hits both sides alike), and prints the median of the
per-pair ratios. Three more scenarios run with DO_NOT_TRACK=1, with a nearly full spool
(990 of 1,000 events waiting, as when the network has been down for a while), and as the
first recorded run after ``telemetry enable`` (no ids, no spool yet: it creates them; one
event is not worth an uploader yet, by the upload policy). The last line of each tool is
the enabled scenario with an empty spool, the usual state once an uploader drains it:
``overhead ratio: X.XX``. Each run is a fresh process, so the figure includes import
time, which is most of the cost.

Both examples run: the click tool (``cli-app``) and its Typer twin (``typer-app``, on the
Typer of this Python: in ``.venv``, a Typer that never imports click), or the one named by
``--tool``.

Both sides import from bytecode, as an installed tool does: the sources are compiled first,
because with PYTHONDONTWRITEBYTECODE set (as on the CI machines) an editable install would
otherwise recompile every module on every run and measure the compiler.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import measured  # bench/measured.py, beside this script
from processes import compile_sources, example_tool, user_environ

ROOT = Path(__file__).resolve().parent.parent
BASELINE = str(ROOT / "bench" / "baseline")
EMPTY = tempfile.mkdtemp(prefix="cli-telemetry-bench-path-")
"""The "with" side's PYTHONPATH: a directory with nothing in it (see `measure`)."""
atexit.register(os.rmdir, EMPTY)


def timed(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or result.stdout != b"Hello, world!\n":
        raise SystemExit(f"unexpected result from {cmd}: {result}")
    return elapsed


def fill_spool(spool: Path, count: int) -> None:
    """Make ``spool`` hold exactly ``count`` events (copies of a real one, fresh names)."""
    from cli_telemetry.spool import event_file_name

    existing = sorted(spool.iterdir()) if spool.is_dir() else []
    template = existing[-1].read_bytes() if existing else b"{}"
    for event in existing:
        event.unlink(missing_ok=True)  # an uploader may have claimed it meanwhile
    for i in range(count):
        name = event_file_name(time.time_ns() - 10**12 + i, os.urandom(6).hex(), len(template))
        (spool / name).write_bytes(template)


def measure(
    tool: list[str],
    env: dict[str, str],
    home: str,
    pairs: int,
    waiting: int = 0,
    first: bool = False,
) -> tuple[float, float, float]:
    """(median with, median without, median of per-pair ratios) over ``pairs`` pairs.

    ``first``: every run with telemetry is the first recorded run after ``telemetry
    enable`` (its state directory is removed before it: no ids, no spool, no uploader
    stamp, so it creates them all; the upload policy starts no uploader for one event)."""
    # Both sides search as many directories for each import: the stand-in comes first on
    # PYTHONPATH, so an empty directory does on this side (one more entry on sys.path
    # alone costs ~1% of a click `hello`: ~1.9M of its ~184M instructions, callgrind).
    with_env = {**env, "PYTHONPATH": EMPTY}
    without_env = {**env, "PYTHONPATH": BASELINE}
    state = Path(home, ".local/state", os.path.basename(tool[0]))
    spool = state / "telemetry/spool/new"

    def with_telemetry() -> float:
        if first:
            shutil.rmtree(state, ignore_errors=True)
        return timed(tool, with_env, home)

    with_times: list[float] = []
    without_times: list[float] = []
    for i in range(pairs + 2):  # the first two pairs warm the page cache and are dropped
        if i % 2 == 0:
            a = with_telemetry()
            b = timed(tool, without_env, home)
        else:
            b = timed(tool, without_env, home)
            a = with_telemetry()
        if spool.is_dir():
            fill_spool(spool, waiting)  # the same spool for every pair
        if i >= 2:
            with_times.append(a)
            without_times.append(b)
    ratios = [a / b for a, b in zip(with_times, without_times, strict=True)]
    return (
        statistics.median(with_times),
        statistics.median(without_times),
        statistics.median(ratios),
    )


def render(tool: dict[str, Any]) -> list[str]:
    """The lines printed for one tool's results (as in the ``--json`` file): the docs'
    tables are these lines, rendered from the committed results (scripts/docs_outputs.py)."""
    lines = [
        f"{tool['pairs']} pairs of `{tool['tool']} hello`, median wall time",
        f"{'scenario':<22}{'with':>10}{'without':>10}{'ratio':>8}",
    ]
    for row in tool["scenarios"]:
        with_ms, without_ms = row["with_s"] * 1000, row["without_s"] * 1000
        lines.append(f"{row['name']:<22}{with_ms:>8.1f}ms{without_ms:>8.1f}ms{row['ratio']:>8.3f}")
    lines.append(f"overhead ratio: {tool['scenarios'][-1]['ratio']:.2f}")
    return lines


def scenario(name: str, result: tuple[float, float, float]) -> dict[str, Any]:
    with_s, without_s, ratio = result
    return {"name": name, "with_s": with_s, "without_s": without_s, "ratio": ratio}


TOOLS = ("cli-app", "typer-app")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40, help="measured pairs (at least 20)")
    parser.add_argument("--tool", choices=TOOLS, action="append", help="default: both")
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    run = measured.context(sys.argv)
    compile_sources()
    results = []
    for name in args.tool or TOOLS:
        results.append(bench(name, args.pairs))
        print("\n".join(render(results[-1])), flush=True)
    if args.json:
        measured.write(args.json, run, {"tools": results})


def bench(name: str, pairs: int) -> dict[str, Any]:
    script = example_tool(name)
    tool = [script, "hello"]
    home = tempfile.mkdtemp(prefix="cli-telemetry-bench-")
    try:
        env = user_environ()
        env["HOME"] = home
        subprocess.run(
            [script, "telemetry", "enable"], env=env, cwd=home, check=True, capture_output=True
        )
        timed(tool, env, home)  # creates the ids: steady state from here on
        disabled = measure(tool, {**env, "DO_NOT_TRACK": "1"}, home, pairs)
        full = measure(tool, env, home, pairs, waiting=990)
        first = measure(tool, env, home, pairs, first=True)
        timed(tool, env, home)  # the ids again: steady state
        enabled = measure(tool, env, home, pairs)
        scenarios = [
            scenario("DO_NOT_TRACK=1", disabled),
            scenario("enabled, 990 waiting", full),
            scenario("enabled, first run", first),
            scenario("enabled, recording", enabled),  # the last: the overhead ratio
        ]
        return {"tool": name, "pairs": pairs, "scenarios": scenarios}
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
