"""The exceptions cli-telemetry raises, all to the *author*, at configuration time.

At an end user's run time nothing is raised: failures are swallowed and shown only with the
tool's ``<PREFIX>_TELEMETRY_DEBUG=1``.
"""

from __future__ import annotations


class TelemetryError(Exception):
    """Base class of cli-telemetry's own exceptions."""


class ConfigurationError(TelemetryError, ValueError):
    """A `Telemetry` was configured with a value it cannot work with."""


class SpoolBusyError(TelemetryError):
    """The spool's lock stayed busy: the operation did not happen and may be retried."""
