"""Every command the docs show is run, and prints what the page shows
(scripts/docs_outputs.py --check): a ``$ `` line in a console block of README.md or
docs/, in a sandbox (a fresh HOME per block, the example tool, a collector on loopback).
A block that cannot run here says why in the page and names the test that covers it; the
bench tables are rendered from bench/results/ and compared, the benches are not run.
And no page types a measured figure (a rate, a latency, a ratio, a duration something
took...) outside those rendered blocks: `test_no_page_types_a_measured_figure`.

When an output no longer matches, the failure shows the diff and the command that writes
the pages again: ``.venv/bin/python scripts/docs_outputs.py``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import docs_outputs  # noqa: E402

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the sandbox waits for the commands' uploaders through /proc (Linux)",
)

SKIPPABLE = (
    "pip install ",
    "python3 dev.py ",
    ".venv/bin/mkdocs serve",
    "mkdocs serve",
    "systemctl ",
    ".venv/bin/python bench/",
    ".venv/bin/python scripts/docs_outputs.py",
)
"""What may be skipped: installing from PyPI, this project's own setup and suite, a site
server, systemd, the benches (minutes each) and the generator itself. Anything else the
docs show runs."""


def test_every_command_in_the_docs_prints_what_the_page_shows() -> None:
    outcome = docs_outputs.regenerate(write=False)
    if outcome.problems:
        pytest.fail("\n".join(outcome.problems), pytrace=False)
    if outcome.diffs:
        pytest.fail(
            "\n".join(outcome.diffs)
            + "\n\nThe docs' outputs differ from what the commands print now: run"
            f" {docs_outputs.REGENERATE}, read the diff, commit the pages.",
            pytrace=False,
        )
    assert len(outcome.ran) >= 20 and len(outcome.rendered) >= 3, outcome


def test_only_what_cannot_run_here_is_skipped_and_each_skip_names_its_test() -> None:
    for page in docs_outputs.pages():
        for block in docs_outputs.blocks(page):
            if block.marker.skip is None:
                continue
            assert block.marker.covered_by, f"{block.where}: a skip names the test covering it"
            assert not docs_outputs.check_skip(block), docs_outputs.check_skip(block)
            for command in block.commands():
                assert command.line.startswith(SKIPPABLE), f"{block.where}: {command.line}"


def test_a_page_whose_output_changed_fails_with_a_diff(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Text stays.\n\n```console\n$ cli-app hello --name Ada\nHello, Grace!\n```\n\nMore.\n"
    )
    outcome = docs_outputs.regenerate(write=False, chosen=[page])
    assert outcome.diffs and "-Hello, Grace!\n+Hello, Ada!" in outcome.diffs[0]
    docs_outputs.regenerate(write=True, chosen=[page])
    assert page.read_text() == (
        "Text stays.\n\n```console\n$ cli-app hello --name Ada\nHello, Ada!\n```\n\nMore.\n"
    )


def test_a_usage_line_with_an_option_the_command_lacks_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-run: synopsis -->\n```console\n"
        "$ click-telemetry report [--since 7d] [--colour]\n```\n"
    )
    outcome = docs_outputs.regenerate(write=False, chosen=[page])
    assert len(outcome.problems) == 1 and "--colour" in outcome.problems[0]


def test_the_bench_results_say_when_where_and_under_what_load() -> None:
    for path in sorted(docs_outputs.RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for key in ("command", "date", "commit", "cpus", "platform", "python", "results"):
            assert key in data, (path.name, key)
        assert len(data["load_average_at_start"]) == 3, path.name
        assert len(data["load_average_at_end"]) == 3, path.name


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


def documented_files() -> list[Path]:
    """README.md, the pages under docs/, and the files they include (CHANGELOG.md, ...)."""
    files = docs_outputs.pages()
    for page in list(files):
        included = re.findall(r'^--8<-- "([^"]+)"', page.read_text(encoding="utf-8"), re.M)
        files += [ROOT / name for name in included]
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
