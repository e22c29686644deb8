"""What the collector accepts: a request body as a whole, then each event on its own.

The events are checked with `cli_telemetry.events.check_event`, the schema's own check,
whose rules the library fits every captured value to: one schema, one owner. An unknown
field is refused, not ignored, so nothing private slips in through a modified client; a
field the schema withdrew (`events.WITHDRAWN`) is taken out before the check.

A body that is not a batch (not JSON, not an object, no list of events, an unknown key) is
refused as a whole (400). Within a well-formed batch, each event stands alone: the valid ones
are stored, and each refused one is named by its index, its field and what is wrong with
it, so one bad event never costs its neighbours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ..catalog import EventSpec
from ..events import (
    COMMAND_EVENT,
    DELETION_EVENT,
    FIELD_RULES,
    SCHEMA_VERSION,
    TIMESTAMP,
    InvalidEvent,
    check_event,
    drop_withdrawn,
)

MAX_BATCH_EVENTS: Final = 10_000


class InvalidBatch(ValueError):
    """Why a request body was refused as a whole; ``field`` names where (``batch``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Rejection:
    """One refused event of a batch, as the collector's answer lists it."""

    __slots__ = ("error", "field", "index")

    def __init__(self, index: int, field: str, error: str) -> None:
        self.index = index
        self.field = field
        self.error = error

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "error": self.error}


class SchemaError(ValueError):
    """A ``--schema`` file that is not what ``click-telemetry schema --format json`` writes."""


class Catalog:
    """One tool's declared custom events, read from the JSON Schema that ``click-telemetry
    schema`` printed for it: its custom events must be declared there, and match."""

    def __init__(self, tool: str, events: Mapping[str, EventSpec]) -> None:
        self.tool = tool
        self.events = dict(events)

    @classmethod
    def load(cls, path: str) -> Catalog:
        from ..describe import EXTENSION

        try:
            with open(path, encoding="utf-8") as f:
                document = json.load(f)
        except (OSError, ValueError) as exc:
            raise SchemaError(f"cannot read it as JSON ({exc})") from None
        ours = document.get(EXTENSION) if isinstance(document, dict) else None
        if not isinstance(ours, dict) or not isinstance(ours.get("tool"), str):
            raise SchemaError(f"no {EXTENSION!r} naming the tool: not a click-telemetry schema")
        if FIELD_RULES["tool"].problem(ours["tool"]):
            raise SchemaError(f"{ours['tool']!r} is not a tool name")
        if ours.get("schema_version") != SCHEMA_VERSION:
            raise SchemaError(
                f"written for schema version {ours.get('schema_version')!r};"
                f" this collector reads version {SCHEMA_VERSION}"
            )
        defs = document.get("$defs")
        if not isinstance(defs, dict):
            raise SchemaError("no $defs")
        events: dict[str, EventSpec] = {}
        for name, definition in defs.items():
            if name in (COMMAND_EVENT, DELETION_EVENT):
                continue
            try:
                schema = definition["properties"]["properties"]
                description = str(definition.get("description", ""))
                events[name] = EventSpec.from_properties_schema(name, description, schema)
            except (KeyError, TypeError) as exc:
                raise SchemaError(f"$defs.{name}: not an event's schema ({exc})") from None
            except ValueError as exc:
                raise SchemaError(str(exc)) from None
        return cls(ours["tool"], events)

    def problem(self, event: dict[str, Any]) -> tuple[str, str] | None:
        """(field, what is wrong) when a valid event breaks this catalog, else None."""
        if event["event"] in (COMMAND_EVENT, DELETION_EVENT):
            return None
        spec = self.events.get(event["event"])
        if spec is None:
            return "event", f"is not a declared event of {self.tool}"
        try:
            spec.check(event["properties"])
        except (TypeError, ValueError) as exc:
            return "properties", str(exc)
        return None


def check_batch(
    body: Any, catalogs: Mapping[str, Catalog] | None = None
) -> tuple[list[dict[str, Any]], list[Rejection]]:
    """The valid events of a request body ``{"batch": [...], "sent_at": "..."}``, and the
    refused ones. Raises `InvalidBatch` when the body itself is not a batch. A tool with a
    catalog in ``catalogs`` must also keep to it (its custom events declared, and their
    properties as declared)."""
    if not isinstance(body, dict):
        raise InvalidBatch("body", 'must be an object {"batch": [...], "sent_at": "..."}')
    for key in body:
        if key not in ("batch", "sent_at"):
            raise InvalidBatch(str(key)[:64], "is not a field of the request body")
    if "sent_at" in body and TIMESTAMP.problem(body["sent_at"]) is not None:
        raise InvalidBatch("sent_at", "must be a UTC ISO 8601 time")
    batch = body.get("batch")
    if not isinstance(batch, list) or not 0 < len(batch) <= MAX_BATCH_EVENTS:
        raise InvalidBatch("batch", f"must be a list of 1 to {MAX_BATCH_EVENTS} events")
    valid: set[tuple[str, type, Any]] = set()
    accepted: list[dict[str, Any]] = []
    rejected: list[Rejection] = []
    for index, event in enumerate(batch):
        drop_withdrawn(event)  # from a client of an earlier release: accepted without it
        try:
            check_event(event, valid)
        except InvalidEvent as exc:
            rejected.append(Rejection(index, exc.field, exc.message))
            continue
        catalog = catalogs.get(event["tool"]) if catalogs else None
        problem = catalog.problem(event) if catalog is not None else None
        if problem is not None:
            rejected.append(Rejection(index, *problem))
        else:
            accepted.append(event)
    return accepted, rejected
