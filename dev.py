#!/usr/bin/env python3
"""Set up and run the project: ``python3 dev.py demo`` or ``python3 dev.py test``.

Needs only Python 3.11+. Creates ``.venv`` (once; again when a pyproject changes), installs
the library with its dev tools and the example tools into it, then runs the chosen task.
``test`` also sets up one environment per Typer line (`TYPER_LINES`), where the Typer
end-to-end tests run the Typer example. ``python3 dev.py demo --venv DIR`` runs the demo
with the commands installed in another venv instead, without touching ``.venv``
(tests/test_package.py: the installed wheel).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import venv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def bin_dir(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts" if os.name == "nt" else "bin")


ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = bin_dir(VENV)
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
COLLECTOR = "click-telemetry"
"""The console command, named after the distribution (PyPI's ``cli-telemetry`` is another
project's)."""


EXAMPLES = [ROOT / "examples/cli_app", ROOT / "examples/typer_app"]
MANIFESTS = [ROOT / "pyproject.toml", *(example / "pyproject.toml" for example in EXAMPLES)]
TYPER_LINES = {
    "typer-0.25": ["typer==0.25.1", "click==8.5.1"],  # the last line built on click
    "typer-0.29": ["typer==0.29.2", "click==8.5.1"],  # bundles a copy of click as typer._click
}
"""The Typer lines the Typer example is tested on, each in an environment of its own under
build/typer-lines/ (`ensure_typer_lines`), with click pinned for its click twin (the library
needs click, and the Typer example on 0.29 never imports it); ``.venv`` has the latest."""
LINE_TOOLS = ["pytest>=8"]
"""Also in each Typer line's environment: pytest, where an author's tests of the Typer
example run with the library's ``telemetry_events`` fixture."""
TYPER_LINES_DIR = ROOT / "build" / "typer-lines"


def ensure_venv() -> None:
    editables = [arg for example in EXAMPLES for arg in ("-e", str(example))]
    ensure(VENV, ["-e", f"{ROOT}[dev]", *editables])


def ensure_typer_lines() -> dict[str, str]:
    """An environment per Typer line, with the library and both example tools (editable,
    so they run this checkout), made once and again when a pin or a pyproject changes.
    Returns the Pythons to pass to the tests (`CLI_TELEMETRY_TEST_TYPER`), every line's:
    one that could not be set up (no network, say) is removed, so that its tests find no
    Python there, and fail under CI (skip elsewhere) rather than run half an environment."""
    pythons = []
    editables = [arg for path in (ROOT, *EXAMPLES) for arg in ("-e", str(path))]
    for name, pins in TYPER_LINES.items():
        where = TYPER_LINES_DIR / name
        try:
            ensure(where, [*pins, *LINE_TOOLS, *editables])
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"{name} not set up ({exc}): its tests fail in CI, skip here", flush=True)
            shutil.rmtree(where, ignore_errors=True)
        pythons.append(str(where / PYTHON.relative_to(VENV)))
    return {"CLI_TELEMETRY_TEST_TYPER": os.pathsep.join(pythons)}


def ensure(where: Path, requirements: list[str]) -> None:
    """A venv at ``where`` with ``requirements`` installed, unless the one there already has
    them (a stamp of the requirements, the pyprojects and this Python's version)."""
    python = where / PYTHON.relative_to(VENV)
    material = "\n".join([*requirements, sys.version]).encode()
    digest = hashlib.sha256(material + b"".join(p.read_bytes() for p in MANIFESTS)).hexdigest()
    stamp = where / ".installed"
    if stamp.exists() and stamp.read_text() == digest and python.exists():
        return
    print(f"Setting up {where} ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=not python.exists()).create(where)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    renamed = bin_dir(where) / "cli-telemetry"
    if renamed.exists() or renamed.with_suffix(".exe").exists():
        # A venv made before the distribution was renamed: its console script would
        # answer for a command that no longer exists.
        uninstall = [str(python), "-m", "pip", "uninstall", "-y", "-q", "cli-telemetry"]
        subprocess.run(uninstall, check=True)
    subprocess.run([*pip, *requirements], check=True)
    stamp.write_text(digest)


def isolated_env(home: str, bin_path: Path) -> dict[str, str]:
    """An environment whose HOME is a fresh directory: the demo never touches yours. No
    PYTHONPATH either: the commands import the library from their own venv, nowhere else.
    Nor pytest's variables, when a test runs the demo (tests/test_package.py): a tool that
    sees one knows a test runs it, and records nothing, whereas the demo shows a user's
    runs."""
    prefixes = ("XDG_", "CLI_APP_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("DO_NOT_TRACK", None)
    env.pop("PYTHONPATH", None)
    env["HOME"] = home
    env["PATH"] = f"{bin_path}{os.pathsep}{env.get('PATH', '')}"
    # Every recorded command starts the uploader (throttled as ever), so that the demo's
    # events reach its collector at once, not after 20 of them or an hour (the upload
    # policy: docs/delivery/retries.md#when-to-upload).
    env["CLI_TELEMETRY_UPLOAD_AT_ONCE"] = "1"
    return env


def demo(bin_path: Path = BIN) -> int:
    """The whole story on the embedded default: the example tool, its detached uploader,
    the collector on loopback with a SQLite file, and the report; with the commands in
    ``bin_path``."""
    with tempfile.TemporaryDirectory(prefix="cli-telemetry-demo-") as home:
        env = isolated_env(home, bin_path)
        db = f"sqlite:///{home}/collector.sqlite3"
        with collector(bin_path, env, db) as port:
            if port is None:
                print("the collector did not start", file=sys.stderr)
                return 1
            env["CLI_APP_TELEMETRY_ENDPOINT"] = f"http://127.0.0.1:{port}/v1/events"
            return tell_the_story(home, env, db, bin_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def collector(bin_path: Path, env: dict[str, str], db: str, **popen: Any) -> Iterator[int | None]:
    """The collector on a free loopback port, storing in ``db``: yields its port once it
    answers /healthz (None if it did not within 30 s), and stops it on the way out. Also
    the collector of scripts/docs_outputs.py's sandbox (``popen``: where its output goes)."""
    port = free_port()
    command = [str(bin_path / COLLECTOR), "collector", "serve", "--db", db, "--port", str(port)]
    process = subprocess.Popen(command, env=env, **popen)
    try:
        yield port if wait_for(lambda: healthy(port), 30) else None
    finally:
        process.terminate()
        process.wait(timeout=30)


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
    prints where it is); without it, those tests skip and say why. The scripts install
    Debian's packages: elsewhere (macOS, Windows) they are not run. A URL or path the
    environment gives (CLI_TELEMETRY_TEST_POSTGRES, say) is used as it is, on any OS:
    several checkouts on one machine can each test on a database of their own."""
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
        **ensure_typer_lines(),
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
