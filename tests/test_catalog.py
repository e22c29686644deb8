"""`catalog`: declaring custom events with a TypedDict, checking `track` calls against the
declaration, and the declaration's JSON Schema (which the collector reads back)."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli_telemetry import ConfigurationError, Telemetry
from cli_telemetry._values import MAX_SAFE_INTEGER
from cli_telemetry.catalog import EventSpec, Kind, PropertySpec, declare
from cli_telemetry.events import MAX_PROPERTIES


class DeployFinished(TypedDict):
    """A deployment finished."""

    replicas: int
    ratio: float
    dry_run: bool
    env: Literal["dev", "prod"]
    level: Literal[1, 2, 3]
    note: NotRequired[Annotated[Literal["fast", "slow"] | None, "How it went"]]


def test_a_typed_dict_declares_each_property() -> None:
    spec = declare("deploy.finished", DeployFinished)
    assert (spec.name, spec.description) == ("deploy.finished", "A deployment finished.")
    assert spec.properties == (
        PropertySpec("replicas", "integer"),
        PropertySpec("ratio", "number"),
        PropertySpec("dry_run", "boolean"),
        PropertySpec("env", "choice", choices=("dev", "prod")),
        PropertySpec("level", "choice", choices=(1, 2, 3)),
        PropertySpec(
            "note",
            "choice",
            choices=("fast", "slow"),
            nullable=True,
            required=False,
            description="How it went",
        ),
    )


VALID = {"replicas": 3, "ratio": 0.5, "dry_run": False, "env": "dev", "level": 2}


@pytest.mark.parametrize(
    "properties",
    [
        VALID,
        {**VALID, "note": "fast"},
        {**VALID, "note": None},
        {**VALID, "ratio": 2, "replicas": -MAX_SAFE_INTEGER},
    ],
)
def test_declared_properties_pass_and_come_back_as_a_copy(properties: dict[str, Any]) -> None:
    spec = declare("deploy.finished", DeployFinished)
    checked = spec.check(properties)
    assert checked == properties and checked is not properties


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"replicas": None}, "'replicas' must not be null"),
        ({"replicas": True}, "'replicas' must be a whole number"),
        ({"replicas": MAX_SAFE_INTEGER + 1}, "'replicas' must be a whole number"),
        ({"replicas": 1.0}, "'replicas' must be a whole number"),
        ({"ratio": math.nan}, "'ratio' must be a finite number"),
        ({"ratio": "0.5"}, "'ratio' must be a finite number"),
        ({"dry_run": 0}, "'dry_run' must be true or false"),
        ({"env": "staging"}, "'env' must be one of ['dev', 'prod']"),
        ({"env": "/home/alice"}, "'env' must be one of"),
        ({"level": True}, "'level' must be one of [1, 2, 3]"),
        ({"level": "1"}, "'level' must be one of"),
        ({"extra": 1}, "'extra' is not a declared property"),
    ],
)
def test_anything_else_is_a_value_error_naming_the_property(
    changes: dict[str, Any], message: str
) -> None:
    spec = declare("deploy.finished", DeployFinished)
    with pytest.raises(ValueError, match=re.escape(message)):
        spec.check({**VALID, **changes})


def test_a_missing_required_property_and_a_non_dict() -> None:
    spec = declare("deploy.finished", DeployFinished)
    without = {key: value for key, value in VALID.items() if key != "env"}
    with pytest.raises(ValueError, match="property 'env' is missing"):
        spec.check(without)
    with pytest.raises(TypeError, match="must be a dict"):
        spec.check([("replicas", 3)])


class FreeText(TypedDict):
    """Could carry anything."""

    target: str


class Nested(TypedDict):
    """Not a scalar."""

    targets: list[str]


class TwoTypes(TypedDict):
    """Ambiguous."""

    value: int | str


class FloatChoice(TypedDict):
    """A float is no closed value."""

    ratio: Literal[0.5]  # type: ignore[valid-type]


class Undescribed(TypedDict):
    count: int


@pytest.mark.parametrize(
    ("name", "properties", "message"),
    [
        ("deploy.finished", FreeText, "free text"),
        ("deploy.finished", Nested, "bool, int, float or a Literal"),
        ("deploy.finished", TwoTypes, "one type"),
        ("deploy.finished", FloatChoice, "Literal of str, int or bool"),
        ("deploy.finished", Undescribed, "describe the event"),
        ("deploy.finished", TypedDict("Bad", {"has space": int}), "a name must be"),  # type: ignore[operator]
        (
            "deploy.finished",
            TypedDict("Many", {f"p{i}": int for i in range(MAX_PROPERTIES + 1)}),  # type: ignore[operator]
            f"at most {MAX_PROPERTIES}",
        ),
        ("identify", TypedDict("Empty", {}), "at least one trait"),  # type: ignore[operator]
        ("deploy.finished", TypedDict("Lone", {"x": Literal["\udc80"]}), "is not a JSON"),  # type: ignore[operator]
    ],
)
def test_a_declaration_that_could_record_what_it_must_not_is_refused(
    name: str, properties: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        declare(name, properties, None if message == "describe the event" else "Described.")


@pytest.mark.parametrize(
    ("name", "properties", "message"),
    [
        ("deploy.finished", dict, "TypedDict"),
        ("Deploy Finished", DeployFinished, "event name"),
        ("command", DeployFinished, "event name"),
        ("deletion_request", DeployFinished, "event name"),
        (3, DeployFinished, "event name"),
    ],
)
def test_a_bad_name_or_type_is_refused_where_it_is_declared(
    name: Any, properties: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Telemetry("acme", version="1").event(name, properties)


def test_a_bad_property_is_found_at_first_use_or_at_once_in_strict_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACME_TELEMETRY_STRICT", raising=False)
    lenient = Telemetry("acme", version="1")
    lenient.event("x.free", FreeText)  # checked later
    with pytest.raises(ConfigurationError, match="free text"):
        _ = lenient.catalog
    with pytest.raises(ConfigurationError, match="free text"):
        Telemetry("acme", version="1", strict=True).event("x.free", FreeText)
    monkeypatch.setenv("ACME_TELEMETRY_STRICT", "1")
    with pytest.raises(ConfigurationError, match="free text"):
        Telemetry("acme", version="1").event("x.free", FreeText)


def test_description_may_be_given_instead_of_a_docstring() -> None:
    assert declare("x.counted", Undescribed, "Counted.").description == "Counted."


# -- the JSON Schema of a declaration, and reading it back ----------------------------------

KINDS: st.SearchStrategy[Kind] = st.sampled_from(["boolean", "integer", "number", "choice"])
CHOICE_VALUES = st.one_of(
    st.text(min_size=1, max_size=20),
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.booleans(),
)


@st.composite
def specs(draw: st.DrawFn) -> EventSpec:
    names = draw(st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), unique=True,
                          max_size=8))  # fmt: skip
    properties = []
    for name in names:
        kind = draw(KINDS)
        choices = tuple(draw(st.lists(CHOICE_VALUES, min_size=1, max_size=4, unique_by=repr)))
        properties.append(
            PropertySpec(
                name,
                kind,
                choices=choices if kind == "choice" else (),
                nullable=draw(st.booleans()),
                required=draw(st.booleans()),
                description=draw(st.sampled_from(["", "What it is"])),
            )
        )
    return EventSpec("thing.done", "A thing was done.", tuple(properties))


@given(spec=specs())
def test_the_json_schema_reads_back_as_the_same_declaration(spec: EventSpec) -> None:
    schema = spec.properties_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert EventSpec.from_properties_schema(spec.name, spec.description, schema) == spec


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    CHOICE_VALUES,
)


@given(spec=specs(), data=st.data())
def test_check_and_the_json_schema_agree(spec: EventSpec, data: st.DataObject) -> None:
    """The collector reads the schema back into the same check; any JSON Schema validator
    reading it must judge as the library does (floats aside: JSON Schema calls 1.0 an
    integer, Python does not)."""
    names = [prop.name for prop in spec.properties] + ["other"]
    properties = data.draw(st.dictionaries(st.sampled_from(names), JSON_VALUES, max_size=9))
    properties = {k: v for k, v in properties.items() if not isinstance(v, float) or v % 1}
    try:
        spec.check(properties)
        ours = True
    except ValueError:
        ours = False
    theirs = jsonschema.Draft202012Validator(spec.properties_schema()).is_valid(properties)
    assert ours == theirs, properties


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {}, "required": [], "additionalProperties": True},
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": [],
         "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": [],
         "additionalProperties": False},
        {"type": "object", "properties": {"a": {"enum": [1.5]}}, "required": [],
         "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "boolean", "pattern": "x"}},
         "required": [], "additionalProperties": False},
        {"type": "object", "properties": {}, "required": ["a"], "additionalProperties": False},
    ],
)  # fmt: skip
def test_a_schema_the_library_does_not_write_is_refused(schema: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventSpec.from_properties_schema("thing.done", "", schema)


# -- Telemetry.event and track ----------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_a_user: None) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "DO_NOT_TRACK", "ACME_TELEMETRY_STRICT"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / ".config" / "acme" / "telemetry.conf"
    config.parent.mkdir(parents=True)
    config.write_text("enabled = true\nconsent_policy = 1\n")
    return tmp_path


def spooled(home: Path) -> list[str]:
    new = home / ".local" / "state" / "acme" / "telemetry" / "spool" / "new"
    return [p.read_text() for p in sorted(new.glob("*.json"))] if new.is_dir() else []


def test_an_undeclared_event_is_refused(home: Path) -> None:
    strict = Telemetry("acme", version="1", strict=True)
    with pytest.raises(ValueError, match=re.escape("'deploy.finished' is not declared")):
        strict.track("deploy.finished", {"replicas": 3})
    Telemetry("acme", version="1").track("deploy.finished", {"replicas": 3})  # dropped
    assert spooled(home) == []


def test_declared_events_are_recorded_through_their_handle_or_by_name(home: Path) -> None:
    telemetry = Telemetry("acme", version="1", strict=True)
    deployed = telemetry.event("deploy.finished", DeployFinished)
    assert telemetry.catalog == (declare("deploy.finished", DeployFinished),)
    deployed.track({"replicas": 3, "ratio": 1.5, "dry_run": True, "env": "prod", "level": 1})
    telemetry.track("deploy.finished", VALID)  # type: ignore[arg-type]
    assert len(spooled(home)) == 2
    with pytest.raises(ConfigurationError, match="declared twice"):
        telemetry.event("deploy.finished", DeployFinished)


def test_a_bad_call_is_dropped_with_a_debug_line(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry = Telemetry("acme", version="1")
    deployed = telemetry.event("deploy.finished", DeployFinished)
    deployed.track({**VALID, "env": "/home/alice"})  # type: ignore[typeddict-item]
    assert spooled(home) == []
    assert capsys.readouterr().err == ""
    import os

    os.environ["ACME_TELEMETRY_DEBUG"] = "1"
    try:
        deployed.track({**VALID, "env": "/home/alice"})  # type: ignore[typeddict-item]
    finally:
        del os.environ["ACME_TELEMETRY_DEBUG"]
    assert "dropped custom event: deploy.finished: property 'env'" in capsys.readouterr().err


MYPY_CHECKED = '''
from typing import Literal, TypedDict
from cli_telemetry import Telemetry

class Done(TypedDict):
    """Done."""
    count: int
    mode: Literal["a", "b"]

done = Telemetry("acme", version="1").event("thing.done", Done)
done.track({"count": 1, "mode": "a"})
done.track({"count": "1", "mode": "a"})
done.track({"count": 1, "mode": "c"})
done.track({"count": 1, "mode": "a", "path": "/home/alice"})
'''


def test_mypy_catches_a_misuse_of_a_declared_event(tmp_path: Path) -> None:
    import subprocess

    module = tmp_path / "tool.py"
    module.write_text(MYPY_CHECKED)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(module)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["12", "13", "14"], result.stdout
