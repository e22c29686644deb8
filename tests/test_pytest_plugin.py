"""The pytest plugin (`cli_telemetry.pytest_plugin`): the ``telemetry_events`` fixture records
every run of a tool, in process or not, as if consented, whatever the developer's
environment, and sends nothing; and a project that never asks for it sees no change.

The fixture's own tests use it here, in process (this suite has the plugin installed, as
every project with the library does); the others run pytest on small projects in a
subprocess, with and without the plugin.
"""

from __future__ import annotations

import enum
import json
import os
import runpy
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import click
import pytest
import typer
from click.testing import CliRunner
from conftest import clean_environ, poll
from loopback import Endpoint
from typer.testing import CliRunner as TyperRunner

from cli_telemetry import Telemetry, _paths, _spawn, capture
from cli_telemetry.pytest_plugin import TelemetryEvents
from cli_telemetry.spool import Spool

TOOL_SOURCE = """
import click
from cli_telemetry import Telemetry

telemetry = Telemetry({name!r}, version="1.0", consent={consent!r}, endpoint={endpoint!r})


@telemetry.instrument
@click.group()
def cli():
    pass


@cli.command()
@click.option("--loud", is_flag=True)
def hello(loud):
    click.echo("HELLO" if loud else "hello")


@cli.command()
def fail():
    raise click.ClickException("the file /home/someone/secret is broken")


cli.add_command(telemetry.command())

if __name__ == "__main__":
    cli()
"""


class PlugTool:
    """A small instrumented tool, run in process (``invoke``) or as a real process (``run``),
    from the same source."""

    def __init__(
        self,
        directory: Path,
        consent: str = "notice",
        endpoint: str | None = None,
        name: str = "plugtool",
    ) -> None:
        self.script = directory / f"{name}.py"
        self.script.write_text(TOOL_SOURCE.format(name=name, consent=consent, endpoint=endpoint))
        self.cli: click.Group = runpy.run_path(str(self.script), run_name=name)["cli"]

    def invoke(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = CliRunner().invoke(self.cli, list(args), env=env)
        return result.output

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(self.script), *args],
            env=env,
            cwd=self.script.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def plugtool(tmp_path: Path) -> PlugTool:
    return PlugTool(tmp_path)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def shape(root: Path) -> list[str]:
    """The paths under ``root``; an event file's random name counts as ``<event>``."""
    return sorted(
        str(p.relative_to(root)) if p.parent.name != "new" else "<event>" for p in root.rglob("*")
    )


