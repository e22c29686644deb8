"""The custom events a tool declares in code: names, descriptions, typed properties.

A tool records only custom events it declared ahead of time (Glean's habit), each named
``noun.verb`` in lowercase and described, its properties typed by a ``TypedDict``::

    class DeployFinished(TypedDict):
        \"\"\"A deployment finished.\"\"\"

        replicas: int
        dry_run: bool
        env: Literal["dev", "staging", "prod"]
        note: NotRequired[Annotated[Literal["fast", "slow"], "How it went"]]

    deploy_finished = telemetry.event("deploy.finished", DeployFinished)
    deploy_finished.track({"replicas": 3, "dry_run": False, "env": "prod"})

mypy checks each ``track`` call against the ``TypedDict``; at run time `EventSpec.check`
does the same, so a call mypy could not see (``telemetry.track("deploy.finished", {...})``)
is checked too. A property is a boolean, a whole number (within
`cli_telemetry.events.MAX_SAFE_INTEGER`), a number, or one of the values a ``Literal``
lists: never free text, which could carry whatever the user typed. ``X | None`` may be
null, ``NotRequired`` (or ``total=False``) may be left out, and ``Annotated[T, "text"]``
describes a property. ``identify`` traits are declared the same way, under the name
``identify``.

`Telemetry.event` checks the name at once, and the properties when the event is first
recorded or listed (`declare` here, then, raising `ConfigurationError`): a tool may declare
many events, and an end user's run pays only for those it records. In strict mode (the
author's tests: ``strict=True`` or ``<PREFIX>_TELEMETRY_STRICT=1``) every declaration is
checked where it is made.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Final, Literal

from ._values import IDENTIFY_EVENT, MAX_SAFE_INTEGER, PROPERTY_NAME, Record
from .errors import ConfigurationError
from .events import MAX_PROPERTIES, PROPERTY_VALUE_WHAT, Scalar, property_value

Kind = Literal["boolean", "integer", "number", "choice"]
KIND_WORDS: Final[Mapping[Kind, str]] = {
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "choice": "one of",
}


class PropertySpec(Record):
    """One declared property: its kind, its allowed values (for a choice), whether it may
    be null or left out, and what it means."""

    __slots__ = ("choices", "description", "kind", "name", "nullable", "required")

    def __init__(
        self,
        name: str,
        kind: Kind,
        *,
        choices: tuple[str | int | bool, ...] = (),
        nullable: bool = False,
        required: bool = True,
        description: str = "",
    ) -> None:
        self.name: Final = name
        self.kind: Final = kind
        self.choices: Final = choices
        self.nullable: Final = nullable
        self.required: Final = required
        self.description: Final = description

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` for this property, or None."""
        if value is None:
            return None if self.nullable else "must not be null"
        kind = type(value)
        if self.kind == "boolean":
            return None if kind is bool else "must be true or false"
        if self.kind == "integer":
            if kind is int and abs(value) <= MAX_SAFE_INTEGER:  # type: ignore[arg-type]
                return None
            return f"must be a whole number within ±{MAX_SAFE_INTEGER}"
        if self.kind == "number":
            if (kind is int and abs(value) <= MAX_SAFE_INTEGER) or (  # type: ignore[arg-type]
                kind is float and math.isfinite(value)  # type: ignore[arg-type]
            ):
                return None
            return "must be a finite number"
        if any(type(c) is kind and c == value for c in self.choices):
            return None
        return f"must be one of {list(self.choices)}"

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.kind == "choice":
            schema = {"enum": [*self.choices, *([None] if self.nullable else [])]}
        else:
            kind = self.kind
            schema = {"type": [kind, "null"] if self.nullable else kind}
            if kind == "integer":
                schema.update(minimum=-MAX_SAFE_INTEGER, maximum=MAX_SAFE_INTEGER)
        if self.description:
            schema["description"] = self.description
        return schema

    @classmethod
    def from_json_schema(
        cls, where: str, name: str, schema: object, required: bool
    ) -> PropertySpec:
        """The inverse of `json_schema` (ValueError for a schema it does not write)."""
        if not isinstance(schema, dict) or not PROPERTY_NAME.fits(name):
            raise ValueError(f"{where}: not a property schema")
        description = schema.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"{where}: description must be text")
        rest = {key: value for key, value in schema.items() if key != "description"}
        if set(rest) == {"enum"} and isinstance(rest["enum"], list) and rest["enum"]:
            choices = [c for c in rest["enum"] if c is not None]
            if not all(type(c) in (str, int, bool) for c in choices) or not choices:
                raise ValueError(f"{where}: enum values must be text, whole numbers or booleans")
            return cls(name, "choice", choices=tuple(choices),
                       nullable=len(choices) < len(rest["enum"]), required=required,
                       description=description)  # fmt: skip
        kinds = rest.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        nullable = "null" in kinds
        kinds = [kind for kind in kinds if kind != "null"]
        if len(kinds) != 1 or kinds[0] not in ("boolean", "integer", "number"):
            raise ValueError(f"{where}: type must be boolean, integer or number (or null too)")
        bounds = {"minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER}
        expected = {"type", *bounds} if kinds[0] == "integer" else {"type"}
        if set(rest) != expected or any(rest[key] != bounds[key] for key in expected - {"type"}):
            raise ValueError(f"{where}: only what `click-telemetry schema` writes is understood")
        return cls(name, kinds[0], nullable=nullable, required=required,
                   description=description)  # fmt: skip

    def words(self) -> str:
        """The kind in words, for the Markdown catalog."""
        text = KIND_WORDS[self.kind]
        if self.kind == "choice":
            text += " " + ", ".join(f"`{c}`" for c in self.choices)
        return text + (", or null" if self.nullable else "")


class EventSpec(Record):
    """A declared custom event (or, named ``identify``, the declared traits)."""

    __slots__ = ("description", "name", "properties")

    def __init__(self, name: str, description: str, properties: tuple[PropertySpec, ...]) -> None:
        self.name: Final = name
        self.description: Final = description
        self.properties: Final = properties

    def check(self, properties: object) -> dict[str, Scalar]:
        """A copy of ``properties`` if they are what this event declares.

        Raises TypeError when they are not a dict and ValueError naming the property at
        fault otherwise; the caller drops the event (or, in strict mode, lets it raise)."""
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise TypeError(
                f"{self.name}: properties must be a dict, not {type(properties).__name__}"
            )
        declared = {spec.name: spec for spec in self.properties}
        for key in properties:
            if key not in declared:
                raise ValueError(f"{self.name}: {key!r} is not a declared property")
        checked: dict[str, Scalar] = {}
        for name, spec in declared.items():
            if name not in properties:
                if spec.required:
                    raise ValueError(f"{self.name}: property {name!r} is missing")
                continue
            problem = spec.problem(properties[name])
            if problem:
                raise ValueError(f"{self.name}: property {name!r} {problem}")
            checked[name] = properties[name]
        return checked

    def properties_schema(self) -> dict[str, Any]:
        """The JSON Schema of this event's ``properties`` object."""
        return {
            "type": "object",
            "properties": {spec.name: spec.json_schema() for spec in self.properties},
            "required": [spec.name for spec in self.properties if spec.required],
            "additionalProperties": False,
        }

    @classmethod
    def from_properties_schema(cls, name: str, description: str, schema: object) -> EventSpec:
        """The spec that `properties_schema` wrote ``schema`` for: the collector reads a
        tool's catalog back this way, and checks events with the same `check`. Raises
        ValueError for anything `properties_schema` does not write."""
        if (
            not isinstance(schema, dict)
            or set(schema) != {"type", "properties", "required", "additionalProperties"}
            or schema["type"] != "object"
            or schema["additionalProperties"] is not False
        ):
            raise ValueError(f"{name}: properties must be a closed object schema")  # fmt: skip
        props, required = schema["properties"], schema["required"]
        if not isinstance(props, dict) or not isinstance(required, list):
            raise ValueError(f"{name}: properties and required must be an object and a list")
        if not set(required) <= set(props):
            raise ValueError(f"{name}: required names a property it does not declare")
        specs = tuple(
            PropertySpec.from_json_schema(f"{name}.{key}", key, value, key in required)
            for key, value in props.items()
        )
        return cls(name, description, specs)


def declare(name: str, properties: type[Any], description: str | None = None) -> EventSpec:
    """The `EventSpec` of event ``name`` whose properties ``properties`` (a ``TypedDict``)
    types. Raises `ConfigurationError` for a declaration that could record something it
    must not, or that the schema cannot hold.

    `Telemetry.event` has checked the name and that ``properties`` is a ``TypedDict`` (at
    once, cheaply, on every run); this reads the rest, when the event is first used."""
    text = description if description is not None else (properties.__doc__ or "")
    text = " ".join(text.split())
    if not text:
        raise ConfigurationError(
            f"{name}: describe the event (a docstring on {properties.__name__}, or"
            " description=): it is what your users read about it"
        )
    try:
        hints = typing.get_type_hints(properties, include_extras=True)
    except Exception as exc:  # a name the annotations use cannot be resolved
        raise ConfigurationError(f"{name}: cannot read {properties.__name__}: {exc}") from None
    if len(hints) > MAX_PROPERTIES:
        raise ConfigurationError(f"{name}: at most {MAX_PROPERTIES} properties")
    required = properties.__required_keys__
    specs = tuple(_property(name, key, hint, key in required) for key, hint in hints.items())
    if name == IDENTIFY_EVENT and not specs:
        raise ConfigurationError("identify: declare at least one trait")
    return EventSpec(name, text, specs)


def _property(event: str, key: str, hint: Any, required: bool) -> PropertySpec:
    where = f"{event}: property {key!r}"
    if not PROPERTY_NAME.fits(key):
        raise ConfigurationError(f"{where}: a name must be {PROPERTY_NAME.what}")
    description = ""
    if typing.get_origin(hint) in (typing.NotRequired, typing.Required):
        # Said here, not only in __required_keys__: before Python 3.14, a TypedDict whose
        # module has `from __future__ import annotations` counts every key as required.
        required = typing.get_origin(hint) is typing.Required
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        description = " ".join(str(extra) for extra in extras if isinstance(extra, str))
    nullable = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        nullable = len(members) < len(typing.get_args(hint))
        if len(members) != 1:
            raise ConfigurationError(f"{where}: one type (or that type | None), not {hint}")
        hint = members[0]
    if hint is bool:
        return PropertySpec(key, "boolean", nullable=nullable, required=required,
                            description=description)  # fmt: skip
    if hint is int:
        return PropertySpec(key, "integer", nullable=nullable, required=required,
                            description=description)  # fmt: skip
    if hint is float:
        return PropertySpec(key, "number", nullable=nullable, required=required,
                            description=description)  # fmt: skip
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if type(choice) not in (str, int, bool):
                raise ConfigurationError(f"{where}: a Literal of str, int or bool values")
            if choice == "" or not property_value(choice):  # the schema's rule for a value
                raise ConfigurationError(f"{where}: {choice!r} is not {PROPERTY_VALUE_WHAT}")
        return PropertySpec(key, "choice", choices=choices, nullable=nullable,
                            required=required, description=description)  # fmt: skip
    if hint is str:
        raise ConfigurationError(
            f"{where} is free text, which could record whatever a user typed: list its"
            ' values with Literal["a", "b"] (written in your code, never from the user\'s'
            " data)"
        )
    raise ConfigurationError(f"{where}: bool, int, float or a Literal, not {hint}")
