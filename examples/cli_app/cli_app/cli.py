"""The example tool. The telemetry lines are marked; everything else is ordinary click."""

from __future__ import annotations

import os
from typing import Annotated, TypedDict

import click

from cli_app import __version__
from cli_telemetry import Privacy, Telemetry

# --- telemetry: one object, one decorator, one command -----------------------------------
telemetry = Telemetry(
    "cli-app",  # config and state dirs, and the CLI_APP_TELEMETRY_* variables
    version=__version__,
    # The example's own setting; CLI_APP_TELEMETRY_ENDPOINT (the library's) overrides it.
    # Empty keeps events local: nothing is uploaded.
    endpoint=os.environ.get("CLI_APP_ENDPOINT", "http://127.0.0.1:8787/v1/events"),
    consent="notice",
    privacy_url="https://cli-app.example/privacy",
    # Option values are never recorded, but for these: each is a click.Choice written here.
    record_values=["--env", "--format"],
    # What only the author knows, for the privacy page that
    # `click-telemetry schema --privacy cli_app.cli:telemetry` writes (PRIVACY.md here).
    privacy=Privacy(
        collected_by="The cli-app team at Example Widgets Ltd",
        contact="privacy@cli-app.example",
        purpose="to learn which commands people use and which ones fail, so that they know"
        " what to fix first",
        retention_days=400,
    ),
)


class DeployFinished(TypedDict):
    """A deployment of widgets finished, or was only planned (with --dry-run, cli-app only
    shows what it would do)."""

    replicas: Annotated[
        int, "How many copies of the widget it started (the number given with --replicas)"
    ]
    dry_run: Annotated[bool, "Whether it was only planned"]


# A custom event: declared in code, typed (mypy checks each .track call), listed for users.
deploy_finished = telemetry.event("deploy.finished", DeployFinished)


@telemetry.instrument  # ----------------------------------------------------- telemetry
@click.group()
@click.version_option(__version__)
@click.option("-v", "--verbose", is_flag=True, help="Say more.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Deploy widgets to places."""
    ctx.obj = {"verbose": verbose}


@cli.command()
@click.option("--name", default="world", help="Who to greet (never recorded: free text).")
@click.option("--shout/--no-shout", default=False, help="Greet loudly.")
def hello(name: str, shout: bool) -> None:
    """Print a greeting."""
    greeting = f"Hello, {name}!"
    click.echo(greeting.upper() if shout else greeting)


@cli.group()
def deploy() -> None:
    """Deploy and inspect deployments."""


@deploy.command("start")
@click.argument("target")
@click.option(
    "--env",
    type=click.Choice(["dev", "staging", "prod"]),
    envvar="CLI_APP_ENV",
    required=True,
    help="Where to deploy (or CLI_APP_ENV).",
)
@click.option("--replicas", type=int, default=1, show_default=True, help="How many copies.")
@click.option("--dry-run", is_flag=True, help="Only say what would happen.")
@click.option("--token", envvar="CLI_APP_TOKEN", help="API token (never recorded).")
def deploy_start(target: str, env: str, replicas: int, dry_run: bool, token: str | None) -> None:
    """Deploy TARGET."""
    verb = "Would deploy" if dry_run else "Deployed"
    click.echo(f"{verb} {target} to {env} with {replicas} replica(s).")
    # --- telemetry: the custom event declared above ------------------------------------
    deploy_finished.track({"replicas": replicas, "dry_run": dry_run})


@deploy.command("status")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def deploy_status(fmt: str) -> None:
    """Show the deployments."""
    click.echo('{"deployments": []}' if fmt == "json" else "No deployments.")


@cli.command()
@click.argument("path", type=click.Path())
def check(path: str) -> None:
    """Check a widget file; fails the way a tool reports a user's mistake."""
    raise click.ClickException(f"{path}: the widget is broken")


@cli.command()
def crash() -> None:
    """Fail with a bug: an uncaught exception and a traceback."""
    raise RuntimeError("unexpected state in /home/someone/secret/project")


@cli.command()
def reset() -> None:
    """Ask before resetting; answering no aborts."""
    click.confirm("Really reset everything?", abort=True)
    click.echo("Reset.")


@cli.command()
@click.option("--interval", type=float, default=0.2, help="Seconds between checks.")
def watch(interval: float) -> None:
    """Watch deployments until interrupted (Ctrl-C)."""
    import time

    click.echo("Watching deployments; press Ctrl-C to stop.")
    while True:
        time.sleep(interval)


cli.add_command(telemetry.command())  # ------------------------------------------ telemetry


def main() -> None:
    cli()
