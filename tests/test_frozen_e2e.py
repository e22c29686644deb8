"""A frozen tool: the example built with PyInstaller (onefile), its events delivered.

A frozen app has no Python to run ``-m cli_telemetry._uploader`` with: it starts itself,
and the instrumented command runs the uploader instead of the tool's command
(`cli_telemetry._spawn.run_if_frozen_uploader`). The library's PyInstaller hook (found
through its ``pyinstaller40`` entry point) bundles the uploader and the sinks, so the build
takes no flags of ours: it is what an author would type.

Onefile, not onedir: it is what authors ship most, and the harder case. Each run unpacks
the bundle into a temporary directory that the app's launcher deletes when its child
exits, and a child started from ``sys.executable`` would share its parent's (soon deleted)
directory unless started as a new instance. The tests look at those directories
(``_MEI*`` under the TMPDIR they give the app) as well as at the events.

The build takes ~20-30 s on two cores. It is cached in ``build/frozen-example/<key>``,
the key hashing the library's and the example's sources, PyInstaller's version and
Python's, so a session builds it once. Under CI a PyInstaller that cannot build fails the
test; elsewhere a missing PyInstaller skips it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pkgutil
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Tool, poll
from filelock import FileLock
from loopback import Endpoint
from test_collector_e2e import Collector

from cli_telemetry import _spawn

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "frozen-example"
ENTRY = ROOT / "examples" / "cli_app" / "cli_app" / "__main__.py"
SOURCES = [ROOT / "cli_telemetry", ROOT / "examples" / "cli_app" / "cli_app"]

COMMANDS = [
    ("hello", "--name", "Ada"),
    ("deploy", "start", "web", "--env", "prod", "--replicas", "3"),  # and deploy.finished
    ("check", "widget.txt"),  # fails: exit 1
    ("deploy", "stop"),  # a usage error: exit 2
]
EXPECTED = sorted(
    [
        ("command", "cli-app hello", 0),
        ("command", "cli-app deploy start", 0),
        ("deploy.finished", "cli-app deploy start", None),
        ("command", "cli-app check", 1),
        ("command", "cli-app deploy", 2),
    ],
    key=repr,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path("/proc/self/environ").exists(),
        reason="finds the app's processes by their environment in /proc (Linux)",
    ),
]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def build_key(pyinstaller: str) -> str:
    digest = hashlib.sha256(f"{pyinstaller}\n{sys.version}\n".encode())
    for path in sorted(p for source in SOURCES for p in source.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build(where: Path) -> float:
    """Freeze the example as an author would; returns how long it took."""
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable, "-m", "PyInstaller", "--onefile", "--noconfirm",
            "--log-level", "WARN", "--name", "cli-app",
            "--distpath", str(where / "dist"), "--workpath", str(where / "work"),
            "--specpath", str(where), str(ENTRY),
        ],
        cwd=where, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"PyInstaller failed:\n{result.stdout}\n{result.stderr}"
    return time.monotonic() - started


@pytest.fixture(scope="module")
def app() -> Path:
    """The frozen example (built under a lock, and marked complete only once whole)."""
    try:
        pyinstaller = importlib.metadata.version("pyinstaller")
    except importlib.metadata.PackageNotFoundError:
        if in_ci():
            pytest.fail("PyInstaller is not installed (it is in the dev extra)")
        pytest.skip("PyInstaller is not installed (pip install -e '.[dev]')")
    where = CACHE / build_key(pyinstaller)
    CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(CACHE / f"{where.name}.lock"), timeout=900):
        if not (where / "complete").exists():
            shutil.rmtree(where, ignore_errors=True)
            where.mkdir()
            seconds = build(where)
            print(f"PyInstaller {pyinstaller} froze the example (onefile) in {seconds:.1f} s")
            (where / "complete").write_text(f"{seconds:.1f}\n")
    return where / "dist" / "cli-app"


def processes_of(home: Path) -> list[tuple[int, list[str]]]:
    """Every live process started with this HOME (the app's launchers and their children,
    commands and uploaders alike), with its command line."""
    marker = f"HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                found.append((int(entry.name), argv[:-1]))
        except OSError:  # gone meanwhile
            continue
    return found


def uploaders_of(home: Path) -> list[int]:
    return [pid for pid, argv in processes_of(home) if argv[1:] == [_spawn.UPLOADER_MODULE]]


def bundles(tmp: Path) -> list[str]:
    """The unpacked bundles of the app's runs (onefile), deleted when each run ends."""
    return sorted(p.name for p in tmp.glob("_MEI*"))


