"""Can the network, or the uploader, be felt at exit? ``python bench/exit_latency.py``.

Runs the example tool's ``hello`` with telemetry on against the same tool without
telemetry (bench/baseline's stand-in), paired and interleaved, in three scenarios of use:

- ``spaced``: runs spaced out as a person types them: each run starts once every uploader
  started before it has exited. The real upload policy and throttle decide.
- ``script``: a script running the tool ``--loop`` (50) times back to back; the whole
  loop is timed, with telemetry and without, the real policy and throttle deciding.
- ``forced``: the stress of the old bench: an uploader on every run (the spawn stamp is
  reset, the spool emptied and ``CLI_TELEMETRY_UPLOAD_AT_ONCE`` set before each run).

Each in three shapes: ``tool hello`` (until exit), ``out=$(tool hello)`` (until the captured
pipe's EOF) and ``tool hello | cat`` (until the pipeline ends); and with the endpoint
healthy, refusing connections, and blackholed (accepts, never answers). Prints the median
of the per-pair ratios for each cell; the last line is the worst of each scenario.

The uploaders are waited for, not slept for: this process makes itself the child
subreaper (Linux), so a detached uploader, orphaned when its command exits, becomes its
child, and ``os.wait4`` returns when it ends. ``--before REV`` measures the library as it
was at REV too (``git archive``, first on the tool's PYTHONPATH, which its uploader
inherits), same machine, same minutes. The side without telemetry has the stand-in first
on PYTHONPATH (``bench/baseline``), and this checkout an empty directory there, so that
every side searches as many directories for each import (see bench/overhead.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import measured  # bench/measured.py, beside this script
from processes import compile_sources, example_tool, library_at, subreaper, user_environ

ROOT = Path(__file__).resolve().parent.parent
BASELINE = str(ROOT / "bench" / "baseline")
SCENARIOS = ("spaced", "script", "forced")
TARGETS = {"spaced": 1.05, "script": 1.05, "forced": 1.10}
SHAPES = {
    "tool hello": '"$@" >/dev/null',
    "out=$(tool hello)": 'out=$("$@")',
    "tool hello | cat": '"$@" | cat >/dev/null',
}


class Healthy(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def healthy() -> tuple[str, ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/events", server


def blackhole() -> tuple[str, socket.socket]:
    """Accepts connections (the kernel does, into the backlog) and never reads or answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/v1/events", sock


def refusing() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/events"


