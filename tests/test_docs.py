"""The documentation site builds: ``mkdocs build --strict``, a real process, as a reader's
build would run it. mkdocs.yml turns every link, anchor and navigation check into a warning
and strict mode turns warnings into a failed build, so a broken link or anchor, a page
missing from ``docs/``, a nav entry without its file, a page left out of the nav, or an
include (PRIVACY.md, SECURITY.md, CHANGELOG.md) that is gone fails here.

mkdocs comes with the dev extra. Without it the test fails under CI=true, and skips,
saying why, elsewhere.

No page types a measured figure (a rate, a latency, a ratio, a duration something took):
those are rendered from bench/results/ by scripts/docs_outputs.py, or named by the command
that prints them, since a typed one goes stale unseen."""

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
sys.path.insert(0, str(ROOT / "scripts"))
import docs_outputs  # noqa: E402 - which pages, and the caption it writes under a bench block

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


# --- no typed measurements ---------------------------------------------------------------

MEASURED = {
    "a rate": re.compile(r"\d[\d,.]*\s*(?:[a-z]+)?/s\b"),
    "a time under a second": re.compile(r"\d[\d,.]*\s*(?:ms|µs|us|ns)\b"),
    "a fraction of a second": re.compile(r"\b\d+\.\d+\s*s\b"),
    "an approximate figure": re.compile(r"~\s*\d"),
    "a ratio": re.compile(r"\d(?:\.\d+)?\s?\u00d7|\bratio\s+(?:of\s+)?~?\d"),
    "a percentile or median": re.compile(
        r"\bp(?:50|75|9\d)\b|\d\s*\w*\s*\((?:median|mean|average)\)"
    ),
    "a percentage": re.compile(r"\d(?:\.\d+)?\s?%"),
    "a duration something took": re.compile(
        r"\b(?:took|takes|taking|lasted)\s+(?:about\s+|under\s+)?\d"
        r"|\d\s*(?:s|min|seconds|minutes)\s+(?:here|on this|a case|a run)\b|;\s*\d+\s*s\s*(?:\||$)"
    ),
    "the machine or the run it came from": re.compile(
        r"\bon this (?:\d+-core )?machine\b|\bone run of\b|\bload average (?:of )?\d"
    ),
    "a figure called measured": re.compile(r"\bmeasured\b[^.;:|]{0,60}\d"),
}
"""What a measurement looks like in prose: a rate, a latency, a fraction of a second, an
approximate figure, a ratio, a percentile, a duration something took, the machine or run
it came from. A limit or a default the code sets (a 2 s throttle, a 7 s send deadline,
batches of 100, 1,000 events, 400 days) matches none of them: configuration is written in
whole seconds, counts and days, and is not said to have been taken or measured."""

NOT_MEASURED = {
    ("docs/operators/deploying.md", "answers in 100 ms"): "the fake provider's set delay",
    ("docs/operators/retention.md", "at least 0.15 s"): "the prune's least rest, a constant",
}
"""Figures that look measured and are not, each with its reason: keep this short."""


def paragraphs(text: str) -> list[tuple[int, str]]:
    """The paragraphs of a page that a person typed, each with its first line's number:
    not a fenced block (commands and their outputs are run, bench tables rendered, code is
    code), not a bench block's caption (rendered); inline code and HTML comments left out.
    Lines are joined, so that a figure and its unit on two lines are read together."""
    found: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    fenced = False
    for number, line in enumerate([*text.split("\n"), ""], 1):
        typed = not fenced and not line.lstrip().startswith("```")
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if typed and line.strip() and not line.startswith(docs_outputs.CAPTION):
            start = start if current else number
            current.append(line)
        elif current:
            joined = re.sub(r"<!--.*?-->", "", " ".join(current))
            found.append((start, re.sub(r"`[^`]*`", "", joined)))
            current = []
    return found


def typed_measurements(name: str, text: str) -> list[str]:
    found = []
    for number, paragraph in paragraphs(text):
        for allowed in (s for (page, s) in NOT_MEASURED if page == name):
            paragraph = paragraph.replace(allowed, "")
        for what, pattern in MEASURED.items():
            for match in pattern.finditer(paragraph):
                around = paragraph[max(0, match.start() - 50) : match.end() + 30]
                found.append(f"{name}:{number}: {what}: ...{around}...")
    return found


HISTORY = {"CHANGELOG.md"}
"""Included in the site, and left out of the check: an entry records what a change did when
it was made (instruction counts before and after, say), dated by its release, where a page
states what is true now."""


def documented_files() -> list[Path]:
    """README.md, the pages under docs/, and the files they include (PRIVACY.md,
    SECURITY.md; not `HISTORY`)."""
    files = docs_outputs.pages()
    for page in list(files):
        included = re.findall(r'^--8<-- "([^"]+)"', page.read_text(encoding="utf-8"), re.M)
        files += [ROOT / name for name in included if name not in HISTORY]
    return files


def test_no_page_types_a_measured_figure() -> None:
    """A figure measured on some machine on some day is rendered from bench/results/ (a
    `bench=` block, with the line saying when and where) or not quoted: the page names the
    command that prints it. Typed, it goes stale without anyone noticing."""
    found = []
    for file in documented_files():
        found += typed_measurements(docs_outputs.name_of(file), file.read_text(encoding="utf-8"))
    assert not found, (
        "typed measurements (render them from a bench's JSON, or point at the"
        " command that prints them):\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    "typed",
    [
        "on SQLite the prune took 50 s, and a store 1 ms (median), 51 ms (p99)",
        "three runs of the ingest bench here: 8,500 to 10,100\nevents/s with it",
        "It takes ~7 s (2.0 s bare, 2.2 s instrumented)",
        "| 200 kills; 8,101 events stored, 0 lost; 52 s |",
        "about +4 ms on a click `hello` (ratio 1.10)",
        "From one run of the whole suite on this 2-core machine: 4,200 events stored",
        "the wheel is 1.3\u00d7 the sdist",
        "errors fell to 3.5% of runs",
        "the onefile build (25 s on this machine)",
    ],
)
def test_a_typed_measurement_is_found(typed: str) -> None:
    assert typed_measurements("page.md", typed)


@pytest.mark.parametrize(
    "configured",
    [
        "spawns are throttled (one every 2 s at most)",
        "2 s to connect, 5 s to read, 7 s for a send and 30 s for its whole run",
        "batches of up to 100 events (512 KiB); a body over 8 MiB",
        "`--retain 400d` (the default); the spool keeps 1,000 events",
        "429 (a device over 30 events per second) is retried",
        "The backoff is 30 s, doubling up to 6 h, with jitter",
        "```console\n$ cli-app hello\nerrors 16.7%, 1.4 ms\n```",
        "*Measured on 2026-11-30 at commit `abc`; load average (1 min) 4.98 at the start*",
    ],
)
def test_a_configured_figure_is_not_taken_for_a_measurement(configured: str) -> None:
    assert not typed_measurements("page.md", configured)
