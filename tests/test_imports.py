"""The import budget is a test, not a hope (after click's own tests/test_imports.py).

A running CLI pays for every module cli_telemetry imports, on every invocation: urllib3
(~65 ms), filelock (~17-30 ms) and platformdirs (~7-20 ms) would each cost more than the
whole overhead budget. So `import cli_telemetry`, and an instrumented command's run, may
only add the modules below to what click itself imports. A Typer app on Typer 0.26 or later
(``.venv`` has one) never imports click, and telemetry must not bring it back (tens of ms).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import Tool
from loopback import closed_port

BASELINE = str(Path(__file__).resolve().parent.parent / "bench" / "baseline")

OURS = {
    "cli_telemetry",
    "cli_telemetry._ids",
    "cli_telemetry._paths",
    "cli_telemetry._values",
    "cli_telemetry._settings",
    "cli_telemetry._spawn",
    "cli_telemetry.capture",
    "cli_telemetry.command",
    "cli_telemetry.consent",
    "cli_telemetry.events",
    "cli_telemetry.instrument",
    "cli_telemetry.recording",
    "cli_telemetry._append",
    "cli_telemetry.telemetry",
}
DO_NOT_TRACK_RUN = {
    "cli_telemetry._settings",
    "cli_telemetry._values",
    "cli_telemetry.instrument",
    "cli_telemetry.telemetry",
}
"""All of ours that a DO_NOT_TRACK=1 run imports (beyond the package, which the stand-in
has too), as before Typer support: it decides from the environment alone, so
nothing of the recording path, nor of the telemetry subcommands that every run registers."""
STDLIB: set[str] = set()  # json (~1 ms) is kept off the hot path, see events.encode
# Imported by recent click versions already; allowed in case an older click does not.
CLICK_MAY_HAVE = {"uuid", "_uuid", "platform", "contextlib", "enum", "re"}
ALLOWED = OURS | STDLIB | CLICK_MAY_HAVE
FIRST_RUN_ONLY: set[str] = set()
"""The first recorded run creates the install id (os.urandom, through uuid4) and the
directories: it imports nothing more than later runs do (no hashlib, so no OpenSSL)."""
NEVER = {
    "urllib3",
    "filelock",
    "platformdirs",
    "http",
    "http.client",
    "socket",
    "ssl",
    "subprocess",
    "signal",  # posix_spawn takes the C module's numbers (`_signal`), not its ~0.6 ms enums
    "hashlib",  # and with it OpenSSL: no id is a hash
    "_hashlib",
    # Whole-spool operations (claims, trims, purges): a run appends with `_append`.
    "cli_telemetry.spool",
    # The version is cli_telemetry.__version__; importlib.metadata would scan sys.path.
    "importlib.metadata",
}


def new_modules(
    code: str, cwd: Path, env: dict[str, str] | None = None, framework: str = "click"
) -> set[str]:
    """Modules that ``code`` imports on top of ``import <framework>``, in a fresh
    interpreter (``sys``: every module it imports)."""
    driver = textwrap.dedent(
        f"""
        import atexit, sys
        import {framework}
        _before = set(sys.modules)
        def _dump():
            sys.__stdout__.write("\\nMODULES:" + " ".join(sorted(set(sys.modules) - _before)))
        atexit.register(_dump)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", driver + code],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    marker = result.stdout.rfind("MODULES:")
    assert marker >= 0, result.stderr
    return set(result.stdout[marker + len("MODULES:") :].split())


def test_import_adds_only_allowed_modules(tmp_path: Path) -> None:
    added = new_modules("from cli_telemetry import Telemetry", tmp_path)
    assert added - ALLOWED == set()
    assert "cli_telemetry.telemetry" in added  # the measurement measures something


RUN_HELLO = "import sys; sys.argv = ['cli-app', 'hello']; from cli_app.cli import main; main()"


def added_by_telemetry(tool: Tool, env: dict[str, str] | None = None) -> set[str]:
    """What the example tool's ``hello`` imports with telemetry, beyond the same run without.

    The run without uses bench/baseline's stand-in, so click's own lazy imports while the
    command runs (locale, for instance) are on both sides.
    """
    with_telemetry = new_modules(RUN_HELLO, tool.home, {**tool.env, **(env or {})})
    without = new_modules(RUN_HELLO, tool.home, {**tool.env, "PYTHONPATH": BASELINE})
    assert "cli_telemetry.telemetry" not in without
    return with_telemetry - without


