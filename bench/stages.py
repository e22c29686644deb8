"""Where a recorded run's milliseconds go: ``python bench/stages.py [--runs N] [--first]``.

Runs the example tool's ``hello`` (telemetry enabled, an unreachable endpoint, as in
`bench/overhead.py`) as ``--runs`` fresh processes, each through a driver that times every
stage of the library's work from outside, and prints each stage's median. The library has
no timer of its own (that would cost every run something); the driver imports the modules
the run would import, in the order it imports them, timing each, then wraps the functions
of `cli_telemetry.recording` and `cli_telemetry._spawn` with timers before the command runs.

A stage's figure is its own time; ``finish`` holds them all (plus what no stage names).
The import rows are the modules' own import times (their dependencies are imported before
them), so they add up. ``--first`` runs each process on a fresh state directory (no ids,
no spool: the first recorded run after ``telemetry enable``). On a shared machine the
absolute figures move with the load: compare two trees by running both, interleaved, and
read the instruction counts of `valgrind --tool=callgrind` for what the load cannot touch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from processes import compile_sources, example_tool, user_environ  # bench/processes.py

ROOT = Path(__file__).resolve().parent.parent

DRIVER = textwrap.dedent(
    """
    import importlib, json, sys, time
    t = time.perf_counter_ns
    times = {}
    start = t()
    import click
    times["import click (the tool's own)"] = t() - start

    def timed_import(label, names):
        start = t()
        for name in names:
            importlib.import_module(name)
        times[label] = t() - start

    timed_import("import: package, telemetry, settings, values",
                 ["cli_telemetry", "cli_telemetry._values",
                  "cli_telemetry._settings", "cli_telemetry.telemetry"])
    timed_import("import: instrument", ["cli_telemetry.instrument"])
    start = t()
    import cli_app.cli
    times["the tool's module, with Telemetry() and instrument"] = t() - start
    for label, names in %(imports)r:
        timed_import(label, names)

    def wrap(module, name, label):
        original = getattr(module, name)
        depth = [0]  # a recursive function (encode) counts once
        def timed(*args, **kwargs):
            depth[0] += 1
            start = t()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    times[label] = times.get(label, 0) + t() - start
        setattr(module, name, timed)

    from cli_telemetry import recording, capture, _paths, _values
    wrap(recording, "finish", "finish (all of the below, and the rest)")
    wrap(_paths, "resolve", "paths: resolve")
    wrap(recording, "decide", "decide: environment, config file, trust checks")
    wrap(capture, "flags_and_values", "capture: flags and values")
    wrap(recording, "_ids", "ids: read (or create)")
    wrap(recording, "_common", "common fields: platform, uuid, time, ci, tty")
    wrap(_values, "encode", "encode the event")
    for module, name, label in %(more)r:
        if module in sys.modules or module != "cli_telemetry._spawn":
            wrap(importlib.import_module(module), name, label)
            continue
        # Imported only by a run that starts an uploader: timed, and wrapped, when it is.
        import builtins
        original_import = builtins.__import__
        def lazy(name_, globals_=None, locals_=None, fromlist=(), level=0,
                 _label=label, _name=name):
            if level == 1 and fromlist and "_spawn" in fromlist and module not in sys.modules:
                start = t()
                result = original_import(name_, globals_, locals_, fromlist, level)
                times["import: _spawn (a run that spawns)"] = t() - start
                wrap(sys.modules[module], _name, _label)
                return result
            return original_import(name_, globals_, locals_, fromlist, level)
        builtins.__import__ = lazy
    sys.argv = ["cli-app", "hello"]
    try:
        cli_app.cli.main()
    except SystemExit:
        pass
    sys.stderr.write("STAGES:" + json.dumps(times) + "\\n")
    """
)

IMPORTS = [
    ("import: recording", ["cli_telemetry.recording"]),
    ("import: _paths", ["cli_telemetry._paths"]),
    ("import: capture", ["cli_telemetry.capture"]),
    ("import: _ids", ["cli_telemetry._ids"]),
]
"""The modules every recorded run imports after its command, in that order."""
LATER_IMPORTS = {
    "main": [  # before the hot path had its own append, and checked the stamp itself
        ("import: spool", ["cli_telemetry.spool"]),
        ("import: _spawn", ["cli_telemetry._spawn"]),
    ],
    "append": [("import: _append", ["cli_telemetry._append"])],
}
"""The rest of a recorded run's imports: ``_spawn`` only when it starts an uploader."""
WRAPPED = {
    "main": [
        ("cli_telemetry.spool", "Spool.append", "spool: append (write, rename, list)"),
        ("cli_telemetry._spawn", "start_uploader", "spawn: decide, and start the uploader"),
    ],
    "append": [
        ("cli_telemetry._append", "append", "spool: append (write, rename)"),
        ("cli_telemetry._append", "over_bounds", "spool: bounds (list)"),
        ("cli_telemetry._paths", "modified_after", "spawn: throttled? (lstat the stamp)"),
        ("cli_telemetry._spawn", "start_uploader", "spawn: decide, start the uploader"),
    ],
}


