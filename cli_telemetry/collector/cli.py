"""``cli-telemetry``: the collector's command line (``collector serve``), the report, and
``schema``, which prints what a tool records."""

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
@click.option(
    "--schema",
    "schemas",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A tool's JSON Schema (`cli-telemetry schema MODULE:ATTR --format json`): its"
    " custom events must be declared there and match it (repeatable, one per tool).",
)
def serve(
    url: str | None, host: str, port: int, tokens: tuple[str, ...], schemas: tuple[str, ...]
) -> None:
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
    from .validation import Catalog, SchemaError

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
    catalogs: dict[str, Catalog] = {}
    for path in schemas:
        try:
            catalog = Catalog.load(path)
        except SchemaError as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--schema") from None
        if catalog.tool in catalogs:
            raise click.BadParameter(f"two schemas for {catalog.tool}", param_hint="--schema")
        catalogs[catalog.tool] = catalog
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
    for tool in catalogs:
        click.echo(f"collector: checking {tool}'s custom events against its schema", err=True)
    app = create_app(engine, secrets, providers, forward_backoff=forward_backoff, catalogs=catalogs)
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


@main.command()
@click.argument("target", metavar="MODULE:ATTR")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="Markdown for your privacy page, or JSON Schema for `collector serve --schema`.",
)
def schema(target: str, fmt: str) -> None:
    """Print what a tool records: the fields of every event, the option values it records,
    and its custom events. MODULE:ATTR names its Telemetry object, e.g. cli_app.cli:telemetry
    (the module is imported, so run this where your tool is installed)."""
    import json
    import sys

    from .. import describe

    sys.path.insert(0, "")  # the current directory, as `python -m` would
    try:
        telemetry = describe.load(target)
    except (ImportError, AttributeError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="MODULE:ATTR") from None
    _, unknown = describe.recorded_options(telemetry)
    for name in unknown:
        click.echo(
            f"warning: record_values names {name}, which no instrumented command has", err=True
        )
    from ..errors import ConfigurationError

    try:
        if fmt == "json":
            text = json.dumps(describe.json_schema(telemetry), indent=2, ensure_ascii=False)
            text += "\n"
        else:
            text = describe.markdown(telemetry)
    except ConfigurationError as exc:  # a declaration that could record what it must not
        raise click.ClickException(f"{target}: {exc}") from None
    click.echo(text, nl=False)