def files(root: Path) -> dict[str, str]:
    """Every file under ``root`` and its content: what a run left there."""
    return {
        str(path.relative_to(root)): path.read_text(errors="replace")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# -- in process and in subprocesses --------------------------------------------------------


@pytest.mark.parametrize("consent", ["notice", "prompt"])
def test_runs_are_recorded_as_if_consented_with_no_notice_or_question(
    telemetry_events: TelemetryEvents, tmp_path: Path, consent: str
) -> None:
    tool = PlugTool(tmp_path, consent=consent)

    assert tool.invoke("hello", "--loud") == "HELLO\n"  # stderr too: no notice, no question
    process = tool.run("hello", env=telemetry_events.env)

    assert (process.stdout, process.stderr) == ("hello\n", "")
    first, second = telemetry_events.commands()
    assert (first["command"], first["flags"]) == ("plugtool hello", ["--loud"])
    assert first["outcome"] == "success"
    assert (second["command"], second["flags"]) == ("plugtool hello", [])
    assert first["install_id"] == second["install_id"]  # the same directory, in and out
    assert (telemetry_events.directory / "plugtool" / "telemetry" / "ids").is_file()


def test_the_files_are_the_tests_own_and_the_environment_says_where(
    telemetry_events: TelemetryEvents, plugtool: PlugTool
) -> None:
    plugtool.invoke("hello")

    paths = _paths.resolve("plugtool")
    assert paths.testing
    assert paths.state_dir == str(telemetry_events.directory / "plugtool" / "telemetry")
    assert telemetry_events.env["CLI_TELEMETRY_TEST_DIR"] == str(telemetry_events.directory)
    real = _paths.resolve("plugtool", {k: v for k, v in os.environ.items() if "TEST_DIR" not in k})
    assert not os.path.exists(os.path.dirname(real.state_dir))
    assert not os.path.exists(real.config_file)


def test_status_says_why_telemetry_is_on(
    telemetry_events: TelemetryEvents, plugtool: PlugTool
) -> None:
    status = json.loads(plugtool.invoke("telemetry", "status", "--json"))
    assert (status["enabled"], status["source"]) == (True, "env")
    assert "CLI_TELEMETRY_TEST_DIR is set (a test)" in status["reason"]
    assert status["config_file"].startswith(str(telemetry_events.directory))


HOSTILE: dict[str, dict[str, str]] = {
    "do-not-track": {"DO_NOT_TRACK": "1"},
    "tool-disabled": {"PLUGTOOL_TELEMETRY_DISABLED": "1"},
    "debug-mode": {"PLUGTOOL_TELEMETRY_DEBUG": "1"},
    "ci": {"CI": "true", "GITHUB_ACTIONS": "true"},
    "xdg-dirs": {"XDG_CONFIG_HOME": "{home}/xdg-config", "XDG_STATE_HOME": "{home}/xdg-state"},
    "config-off": {},
    "config-on": {},
}


@pytest.mark.parametrize("case", HOSTILE)
def test_the_developers_environment_changes_nothing(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str
) -> None:
    """Whatever the developer's shell holds, a test records, in process and in subprocesses,
    and the developer's own telemetry files are neither read nor changed."""
    home = tmp_path / "developer"
    for config_dir in (home / ".config" / "plugtool", home / "xdg-config" / "plugtool"):
        config_dir.mkdir(parents=True)
        enabled = "true" if case == "config-on" else "false"
        (config_dir / "telemetry.conf").write_text(f"enabled = {enabled}\nconsent_policy = 1\n")
    monkeypatch.setenv("HOME", str(home))
    for var, _ in capture._CI_VARIABLES:  # this suite itself may run in CI
        monkeypatch.delenv(var, raising=False)
    for var, value in HOSTILE[case].items():
        monkeypatch.setenv(var, value.format(home=home))
    before = files(home)
    tool = PlugTool(tmp_path)

    telemetry_events = request.getfixturevalue("telemetry_events")
    output = tool.invoke("hello")
    process = tool.run("hello", env=telemetry_events.env)

    assert output == "hello\n"
    assert (process.returncode, process.stderr) == (0, "")
    assert [e["command"] for e in telemetry_events] == ["plugtool hello", "plugtool hello"]
    assert {e["ci"] for e in telemetry_events} == {"github_actions" if case == "ci" else None}
    assert files(home) == before


class Deployed(TypedDict):
    """A deployment."""

    env: Literal["dev", "prod"]


class Traits(TypedDict):
    """The plan."""

    plan: Literal["free", "pro"]


def test_custom_events_and_events_outside_any_command_are_recorded(
    telemetry_events: TelemetryEvents, tmp_path: Path
) -> None:
    telemetry = Telemetry("plugtool", version="1.0", strict=True)
    deployed = telemetry.event("deploy.finished", Deployed)
    telemetry.event("identify", Traits)

    @telemetry.instrument
    @click.command()
    def deploy() -> None:
        deployed.track({"env": "prod"})

    telemetry.identify({"plan": "pro"})  # outside a command: recorded with the next one
    CliRunner().invoke(deploy, [])
    deployed.track({"env": "dev"})  # outside any command: recorded at once

    assert [e["event"] for e in telemetry_events] == [
        "command",
        "identify",
        "deploy.finished",
        "deploy.finished",
    ]
    inside, outside = telemetry_events.custom("deploy.finished")
    assert (inside["command"], inside["properties"]) == ("plugtool", {"env": "prod"})
    assert (outside["command"], outside["properties"]) == ("plugtool", {"env": "dev"})
    assert telemetry_events.last(event="identify")["properties"] == {"plan": "pro"}
    assert len(telemetry_events.custom()) == 3


class Format(enum.Enum):
    text = "text"
    json = "json"


def test_a_typer_app_run_by_typers_clirunner_is_recorded(
    telemetry_events: TelemetryEvents,
) -> None:
    """In process, with Typer's own CliRunner (on the Typer of this suite, 0.26 or later,
    built on its copy of click; tests/test_typer_e2e.py runs an author's project with the
    fixture on both Typer lines): what a run records, and the telemetry sub-app's answer.
    (typer is imported at the top: Typer reads the annotations from the module's globals.)"""
    telemetry = Telemetry("typertool", version="1.0", record_values=["--format"])
    app = telemetry.instrument(typer.Typer())

    @app.command()
    def hello(loud: Annotated[bool, typer.Option("--loud")] = False) -> None:
        typer.echo("HELLO" if loud else "hello")

    @app.command()
    def show(fmt: Annotated[Format, typer.Option("--format")] = Format.text) -> None:
        typer.echo(fmt.value)

    @app.command()
    def fail() -> None:
        raise typer.Exit(3)

    app.add_typer(telemetry.typer_app(), name="telemetry")
    runner = TyperRunner()

    assert runner.invoke(app, ["hello", "--loud"]).output == "HELLO\n"
    assert runner.invoke(app, ["show", "--format", "json"]).output == "json\n"
    assert runner.invoke(app, ["fail"]).exit_code == 3
    assert runner.invoke(app, ["hello", "--bogus"]).exit_code == 2
    status = runner.invoke(app, ["telemetry", "status", "--json"])

    assert [
        (e["command"], e["flags"], e["values"], e["exit_code"], e["outcome"], e["error_type"])
        for e in telemetry_events
    ] == [
        ("typertool hello", ["--loud"], {}, 0, "success", None),
        ("typertool show", ["--format"], {"--format": "json"}, 0, "success", None),
        ("typertool fail", [], {}, 3, "error", None),
        ("typertool hello", [], {}, 2, "usage_error", "NoSuchOption"),
    ]  # and nothing of the telemetry sub-app's own use
    assert json.loads(status.output)["enabled"] is True
    assert "CLI_TELEMETRY_TEST_DIR is set (a test)" in json.loads(status.output)["reason"]


# -- nothing is sent -------------------------------------------------------------------------


def test_nothing_is_sent_and_no_uploader_is_started(
    telemetry_events: TelemetryEvents,
    tmp_path: Path,
    endpoint: Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spawned: list[object] = []
    monkeypatch.setattr(_spawn, "spawn", lambda *args: spawned.append(args))
    tool = PlugTool(tmp_path, endpoint=endpoint.url)

    tool.invoke("hello")
    process = tool.run("hello", env=telemetry_events.env)

    assert process.returncode == 0, process.stderr
    assert len(telemetry_events) == 2
    assert spawned == []
    state = telemetry_events.directory / "plugtool" / "telemetry"
    # A command touches the stamp before it starts an uploader: none even tried.
    assert sorted(p.name for p in state.iterdir()) == ["ids", "spool"]
    assert endpoint.seen == 0


def test_without_the_fixture_the_same_tool_does_send(tmp_path: Path, endpoint: Endpoint) -> None:
    """The control of the test above: its tool and endpoint are ones that send."""
    home = tmp_path / "home"
    home.mkdir()
    env = clean_environ(home)
    tool = PlugTool(tmp_path, endpoint=endpoint.url)
    assert tool.run("telemetry", "enable", env=env).returncode == 0

    assert tool.run("hello", env=env).returncode == 0

    assert poll(lambda: len(endpoint.events) == 1, timeout=30)
    assert endpoint.events[0]["command"] == "plugtool hello"


# -- the helpers -----------------------------------------------------------------------------


def test_the_helpers_filter_order_and_explain(
    telemetry_events: TelemetryEvents, tmp_path: Path
) -> None:
    tool = PlugTool(tmp_path)
    other = PlugTool(tmp_path, name="othertool")

    assert len(telemetry_events) == 0
    assert not telemetry_events
    tool.invoke("hello")
    other.invoke("hello", "--loud")
    tool.invoke("fail")

    assert [(e["tool"], e["command"]) for e in telemetry_events] == [
        ("plugtool", "plugtool hello"),
        ("othertool", "othertool hello"),
        ("plugtool", "plugtool fail"),
    ]
    assert telemetry_events[1]["flags"] == ["--loud"]
    assert [e["command"] for e in telemetry_events.filter(tool="plugtool")] == [
        "plugtool hello",
        "plugtool fail",
    ]
    failed = telemetry_events.last(command="plugtool fail")
    assert (failed["outcome"], failed["error_type"]) == ("error", "ClickException")
    assert telemetry_events.last()["command"] == "plugtool fail"
    assert telemetry_events.last(tool="othertool")["tool"] == "othertool"
    assert telemetry_events.commands("othertool hello") == [telemetry_events[1]]
    assert telemetry_events.custom() == []
    assert telemetry_events.filter(command="plugtool hello", event="deploy.finished") == []
    with pytest.raises(LookupError) as raised:
        telemetry_events.last(command="plugtool deploy")
    assert str(raised.value) == (
        "no event with command='plugtool deploy'; recorded: [('command', 'plugtool hello'),"
        " ('command', 'othertool hello'), ('command', 'plugtool fail')]"
    )
    assert "secret" not in repr(telemetry_events)


def test_an_event_the_collector_would_refuse_fails_the_test(
    telemetry_events: TelemetryEvents, plugtool: PlugTool
) -> None:
    plugtool.invoke("hello")
    [event] = telemetry_events.all()
    spool = Spool(str(telemetry_events.directory / "plugtool" / "telemetry" / "spool"))
    spool.append([json.dumps({**event, "outcome": "fine"}).encode()])

    with pytest.raises(AssertionError, match="plugtool recorded an event the collector would"):
        telemetry_events.all()


# -- the plugin in other projects: pytest in a subprocess ------------------------------------


def run_pytest(
    project: Path, run: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """pytest on ``project``, with its own HOME, TMPDIR and observation directory under
    ``run``; returns the process and each test's outcome (from its JUnit report)."""
    for name in ("home", "tmp", "observe"):
        (run / name).mkdir(parents=True, exist_ok=True)
    environ = {
        **clean_environ(run / "home"),
        "TMPDIR": str(run / "tmp"),
        "OBSERVE_DIR": str(run / "observe"),
        **(env or {}),
    }
    report = run / "junit.xml"
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - pytest's own report
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.attrib["name"]] = kinds[0] if kinds else "passed"
    return process, outcomes


def write_project(directory: Path, sources: dict[str, str]) -> Path:
    directory.mkdir()
    for name, source in sources.items():
        (directory / name).write_text(textwrap.dedent(source))
    return directory


PLAIN_TOOL = """
    import click
    from cli_telemetry import Telemetry

    telemetry = Telemetry("acme", version="1.0")


    @telemetry.instrument
    @click.group()
    def cli():
        pass


    @cli.command()
    def hello():
        click.echo("hello")


    cli.add_command(telemetry.command())

    if __name__ == "__main__":
        cli()
"""

OBSERVING_CONFTEST = """
    import json
    import os
    from pathlib import Path

    import pytest

    OBSERVE = Path(os.environ["OBSERVE_DIR"])


    def shape(root):
        '''The files under root; an event file's random name counts as <event>.'''
        return sorted(
            str(p.relative_to(root)) if p.parent.name != "new" else "<event>"
            for p in root.rglob("*")
        )


    @pytest.fixture
    def observe(request):
        def write(**values):
            text = json.dumps(values, sort_keys=True)
            for var in ("HOME", "TMPDIR", "OBSERVE_DIR"):
                text = text.replace(os.environ[var], f"<{var}>")
            (OBSERVE / f"{request.node.name}.json").write_text(text)

        return write


    def pytest_configure(config):
        loaded = config.pluginmanager.has_plugin("cli_telemetry")
        (OBSERVE / "plugin.json").write_text(json.dumps(loaded))
"""

OBSERVING_TESTS = """
    import os
    import subprocess
    import sys
    from pathlib import Path

    from acme import cli
    from click.testing import CliRunner
    from conftest import shape

    HOME = Path(os.environ["HOME"])
    STATE = HOME / ".local" / "state" / "acme" / "telemetry"


    def test_the_environment(observe):
        observe(
            environ=dict(os.environ),
            cwd=os.getcwd(),
            home=shape(HOME),
            tmp=shape(Path(os.environ["TMPDIR"])),
        )


    def test_the_tool_in_process(observe):
        runner = CliRunner()
        assert runner.invoke(cli, ["hello"]).output == "hello\\n"
        assert runner.invoke(cli, ["telemetry", "enable"]).exit_code == 0
        assert runner.invoke(cli, ["hello"]).output == "hello\\n"
        status = runner.invoke(cli, ["telemetry", "status"]).output.splitlines()
        # Turned on in the config file, but a test runs the tool: nothing is recorded.
        assert "off: a test runner is running the tool, pytest" in status[0]
        assert not (STATE / "spool").exists()
        observe(home=shape(HOME), environ=dict(os.environ), status=status[0])


    def test_the_tool_in_a_subprocess(observe):
        result = subprocess.run(
            [sys.executable, "acme.py", "hello"], capture_output=True, text=True, check=True
        )
        assert not (STATE / "spool").exists()  # it inherits PYTEST_CURRENT_TEST
        observe(stdout=result.stdout, stderr=result.stderr, home=shape(HOME))


    def test_do_not_track(monkeypatch, observe):
        monkeypatch.setenv("DO_NOT_TRACK", "1")
        assert CliRunner().invoke(cli, ["hello"]).exit_code == 0
        status = CliRunner().invoke(cli, ["telemetry", "status"]).output.splitlines()
        observe(status=[line for line in status if not line.startswith("Install id")])
"""

AUTOUSE = """
    import pytest


    @pytest.fixture(autouse=True)
    def _always(telemetry_events):
        pass
"""


def observations(run: Path) -> dict[str, Any]:
    return {p.stem: json.loads(p.read_text()) for p in (run / "observe").iterdir()}


def test_a_project_that_never_asks_for_the_fixture_sees_no_change(tmp_path: Path) -> None:
    """The same project, with the plugin (as installed with the library) and without it
    (``-p no:cli_telemetry``): the same outcomes, environment, working directory, files
    in HOME and in the temporary directory, and tool output. A third run, whose plugin asks
    for the fixture in every test, shows that these observations see a plugin that acts."""
    project = write_project(
        tmp_path / "project",
        {
            "pytest.ini": "[pytest]\nfilterwarnings = error\n",
            "acme.py": PLAIN_TOOL,
            "conftest.py": OBSERVING_CONFTEST,
            "test_observe.py": OBSERVING_TESTS,
            "autouse_telemetry.py": AUTOUSE,
        },
    )

    with_plugin, outcomes = run_pytest(project, tmp_path / "with")
    _, outcomes_without = run_pytest(project, tmp_path / "without", "-p", "no:cli_telemetry")
    acting, outcomes_acting = run_pytest(project, tmp_path / "acting", "-p", "autouse_telemetry")

    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert outcomes == outcomes_without == dict.fromkeys(outcomes, "passed")
    assert len(outcomes) == 4
    seen, seen_without = observations(tmp_path / "with"), observations(tmp_path / "without")
    assert (seen.pop("plugin"), seen_without.pop("plugin")) == (True, False)  # it was loaded
    assert seen == seen_without
    assert seen["test_the_environment"]["tmp"] == []  # no directory of the plugin's
    for run in ("with", "without"):
        assert files(tmp_path / run / "tmp") == {}
    assert shape(tmp_path / "with" / "home") == shape(tmp_path / "without" / "home")
    # Its tests ran the tool, in process and in a subprocess, with telemetry turned on in
    # its config file: a test runner ran it, so nothing was recorded (nor sent), plugin or
    # no plugin; only the fixture's directory records in a test.
    assert "<event>" not in shape(tmp_path / "with" / "home")
    assert (tmp_path / "with" / "home" / ".config" / "acme" / "telemetry.conf").exists()

    seen_acting = observations(tmp_path / "acting")
    assert acting.returncode == 1
    assert outcomes_acting["test_the_tool_in_process"] == "failure"
    env_acting = seen_acting["test_the_environment"]
    assert "CLI_TELEMETRY_TEST_DIR" in env_acting["environ"]
    assert env_acting["tmp"] != seen["test_the_environment"]["tmp"]


FIXTURE_TESTS = """
    import os
    import subprocess
    import sys

    from acme import cli
    from click.testing import CliRunner


    def test_in_process_and_in_a_subprocess(telemetry_events):
        assert CliRunner().invoke(cli, ["hello"]).output == "hello\\n"
        result = subprocess.run(
            [sys.executable, "acme.py", "hello"],
            env=telemetry_events.env, capture_output=True, text=True, check=True,
        )
        assert (result.stdout, result.stderr) == ("hello\\n", "")
        assert [e["command"] for e in telemetry_events] == ["acme hello", "acme hello"]


    def test_the_environment_is_the_developers_again():
        assert os.environ["DO_NOT_TRACK"] == "1"
        assert os.environ["ACME_TELEMETRY_DISABLED"] == "1"
        assert "CLI_TELEMETRY_TEST_DIR" not in os.environ
"""


def test_an_authors_project_records_under_a_hostile_developer_environment(
    tmp_path: Path,
) -> None:
    """The plugin as a project gets it (an entry point, nothing configured), under every
    setting a developer could have that would otherwise keep the tool from recording: the
    tests pass, the developer's own files are untouched, and the next test has the
    developer's environment back."""
    project = write_project(
        tmp_path / "project",
        {"pytest.ini": "[pytest]\n", "acme.py": PLAIN_TOOL, "test_acme.py": FIXTURE_TESTS},
    )
    home = tmp_path / "run" / "home"
    config = home / ".config" / "acme"
    config.mkdir(parents=True)
    (config / "telemetry.conf").write_text("enabled = false\n")
    hostile = {"DO_NOT_TRACK": "1", "ACME_TELEMETRY_DISABLED": "1", "ACME_TELEMETRY_DEBUG": "1"}
    before = files(home)

    process, outcomes = run_pytest(project, tmp_path / "run", env={**hostile, "CI": "true"})

    assert outcomes == {
        "test_in_process_and_in_a_subprocess": "passed",
        "test_the_environment_is_the_developers_again": "passed",
    }, process.stdout
    assert files(home) == before


def test_loading_the_plugin_imports_nothing_of_the_library(tmp_path: Path) -> None:
    """pytest imports the plugin in every project that installs the library."""
    code = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import cli_telemetry.pytest_plugin\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["cli_telemetry", "cli_telemetry.pytest_plugin"]