def driver(imports: list[tuple[str, list[str]]], more: list[tuple[str, str, str]]) -> str:
    simple = []
    extra = ""
    for module, name, label in more:
        if "." in name:  # a method: wrap it on its class
            cls, method = name.split(".")
            extra += textwrap.dedent(
                f"""
                _cls = getattr(importlib.import_module({module!r}), {cls!r})
                _orig_{cls}_{method} = getattr(_cls, {method!r})
                def _timed_{cls}_{method}(*a, **k):
                    start = t()
                    try:
                        return _orig_{cls}_{method}(*a, **k)
                    finally:
                        times[{label!r}] = times.get({label!r}, 0) + t() - start
                setattr(_cls, {method!r}, _timed_{cls}_{method})
                """
            )
        else:
            simple.append((module, name, label))
    code = DRIVER % {"imports": imports, "more": simple}
    return code.replace(
        'sys.argv = ["cli-app", "hello"]', extra + 'sys.argv = ["cli-app", "hello"]'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--first", action="store_true", help="a fresh state for every run")
    parser.add_argument(
        "--layout", default="append", choices=sorted(WRAPPED), help="of the tree it runs on"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the medians there (µs)")
    args = parser.parse_args()
    compile_sources()
    code = driver(IMPORTS + LATER_IMPORTS[args.layout], WRAPPED[args.layout])
    home = tempfile.mkdtemp(prefix="cli-telemetry-stages-")
    env = user_environ()
    env["HOME"] = home
    env["CLI_APP_ENDPOINT"] = "http://127.0.0.1:9/v1/events"  # unreachable: backs off
    state = Path(home, ".local/state/cli-app")
    runs: list[dict[str, int]] = []
    try:
        tool = example_tool()
        subprocess.run([tool, "telemetry", "enable"], env=env, cwd=home, check=True,
                       capture_output=True)  # fmt: skip
        for i in range(args.runs + 2):  # the first two warm the caches, and are dropped
            if args.first:
                shutil.rmtree(state, ignore_errors=True)
            result = subprocess.run(
                [sys.executable, "-c", code], env=env, cwd=home, capture_output=True,
                text=True, check=True,
            )  # fmt: skip
            line = [x for x in result.stderr.splitlines() if x.startswith("STAGES:")][-1]
            if i >= 2:
                runs.append(json.loads(line[len("STAGES:") :]))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    labels = list(dict.fromkeys(label for run in runs for label in run))
    medians = {
        label: statistics.median(run.get(label, 0) for run in runs) / 1000 for label in labels
    }
    load = os.getloadavg()[0]
    kind = "first run" if args.first else "steady state"
    print(f"{args.runs} runs of `cli-app hello` ({kind}), median µs; load average {load:.2f}")
    for label in labels:
        print(f"{medians[label]:9.0f}  {label}")
    if args.json:
        Path(args.json).write_text(json.dumps(medians, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
