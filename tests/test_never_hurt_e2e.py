"""Telemetry never changes what the user sees, and broken surroundings change nothing.

Every test compares against the example tool run with ``bench/baseline`` first on
PYTHONPATH: the same tool with a do-nothing stand-in for cli_telemetry, i.e. without
telemetry at all.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Tool, clean_environ

BASELINE = str(Path(__file__).resolve().parent.parent / "bench" / "baseline")

COMMANDS: list[tuple[list[str], str]] = [
    (["hello", "--name", "Ada"], ""),
    (["deploy", "start", "web", "--env", "prod", "--replicas", "2"], ""),
    (["deploy", "status", "--format", "json"], ""),
    (["deploy", "--help"], ""),
    (["--version"], ""),
    (["check", "widget.txt"], ""),
    (["crash"], ""),
    (["deploy", "start", "web", "--bogus"], ""),
    (["nope"], ""),
    (["reset"], "n\n"),
    (["reset"], "y\n"),
]


def baseline_run(tool: Tool, args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return tool.run(*args, input=stdin, env={"PYTHONPATH": BASELINE})


@pytest.mark.parametrize(("args", "stdin"), COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_output_and_exit_code_are_exactly_as_without_telemetry(
    tool: Tool, args: list[str], stdin: str
) -> None:
    tool.enable()
    with_telemetry = tool.run(*args, input=stdin)
    without = baseline_run(tool, args, stdin)
    assert "cli_telemetry" not in without.stderr  # the baseline really has no telemetry
    assert with_telemetry.returncode == without.returncode
    assert with_telemetry.stdout == without.stdout
    assert with_telemetry.stderr == without.stderr  # tracebacks included
    assert len(tool.events()) >= 1


@pytest.fixture
def unwritable_home() -> Iterator[tuple[Path, dict[str, object]]]:
    """A home directory the tool's user cannot write to.

    Root ignores permission bits, so as root the tool runs as ``nobody`` instead, in a home
    of nobody's (in another user's home, nothing would even be tried); the directory then
    lives outside pytest's private tmp dir so that ``nobody`` can enter it.
    """
    top = Path(tempfile.mkdtemp(prefix="cli-telemetry-ro-"))
    top.chmod(0o755)
    home = top / "home"
    home.mkdir()
    home.chmod(0o555)
    user: dict[str, object] = {}
    if os.geteuid() == 0:
        os.chown(home, 65534, 65534)
        user = {"user": 65534, "group": 65534, "extra_groups": []}
    yield home, user
    home.chmod(0o755)
    shutil.rmtree(top)


def test_read_only_home_changes_nothing(
    tool: Tool, unwritable_home: tuple[Path, dict[str, object]]
) -> None:
    home, user = unwritable_home
    env = {**clean_environ(home), "CLI_APP_TELEMETRY_DEBUG": ""}
    for args, stdin in COMMANDS:
        result = subprocess.run(
            tool.command(*args), env=env, input=stdin, capture_output=True, text=True,
            timeout=60, check=False, cwd=home, **user,  # type: ignore[call-overload]
        )  # fmt: skip
        expected = baseline_run(tool, args, stdin)
        assert (result.returncode, result.stdout, result.stderr) == (
            expected.returncode,
            expected.stdout,
            expected.stderr,
        ), args
    assert list(home.iterdir()) == []
    # On a terminal the notice is shown, but saving that it was shown fails: still no harm.
    debug = subprocess.run(
        tool.command("hello"), env={**env, "CLI_APP_TELEMETRY_DEBUG": "1"}, capture_output=True,
        text=True, timeout=60, check=False, cwd=home, **user,  # type: ignore[call-overload]
    )  # fmt: skip
    assert debug.returncode == 0 and debug.stdout == "Hello, world!\n"


@pytest.mark.parametrize("home", ["missing", "a-file"])
def test_missing_or_broken_home_changes_nothing(tool: Tool, tmp_path: Path, home: str) -> None:
    path = tmp_path / home
    if home == "a-file":
        path.write_text("not a directory")
    env = clean_environ(path)
    tty = tool.run_tty("hello", env=env)  # the notice tries to save its state
    assert (tty.returncode, tty.stdout) == (0, "Hello, world!\n")
    result = tool.run("hello", env=env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, world!\n", "")
    assert not path.is_dir()  # a missing home is not ours to create


def test_full_disk_changes_nothing_and_debug_says_why(tool: Tool) -> None:
    tool.enable()
    tool.run("hello")  # ids and directories exist; now every new file write will fail

    def no_file_space() -> None:
        # Python ignores SIGXFSZ, so writing past the limit fails with EFBIG, as ENOSPC would.
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            tool.command(*args), env={**tool.env, **(env or {})}, capture_output=True, text=True,
            timeout=60, check=False, preexec_fn=no_file_space, cwd=tool.home,
        )  # fmt: skip

    for args, _ in COMMANDS[:3]:
        result = run(*args)
        expected = baseline_run(tool, args, "")
        assert (result.returncode, result.stdout, result.stderr) == (
            expected.returncode,
            expected.stdout,
            expected.stderr,
        )
    assert len(tool.events()) == 1
    assert not list((tool.spool_dir / "tmp").iterdir())  # no half-written leftovers
    debug = tool.run("hello")  # sanity: with space again, recording works
    assert debug.returncode == 0 and len(tool.events()) == 2


def test_unwritable_spool_is_silent_and_debug_reports_it(tool: Tool) -> None:
    tool.enable()
    tool.state_dir.mkdir(parents=True)
    (tool.state_dir / "spool").write_text("a file where the spool directory should be")
    result = tool.run("hello")
    assert (result.returncode, result.stdout, result.stderr) == (0, "Hello, world!\n", "")
    debug = tool.run("hello", env={"CLI_APP_TELEMETRY_DEBUG": "1"})
    assert debug.returncode == 0
    assert f"cli-telemetry: cannot record: {tool.spool_dir} is not a directory" in debug.stderr


def test_fifty_concurrent_invocations_record_exactly_fifty_events(tool: Tool) -> None:
    tool.enable()
    procs = [
        subprocess.Popen(
            tool.command("hello", "--name", str(i)),
            env=tool.env,
            cwd=tool.home,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(50)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 50
    assert sorted(out for out, _ in outputs) == sorted(f"Hello, {i}!\n" for i in range(50))
    assert all(err == "" for _, err in outputs)
    events = tool.events()
    assert len(events) == 50
    assert len({e["event_id"] for e in events}) == 50
    assert len({e["install_id"] for e in events}) == 1  # the first runs raced to create it


def test_spool_files_are_owner_only(tool: Tool) -> None:
    tool.enable()
    tool.run("hello")
    for path in [tool.state_dir, *tool.state_dir.rglob("*")]:
        expected = 0o700 if path.is_dir() else 0o600
        assert path.stat().st_mode & 0o777 == expected, path


def test_debug_shows_a_dropped_custom_event_and_strict_raises(make_tool_with_track: Tool) -> None:
    tool = make_tool_with_track
    result = tool.run()
    assert (result.returncode, result.stdout, result.stderr) == (0, "went\n", "")
    debug = tool.run(env={"ACME_TELEMETRY_DEBUG": "1"})
    assert debug.returncode == 0
    assert "dropped custom event: bad.props: property 'where' must be true or false" in debug.stderr
    strict = tool.run(env={"ACME_TELEMETRY_STRICT": "1"})
    assert strict.returncode == 1
    assert "ValueError: bad.props: property 'where' must be true or false" in strict.stderr


@pytest.fixture
def make_tool_with_track(tmp_path: Path) -> Tool:
    script = tmp_path / "acme_track.py"
    script.write_text(
        "import click, pathlib, typing\n"
        "from cli_telemetry import Telemetry\n"
        "telemetry = Telemetry('acme', version='1')\n"
        "class BadProps(typing.TypedDict):\n"
        "    'Shows a bad call.'\n"
        "    where: bool\n"
        "telemetry.event('bad.props', BadProps)\n"
        "@telemetry.instrument\n"
        "@click.command()\n"
        "def go():\n"
        "    telemetry.track('bad.props', {'where': pathlib.Path('/home/x')})\n"
        "    click.echo('went')\n"
        "go()\n"
    )
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return Tool(home, name="acme", program=[sys.executable, str(script)])


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_closed_streams_keep_the_exit_code_even_in_debug_mode(tool: Tool, closed: str) -> None:
    tool.enable()
    redirect = {"stdout": ">&-", "stderr": "2>&-"}[closed]
    for env in ({}, {"CLI_APP_TELEMETRY_DEBUG": "1"}):
        with_telemetry = subprocess.run(
            ["sh", "-c", f'"$@" {redirect}', "sh", *tool.command("hello")],
            env={**tool.env, **env}, cwd=tool.home, capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        without = subprocess.run(
            ["sh", "-c", f'"$@" {redirect}', "sh", *tool.command("hello")],
            env={**tool.env, **env, "PYTHONPATH": BASELINE}, cwd=tool.home,
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        assert with_telemetry.returncode == without.returncode, (env, with_telemetry.stderr)


def test_a_notice_that_cannot_be_saved_is_not_shown(tool: Tool) -> None:
    (tool.home / ".config").write_text("a file where the config directory should be")
    for _ in range(2):
        result = tool.run_tty("hello")
        assert (result.returncode, result.stdout) == (0, "Hello, world!\n")
        assert "collects usage data" not in result.terminal
    assert tool.events() == []
