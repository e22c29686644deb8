"""PRIVACY.md's field table is the schema in events.py, and the docs say the same.

A field added to `Event` without a line in PRIVACY.md (or the other way round), or a
change of which events carry it, fails here.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

from cli_telemetry.events import COMMAND_ONLY_FIELDS, CUSTOM_ONLY_FIELDS, Event

ROOT = Path(__file__).resolve().parent.parent


def privacy_table() -> dict[str, str]:
    """Field name → the "Events" column of PRIVACY.md's field table."""
    text = (ROOT / "PRIVACY.md").read_text()
    section = text.split("## What is recorded", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert rows, "no field table found under '## What is recorded'"
    return {name: events.strip() for name, events in rows}


def test_every_field_is_documented_and_nothing_else() -> None:
    assert list(privacy_table()) == list(typing.get_type_hints(Event))


def test_the_events_column_matches_the_schema() -> None:
    for name, events in privacy_table().items():
        if name in COMMAND_ONLY_FIELDS:
            assert events == "command", name
        elif name in CUSTOM_ONLY_FIELDS:
            assert events == "custom", name
        else:
            assert events.startswith("all"), name


def test_optional_fields_are_the_documented_ones() -> None:
    optional = {name for name in Event.__optional_keys__}
    assert optional == COMMAND_ONLY_FIELDS | CUSTOM_ONLY_FIELDS | {"machine_id"}
    assert privacy_table()["machine_id"].startswith("all, where")


def test_readme_links_privacy_and_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "PRIVACY.md" in readme
    for variable in ("DO_NOT_TRACK", "_TELEMETRY_DISABLED", "_TELEMETRY_DEBUG"):
        assert variable in readme
        assert variable in (ROOT / "PRIVACY.md").read_text()
