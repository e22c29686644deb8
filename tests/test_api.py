"""The public API: every exported name exists, is documented, and imports lazily."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import cli_telemetry


@pytest.mark.parametrize("name", cli_telemetry.__all__)
def test_every_exported_name_exists(name: str) -> None:
    value = getattr(cli_telemetry, name)
    if inspect.isclass(value):
        assert value.__module__.startswith("cli_telemetry.")
        assert value.__doc__ and value.__doc__.strip(), f"{name} has no docstring"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cli_telemetry.nope  # noqa: B018


def test_lazy_names_load_their_module_only_when_asked() -> None:
    code = (
        "import sys, cli_telemetry\n"
        "assert 'cli_telemetry.spool' not in sys.modules\n"
        "cli_telemetry.Spool\n"
        "assert 'cli_telemetry.spool' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_typed_marker_is_shipped() -> None:
    from importlib.resources import files

    assert files("cli_telemetry").joinpath("py.typed").is_file()
