"""PRIVACY.md's field table is the schema's (`cli_telemetry.events.FIELDS`), and the docs say
the same: a field added, removed or described anew in events.py without PRIVACY.md (or the
other way round) fails here."""

from __future__ import annotations

from pathlib import Path

from cli_telemetry._paths import TEST_DIR_VARIABLE
from cli_telemetry.events import privacy_table

ROOT = Path(__file__).resolve().parent.parent


def test_privacy_md_holds_the_schemas_field_table() -> None:
    text = (ROOT / "PRIVACY.md").read_text()
    section = text.split("\n### What is recorded\n", 1)[1].split("\n### ", 1)[0]
    assert privacy_table() in section, (
        "regenerate it: python -c 'from cli_telemetry.events"
        " import privacy_table; print(privacy_table())'"
    )


def test_readme_links_privacy_and_the_docs_document_every_variable() -> None:
    """The README links PRIVACY.md; the configuration reference (which tests/test_docs.py
    holds to every variable the code reads) and PRIVACY.md both name the user's switches."""
    readme = (ROOT / "README.md").read_text()
    assert "PRIVACY.md" in readme
    reference = (ROOT / "docs" / "authors" / "configuration.md").read_text()
    for variable in ("DO_NOT_TRACK", "_TELEMETRY_DISABLED", "_TELEMETRY_DEBUG", TEST_DIR_VARIABLE):
        assert variable in reference
        assert variable in (ROOT / "PRIVACY.md").read_text()
