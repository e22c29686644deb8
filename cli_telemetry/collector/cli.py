"""``cli-telemetry``: the collector's command line (``collector serve``)."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """cli-telemetry: the collector and its tools."""


@main.group()
def collector() -> None:
    """Run the collector: your own endpoint for your tools' events."""


@collector.command()
@click.option("--db", "url", help="SQLAlchemy URL; default: a SQLite file in your data dir.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8787, show_default=True)
@click.option(
    "--token",
    "tokens",
    multiple=True,
    envvar="CLI_TELEMETRY_COLLECTOR_TOKENS",
    help="TOOL=SECRET: require 'Authorization: Bearer SECRET' for that tool's events"
    " (repeatable; the variable takes a space-separated list).",
)
def serve(url: str | None, host: str, port: int, tokens: tuple[str, ...]) -> None:
    """Accept events on POST /v1/events and store them.

    What is stored is forwarded to every provider whose variables are set: POSTHOG_API_KEY,
    SEGMENT_WRITE_KEY, MIXPANEL_TOKEN, AMPLITUDE_API_KEY, RUDDERSTACK_WRITE_KEY with
    RUDDERSTACK_DATA_PLANE_URL, TELEMETRY_WEBHOOK_URL, OTEL_EXPORTER_OTLP_ENDPOINT, and
    TELEMETRY_PROVIDERS (custom providers' import paths); see the README.
    """
    import os

    import uvicorn

    from ..errors import ConfigurationError
    from ..providers import from_environ
    from .app import create_app
    from .storage import connect, default_url

    secrets: dict[str, str] = {}
    for item in tokens:
        tool, sep, secret = item.partition("=")
        if not sep or not tool or not secret:
            raise click.BadParameter(f"{item!r} is not TOOL=SECRET", param_hint="--token")
        secrets[tool] = secret
    try:
        providers = from_environ(os.environ)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
    backoff = os.environ.get("CLI_TELEMETRY_FORWARD_BACKOFF", "30")
    try:
        forward_backoff = float(backoff)
    except ValueError:
        raise click.UsageError(
            f"CLI_TELEMETRY_FORWARD_BACKOFF={backoff!r} is not seconds"
        ) from None
    engine = connect(url or default_url())
    click.echo(f"collector: storing in {engine.url.render_as_string(hide_password=True)}", err=True)
    if providers:
        names = ", ".join(provider.name for provider in providers)
        click.echo(f"collector: forwarding to {names}", err=True)
    app = create_app(engine, secrets, providers, forward_backoff=forward_backoff)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@collector.command()
@click.option("--db", "url", help="SQLAlchemy URL; default: a SQLite file in your data dir.")
@click.option("--older-than", "age", default="90d", show_default=True, help="e.g. 90d, 12h.")
def prune(url: str | None, age: str) -> None:
    """Delete events older than an age (retention)."""
    from . import storage
    from .report import iso_ago, parse_age

    try:
        seconds = parse_age(age)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    engine = storage.connect(url or storage.default_url())
    deleted = storage.prune(engine, iso_ago(seconds))
    click.echo(f"deleted {deleted} event(s) older than {age}")


@main.command()
@click.option("--db", "url", help="SQLAlchemy URL; default: a SQLite file in your data dir.")
@click.option("--since", default="7d", show_default=True, help="e.g. 7d, 24h.")
@click.option("--tool", help="Only this tool.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def report(url: str | None, since: str, tool: str | None, as_json: bool) -> None:
    """How your tools are used: commands, flags, errors, versions, platforms."""
    import json

    from .report import build, iso_ago, parse_age, render
    from .storage import connect, default_url

    try:
        seconds = parse_age(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    result = build(connect(url or default_url()), since=iso_ago(seconds), tool=tool)
    click.echo(json.dumps(result, indent=2) if as_json else render(result))