def test_an_instrumented_run_adds_only_allowed_modules(tool: Tool) -> None:
    tool.enable()
    first = added_by_telemetry(tool)
    assert first - ALLOWED - FIRST_RUN_ONLY == set()
    assert not first & NEVER
    assert len(tool.events()) == 1  # it did record
    steady = added_by_telemetry(tool)
    assert "cli_telemetry.instrument" in steady
    assert steady - ALLOWED == set()
    assert len(tool.events()) == 2
    assert not steady & NEVER


@pytest.mark.parametrize("env", [{"DO_NOT_TRACK": "1"}, {}])
def test_a_disabled_or_undecided_run_adds_only_allowed_modules(
    tool: Tool, env: dict[str, str]
) -> None:
    added = added_by_telemetry(tool, env)
    assert added - ALLOWED == set()
    if env:
        assert {m for m in added if m.startswith("cli_telemetry")} == DO_NOT_TRACK_RUN
    assert tool.files() == []


def test_a_run_in_a_tests_directory_adds_only_allowed_modules(tool: Tool, tmp_path: Path) -> None:
    """Under the pytest fixture (`cli_telemetry.pytest_plugin`) a tool's run imports what a
    consenting user's run does: nothing of the plugin's, and no uploader is started."""
    directory = tmp_path / "telemetry"
    directory.mkdir(mode=0o700)
    env = {"CLI_TELEMETRY_TEST_DIR": str(directory), "CLI_APP_TELEMETRY_ENDPOINT": closed_port()}
    added = added_by_telemetry(tool, env)
    assert added - ALLOWED - FIRST_RUN_ONLY == set()
    assert not {"cli_telemetry.pytest_plugin", "cli_telemetry._spawn", "pytest"} & added
    assert len(list(directory.glob("cli-app/telemetry/spool/new/*.json"))) == 1  # it recorded


def test_starting_the_uploader_imports_none_of_its_dependencies(tool: Tool) -> None:
    """The run that spawns the uploader pays for posix_spawn, not for urllib3 or subprocess."""
    tool.enable()
    tool.env["CLI_APP_TELEMETRY_ENDPOINT"] = closed_port()
    added = added_by_telemetry(tool)
    assert "cli_telemetry._spawn" in added  # it did spawn
    assert added - ALLOWED - FIRST_RUN_ONLY == set()
    assert not added & NEVER
    # The next run, within the uploader's throttle, checks its stamp (one lstat) and
    # imports nothing of the spawn.
    again = added_by_telemetry(tool)
    assert "cli_telemetry.recording" in again
    assert "cli_telemetry._spawn" not in again
    assert not again & NEVER


def test_the_uploader_module_does_not_import_click_or_the_network(tmp_path: Path) -> None:
    """An uploader that finds another running exits having imported neither."""
    added = new_modules("import cli_telemetry._uploader", tmp_path)
    assert not added & {"urllib3", "filelock", "cli_telemetry.telemetry"}


PROVIDERS_TOOL = """
import sys
import click
from cli_telemetry import Telemetry
from cli_telemetry.providers import (
    OTLP, Amplitude, Mixpanel, PostHog, Provider, RudderStack, Segment, Webhook,
)
telemetry = Telemetry("acme", version="1.0", endpoint="{endpoint}", sinks=[
    PostHog(api_key="phc_x", host="{endpoint}"), Segment(write_key="w", host="{endpoint}"),
    Mixpanel(token="t", host="{endpoint}"), Amplitude(api_key="k", host="{endpoint}"),
    RudderStack(write_key="w", data_plane_url="{endpoint}"), Webhook(url="{endpoint}"),
    OTLP(endpoint="{endpoint}"), Provider("mypkg.telemetry:Mine"),
])

@telemetry.instrument
@click.command()
def main():
    click.echo("hi")

sys.argv = ["acme"]
main()
"""


