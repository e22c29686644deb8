"""`click-telemetry schema`: what a tool records, as the docs show it for the example tool
(docs/authors/custom-events.md), and as a JSON Schema that the events the tool really
records satisfy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
from conftest import Tool

from cli_telemetry import Telemetry
from cli_telemetry.describe import recorded_options
from cli_telemetry.events import DELETION_FIELDS

ROOT = Path(__file__).resolve().parent.parent
CLI = os.path.join(os.path.dirname(sys.executable), "click-telemetry")


def schema(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "schema", *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_the_docs_show_what_the_command_prints_for_the_example(tmp_path: Path) -> None:
    result = schema("cli_app.cli:telemetry", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    page = (ROOT / "docs" / "authors" / "custom-events.md").read_text()
    shown = page.split("<!-- schema:cli-app -->\n```markdown\n", 1)[1].split("```\n<!--", 1)
    assert shown[0] == result.stdout


def example_schema(tmp_path: Path) -> dict[str, Any]:
    result = schema("cli_app.cli:telemetry", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_the_json_schema_is_one_and_the_example_tools_events_satisfy_it(
    tool: Tool, tmp_path: Path
) -> None:
    document = example_schema(tmp_path)
    jsonschema.Draft202012Validator.check_schema(document)
    validator = jsonschema.Draft202012Validator(document)
    tool.enable()
    tool.run("deploy", "start", "web", "--env", "prod", "--replicas", "2", "--dry-run")
    tool.run("deploy", "status", "--format", "json")
    tool.run("check", "widget.txt")
    tool.run("deploy", "stop")
    tool.run("-v", "hello", "--no-shout")
    events = tool.events()
    assert [e["event"] for e in events].count("deploy.finished") == 1
    assert len(events) == 6
    for event in events:
        assert list(validator.iter_errors(event)) == [], event
    # ...and it is no blank cheque: a value not declared is refused.
    status = next(e for e in events if e["command"] == "cli-app deploy status")
    assert not validator.is_valid({**status, "values": {"--format": "yaml"}})
    assert not validator.is_valid({**status, "values": {"--name": "Ada"}})
    custom = next(e for e in events if e["event"] == "deploy.finished")
    assert not validator.is_valid({**custom, "properties": {"replicas": "2", "dry_run": True}})
    assert not validator.is_valid({**custom, "event": "deploy.started"})
    # The deletion request `telemetry disable` sends is one of the tool's records too.
    deletion = {key: status[key] for key in DELETION_FIELDS} | {"event": "deletion_request"}
    assert list(validator.iter_errors(deletion)) == []
    assert not validator.is_valid({**deletion, "command": status["command"]})


def test_record_values_that_no_command_has_are_named_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "acme_tool.py").write_text(
        "import click\n"
        "from cli_telemetry import Telemetry\n"
        "telemetry = Telemetry('acme', version='1', record_values=['--fmt', '--nope'])\n"
        "@telemetry.instrument\n"
        "@click.command()\n"
        "@click.option('--fmt', type=click.Choice(['a', 'b']), multiple=True)\n"
        "def cli(fmt):\n"
        "    pass\n"
    )
    result = schema("acme_tool:telemetry", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "warning: record_values names --nope, which no instrumented command has\n"
    )
    assert "| `--fmt` | `a`, `b` |" in result.stdout
    assert "acme declares no custom events." in result.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:telemetry", "No module named 'no_such_module'"),
        ("cli_app.cli", "is not MODULE:ATTRIBUTE"),
        ("cli_app.cli:cli", "not a cli_telemetry.Telemetry"),
        ("cli_app.cli:nope", "has no attribute 'nope'"),
    ],
)
def test_a_target_that_is_not_a_telemetry_object_is_a_usage_error(
    target: str, message: str, tmp_path: Path
) -> None:
    result = schema(target, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_recorded_options_merge_an_option_shared_by_commands() -> None:
    telemetry = Telemetry("acme", version="1", record_values=["--mode", "--color"])

    @telemetry.instrument
    @click.group()
    @click.option("--color/--no-color")
    def cli(color: bool) -> None:
        pass

    @cli.command()
    @click.option("--mode", type=click.Choice(["a", "b"]))
    def one(mode: str) -> None:
        pass

    @cli.command()
    @click.option("--mode", type=click.Choice(["b", "c"]))
    def two(mode: str) -> None:
        pass

    options, unknown = recorded_options(telemetry)
    assert unknown == []
    assert [(o.names, o.values) for o in options.values()] == [
        (["--color", "--no-color"], [True, False]),
        (["--mode"], ["a", "b", "c"]),
    ]


def test_values_are_listed_as_they_are_recorded(tmp_path: Path) -> None:
    """A choice the schema cannot hold is listed as <other>, as it is recorded: the JSON
    stays JSON (no Infinity) and the tool's events satisfy its own schema."""
    (tmp_path / "acme_tool.py").write_text(
        "import click\n"
        "from cli_telemetry import Telemetry\n"
        "telemetry = Telemetry('acme', version='1', record_values=['--n', '--pair'])\n"
        "@telemetry.instrument\n"
        "@click.command()\n"
        "@click.option('--n', type=click.Choice([1, 2**60, float('inf')]))\n"
        "@click.option('--pair', type=click.Choice(['a', 'b']), nargs=2)\n"
        "def cli(n, pair):\n"
        "    pass\n"
    )
    result = schema("acme_tool:telemetry", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    def no_constants(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    document = json.loads(result.stdout, parse_constant=no_constants)
    values = document["$defs"]["command"]["properties"]["values"]["properties"]
    assert values["--n"] == {"enum": [1, "<other>"]}
    assert values["--pair"]["type"] == "array"


def test_a_declaration_that_could_record_free_text_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "acme_tool.py").write_text(
        "from typing import TypedDict\n"
        "from cli_telemetry import Telemetry\n"
        "telemetry = Telemetry('acme', version='1')\n"
        "class Note(TypedDict):\n"
        "    'A note.'\n"
        "    text: str\n"
        "telemetry.event('note.taken', Note)\n"
    )
    for fmt in ("markdown", "json"):
        result = schema("acme_tool:telemetry", "--format", fmt, cwd=tmp_path)
        assert result.returncode == 1
        assert "note.taken: property 'text' is free text" in result.stderr
        assert "Traceback" not in result.stderr
