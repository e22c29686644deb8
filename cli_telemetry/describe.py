"""What one tool records, written out: Markdown for its privacy page, JSON Schema for programs.

``click-telemetry schema MODULE:ATTR`` imports the tool's module and prints these for its
`Telemetry` object: the built-in fields (from `cli_telemetry.events`), the options whose
values it records with the values that may be recorded (found in the commands it
instrumented), and its declared custom events (`cli_telemetry.catalog`). The JSON Schema is
what ``collector serve --schema FILE`` checks the tool's custom events against.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from ._values import COMMAND_EVENT, DELETION_EVENT, MAX_LIST, SCHEMA_VERSION
from .capture import option_name, recordable_values
from .events import (
    COMMAND_ONLY_FIELDS,
    CUSTOM_ONLY_FIELDS,
    DELETION_FIELDS,
    FIELDS,
    ClosedValue,
    privacy_table,
)
from .instrument import GROUP, OPTION, TYPER, loaded

if TYPE_CHECKING:
    import click
    import typer

    from .telemetry import Telemetry

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
EXTENSION: Final = "x-cli-telemetry"
"""The key of the JSON Schema document that names the tool and the schema version."""


class RecordedOption:
    """An option named in ``record_values``: how it is recorded (one name, or two for a
    flag pair), the values that may be recorded, and whether it takes several."""

    __slots__ = ("multiple", "names", "values")

    def __init__(self, names: list[str], values: list[ClosedValue], multiple: bool) -> None:
        self.names = names
        self.values = values
        self.multiple = multiple


def load(target: str) -> Telemetry:
    """The `Telemetry` object at ``module:attribute`` (importing the module instruments its
    commands)."""
    from .telemetry import Telemetry

    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{target!r} is not MODULE:ATTRIBUTE, e.g. cli_app.cli:telemetry")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    if not isinstance(value, Telemetry):
        raise ValueError(f"{target} is a {type(value).__name__}, not a cli_telemetry.Telemetry")
    return value


def recorded_options(telemetry: Telemetry) -> tuple[dict[str, RecordedOption], list[str]]:
    """The options of ``record_values`` as the instrumented commands declare them, by the
    name they are recorded under; and the names in ``record_values`` no command has."""
    wanted = telemetry.config.record_values
    found: dict[str, RecordedOption] = {}
    seen: set[str] = set()
    options = loaded(OPTION)
    for command in _commands(telemetry.commands):
        for parameter in command.params:
            if not isinstance(parameter, options):
                continue
            param = cast("click.Option", parameter)
            if wanted.isdisjoint(param.opts + param.secondary_opts):
                continue
            seen.update(wanted.intersection(param.opts + param.secondary_opts))
            values, many = recordable_values(param)
            names = [option_name(param, True)]
            if param.is_flag and param.secondary_opts:
                names.append(option_name(param, False))
            key = names[0]
            if key in found:  # the same option on several commands: every value counts
                merged = found[key].values + [v for v in values if v not in found[key].values]
                found[key] = RecordedOption(names, merged, found[key].multiple or many)
            else:
                found[key] = RecordedOption(names, values, many)
    return dict(sorted(found.items())), sorted(wanted - seen)


def _commands(roots: tuple[click.Command | typer.Typer, ...]) -> Iterator[click.Command]:
    """Every command registered under ``roots``, each once, in the order registered (a
    Typer app's, as Typer builds them when it runs)."""
    from collections import deque

    seen: set[int] = set()
    queue = deque(_built(root) for root in roots)
    while queue:
        command = queue.popleft()
        if id(command) in seen:
            continue
        seen.add(id(command))
        yield command
        if isinstance(command, loaded(GROUP)):
            queue.extend(cast("click.Group", command).commands.values())


def _built(root: click.Command | typer.Typer) -> click.Command:
    """``root``'s command: a Typer app's, built as ``app()`` builds it."""
    if isinstance(root, loaded(TYPER)):
        from typer.main import get_command

        return cast("click.Command", get_command(root))  # type: ignore[arg-type]
    return cast("click.Command", root)


def json_schema(telemetry: Telemetry) -> dict[str, Any]:
    """A JSON Schema (2020-12) of every event ``telemetry`` may record."""
    options, _ = recorded_options(telemetry)
    defs: dict[str, Any] = {COMMAND_EVENT: _event_schema(telemetry, COMMAND_EVENT)}
    values = defs[COMMAND_EVENT]["properties"]["values"]
    values.clear()
    values.update(_values_schema(options))
    for spec in telemetry.catalog:
        schema = _event_schema(telemetry, spec.name)
        schema["description"] = spec.description
        schema["properties"]["properties"] = spec.properties_schema()
        defs[spec.name] = schema
    defs[DELETION_EVENT] = _event_schema(telemetry, DELETION_EVENT)
    defs[DELETION_EVENT]["description"] = (
        "Sent once by `telemetry disable`: forget every record of this install."
    )
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"urn:cli-telemetry:{telemetry.tool}",
        "title": f"What {telemetry.tool} records",
        "description": "Each record the tool sends is one of these events.",
        EXTENSION: {"tool": telemetry.tool, "schema_version": SCHEMA_VERSION},
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in defs],
        "$defs": defs,
    }