def test_a_tool_with_every_provider_imports_none_of_them(tmp_path: Path) -> None:
    """Providers are descriptions in the tool's process (cli_telemetry.providers); the sink
    modules, urllib3 and the mapping code load only in the uploader."""
    from conftest import clean_environ

    home = tmp_path / "home"
    home.mkdir()
    env = {**clean_environ(home), "ACME_TELEMETRY": "1", "CLI_APP_ENDPOINT": ""}
    config = home / ".config" / "acme"
    config.mkdir(parents=True)
    (config / "telemetry.conf").write_text("enabled = true\nconsent_policy = 1\n")
    code = PROVIDERS_TOOL.replace("{endpoint}", closed_port().rsplit("/", 2)[0])
    added = new_modules(code, tmp_path, env)
    assert {"cli_telemetry._spawn", "cli_telemetry.providers"} <= added  # it did spawn
    ours = {"cli_telemetry.providers", "cli_telemetry.errors"}
    click_at_run_time = {"locale", "_locale"}  # the other tests subtract a baseline run
    allowed = ALLOWED | FIRST_RUN_ONLY | ours | click_at_run_time
    assert added - allowed == set()
    assert not added & NEVER
    assert not {m for m in added if m.startswith("cli_telemetry.sinks")}


TYPER_HELLO = "import sys; sys.argv = ['typer-app', 'hello']; from typer_app.cli import app; app()"
TYPER_OURS = {"cli_telemetry._typer"}


def typer_tool(home: Path) -> Tool:
    import typer

    assert hasattr(typer, "_click"), "this test needs Typer 0.26 or later in .venv"
    return Tool(home, "typer-app", [sys.executable, "-m", "typer_app"])


def clicks(modules: set[str]) -> set[str]:
    """The real click's modules among ``modules`` (Typer's copy is ``typer._click``)."""
    return {m for m in modules if m == "click" or m.startswith("click.")}


def added_to_typer(tool: Tool, env: dict[str, str] | None = None) -> set[str]:
    """What the Typer example's ``hello`` imports with telemetry beyond the same run with
    the stand-in; and that neither process imports click, in any form, at any point."""
    with_telemetry = new_modules(TYPER_HELLO, tool.home, {**tool.env, **(env or {})}, "sys")
    without = new_modules(TYPER_HELLO, tool.home, {**tool.env, "PYTHONPATH": BASELINE}, "sys")
    assert "cli_telemetry.telemetry" not in without and "typer_app.cli" in without
    assert "typer._click.core" in with_telemetry  # the measurement sees Typer's own modules
    assert clicks(with_telemetry) == clicks(without) == set()
    return with_telemetry - without


def test_the_typer_example_on_typer_without_click_never_imports_click(tool: Tool) -> None:
    typer_app = typer_tool(tool.home)
    assert added_to_typer(typer_app) - ALLOWED - TYPER_OURS == set()  # undecided
    assert typer_app.files() == []
    assert typer_app.run("telemetry", "enable").returncode == 0
    first = added_to_typer(typer_app)
    assert first - ALLOWED - TYPER_OURS - FIRST_RUN_ONLY == set()
    steady = added_to_typer(typer_app)
    assert {"cli_telemetry.instrument", "cli_telemetry._typer"} <= steady
    assert steady - ALLOWED - TYPER_OURS == set()
    assert not steady & NEVER
    assert len(typer_app.events()) == 2  # it did record
    dnt = added_to_typer(typer_app, {"DO_NOT_TRACK": "1"})
    assert dnt - ALLOWED - TYPER_OURS == set()
    assert {m for m in dnt if m.startswith("cli_telemetry")} == DO_NOT_TRACK_RUN | TYPER_OURS
    assert len(typer_app.events()) == 2


def test_the_typer_example_starting_its_uploader_never_imports_click(tool: Tool) -> None:
    from loopback import closed_port

    typer_app = typer_tool(tool.home)
    assert typer_app.run("telemetry", "enable").returncode == 0
    typer_app.env["TYPER_APP_TELEMETRY_ENDPOINT"] = closed_port()
    added = added_to_typer(typer_app)
    assert "cli_telemetry._spawn" in added  # it did spawn
    assert added - ALLOWED - TYPER_OURS - FIRST_RUN_ONLY - {"signal"} == set()
    assert not added & NEVER


@pytest.mark.parametrize(
    "subcommand", [["status"], ["status", "--json"], ["enable"], ["disable"], ["--help"]]
)
def test_the_typer_telemetry_command_never_imports_click(tool: Tool, subcommand: list[str]) -> None:
    typer_app = typer_tool(tool.home)
    argv = repr(["typer-app", "telemetry", *subcommand])
    code = TYPER_HELLO.replace("['typer-app', 'hello']", argv)
    modules = new_modules(code, tool.home, typer_app.env, "sys")
    assert "cli_telemetry.command" in modules or subcommand == ["--help"]
    assert "typer._click.core" in modules
    assert clicks(modules) == set()
