"""Beside the official SDKs: ``python bench/peers.py [--runs N] [--jobs J]``.

Runs the same click ``hello`` instrumented by each official analytics SDK (PostHog, Segment,
RudderStack, Mixpanel, Amplitude), by this library, and by nothing (click alone), with the
endpoint healthy (a loopback server answering 200 at once), refusing (a port where nothing
listens) and blackholed (accepts TCP, never reads or answers); every run is capped at
``--cap`` seconds (60) and killed there. Each SDK app sends one event and then flushes or
shuts down the way that SDK's documentation tells a program that is about to exit; this
library's app takes its normal path (the event spooled, a detached uploader started), with
an uploader started for every run (``CLI_TELEMETRY_UPLOAD_AT_ONCE``, and the throttle's
stamp reset), as each SDK sends from every run: by default the upload policy would leave
the event waiting, and the comparison would be of a run that sends nothing.

The SDKs are never dependencies of this project: they are installed, at the exact versions
in `PINS`, into a venv of their own under ``build/peers/<hash of the pins>/`` (made once,
reused after), with click and this checkout (``pip install -e``), so that every app runs on
the same interpreter and the same click. The method is the one of the measurement in
``../shared/reference/peer-sdk-exit-latency.md``: pairs of runs, the app and click alone,
interleaved (A B, B A, ...), the median wall time and the median of the per-pair ratios.

Each run is timed twice: until its standard output reaches end of file (what
``out=$(tool hello)`` waits for) and until the process exits (what ``tool hello`` waits
for). The healthy endpoint counts the requests it got for each app: one event a run was sent
and, for this library, delivered by the uploader after the command had returned.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import measured  # bench/measured.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
PINS = (
    # The versions installed on 2026-11-30 (the newest then), the same as those of the
    # reference measurement and of ../shared/reference/wire/versions.json. Change them here:
    # a new set makes a new venv.
    "click==8.5.1",
    "posthog==7.91.1",
    "segment-analytics-python==2.4.0",
    "rudder-sdk-python==2.1.9",
    "mixpanel==5.4.1",
    "amplitude-analytics==1.3.0",
    # their HTTP stacks, whose timeouts and retries decide what a dead endpoint costs
    "requests==2.34.2",
    "urllib3==2.8.0",
    "httpx==0.28.1",
    "backoff==2.2.1",
)
STATES = ("healthy", "refusing", "blackholed")
BODY = b'{"status": 1, "code": 200}'
"""What the healthy endpoint answers: Mixpanel reads ``status`` (1 is success), Amplitude
``code``; PostHog, Segment, RudderStack and this library read the status line only."""

HEADER = """\
import os

import click

URL = os.environ["PEERS_URL"]  # the loopback endpoint, http://127.0.0.1:<port>
"""
HELLO = """
@click.group()
def cli():
    pass


@cli.command()
@click.option("--name", default="world")
def hello(name):
    click.echo(f"hello {name}")
"""
APPS: dict[str, str] = {
    "click alone": HELLO + "\n\ncli()\n",
    "cli-telemetry": """
from cli_telemetry import Telemetry

telemetry = Telemetry("peers-bench", version="1.0.0", endpoint=URL + "/v1/events")
"""
    + HELLO.replace("@click.group()", "@telemetry.instrument\n@click.group()")
    + """

cli.add_command(telemetry.command())
cli()
""",
    "posthog": """
from posthog import Posthog

# https://posthog.com/docs/libraries/python: "call shutdown() before your program exits";
# shutdown() flushes the queue and joins the consumer threads.
posthog = Posthog("phc_peers_bench", host=URL)
"""
    + HELLO
    + """    posthog.capture("command", distinct_id="peers-bench", properties={"command": "hello"})
    posthog.shutdown()


cli()
""",
    "segment": """
import segment.analytics as analytics

# https://segment.com/docs/connections/sources/catalog/libraries/server/python/ (Flush):
# flush() is to be called at the end of a program, to send what is queued before it ends.
analytics.write_key = "peers_bench_write_key"
analytics.host = URL
"""
    + HELLO
    + """    analytics.track("peers-bench", "command", {"command": "hello"})
    analytics.flush()


