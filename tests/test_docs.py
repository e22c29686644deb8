"""The documentation site builds: ``mkdocs build --strict``, a real process, as a reader's
build would run it. mkdocs.yml turns every link, anchor and navigation check into a warning
and strict mode turns warnings into a failed build, so a broken link or anchor, a page
missing from ``docs/``, a nav entry without its file, a page left out of the nav, or an
include (PRIVACY.md, SECURITY.md, CHANGELOG.md) that is gone fails here.

mkdocs comes with the dev extra. Without it the test fails under CI=true, and skips,
saying why, elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
MARK = "<!-- schema:cli-app -->"
END = "<!-- /schema:cli-app -->"


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


def test_the_docs_show_the_catalog_the_readme_shows() -> None:
    """The README's block is held to the command's output (tests/test_describe.py); the
    docs' copy is held to the README's, until the README shrinks to links."""
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs" / "authors" / "custom-events.md").read_text()

    def block(text: str) -> str:
        return text.split(MARK, 1)[1].split(END, 1)[0]

    assert block(page) == block(readme)
