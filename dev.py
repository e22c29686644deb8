#!/usr/bin/env python3
"""Set up and run the project: ``python3 dev.py demo`` or ``python3 dev.py test``.

Needs only Python 3.11+. Creates ``.venv`` (once; again when a pyproject changes), installs
the library with its dev tools and the example tool into it, then runs the chosen task.
``python3 dev.py demo --venv DIR`` runs the demo with the commands installed in another
venv instead, without touching ``.venv`` (tests/test_package.py: the installed wheel).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from collections.abc import Callable
from pathlib import Path


def bin_dir(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin")


ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = bin_dir(VENV)
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
COLLECTOR = "click-telemetry"
"""The console command, named after the distribution (PyPI's ``cli-telemetry`` is another
project's)."""


def ensure_venv() -> None:
    manifests = [ROOT / "pyproject.toml", ROOT / "examples/cli_app/pyproject.toml"]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in manifests)).hexdigest()
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == digest and PYTHON.exists():
        return
    print(f"Setting up {VENV} ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=not PYTHON.exists()).create(VENV)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    if (BIN / "cli-telemetry").exists() or (BIN / "cli-telemetry.exe").exists():
        # A venv made before the distribution was renamed: its console script would
        # answer for a command that no longer exists.
        uninstall = [str(PYTHON), "-m", "pip", "uninstall", "-y", "-q", "cli-telemetry"]
        subprocess.run(uninstall, check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]", "-e", str(ROOT / "examples/cli_app")], check=True)
    stamp.write_text(digest)


def isolated_env(home: str, bin_path: Path) -> dict[str, str]:
    """An environment whose HOME is a fresh directory: the demo never touches yours. No
    PYTHONPATH either: the commands import the library from their own venv, nowhere else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CLI_APP_"))}
    env.pop("DO_NOT_TRACK", None)
    env.pop("PYTHONPATH", None)
    env["HOME"] = home
    env["PATH"] = f"{bin_path}{os.pathsep}{env.get('PATH', '')}"
    return env


def demo(bin_path: Path = BIN) -> int:
    """The whole story on the embedded default: the example tool, its detached uploader,
    the collector on loopback with a SQLite file, and the report; with the commands in
    ``bin_path``."""
    with tempfile.TemporaryDirectory(prefix="cli-telemetry-demo-") as home:
        env = isolated_env(home, bin_path)
        db = f"sqlite:///{home}/collector.sqlite3"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        collector = subprocess.Popen(
            [str(bin_path / COLLECTOR), "collector", "serve", "--db", db, "--port", str(port)],
            env=env,
        )
        try:
            if not wait_for(lambda: healthy(port), 30):
                print("the collector did not start", file=sys.stderr)
                return 1
            env["CLI_APP_TELEMETRY_ENDPOINT"] = f"http://127.0.0.1:{port}/v1/events"
            return tell_the_story(home, env, db, bin_path)
        finally:
            collector.terminate()
            collector.wait(timeout=30)


def tell_the_story(home: str, env: dict[str, str], db: str, bin_path: Path) -> int:
    def run(*args: str, extra: dict[str, str] | None = None, note: str = "") -> None:
        shown = " ".join(f"{k}={v}" for k, v in (extra or {}).items())
        line = f"$ {shown + ' ' if shown else ''}cli-app {' '.join(args)}"
        print(f"\n{line}" + (f"   # {note}" if note else ""), flush=True)
        subprocess.run(
            [str(bin_path / "cli-app"), *args], env={**env, **(extra or {})}, check=False
        )

    def status() -> dict[str, object]:
        out = subprocess.run(
            [str(bin_path / "cli-app"), "telemetry", "status", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result: dict[str, object] = json.loads(out)
        return result

    debug = {"CLI_APP_TELEMETRY_DEBUG": "1"}
    print(f"A throwaway HOME for this demo: {home}")
    print(f"The collector: {env['CLI_APP_TELEMETRY_ENDPOINT']}, storing in {db}")
    run("hello", "--name", "Ada", extra=debug, note="debug mode: print the event, record nothing")
    run("telemetry", "status", note="off until the one-time notice has been shown on a terminal")
    run("telemetry", "enable")
    run("hello", "--shout", note="recorded; a detached uploader sends it to the collector")
    run("deploy", "start", "web", "--replicas", "3", extra={"CLI_APP_ENV": "prod"})
    run("deploy", "start", "api", "--env", "staging", "--dry-run")
    run("check", "widget.txt", note="fails: recorded as an error, no message or path kept")
    run("deploy", "stop", note="a usage error: recorded without echoing the bad input")
    print("\nWaiting (at most 60 s) until the spool is empty and the uploader done ...")
    if not wait_for(lambda: status()["pending"] == 0 and status()["last_upload"] is not None, 60):
        print("events did not arrive", file=sys.stderr)
        return 1
    run("telemetry", "status")
    print(f"\n$ {COLLECTOR} report --db {db} --since 1d", flush=True)
    report = [str(bin_path / COLLECTOR), "report", "--db", db, "--since", "1d"]
    subprocess.run(report, env=env, check=True)
    run("telemetry", "disable", note="stops any uploader, deletes what waits and the install id")
    return 0


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def provide(script: str, variable: str, what: str) -> dict[str, str]:
    """Run scripts/<script> (it installs, as root, and starts what some tests need, and
    prints where it is); without it, those tests skip and say why. A URL or path the
    environment already gives (CLI_TELEMETRY_TEST_POSTGRES, say) is used as it is, and the
    script is not run: several checkouts on one machine each test on a database of their
    own, as the tests empty it at will. The scripts install Debian's packages: elsewhere
    (macOS, Windows) they are not run."""
    if os.environ.get(variable):
        print(f"{what}: {variable} is set, used as it is", flush=True)
        return {}
    if not sys.platform.startswith("linux"):
        print(f"{what}: scripts/{script} is for Debian, not {sys.platform}", flush=True)
        return {}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / script)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        print(f"{what} unavailable, its tests will skip:\n{result.stderr}", flush=True)
        return {}
    return {variable: result.stdout.strip()}


def test(extra: list[str]) -> int:
    env = {
        **os.environ,
        **provide("postgres.sh", "CLI_TELEMETRY_TEST_POSTGRES", "PostgreSQL"),
        **provide("chromium.sh", "CLI_TELEMETRY_TEST_CHROMIUM", "Chromium"),
    }
    steps = [
        [str(PYTHON), "-m", "ruff", "check", "."],
        [str(PYTHON), "-m", "ruff", "format", "--check", "."],
        [str(PYTHON), "-m", "mypy"],
        [str(PYTHON), "-m", "pytest", *extra],
    ]
    for step in steps:
        print("+", " ".join(step[2:]), flush=True)
        code = subprocess.run(step, cwd=ROOT, env=env, check=False).returncode
        if code:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on the system Python
        print("cli-telemetry needs Python 3.11 or newer", file=sys.stderr)
        return 2
    if argv[0] == "demo" and len(argv) == 3 and argv[1] == "--venv":
        return demo(bin_dir(Path(argv[2]).resolve()))
    ensure_venv()
    return demo() if argv[0] == "demo" else test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
