"""typer-app: the example tool (examples/cli_app) written with Typer, instrumented the same way."""

__version__ = "1.4.0"
