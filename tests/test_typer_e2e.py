"""The Typer example on each Typer line records what its click twin records.

``examples/typer_app`` is ``examples/cli_app`` written with Typer. dev.py sets up one
environment per Typer line (``TYPER_LINES``: 0.25, the last built on click, and 0.29, which
bundles its own copy of click and never imports the real one), each with the library and
both examples, and names their Pythons in ``CLI_TELEMETRY_TEST_TYPER``. Every test here runs
once per line, both twins as real processes of that line's Python in isolated homes, and
compares what they record field by field (but for the ids, the times and the tool's name).
A line without its environment fails under CI=true and skips elsewhere (`untestable`).

Where the twins differ, the frameworks do, and the test says so: Ctrl-C ends a Typer app
with exit status 130 (click: 1), and Typer has no public ``ClickException``, so the Typer
twin's ``check`` reports its error with an exit status alone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Tool

BASELINE = str(Path(__file__).resolve().parent.parent / "bench" / "baseline")
PYTHONS = [p for p in os.environ.get("CLI_TELEMETRY_TEST_TYPER", "").split(os.pathsep) if p]
"""One Python per Typer line, set by ``python3 dev.py test`` (see dev.py's TYPER_LINES)."""
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false")
"""Under CI a Typer line that cannot be tested fails its tests: a skip there would let the
support of a line end unnoticed. Elsewhere (pytest run by hand) they skip and say why."""

pytestmark = pytest.mark.e2e


def untestable(why: str) -> None:
    """Fail (CI) or skip (elsewhere) the test of a line that has no environment."""
    if IN_CI:
        pytest.fail(f"{why} (CI: a Typer line left untested is a failure)", pytrace=False)
    pytest.skip(why)


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
IGNORED = {"event_id", "install_id", "timestamp", "duration_ms", "tool"}
"""What differs from run to run, and the tool's name (compared below, in ``command``)."""


def line_of(python: str) -> str:
    """The environment's name: ``typer-0.25`` for build/typer-lines/typer-0.25/bin/python."""
    return Path(python).parent.parent.name


@pytest.fixture(
    params=PYTHONS or [""], ids=[line_of(p) for p in PYTHONS] or ["no-typer-environment"]
)
def python(request: pytest.FixtureRequest) -> str:
    """A Typer line's Python; a test without one fails under CI (see `IN_CI`)."""
    python = str(request.param)
    if not python:
        untestable(
            "CLI_TELEMETRY_TEST_TYPER names no Typer environment: python3 dev.py test sets"
            " one up per Typer line"
        )
    elif not Path(python).is_file():
        untestable(f"{python} does not exist: python3 dev.py test could not set it up")
    return python


def twins(python: str, tmp_path: Path) -> tuple[Tool, Tool]:
    """The click example and its Typer twin, on ``python``, each in a home of its own."""
    homes = tmp_path / "click-home", tmp_path / "typer-home"
    for home in homes:
        home.mkdir()
    click_tool = Tool(homes[0], "cli-app", [python, "-m", "cli_app"])
    typer_tool = Tool(homes[1], "typer-app", [python, "-m", "typer_app"])
    return click_tool, typer_tool


def comparable(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` without what differs from run to run, its command path without the
    tool's name."""
    kept = {k: v for k, v in event.items() if k not in IGNORED}
    kept["command"] = " ".join(["TOOL", *event["command"].split(" ")[1:]])
    return kept


def typer_version(python: str) -> tuple[int, ...]:
    result = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('typer'))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return tuple(int(part) for part in result.stdout.strip().split(".")[:2])


def test_both_lines_are_tested() -> None:
    """One line built on click, one built on Typer's own copy of it."""
    missing = [python for python in PYTHONS if not Path(python).is_file()]
    if missing:
        untestable(f"python3 dev.py test could not set up {', '.join(missing)}")
    bundles = {typer_version(python) >= (0, 26) for python in PYTHONS}
    if bundles != {False, True}:
        lines = ", ".join(line_of(python) for python in PYTHONS) or "none"
        untestable(f"the Typer lines tested ({lines}) are not one of each")


def test_each_line_is_what_it_is_named(python: str) -> None:
    """The two environments really are the two lines: one built on click, one not."""
    probe = "import sys, typer; print(hasattr(typer, '_click'), 'click' in sys.modules)"
    result = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
    bundled = typer_version(python) >= (0, 26)
    assert result.stdout.split() == [str(bundled), str(not bundled)]
    assert line_of(python) == "typer-{}.{}".format(*typer_version(python))


DEPLOY = ["deploy", "start", "web"]
# (args, stdin, environment variables by their suffix after the tool's prefix)
RUNS: list[tuple[list[str], str, dict[str, str]]] = [
    (["hello"], "", {}),
    (["hello", "--shout"], "", {}),
    (["hello", "--no-shout"], "", {}),
    (["-v", "hello", "--name", "Ada Lovelace"], "", {}),
    ([*DEPLOY, "--env", "staging", "--replicas", "7", "--dry-run", "--token", "s3cr3t"], "", {}),
    (["deploy", "start", "web"], "", {"ENV": "prod", "TOKEN": "s3cr3t"}),
    (["deploy", "status"], "", {}),
    (["deploy", "status", "--format", "json"], "", {}),
    (["crash"], "", {}),
    (["reset"], "n\n", {}),
    (["reset"], "y\n", {}),
    (["check", "widget.txt"], "", {}),
    (["--help"], "", {}),
    (["deploy", "--help"], "", {}),
    (["--version"], "", {}),
    ([], "", {}),
    (["deploy"], "", {}),
    (["deploy", "start", "web", "--env", "staging", "--bogus-secret"], "", {}),
    (["deploy", "start", "web", "--env", "moon-secret"], "", {}),
    (["deploy", "start", "web"], "", {}),
    (["deploy", "start", "web", "--dry-run", "--replicas", "many"], "", {}),
    (["deploy", "secret-subcommand"], "", {}),
    (["--secret-root-option"], "", {}),
    (["telemetry", "status"], "", {}),
    (["telemetry", "status", "--json"], "", {}),
]
DIFFERENCES: dict[tuple[str, ...], dict[str, tuple[object, object]]] = {
    ("check", "widget.txt"): {"error_type": ("ClickException", None)},
}
"""Where the frameworks differ, what each twin records (click's, then Typer's)."""
BUNDLED_DIFFERENCES: dict[tuple[str, ...], dict[str, tuple[object, object]]] = {
    **DIFFERENCES,
    # click 8.5 has a class of its own for this usage error; Typer's copy of click 8.3 not.
    ("deploy", "secret-subcommand"): {"error_type": ("NoSuchCommand", "UsageError")},
}
"""The same on Typer 0.26 and later, whose click is its own copy of an earlier click."""


def test_the_typer_twin_records_what_the_click_twin_records(python: str, tmp_path: Path) -> None:
    click_tool, typer_tool = twins(python, tmp_path)
    for tool in (click_tool, typer_tool):
        tool.enable()
    differences = BUNDLED_DIFFERENCES if typer_version(python) >= (0, 26) else DIFFERENCES
    compared = 0
    for args, stdin, variables in RUNS:
        runs = []
        for tool in (click_tool, typer_tool):
            prefix = tool.name.upper().replace("-", "_")
            env = {f"{prefix}_{name}": value for name, value in variables.items()}
            result = tool.run(*args, input=stdin, env=env)
            assert "cli_telemetry" not in result.stderr, result.stderr
            events = tool.events()
            for path in tool.event_files():
                path.unlink()
            runs.append((result.returncode, [comparable(e) for e in events]))
        (click_code, click_events), (typer_code, typer_events) = runs
        assert typer_code == click_code, args
        assert len(typer_events) == len(click_events), (args, click_events, typer_events)
        for ours, theirs in zip(click_events, typer_events, strict=True):
            for field, (in_click, in_typer) in differences.get(tuple(args), {}).items():
                assert (ours.pop(field), theirs.pop(field)) == (in_click, in_typer), args
            assert theirs == ours, args
            compared += 1
    assert compared == 25  # every run but the telemetry command's, two with a custom event


AUTHORS_TESTS = """
from typer.testing import CliRunner
from typer_app.cli import app


def test_what_the_app_records(telemetry_events):
    runner = CliRunner()
    assert runner.invoke(app, ["hello", "--shout"]).output == "HELLO, WORLD!\\n"
    assert runner.invoke(app, ["deploy", "status", "--format", "json"]).exit_code == 0
    assert runner.invoke(app, ["deploy", "start", "web", "--env", "moon"]).exit_code == 2
    assert runner.invoke(app, ["check", "widget.txt"]).exit_code == 1
    assert runner.invoke(app, ["telemetry", "status"]).exit_code == 0
    assert [
        (e["command"], e["flags"], e["values"], e["exit_code"], e["outcome"])
        for e in telemetry_events.commands()
    ] == [
        ("typer-app hello", ["--shout"], {}, 0, "success"),
        ("typer-app deploy status", ["--format"], {"--format": "json"}, 0, "success"),
        ("typer-app deploy start", ["--env"], {}, 2, "usage_error"),
        ("typer-app check", [], {}, 1, "error"),
    ]
"""
"""An author's test of the Typer example, in process with Typer's CliRunner, with the
``telemetry_events`` fixture of the library's pytest plugin."""


def test_an_authors_tests_see_its_runs_with_the_fixture(python: str, tmp_path: Path) -> None:
    """The pytest plugin on each Typer line: the author's project as pytest finds it (the
    plugin loaded by its entry point, nothing configured), run in a process of the line."""
    from conftest import clean_environ

    project, home = tmp_path / "project", tmp_path / "home"
    for directory in (project, home):
        directory.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "test_typer_app.py").write_text(AUTHORS_TESTS)
    result = subprocess.run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
        cwd=project, env=clean_environ(home), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not (home / ".local").exists()  # the test's own directory, not the author's HOME


def console_script(python: str) -> str:
    """The ``typer-app`` console script next to ``python`` (``typer-app.exe`` on Windows)."""
    script = shutil.which("typer-app", path=str(Path(python).parent))
    assert script is not None, f"typer-app is not installed next to {python}"
    return script


@pytest.mark.skipif(os.name == "nt", reason="Popen.send_signal cannot send SIGINT on Windows")
def test_ctrl_c_is_interrupted_in_both(python: str, tmp_path: Path) -> None:
    """Typer ends an interrupted app with 130, click with 1 ("Aborted!"): each event says
    what the process did."""
    recorded = {}
    for tool in twins(python, tmp_path):
        tool.enable()
        proc = subprocess.Popen(
            tool.command("watch"), env=tool.env, cwd=tool.home, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Watching")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        [event] = tool.events()
        assert event["exit_code"] == proc.returncode
        recorded[tool.name] = comparable(event)
    exit_codes = recorded["cli-app"].pop("exit_code"), recorded["typer-app"].pop("exit_code")
    assert exit_codes == (1, 130)
    assert recorded["typer-app"] == recorded["cli-app"]
    assert recorded["cli-app"]["outcome"] == "interrupted"


def test_the_console_script_records_too(python: str, tmp_path: Path) -> None:
    """``typer-app`` is the app itself as an entry point (``typer_app.cli:app``), run by a
    console script rather than by ``app()`` in the package."""
    _, tool = twins(python, tmp_path)
    script = console_script(python)
    console = Tool(tool.home, "typer-app", [script])
    console.enable()
    result = console.run("deploy", "status", "--format", "json")
    assert result.returncode == 0, result.stderr
    [event] = console.events()
    assert (event["command"], event["flags"], event["values"]) == (
        "typer-app deploy status",
        ["--format"],
        {"--format": "json"},
    )


@pytest.mark.parametrize(
    ("args", "stdin"),
    [(["crash"], ""), (["deploy", "--help"], ""), (["check", "x"], ""), (["reset"], "n\n"),
     (["deploy", "start", "web", "--bogus"], "")],
    ids=["crash", "help", "check", "reset", "usage"],
)  # fmt: skip
def test_output_and_exit_code_are_exactly_as_without_telemetry(
    python: str, tmp_path: Path, args: list[str], stdin: str
) -> None:
    """Typer's own traceback (drawn by its exception hook) included."""
    _, tool = twins(python, tmp_path)
    tool.enable()
    with_telemetry = tool.run(*args, input=stdin)
    without = tool.run(*args, input=stdin, env={"PYTHONPATH": BASELINE})
    assert "cli_telemetry" not in without.stderr
    assert (with_telemetry.returncode, with_telemetry.stdout, with_telemetry.stderr) == (
        without.returncode,
        without.stdout,
        without.stderr,
    )
    assert len(tool.events()) == 1


def test_telemetry_commands_answer_as_the_click_twins_do(python: str, tmp_path: Path) -> None:
    click_tool, typer_tool = twins(python, tmp_path)
    steps = [["status"], ["enable"], ["hello"], ["status", "--json"], ["disable"], ["status"]]
    for step in steps:
        answers = []
        for tool in (click_tool, typer_tool):
            args = step if step == ["hello"] else ["telemetry", *step]
            result = tool.run(*args)
            text = UUID.sub("<id>", result.stdout + result.stderr)
            for word in (str(tool.home), tool.name):
                text = text.replace(word, "<...>")
            answers.append((result.returncode, text))
        assert answers[1] == answers[0], step
    assert typer_tool.events() == [] and not typer_tool.ids_file.exists()  # disable deleted


def test_a_telemetry_command_that_cannot_says_why_in_one_line(python: str, tmp_path: Path) -> None:
    """As the click twin's do (tests/test_telemetry_command_e2e.py), not in a Rich panel."""
    _, tool = twins(python, tmp_path)
    (tool.home / ".config").write_text("a file where the config directory should be")
    for subcommand in ("enable", "disable"):
        result = tool.run("telemetry", subcommand)
        assert result.returncode == 1
        assert result.stdout == ""
        [line] = result.stderr.splitlines()
        assert line.startswith("Error: not writing ") and str(tool.config_file) in line


def test_shell_completion_is_not_an_invocation(python: str, tmp_path: Path) -> None:
    _, tool = twins(python, tmp_path)
    tool.enable()
    complete = {"_TYPER_APP_COMPLETE": "complete_bash", "COMP_WORDS": "typer-app de",
                "COMP_CWORD": "1"}  # fmt: skip
    console = Tool(tool.home, "typer-app", [console_script(python)])
    result = console.run(env=complete)  # the variable's name is the program's
    assert result.returncode == 0
    assert "deploy" in result.stdout
    assert tool.events() == []


def test_debug_mode_and_do_not_track(python: str, tmp_path: Path) -> None:
    _, tool = twins(python, tmp_path)
    tool.enable()
    debug = tool.run("hello", env={"TYPER_APP_TELEMETRY_DEBUG": "1"})
    assert debug.returncode == 0 and debug.stdout == "Hello, world!\n"
    assert debug.stderr.startswith("cli-telemetry: would record")
    assert '"command":"typer-app hello"' in debug.stderr
    assert tool.run("hello", env={"DO_NOT_TRACK": "1"}).returncode == 0
    assert tool.events() == []
