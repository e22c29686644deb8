"""cli-app: a small deployment tool, instrumented with cli-telemetry as an example."""

__version__ = "1.4.0"