def _event_schema(telemetry: Telemetry, name: str) -> dict[str, Any]:
    if name == DELETION_EVENT:
        fields = [field for field in FIELDS if field.name in DELETION_FIELDS]
    else:
        excluded = CUSTOM_ONLY_FIELDS if name == COMMAND_EVENT else COMMAND_ONLY_FIELDS
        fields = [field for field in FIELDS if field.name not in excluded]
    properties = {field.name: field.rule.json_schema() for field in fields}
    properties["event"] = {"const": name}
    properties["tool"] = {"const": telemetry.tool}
    return {
        "type": "object",
        "properties": properties,
        "required": [field.name for field in fields if not field.optional],
        "additionalProperties": False,
    }


def _values_schema(options: dict[str, RecordedOption]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for option in options.values():
        one: dict[str, Any] = {"enum": list(option.values)}
        schema = {"type": "array", "maxItems": MAX_LIST, "items": one} if option.multiple else one
        for name in option.names:
            properties[name] = schema
    return {"type": "object", "properties": properties, "additionalProperties": False}


def markdown(
    telemetry: Telemetry, level: int = 1, title: str | None = None, preface: Sequence[str] = ()
) -> str:
    """The catalog for the tool's privacy page, under ``title``, a heading of ``level`` (the
    privacy page, `cli_telemetry.privacy`, holds it as a section, with ``preface``, its
    lines, between the heading and the field table)."""
    tool = telemetry.tool
    options, _ = recorded_options(telemetry)
    top, sub, subsub = ("#" * (level + n) for n in range(3))
    lines = [
        f"{top} {title or f'What {tool} records'}",
        "",
        *preface,
        f"Each time a command of {tool} runs, it records one `command` record; it may also"
        " record the custom events listed below, and `telemetry disable` sends one"
        " `deletion_request`. Each record has the fields below marked for it, and no"
        " others:",
        "",
        privacy_table(),
        "",
        f"{sub} Option values",
        "",
    ]
    if options:
        lines += [
            "Of all the options you give, only the *names* are recorded, except for these,"
            " whose value is recorded when it is one of the values listed:",
            "",
            "| Option | Values that may be recorded |",
            "|---|---|",
        ]
        for option in options.values():
            values = ", ".join(f"`{_json(v)}`" for v in option.values) or "none"
            lines.append(f"| {' / '.join(f'`{n}`' for n in option.names)} | {values} |")
    else:
        lines.append("Of all the options you give, only the *names* are recorded, never values.")
    lines += ["", f"{sub} Custom events", ""]
    if not telemetry.catalog:
        lines.append(f"{tool} declares no custom events.")
    for spec in telemetry.catalog:
        lines += [f"{subsub} `{spec.name}`", "", spec.description, ""]
        if spec.properties:
            lines += ["| Property | Value | Always there | Meaning |", "|---|---|---|---|"]
            for prop in spec.properties:
                lines.append(
                    f"| `{prop.name}` | {prop.words()} | {'yes' if prop.required else 'no'}"
                    f" | {prop.description} |"
                )
        else:
            lines.append("It has no properties.")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _json(value: object) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)
