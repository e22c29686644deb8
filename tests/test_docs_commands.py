"""Every command the docs show is run, and prints what the page shows
(scripts/docs_outputs.py --check): a ``$ `` line in a console block of README.md or
docs/, in a sandbox (a fresh HOME per block, the example tool, a collector on loopback).
A block that cannot run here says why in the page and names the test that covers it; the
bench tables are rendered from bench/results/ and compared, the benches are not run.

When an output no longer matches, the failure shows the diff and the command that writes
the pages again: ``.venv/bin/python scripts/docs_outputs.py``."""

from __future__ import annotations

import json
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
