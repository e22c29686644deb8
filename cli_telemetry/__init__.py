"""cli-telemetry: private, fast usage telemetry for click command-line tools.

telemetry = Telemetry("acme", version="1.4.0", endpoint="https://...", consent="notice")

@telemetry.instrument
@click.group()
def cli(): ...

cli.add_command(telemetry.command())
"""

from __future__ import annotations

from ._settings import ConsentMode, Source
from .errors import ConfigurationError, TelemetryError
from .events import SCHEMA_VERSION, Event, Outcome
from .spool import Batch, Spool, SpoolStats
from .telemetry import Status, Telemetry

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "Batch",
    "ConfigurationError",
    "ConsentMode",
    "Event",
    "Outcome",
    "Source",
    "Spool",
    "SpoolStats",
    "Status",
    "Telemetry",
    "TelemetryError",
]