def reap(block: bool) -> None:
    """Collect the uploaders that ended (every one, waiting for them, with ``block``)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def timed(shape: str, tool: list[str], env: dict[str, str], home: str, times: int = 1) -> float:
    script = SHAPES[shape] if times == 1 else f"for i in $(seq {times}); do {SHAPES[shape]}; done"
    start = time.perf_counter()
    subprocess.run(["sh", "-c", script, "sh", *tool], env=env, cwd=home, check=True)
    elapsed = time.perf_counter() - start
    reap(block=False)
    return elapsed


def measure(
    scenario: str, shape: str, tool: list[str], env: dict[str, str], home: str, args: Any
) -> float:
    state = Path(home, ".local/state/cli-app/telemetry")
    without_env = {**env, "PYTHONPATH": BASELINE}
    times = args.loop if scenario == "script" else 1
    pairs = args.loops if scenario == "script" else args.pairs
    if scenario == "forced":
        env = {**env, "CLI_TELEMETRY_UPLOAD_AT_ONCE": "1"}
    ratios = []
    for i in range(pairs + 1):  # the first pair warms up
        if scenario == "forced":
            if (state / "uploader.stamp").exists():
                os.utime(state / "uploader.stamp", (0, 0))  # an uploader on this run
            new = state / "spool" / "new"
            for event in new.glob("*.json") if new.is_dir() else []:
                event.unlink(missing_ok=True)  # an uploader may be taking them too
        else:
            reap(block=True)  # a person's pause, a script started later: none is running
        first, second = (env, without_env) if i % 2 == 0 else (without_env, env)
        x = timed(shape, tool, first, home, times)
        if scenario == "spaced":
            reap(block=True)  # the next command is typed once this one's uploader is done
        y = timed(shape, tool, second, home, times)
        a, b = (x, y) if i % 2 == 0 else (y, x)
        if i:
            ratios.append(a / b)
    return statistics.median(ratios)


def render(results: dict[str, Any], part: str | None = None) -> list[str]:
    """The lines printed for the results (as in the ``--json`` file): the docs' tables are
    these lines, rendered from the committed results (scripts/docs_outputs.py). ``part=
    "summary"``: only the worst cell of each scenario, beside its target (the README's)."""
    endpoints = results["endpoints"]
    libraries = results["libraries"]
    lines = []
    if part != "summary":
        lines.append(
            f"median ratio (with / without telemetry): spaced and forced over"
            f" {results['pairs']} pairs, script over {results['loops']} pairs of"
            f" {results['loop']}-run loops"
        )
        for library, scenarios in libraries.items():
            for scenario, shapes in scenarios.items():
                lines.append(f"{library}, {scenario:<14}" + "".join(f"{n:>12}" for n in endpoints))
                for shape, cells in shapes.items():
                    lines.append(
                        f"  {shape:<20}" + "".join(f"{cells[n]:>12.3f}" for n in endpoints)
                    )
    width = max(len(library) for library in libraries) + 2
    lines.append("the worst cell of each scenario (3 shapes x 3 endpoints)")
    lines.append(f"{'':<10}" + "".join(f"{library:>{width}}" for library in libraries) + "  target")
    for scenario in next(iter(libraries.values())):
        worst = [
            max(c for cells in libraries[library][scenario].values() for c in cells.values())
            for library in libraries
        ]
        row = "".join(f"{w:>{width}.2f}" for w in worst)
        lines.append(f"{scenario:<10}{row}{TARGETS[scenario]:>8.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--loop", type=int, default=50, help="runs in the script's loop")
    parser.add_argument("--loops", type=int, default=5, help="pairs of loops")
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--before", metavar="REV", help="also measure the library at REV")
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    run = measured.context(sys.argv)
    subreaper()
    script = example_tool()
    compile_sources()
    ok_url, server = healthy()
    hole_url, hole = blackhole()
    endpoints = {"healthy": ok_url, "refusing": refusing(), "blackholed": hole_url}
    work = Path(tempfile.mkdtemp(prefix="cli-telemetry-exit-"))
    empty = work / "empty"
    empty.mkdir()
    base_env = user_environ()
    libraries: list[tuple[str, str | None]] = []
    if args.before:
        libraries.append((f"before {args.before}", str(library_at(args.before, work / "lib"))))
    libraries.append(("this checkout", None))
    measured_: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    homes = []
    try:
        for library, path in libraries:
            measured_[library] = {}
            for scenario in args.scenario or SCENARIOS:
                measured_[library][scenario] = {}
                for shape in SHAPES:
                    measured_[library][scenario][shape] = {}
                    for name, url in endpoints.items():
                        # A home per cell: each starts without waiting events or backoff.
                        home = work / f"home{len(homes)}"
                        home.mkdir()
                        homes.append(home)
                        env = {**base_env, "HOME": str(home),
                               "CLI_APP_TELEMETRY_ENDPOINT": url}  # fmt: skip
                        # As many directories searched for each import as the stand-in's
                        # side (see bench/overhead.py): an empty one for this checkout.
                        env["PYTHONPATH"] = path if path is not None else str(empty)
                        subprocess.run([script, "telemetry", "enable"], env=env, cwd=home,
                                       check=True, capture_output=True)  # fmt: skip
                        ratio = measure(scenario, shape, [script, "hello"], env, str(home), args)
                        measured_[library][scenario][shape][name] = ratio
                        subprocess.run([script, "telemetry", "disable"], env=env, cwd=home,
                                       capture_output=True, check=False)  # fmt: skip
        results = {
            "pairs": args.pairs, "loop": args.loop, "loops": args.loops,
            "endpoints": list(endpoints), "libraries": measured_,
        }  # fmt: skip
        print("\n".join(render(results)))
        if args.json:
            measured.write(args.json, run, results)
    finally:
        reap(block=True)
        server.shutdown()
        hole.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
