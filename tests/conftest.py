"""Shared fixtures: an isolated home for the example tool, and bounded polling.

Every end-to-end test runs ``python -m cli_app`` as a real subprocess with its own HOME, no
XDG variables, no DO_NOT_TRACK and no CI variables, so nothing leaks in from the machine
running the tests (CI sets CI=true; tests that need it set it themselves).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli_telemetry._settings import RECORD_UNDER_TEST_VARIABLE, UPLOAD_AT_ONCE_VARIABLE
from cli_telemetry.capture import _CI_VARIABLES

TOOL = "cli-app"

if os.name == "nt":
    # They import what Windows lacks (ptys, fcntl, resource limits) to test what only POSIX
    # does: a terminal's foreground job, file modes, full disks, signals.
    collect_ignore = [
        "test_faults_e2e.py",
        "test_local_files_e2e.py",
        "test_never_hurt_e2e.py",
        "test_telemetry_command_e2e.py",
    ]


def clean_environ(home: Path) -> dict[str, str]:
    """This process's environment for a tool run as a user runs it, in ``home``.

    Without pytest's variables: a tool that sees ``PYTEST_CURRENT_TEST`` (which every
    process a test starts inherits) knows a test runs it, and records nothing
    (`cli_telemetry._settings.detect_test_runner`), whereas these processes stand for a
    user's runs. Without the private opt-in of the tests run in process (`as_a_user`) too:
    a test that gives a child pytest's variable back sees what an author's test would."""
    ci_vars = {var for var, _ in _CI_VARIABLES}
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XDG_", "CLI_APP_", "TYPER_APP_", "PYTEST_"))
        and k not in ci_vars
        and k not in ("DO_NOT_TRACK", RECORD_UNDER_TEST_VARIABLE)
    }
    env["HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["CLI_APP_ENDPOINT"] = ""  # no uploads, unless a test sets CLI_APP_TELEMETRY_ENDPOINT
    env["TYPER_APP_ENDPOINT"] = ""  # the same for the Typer example (tests/test_typer_e2e.py)
    # Every recorded run starts the uploader, as the demo's do: these tests expect their
    # events at the server promptly. The policy itself is tested without it
    # (tests/test_upload_policy_e2e.py).
    env[UPLOAD_AT_ONCE_VARIABLE] = "1"
    return env


@pytest.fixture
def as_a_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tools this test runs in its own process record as a user's run would, in the
    HOME the test made, and start the uploader, though pytest (and a ``CliRunner``) runs
    them: the library's private opt-in (`_settings.RECORD_UNDER_TEST_VARIABLE`), because a
    user's run is what these tests check. Without it such a run records nothing, as an
    author's test's does (tests/test_test_runner_e2e.py); an author's test records through
    the ``telemetry_events`` fixture instead."""
    monkeypatch.setenv(RECORD_UNDER_TEST_VARIABLE, "1")
    monkeypatch.setenv(UPLOAD_AT_ONCE_VARIABLE, "1")  # as `clean_environ`


