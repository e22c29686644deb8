"""The documentation site builds: ``mkdocs build --strict``, a real process, as a reader's
build would run it. mkdocs.yml turns every link, anchor and navigation check into a warning
and strict mode turns warnings into a failed build, so a broken link or anchor, a page
missing from ``docs/``, a nav entry without its file, a page left out of the nav, or an
include (PRIVACY.md, SECURITY.md, CHANGELOG.md) that is gone fails here.

mkdocs comes with the dev extra. Without it the test fails under CI=true, and skips,
saying why, elsewhere."""

from __future__ import annotations

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def mkdocs() -> str:
    """The mkdocs beside this interpreter (the venv's), else one on PATH."""
    beside = Path(sys.executable).with_name("mkdocs.exe" if os.name == "nt" else "mkdocs")
    found = str(beside) if beside.exists() else shutil.which("mkdocs")
    if found is None:
        why = "mkdocs is not installed (it is in the dev extra: pip install -e '.[dev]')"
        if IN_CI:
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return found


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its future
    result = subprocess.run(
        [mkdocs(), "build", "--strict", "--config-file", "mkdocs.yml", "--site-dir", tmp_path],
        cwd=ROOT,  # the includes are found from the project's root (mkdocs.yml, snippets)
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "index.html").is_file()
    assert "What is recorded" in (tmp_path / "PRIVACY" / "index.html").read_text()


REFERENCE = ROOT / "docs" / "authors" / "configuration.md"
VARIABLE = re.compile(r"_?[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*\Z")
"""What an environment variable's name looks like."""
NOT_VARIABLES = {
    # click's metavars and parameter sources, HTTP methods and words of providers' APIs,
    # names in __all__, os flags: constants shaped like a variable that no code reads as one.
    "AGE", "NAME", "COMMANDLINE", "ENVIRONMENT", "GET", "POST", "OK", "INFO", "GDPR",
    "USER_ID", "SUPPRESS_WITH_DELETE", "SCHEMA_VERSION", "SCHEME", "DEFAULT_TOLERANCE",
    "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "O_BINARY", "O_CLOEXEC", "O_NOFOLLOW",
    "O_NONBLOCK",
}  # fmt: skip


def variables_in_the_code() -> dict[str, set[str]]:
    """Every string constant of the package shaped like an environment variable (docstrings
    aside), with the files it is in. A tool's own variables are written with its prefix
    (``f"{prefix}_TELEMETRY_DEBUG"``, or the suffix ``"_TELEMETRY_DEBUG"``): they are
    returned as ``<PREFIX>_TELEMETRY_DEBUG``. Any other name with a leading underscore is
    private, by rule, and not for the reference (``_CLI_TELEMETRY_RECORD_UNDER_TEST``, the
    suite's own switch; PyInstaller's ``_MEIPASS2``)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "cli_telemetry").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            name = node.value
            if id(node) in docstrings or len(name) < 2 or not VARIABLE.match(name):
                continue
            if name.startswith("_TELEMETRY_"):
                name = "<PREFIX>" + name
            elif name.startswith("_") or name in NOT_VARIABLES:
                continue
            found.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return found


def test_the_configuration_reference_lists_every_variable_the_code_reads() -> None:
    variables = variables_in_the_code()
    # The scan sees what it must: the tool's own, the library's, the collector's.
    assert {
        "<PREFIX>_TELEMETRY_DISABLED",
        "<PREFIX>_TELEMETRY_ENDPOINT",
        "DO_NOT_TRACK",
        "CLI_TELEMETRY_TEST_DIR",
        "CLI_TELEMETRY_COLLECTOR_TOKENS",
        "POSTHOG_API_KEY",
    } <= set(variables)
    reference = REFERENCE.read_text(encoding="utf-8")
    missing = {name: where for name, where in variables.items() if f"`{name}" not in reference}
    assert not missing, (
        f"{REFERENCE.relative_to(ROOT)} does not list {sorted(missing)} (read in"
        f" {sorted(set().union(*missing.values()))}): document each there, or, if it is no"
        " variable, add it to NOT_VARIABLES"
    )


def test_the_configuration_reference_lists_every_option_of_telemetry() -> None:
    from cli_telemetry import Telemetry

    options = [name for name in inspect.signature(Telemetry).parameters]
    assert {"tool", "version", "endpoint", "sinks", "record_values"} <= set(options)
    reference = REFERENCE.read_text(encoding="utf-8")
    table = reference.split("## `Telemetry` options", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`(\w+)`", row.split(" | ")[0])}
    assert set(options) <= listed, f"options missing from the table: {set(options) - listed}"


def test_the_docs_leave_nothing_to_be_written() -> None:
    """The placeholders for features that other branches are adding are marked "Being
    added"; nothing else is left for later."""
    pages = sorted((ROOT / "docs").rglob("*.md"))
    left = [p.relative_to(ROOT).as_posix() for p in pages if "To be written" in p.read_text()]
    assert not left
