"""The collector's validation is the schema: the same fields, no more, no fewer."""

from __future__ import annotations

import typing

from cli_telemetry.collector.validation import FIELD_CHECKS, OPTIONAL
from cli_telemetry.events import COMMAND_ONLY_FIELDS, CUSTOM_ONLY_FIELDS, Event


def test_every_schema_field_has_a_check_and_no_other() -> None:
    assert set(FIELD_CHECKS) == set(typing.get_type_hints(Event))


def test_optional_fields_match_the_schema() -> None:
    assert set(Event.__optional_keys__) == OPTIONAL | COMMAND_ONLY_FIELDS | CUSTOM_ONLY_FIELDS