def poll(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Wait until ``condition()`` holds, at most ``timeout`` seconds; the result says which."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def open_sockets() -> int:
    """How many of this process's file descriptors are sockets (Linux: /proc/self/fd)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the descriptor that listed the directory, closed since
            pass
    return count


needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts sockets in /proc/self/fd (Linux)"
)


def _take_terminal() -> None:
    """In the child: make the pty (on stderr) its controlling terminal, as a shell does for
    the job it runs in the foreground."""
    import fcntl  # here, as pty below: POSIX only, and this file must import on Windows
    import termios

    fcntl.ioctl(2, termios.TIOCSCTTY, 0)


@dataclass(frozen=True)
class TtyResult:
    returncode: int
    stdout: str
    terminal: str


class Tool:
    """The example tool, run as a real process in an isolated home.

    Processes start in the home directory: started in the checkout, ``python -m`` would put
    the source tree first on sys.path and shadow bench/baseline's stand-in.
    """

    def __init__(self, home: Path, name: str = TOOL, program: list[str] | None = None) -> None:
        self.home = home
        self.name = name
        self.program = program or [sys.executable, "-m", "cli_app"]
        self.env = clean_environ(home)
        self.config_file = home / ".config" / name / "telemetry.conf"
        self.state_dir = home / ".local" / "state" / name / "telemetry"
        self.spool_dir = self.state_dir / "spool"
        self.ids_file = self.state_dir / "ids"

    def command(self, *args: str) -> list[str]:
        return [*self.program, *args]

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        input: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env={**self.env, **(env or {})},
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.home if self.home.is_dir() else None,
        )

    def run_tty(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        stdin_tty: bool = True,
        answer: str | None = None,
        timeout: float = 30,
    ) -> TtyResult:
        """Run with stderr (and stdin, unless ``stdin_tty=False``) on a pseudo-terminal.

        stdout stays a pipe, so a test sees exactly what went to stdout. ``answer`` is typed
        once the terminal shows ``[y/N]``.
        """
        import pty

        master, slave = pty.openpty()
        proc = subprocess.Popen(
            self.command(*args),
            env={**self.env, **(env or {})},
            stdin=slave if stdin_tty else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            cwd=self.home if self.home.is_dir() else None,
            start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        terminal = b""
        answered = answer is None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # EIO: the child closed the terminal
                        break
                    if not chunk:
                        break
                    terminal += chunk
                if not answered and b"[y/N]" in terminal:
                    os.write(master, (answer or "").encode() + b"\n")
                    answered = True
                if proc.poll() is not None and not ready:
                    break
            else:
                proc.kill()
                raise AssertionError(f"{args} did not finish in {timeout} s: {terminal!r}")
            assert proc.stdout is not None
            stdout = proc.stdout.read().decode()
            returncode = proc.wait(timeout=timeout)
        finally:
            os.close(master)
            if proc.stdout:
                proc.stdout.close()
        return TtyResult(returncode, stdout, terminal.decode().replace("\r\n", "\n"))

    def enable(self) -> None:
        result = self.run("telemetry", "enable")
        assert result.returncode == 0, result.stderr

    def upload_state(self) -> dict[str, Any]:
        """The uploader's ``upload.json`` (empty while there is none, or it is mid-write)."""
        try:
            data: dict[str, Any] = json.loads((self.state_dir / "upload.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def allow_next_attempt(self) -> None:
        """As if every backoff had run its course: each sink's next attempt is in
        ``upload.json``, and the stamp's mtime is the next allowed spawn."""
        state = self.upload_state()
        for sink_state in state.get("sinks", {}).values():
            sink_state["retry_at_epoch"] = 0
        (self.state_dir / "upload.json").write_text(json.dumps(state))
        past = time.time() - 60
        os.utime(self.state_dir / "uploader.stamp", (past, past))

    def uploader_stopped(self) -> bool:
        """The uploader lock is free (the uploader finished or died).

        On Linux the kernel's table of locks is read, and the lock is never taken: an
        uploader that tries the lock while a test holds it, if only for the instant of a
        probe, finds it taken and exits at once (`cli_telemetry._uploader.run` returns
        "busy": whoever holds it, it assumes, is an uploader that will take the new events),
        so the events it was started for would wait for a next command that a test polling
        for them never runs. Elsewhere the lock is tried, and that collision stays possible
        (rare: the probe holds the lock for some microseconds).
        """
        held = _flock_held(self.state_dir / "uploader.lock")
        if held is not None:
            return not held
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.state_dir / "uploader.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return False
        lock.release()
        return True

    def event_files(self) -> list[Path]:
        new = self.spool_dir / "new"
        return sorted(new.glob("*.json")) if new.is_dir() else []

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in self.event_files()]

    def files(self) -> list[Path]:
        """Every file under the home directory (what the tool wrote)."""
        return sorted(p for p in self.home.rglob("*") if p.is_file())


def _flock_held(path: Path) -> bool | None:
    """Whether a process holds a lock on the file at ``path``, read from /proc/locks
    without locking anything; None where there is no such table (macOS, Windows).

    A file that is not there is held by nobody (a lock on a deleted file, as ``telemetry
    disable`` leaves one, is no longer the lock of that name). The file is matched by its
    inode number alone: the device /proc/locks shows is not always the one ``stat``
    reports (overlayfs), and two locked files of the same number on two filesystems are
    not worth a false "stopped". Lines with ``->`` are requests still waiting, not locks.
    """
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    for line in table.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == "->":
            continue
        file_ids = [field for field in fields if field.count(":") == 2]
        if file_ids and file_ids[0].rsplit(":", 1)[1] == str(inode):
            return True
    return False


def script_tool(directory: Path, source: str, name: str = "acme") -> Tool:
    """A tool made of ``source`` (a click script), run as a real process in a home of its
    own under ``directory``."""
    script = directory / f"{name}_tool.py"
    script.write_text(source)
    home = directory / "home"
    home.mkdir(exist_ok=True)
    return Tool(home, name=name, program=[sys.executable, str(script)])


@pytest.fixture
def tool(tmp_path: Path) -> Iterator[Tool]:
    home = tmp_path / "home"
    home.mkdir()
    yield Tool(home)
    # A test may have made parts read-only; make sure pytest can clean up.
    for path in [home, *home.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)


TOOL_SCRIPT = """
import click
from cli_telemetry import Telemetry

telemetry = Telemetry("acme", version="2.0.0", consent={consent!r},
                      policy_version={policy_version}, privacy_url="https://acme.example/privacy")

@telemetry.instrument
@click.group()
def cli():
    pass

@cli.command()
def hello():
    click.echo("hello")

@cli.command()
def interrupt():
    raise KeyboardInterrupt

cli.add_command(telemetry.command())
cli()
"""


@pytest.fixture
def make_tool(tmp_path: Path) -> Callable[..., Tool]:
    """A tiny tool ``acme`` with the given consent mode and policy version, in ``tool``'s home."""

    def make(consent: str = "notice", policy_version: int = 1, home: Path | None = None) -> Tool:
        script = tmp_path / f"acme_{consent}_{policy_version}.py"
        script.write_text(TOOL_SCRIPT.format(consent=consent, policy_version=policy_version))
        home = home or tmp_path / "home"
        home.mkdir(exist_ok=True)
        return Tool(home, name="acme", program=[sys.executable, str(script)])

    return make


FIGURES = pytest.StashKey[list[tuple[str, dict[str, Any]]]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """What a fault test measured (kills, events sent, stored, duplicates, seconds): fill
    the dict. Written, passed or failed, to ``$TMPDIR/cli-telemetry-figures/<test>.json``
    and listed at the end of the run (docs/delivery/reliability.md says what they count)."""
    values: dict[str, Any] = {}
    yield values
    if not values:
        return
    directory = Path(tempfile.gettempdir()) / "cli-telemetry-figures"
    directory.mkdir(exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.nodeid)
    (directory / f"{name}.json").write_text(json.dumps(values, indent=1) + "\n")
    request.config.stash.setdefault(FIGURES, []).append((request.node.nodeid, values))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorded = config.stash.get(FIGURES, [])
    if recorded:
        terminalreporter.section("fault figures")
        for nodeid, values in recorded:
            terminalreporter.write_line(f"{nodeid}\n    {json.dumps(values)}")


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 0 for the test: files we create must be private by their own mode."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)
