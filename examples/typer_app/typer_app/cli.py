"""The example tool's Typer twin: the same commands and options as examples/cli_app, the same
telemetry lines (marked); everything else is ordinary Typer.

It runs on both Typer lines: before 0.26, built on click, and from 0.26 on, built on the
copy of click Typer bundles, when this tool's process never imports click at all.
"""

from __future__ import annotations

import enum
import os
from typing import Annotated, TypedDict

import typer

from cli_telemetry import Telemetry
from typer_app import __version__

# --- telemetry: one object, one call, one sub-app ----------------------------------------
telemetry = Telemetry(
    "typer-app",  # config and state dirs, and the TYPER_APP_TELEMETRY_* variables
    version=__version__,
    # The example's own setting; TYPER_APP_TELEMETRY_ENDPOINT (the library's) overrides it.
    # Empty keeps events local: nothing is uploaded.
    endpoint=os.environ.get("TYPER_APP_ENDPOINT", "http://127.0.0.1:8787/v1/events"),
    consent="notice",
    privacy_url="https://typer-app.example/privacy",
    # Option values are never recorded, but for these: each is an Enum written here.
    record_values=["--env", "--format"],
)


class DeployFinished(TypedDict):
    """A deployment of widgets finished, or was only planned (with --dry-run, typer-app only
    shows what it would do)."""

    replicas: Annotated[
        int, "How many copies of the widget it started (the number given with --replicas)"
    ]
    dry_run: Annotated[bool, "Whether it was only planned"]


# A custom event: declared in code, typed (mypy checks each .track call), listed for users.
deploy_finished = telemetry.event("deploy.finished", DeployFinished)

# Instrumented as it is made: the commands registered below are recorded too.
app = telemetry.instrument(typer.Typer(no_args_is_help=True))  # ------------------ telemetry
deploy = typer.Typer(no_args_is_help=True, help="Deploy and inspect deployments.")
app.add_typer(deploy, name="deploy")


class Env(enum.StrEnum):
    dev = "dev"
    staging = "staging"
    prod = "prod"


class Format(enum.StrEnum):
    text = "text"
    json = "json"


def show_version(value: bool) -> None:
    if value:
        typer.echo(f"typer-app, version {__version__}")
        raise typer.Exit()


@app.callback()
def cli(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Say more.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Deploy widgets to places."""
    ctx.obj = {"verbose": verbose}


@app.command()
def hello(
    name: Annotated[str, typer.Option(help="Who to greet (never recorded: free text).")] = "world",
    shout: Annotated[bool, typer.Option("--shout/--no-shout", help="Greet loudly.")] = False,
) -> None:
    """Print a greeting."""
    greeting = f"Hello, {name}!"
    typer.echo(greeting.upper() if shout else greeting)


@deploy.command("start")
def deploy_start(
    target: Annotated[str, typer.Argument()],
    env: Annotated[
        Env, typer.Option(envvar="TYPER_APP_ENV", help="Where to deploy (or TYPER_APP_ENV).")
    ],
    replicas: Annotated[int, typer.Option(help="How many copies.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would happen.")] = False,
    token: Annotated[
        str | None, typer.Option(envvar="TYPER_APP_TOKEN", help="API token (never recorded).")
    ] = None,
) -> None:
    """Deploy TARGET."""
    verb = "Would deploy" if dry_run else "Deployed"
    typer.echo(f"{verb} {target} to {env.value} with {replicas} replica(s).")
    # --- telemetry: the custom event declared above ------------------------------------
    deploy_finished.track({"replicas": replicas, "dry_run": dry_run})


@deploy.command("status")
def deploy_status(
    fmt: Annotated[Format, typer.Option("--format")] = Format.text,
) -> None:
    """Show the deployments."""
    typer.echo('{"deployments": []}' if fmt is Format.json else "No deployments.")


@app.command()
def check(path: Annotated[str, typer.Argument()]) -> None:
    """Check a widget file; fails the way a tool reports a user's mistake.

    Typer has no public ClickException (it keeps click's, from 0.26 on, in a private
    module): the Typer way is a message and an exit status."""
    typer.echo(f"Error: {path}: the widget is broken", err=True)
    raise typer.Exit(1)


@app.command()
def crash() -> None:
    """Fail with a bug: an uncaught exception and a traceback."""
    raise RuntimeError("unexpected state in /home/someone/secret/project")


@app.command()
def reset() -> None:
    """Ask before resetting; answering no aborts."""
    typer.confirm("Really reset everything?", abort=True)
    typer.echo("Reset.")


@app.command()
def watch(
    interval: Annotated[float, typer.Option(help="Seconds between checks.")] = 0.2,
) -> None:
    """Watch deployments until interrupted (Ctrl-C)."""
    import time

    typer.echo("Watching deployments; press Ctrl-C to stop.")
    while True:
        time.sleep(interval)


app.add_typer(telemetry.typer_app(), name="telemetry")  # ------------------------ telemetry