def library_path(pid: int) -> list[str]:
    """The LD_LIBRARY_PATH a process was started with, as a list."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0"):
        name, _, value = item.partition("=")
        if name == "LD_LIBRARY_PATH":
            return value.split(os.pathsep)
    return []


@pytest.fixture
def frozen(app: Path, tmp_path: Path) -> Iterator[Tool]:
    """The frozen example in a home of its own, unpacking into a TMPDIR of its own."""
    home = tmp_path / "home"
    home.mkdir()
    tool = Tool(home, program=[str(app)])
    tool.env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    yield tool
    for pid, _ in processes_of(home):  # a failed test's leftovers; none after a passing one
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def test_a_frozen_tool_delivers_its_events_to_the_collector(frozen: Tool, tmp_path: Path) -> None:
    collector = Collector(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    try:
        frozen.env["CLI_APP_TELEMETRY_ENDPOINT"] = f"{collector.url}/v1/events"
        bare = [frozen.run(*args, env={"DO_NOT_TRACK": "1"}) for args in COMMANDS]
        assert frozen.files() == []  # the control recorded nothing
        frozen.enable()
        for args, without in zip(COMMANDS, bare, strict=True):
            result = frozen.run(*args)
            # What the user sees is what they see without telemetry.
            assert (result.returncode, result.stdout, result.stderr) == (
                without.returncode, without.stdout, without.stderr,
            ), args  # fmt: skip
        assert [r.returncode for r in bare] == [0, 0, 1, 2]

        query = "select event, command, exit_code from events"
        assert poll(lambda: collector.count() >= len(EXPECTED), timeout=90), (
            collector.count(), frozen.upload_state(), processes_of(frozen.home),
        )  # fmt: skip
        assert sorted(collector.rows(query), key=repr) == EXPECTED

        # The uploader (the app, started as itself) ends, and so does everything the app
        # started; each run deleted the bundle it unpacked.
        assert poll(lambda: not processes_of(frozen.home), timeout=60), processes_of(frozen.home)
        assert frozen.event_files() == []
        assert frozen.upload_state()["failures"] == 0
        assert poll(lambda: not bundles(tmp_path / "tmp"), timeout=30), bundles(tmp_path / "tmp")
    finally:
        collector.close()


def test_a_frozen_tool_returns_while_its_uploader_runs_and_disable_stops_it(
    frozen: Tool, tmp_path: Path
) -> None:
    """The uploader's send is held by the endpoint (up to its send timeout, 7 s): the
    command has returned, and the uploader is seen running after that, so the command did
    not wait for it. ``telemetry disable`` then stops it, and nothing is left."""
    endpoint = Endpoint()
    endpoint.mode = "hold"
    try:
        frozen.env["CLI_APP_TELEMETRY_ENDPOINT"] = endpoint.url
        frozen.enable()
        result = frozen.run("hello")
        assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, world!\n", "")
        assert uploaders_of(frozen.home), "no uploader ran on after the command returned"
        assert poll(lambda: endpoint.holding == 1, timeout=60), frozen.upload_state()

        # The command that would start another finds it running (/proc shows its name).
        pid_file = frozen.state_dir / "uploader.pid"
        pid = _spawn.running_uploader(str(pid_file))
        assert pid is not None and pid in uploaders_of(frozen.home)
        # It runs from a bundle of its own (the command's is gone), and its library path
        # names no other: the command's would be a directory that no longer exists.
        (bundle,) = bundles(tmp_path / "tmp")
        users = [p for p in frozen.env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
        assert library_path(pid) == [str(tmp_path / "tmp" / bundle), *users]

        disable = frozen.run("telemetry", "disable")
        assert disable.returncode == 0, disable.stderr
        assert poll(lambda: not processes_of(frozen.home), timeout=60), processes_of(frozen.home)
        assert poll(lambda: not bundles(tmp_path / "tmp"), timeout=30), bundles(tmp_path / "tmp")
        assert not frozen.state_dir.exists() or frozen.event_files() == []
    finally:
        endpoint.close()


def bundled_modules(app: Path) -> set[str]:
    """The Python modules in the frozen app's archive, as PyInstaller's own viewer lists
    them."""
    viewer = Path(sys.executable).parent / "pyi-archive_viewer"
    result = subprocess.run(
        [str(viewer), "--recursive", "--brief", str(app)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


def test_the_hook_bundles_every_sink_and_nothing_of_the_collector(app: Path) -> None:
    """The uploader imports a sink by the name its provider gives, which PyInstaller cannot
    see (the delivery test above sends to the collector, whose sink it finds anyway): each
    built-in provider's sink is bundled through the library's hook, with no flag of the
    author's. The collector and the pytest plugin, which no tool runs, are not."""
    import cli_telemetry.sinks
    from cli_telemetry import providers

    modules = bundled_modules(app)
    sinks = [
        providers.PostHog("k"), providers.Segment("k"), providers.Mixpanel("t"),
        providers.Amplitude("k"), providers.RudderStack("k", "https://rudder.example"),
        providers.Webhook("https://hook.example"), providers.OTLP("https://otlp.example"),
        providers.Collector("https://collector.example"),
    ]  # fmt: skip
    wanted = {sink.target.partition(":")[0] for sink in sinks} | {"cli_telemetry._uploader"}
    wanted |= {
        f"cli_telemetry.sinks.{m.name}" for m in pkgutil.iter_modules(cli_telemetry.sinks.__path__)
    }
    assert wanted - modules == set()
    unwanted = {"cli_telemetry.collector", "cli_telemetry.pytest_plugin", "pytest", "starlette"}
    assert unwanted & modules == set()
    assert not any(m.startswith(("cli_telemetry.collector.", "sqlalchemy.")) for m in modules)


def test_outside_a_frozen_app_the_uploader_marks_change_nothing(tool: Tool) -> None:
    """The options variable and the uploader's argument, given to the example run by
    Python: the command runs (or fails) as it does without them."""
    options = json.dumps(
        {
            "tool": "cli-app", "env_prefix": "CLI_APP", "consent": "notice",
            "policy_version": 1, "sinks": [], "max_events": 10, "max_bytes": 100_000,
        }
    )  # fmt: skip
    marks = {_spawn.OPTIONS_VARIABLE: options}
    tool.enable()
    for args in [("hello",), (_spawn.UPLOADER_MODULE,)]:
        without = tool.run(*args)
        result = tool.run(*args, env=marks)
        assert (result.returncode, result.stdout, result.stderr) == (
            without.returncode, without.stdout, without.stderr,
        )  # fmt: skip
    assert result.returncode == 2  # a usage error: no such command
    assert len(tool.events()) == 4  # each run recorded, the uploader ran none of them