cli()
""",
    "rudderstack": """
import rudderstack.analytics as rudder_analytics

# https://www.rudderstack.com/docs/sources/event-streams/sdks/rudderstack-python-sdk/
# (Flush events): flush() sends what is queued, for a script before it ends.
rudder_analytics.write_key = "peers_bench_write_key"
rudder_analytics.dataPlaneUrl = URL
"""
    + HELLO
    + """    rudder_analytics.track("peers-bench", "command", {"command": "hello"})
    rudder_analytics.flush()


cli()
""",
    "mixpanel": """
from mixpanel import Consumer, Mixpanel

# https://docs.mixpanel.com/docs/tracking-methods/sdks/python: the default Consumer sends
# each call at once, in the calling thread, so there is nothing to flush. Its api_host
# option builds https:// URLs; events_url is its documented override for a plain-HTTP host.
mp = Mixpanel("peers_bench_token", consumer=Consumer(events_url=URL + "/track"))
"""
    + HELLO
    + """    mp.track("peers-bench", "command", {"command": "hello"})


cli()
""",
    "amplitude": """
from amplitude import Amplitude, BaseEvent, Config

# https://amplitude.com/docs/sdks/analytics/python/python-sdk (Flush, Shutdown):
# shutdown() stops taking events and flushes the buffer, for a client that is done.
client = Amplitude("peers_bench_api_key", Config(server_url=URL + "/2/httpapi"))
"""
    + HELLO
    + """    client.track(BaseEvent(event_type="command", user_id="peers-bench-user"))
    client.shutdown()


cli()
""",
}


# --- the venv --------------------------------------------------------------------------


def venv_home() -> Path:
    """Where the peers' venv is: one per set of pins and Python version."""
    key = "\n".join([sys.version.split()[0], *PINS])
    return ROOT / "build" / "peers" / hashlib.sha256(key.encode()).hexdigest()[:12]


def venv() -> Path:
    """The peers' venv's Python, the venv made (from PyPI) if it is not there yet."""
    key = "\n".join([sys.version.split()[0], *PINS])
    home = venv_home()
    python = home / "bin" / "python"
    if (home / "ready").exists():
        return python
    shutil.rmtree(home, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *PINS, "-e", str(ROOT)], check=True)
    (home / "ready").write_text(key + "\n", encoding="utf-8")
    return python


def write_apps(where: Path) -> dict[str, Path]:
    scripts = {}
    for i, (name, body) in enumerate(APPS.items()):
        script = where / f"app_{i}.py"
        script.write_text(HEADER + body, encoding="utf-8")
        scripts[name] = script
    return scripts


# --- the endpoints ---------------------------------------------------------------------


class Healthy(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def endpoint(state: str) -> Any:
    """The URL of a fresh endpoint in ``state``, and what it counts (healthy: requests)."""
    if state == "healthy":
        server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
        server.daemon_threads = True
        server.requests = 0  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", server
        finally:
            server.shutdown()
            server.server_close()
    elif state == "blackholed":
        with socket.socket() as sock:  # the kernel accepts into the backlog; no one reads
            sock.bind(("127.0.0.1", 0))
            sock.listen(1024)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}", None
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
            yield f"http://127.0.0.1:{sock.getsockname()[1]}", None


# --- one run, one cell -------------------------------------------------------------------


def run(command: list[str], env: dict[str, str], cap: float) -> dict[str, Any]:
    """One run: seconds until its stdout's end of file and until it exits, and whether it
    was killed at ``cap``."""
    killed = threading.Event()
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def kill() -> None:
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    timer = threading.Timer(cap, kill)
    timer.start()
    try:
        assert process.stdout is not None
        out = process.stdout.read()
        eof = time.perf_counter() - start
        process.wait()
        exited = time.perf_counter() - start
    except BaseException:  # the bench interrupted: leave no run behind
        kill()
        raise
    finally:
        timer.cancel()
        process.stdout.close()  # type: ignore[union-attr]
    return {
        "exit_s": round(exited, 4),
        "eof_s": round(eof, 4),
        "killed": killed.is_set(),
        "ok": not killed.is_set() and process.returncode == 0 and out == b"hello x\n",
    }


