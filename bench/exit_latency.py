"""Can the network be felt at exit? ``python bench/exit_latency.py [--pairs N]``.

Runs the example tool's ``hello`` with telemetry on and an uploader spawned on every run
(the spawn throttle's stamp is reset before each run, as if commands were spaced out)
against the same tool without telemetry (bench/baseline's stand-in), paired and
interleaved, in three shapes: ``tool hello`` (until exit), ``out=$(tool hello)`` (until the
captured pipe's EOF) and ``tool hello | cat`` (until the pipeline ends); each with the
endpoint healthy, refusing connections, and blackholed (accepts, never answers). Prints the
median of the per-pair ratios for each cell; the last line is the worst of them.
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

ROOT = Path(__file__).resolve().parent.parent
BASELINE = str(ROOT / "bench" / "baseline")
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


def timed(shape: str, tool: list[str], env: dict[str, str], home: str) -> float:
    start = time.perf_counter()
    subprocess.run(["sh", "-c", SHAPES[shape], "sh", *tool], env=env, cwd=home, check=True)
    return time.perf_counter() - start


def measure(shape: str, tool: list[str], env: dict[str, str], home: str, pairs: int) -> float:
    stamp = Path(home, ".local/state/cli-app/telemetry/uploader.stamp")
    spool = Path(home, ".local/state/cli-app/telemetry/spool/new")
    without_env = {**env, "PYTHONPATH": BASELINE}
    ratios = []
    for i in range(pairs + 1):  # the first pair warms up
        if stamp.exists():
            os.utime(stamp, (0, 0))  # spawn an uploader on this run, whatever happened before
        for event in spool.glob("*.json") if spool.is_dir() else []:
            event.unlink(missing_ok=True)  # an uploader may be taking them too
        if i % 2 == 0:
            a = timed(shape, tool, env, home)
            b = timed(shape, tool, without_env, home)
        else:
            b = timed(shape, tool, without_env, home)
            a = timed(shape, tool, env, home)
        if i:
            ratios.append(a / b)
    return statistics.median(ratios)


def render(results: dict[str, Any]) -> list[str]:
    """The lines printed for the results (as in the ``--json`` file): the docs' tables are
    these lines, rendered from the committed results (scripts/docs_outputs.py)."""
    endpoints = results["endpoints"]
    lines = [
        f"median ratio (with / without telemetry) over {results['pairs']} pairs",
        f"{'':<20}" + "".join(f"{name:>12}" for name in endpoints),
    ]
    for shape, cells in results["ratios"].items():
        lines.append(f"{shape:<20}" + "".join(f"{cells[name]:>12.3f}" for name in endpoints))
    worst = max(c for cells in results["ratios"].values() for c in cells.values())
    lines.append(f"worst median ratio: {worst:.2f}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--json", metavar="PATH", help="also write the results there")
    args = parser.parse_args()
    run = measured.context(sys.argv)
    script = shutil.which("cli-app", path=os.path.dirname(sys.executable))
    if script is None:
        raise SystemExit("cli-app is not installed next to this Python; run `python3 dev.py test`")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "cli_telemetry"),
         str(ROOT / "examples" / "cli_app"), BASELINE],
        check=True,
    )  # fmt: skip
    ok_url, server = healthy()
    hole_url, hole = blackhole()
    endpoints = {"healthy": ok_url, "refusing": refusing(), "blackholed": hole_url}
    home = tempfile.mkdtemp(prefix="cli-telemetry-exit-")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CLI_APP_"))}
    base_env.pop("DO_NOT_TRACK", None)
    base_env["HOME"] = home
    ratios: dict[str, dict[str, float]] = {}
    try:
        subprocess.run([script, "telemetry", "enable"], env=base_env, cwd=home, check=True,
                       capture_output=True)  # fmt: skip
        for shape in SHAPES:
            ratios[shape] = {}
            for name, url in endpoints.items():
                env = {**base_env, "CLI_APP_TELEMETRY_ENDPOINT": url}
                ratios[shape][name] = measure(shape, [script, "hello"], env, home, args.pairs)
        results = {"pairs": args.pairs, "endpoints": list(endpoints), "ratios": ratios}
        print("\n".join(render(results)))
        if args.json:
            measured.write(args.json, run, results)
    finally:
        subprocess.run([script, "telemetry", "disable"], env=base_env, cwd=home,
                       capture_output=True, check=False)  # fmt: skip
        server.shutdown()
        hole.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
