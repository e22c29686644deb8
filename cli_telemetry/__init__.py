"""cli-telemetry: private, fast usage telemetry for click command-line tools.

    telemetry = Telemetry("acme", version="1.4.0", endpoint="https://...", consent="notice")

    @telemetry.instrument
    @click.group()
    def cli(): ...

    cli.add_command(telemetry.command())

Every name loads on first use (PEP 562): a host tool pays for each import on every run (even
a three-class module costs ~0.15 ms), and the background uploader, which imports this package
too, needs neither click nor `Telemetry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._aliases import ConsentMode, Source
    from ._settings import Privacy
    from ._values import SCHEMA_VERSION
    from .errors import ConfigurationError, SpoolBusyError, TelemetryError
    from .events import Event, Outcome
    from .spool import Batch, Spool, SpoolStats
    from .status import SinkStatus, Status
    from .telemetry import CustomEvent, Telemetry

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "Batch",
    "ConfigurationError",
    "ConsentMode",
    "CustomEvent",
    "Event",
    "Outcome",
    "Privacy",
    "SinkStatus",
    "Source",
    "Spool",
    "SpoolBusyError",
    "SpoolStats",
    "Status",
    "Telemetry",
    "TelemetryError",
]

_LAZY = {
    "Telemetry": "telemetry",
    "CustomEvent": "telemetry",
    "Status": "status",
    "SinkStatus": "status",
    "ConfigurationError": "errors",
    "SpoolBusyError": "errors",
    "TelemetryError": "errors",
    "ConsentMode": "_aliases",
    "Privacy": "_settings",
    "Source": "_aliases",
    "SCHEMA_VERSION": "events",
    "Event": "events",
    "Outcome": "events",
    "Batch": "spool",
    "Spool": "spool",
    "SpoolStats": "spool",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cli_telemetry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