def cell(
    python: Path, scripts: dict[str, Path], tool: str, state: str, env: dict[str, str],
    runs: int, warmup: int, cap: float,
) -> dict[str, Any]:  # fmt: skip
    """``runs`` pairs of (tool, click alone), interleaved, against a fresh endpoint, in a
    HOME of the cell's own (cells run at once must not share this library's spool and
    backoff)."""
    home = tempfile.mkdtemp(prefix=f"{state}-", dir=env["HOME"])
    stamp = Path(home, ".local/state/peers-bench/telemetry/uploader.stamp")
    with endpoint(state) as (url, server):
        env = {**env, "HOME": home, "PEERS_URL": url}
        if tool == "cli-telemetry":  # as its user would have: `tool telemetry enable`
            enable = [str(python), str(scripts[tool]), "telemetry", "enable"]
            subprocess.run(enable, env=env, check=True, capture_output=True)
            # Every SDK here sends its event from the run that made it: so does this
            # library, past its upload policy (which would leave one event waiting).
            env["CLI_TELEMETRY_UPLOAD_AT_ONCE"] = "1"
        pairs = []
        for i in range(warmup + runs):
            if tool == "cli-telemetry" and stamp.exists():
                os.utime(stamp, (0, 0))  # an uploader on every run, as every SDK sends
            a = [str(python), str(scripts[tool]), "hello", "--name", "x"]
            b = [str(python), str(scripts["click alone"]), "hello", "--name", "x"]
            if i % 2 == 0:
                pair = (run(a, env, cap), run(b, env, cap))
            else:
                second = run(b, env, cap)
                pair = (run(a, env, cap), second)
            if i >= warmup:
                pairs.append({"tool": pair[0], "bare": pair[1]})
        requests = None
        if server is not None:  # a detached uploader delivers after the command returned
            deadline = time.monotonic() + cap
            while server.requests < warmup + runs and time.monotonic() < deadline:
                time.sleep(0.1)
            requests = server.requests
    return summary(pairs, requests, warmup + runs)


def summary(pairs: list[dict[str, Any]], requests: int | None, sent: int) -> dict[str, Any]:
    tool = [p["tool"] for p in pairs]
    bare = [p["bare"] for p in pairs]
    return {
        "median_ms": round(statistics.median(r["exit_s"] for r in tool) * 1000, 1),
        "bare_median_ms": round(statistics.median(r["exit_s"] for r in bare) * 1000, 1),
        "ratio": round(
            statistics.median(t["exit_s"] / b["exit_s"] for t, b in zip(tool, bare, strict=True)), 2
        ),
        "killed": sum(r["killed"] for r in tool),
        "failed": sum(not r["ok"] and not r["killed"] for r in tool),
        "runs": len(tool),
        "eof_before_exit_ms": round(max(r["exit_s"] - r["eof_s"] for r in tool) * 1000, 1),
        "requests": requests,
        "sent": sent,
        "pairs": pairs,
    }


# --- the table ---------------------------------------------------------------------------


def figure(c: dict[str, Any], cap: float) -> str:
    if c["killed"] * 2 > c["runs"]:  # the median run was killed
        return f"≥{cap:.0f} s killed {c['killed']}/{c['runs']}"
    ms = c["median_ms"]
    text = f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"
    text += f" ({c['ratio']:.1f}x)" if c["ratio"] >= 1.95 else f" ({c['ratio']:.2f}x)"
    text += f" {c['killed']}/{c['runs']} killed" if c["killed"] else ""
    return text + (f" {c['failed']}/{c['runs']} failed" if c["failed"] else "")


