#!/usr/bin/env python3
"""Set up and run the project: ``python3 dev.py demo`` or ``python3 dev.py test``.

Needs only Python 3.11+. Creates ``.venv`` (once; again when a pyproject changes), installs
the library with its dev tools and the example tool into it, then runs the chosen task.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


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
    subprocess.run([*pip, "-e", f"{ROOT}[dev]", "-e", str(ROOT / "examples/cli_app")], check=True)
    stamp.write_text(digest)


def isolated_env(home: str) -> dict[str, str]:
    """An environment whose HOME is a fresh directory: the demo never touches yours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "CLI_APP_"))}
    env.pop("DO_NOT_TRACK", None)
    env["HOME"] = home
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def demo() -> int:
    sys.path.insert(0, str(ROOT / "examples"))
    import receiver  # a stdlib receiver of the wire format, on a free loopback port

    received: list[dict[str, object]] = []

    def show(event: dict[str, object]) -> None:
        received.append(event)
        print(f"      [endpoint] received: {receiver.describe(event)}", flush=True)

    server = receiver.start_in_background(0, show)
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/events"
    with tempfile.TemporaryDirectory(prefix="cli-telemetry-demo-") as home:
        env = isolated_env(home)
        env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint

        def run(*args: str, extra: dict[str, str] | None = None, note: str = "") -> None:
            shown = " ".join(f"{k}={v}" for k, v in (extra or {}).items())
            line = f"$ {shown + ' ' if shown else ''}cli-app {' '.join(args)}"
            print(f"\n{line}" + (f"   # {note}" if note else ""), flush=True)
            subprocess.run([str(BIN / "cli-app"), *args], env={**env, **(extra or {})}, check=False)

        debug = {"CLI_APP_TELEMETRY_DEBUG": "1"}
        print(f"A throwaway HOME for this demo: {home}\nA local endpoint: {endpoint}")
        run(
            "hello",
            "--name",
            "Ada",
            extra=debug,
            note="debug mode: print the event, record nothing",
        )
        run("deploy", "start", "web", "--env", "staging", "--dry-run", extra=debug)
        run(
            "telemetry", "status", note="off until the one-time notice has been shown on a terminal"
        )
        run("telemetry", "enable")
        run("hello", "--shout", note="recorded, then a detached uploader sends it")
        run("deploy", "start", "web", "--replicas", "3", extra={"CLI_APP_ENV": "prod"})
        run("check", "widget.txt", note="fails: recorded as an error, no message or path kept")
        run("deploy", "stop", note="a usage error: recorded without echoing the bad input")
        deadline = time.monotonic() + 60
        while len(received) < 5 and time.monotonic() < deadline:  # uploads are throttled
            stamp = Path(home, ".local/state/cli-app/telemetry/uploader.stamp")
            if stamp.exists() and stamp.stat().st_mtime < time.time() - 2:
                run("hello", extra={"DO_NOT_TRACK": "1"}, note="waiting for the uploader")
            time.sleep(0.2)
        print(f"\nThe endpoint received {len(received)} events; one of them in full:")
        print(json.dumps(received[-1] if received else {}, indent=2))
        run("telemetry", "status", note="the spool is empty again; last upload is set")
        run("hello", extra={"DO_NOT_TRACK": "1"}, note="DO_NOT_TRACK wins over the config file")
        run("telemetry", "disable")
        run("telemetry", "status")
    server.shutdown()
    return 0 if received else 1


def test(extra: list[str]) -> int:
    steps = [
        [str(PYTHON), "-m", "ruff", "check", "."],
        [str(PYTHON), "-m", "ruff", "format", "--check", "."],
        [str(PYTHON), "-m", "mypy"],
        [str(PYTHON), "-m", "pytest", *extra],
    ]
    for step in steps:
        print("+", " ".join(step[2:]), flush=True)
        code = subprocess.run(step, cwd=ROOT, check=False).returncode
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
    ensure_venv()
    return demo() if argv[0] == "demo" else test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