def render(results: dict[str, Any]) -> list[str]:
    """The lines printed for the results (as in the ``--json`` file): the docs' table is
    these lines, rendered from the committed results (scripts/docs_outputs.py)."""
    cells, cap, states = results["cells"], results["cap_s"], results["states"]
    width = max(len(figure(c, cap)) for row in cells.values() for c in row.values()) + 2
    lines = [
        f"median wall time to exit (median of per-pair ratios to click alone),"
        f" {results['runs']} pairs per cell, capped at {cap:.0f} s",
        f"{'':<14}" + "".join(f"{s:>{width}}" for s in states) + f"{'delivered':>11}",
    ]
    bare = {s: statistics.median(c[s]["bare_median_ms"] for c in cells.values()) for s in states}
    lines.append(
        f"{'click alone':<14}" + "".join(f"{f'{bare[s]:.0f} ms':>{width}}" for s in states)
    )
    for tool, row in cells.items():
        delivered = f"{row['healthy']['requests']}/{row['healthy']['sent']}"
        lines.append(
            f"{tool:<14}"
            + "".join(f"{figure(row[s], cap):>{width}}" for s in states)
            + f"{delivered:>11}"
        )
    late = [
        f"{tool} {s}"
        for tool, row in cells.items()
        for s in states
        if not row[s]["killed"] and row[s]["eof_before_exit_ms"] > 100
    ]
    if any(c["failed"] for row in cells.values() for c in row.values()):
        lines.append("failed: the command exited non-zero or did not print its greeting")
    lines.append(
        "out=$(tool hello) returned when the tool exited, for every tool and endpoint"
        if not late
        else "stdout closed over 100 ms before exit: " + ", ".join(late)
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="pairs per cell (5)")
    parser.add_argument("--warmup", type=int, default=1, help="healthy warm-up pairs (1)")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds before a kill (60)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="SDKs' refusing and blackholed cells at once (1)"
    )
    parser.add_argument("--tools", help="a comma-separated subset of the apps")
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    run_context = measured.context(sys.argv)
    python = venv()
    tools = [t for t in APPS if t != "click alone"]
    if args.tools:
        tools = [t for t in tools if t in args.tools.split(",")]
    home = tempfile.mkdtemp(prefix="cli-telemetry-peers-")
    scripts = write_apps(Path(home))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "PEERS_BENCH_"))}
    for name in ("DO_NOT_TRACK", "CI", "PYTHONPATH", "VIRTUAL_ENV", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)  # a user's run (pytest's variable: the smoke test starts this)
    env["HOME"] = home
    try:
        for script in scripts.values():  # compiled once, as an installed tool is
            subprocess.run([str(python), "-m", "py_compile", str(script)], check=True)
        cells: dict[str, dict[str, Any]] = {t: {} for t in tools}

        def measure(tool: str, state: str) -> None:
            warmup = args.warmup if state == "healthy" else 0
            found = cell(python, scripts, tool, state, env, args.runs, warmup, args.cap)
            cells[tool][state] = found
            print(f"{tool} {state}: {figure(found, args.cap)}", file=sys.stderr)

        # One at a time, the cells whose runs are short and CPU-bound: every healthy one,
        # and this library's (its row is the one read to the millisecond); then the SDKs'
        # refusing and blackholed cells, ``--jobs`` at once: their runs mostly wait.
        alone = [(t, s) for t in tools for s in STATES if s == "healthy" or t == "cli-telemetry"]
        for tool, state in alone:
            measure(tool, state)
        rest = [(t, s) for s in STATES for t in tools if (t, s) not in alone]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for future in [pool.submit(measure, t, s) for t, s in rest]:
                future.result()
        versions = subprocess.run(
            [str(python), "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        results = {
            "runs": args.runs, "warmup": args.warmup, "cap_s": args.cap, "jobs": args.jobs,
            "states": list(STATES), "pins": list(PINS), "installed": versions, "cells": cells,
        }  # fmt: skip
        print("\n".join(render(results)))
        if args.json:
            measured.write(args.json, run_context, results)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
