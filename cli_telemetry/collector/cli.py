"""``click-telemetry`` (also ``python -m cli_telemetry``): the collector's command line
(``collector serve``), the report, and ``schema``, which prints what a tool records.

The command is installed with the library itself, whose dependencies are a tool's (click,
platformdirs, filelock, urllib3); the collector and the report need the ``collector`` extra,
and PostgreSQL the ``postgres`` one. Without them, a command says in one line which to
install rather than ending in an ImportError's traceback.
"""

from __future__ import annotations

from typing import Any, Final

import click

from .. import __version__
from .window import DEFAULT_SINCE

DISTRIBUTION: Final = "click-telemetry"
"""The name on PyPI (``cli-telemetry`` there is an unrelated project); the import package
keeps the name ``cli_telemetry``."""

EXTRAS: Final = {
    "anyio": "collector",  # starlette's
    "starlette": "collector",
    "uvicorn": "collector",
    "sqlalchemy": "collector",
    "psycopg": "postgres",
}
"""The top-level modules that the collector's code imports, and the extra that brings each,
for the hint when one is missing."""


class _Main(click.Group):
    """The command group, which turns a missing extra into a one-line error naming it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as exc:
            extra = EXTRAS.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            raise click.ClickException(
                f"this needs {exc.name}, which comes with the {extra} extra:"
                f" pip install '{DISTRIBUTION}[{extra}]'"
            ) from None


@click.group(cls=_Main)
@click.version_option(__version__, message="%(prog)s %(version)s")
def main() -> None:
    """click-telemetry: the collector and its tools."""


@main.group()
def collector() -> None:
    """Run the collector: your own endpoint for your tools' events."""


@collector.command()
@click.option("--db", "url", help="SQLAlchemy URL; default: a SQLite file in your data dir.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8787, show_default=True)
@click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A file of write tokens, TOOL=SECRET one a line: that tool's events need"
    " 'Authorization: Bearer SECRET'. CLI_TELEMETRY_COLLECTOR_TOKENS takes a"
    " space-separated list.",
)
@click.option(
    "--read-token-file",
    type=click.Path(exists=True, dir_okay=False),
    help="A file holding the read token, which / and /api/report need once the collector"
    " has any token (or set CLI_TELEMETRY_COLLECTOR_READ_TOKEN).",
)
@click.option(
    "--require-token",
    is_flag=True,
    help="Refuse every request without a write token, before reading its body (tools"
    " without a token can then send nothing).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host name the collector answers to, beside the loopback names and --host"
    " (repeatable); others get 421.",
)
@click.option(
    "--limit-concurrency",
    type=click.IntRange(min=1),
    default=64,
    show_default=True,
    help="Connections or requests at once; more get 503.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds for a request's head, and again for its body.",
)
@click.option(
    "--token",
    "argv_tokens",
    multiple=True,
    metavar="TOOL=SECRET",
    help="Deprecated: the secret shows in the process list; use --token-file or"
    " CLI_TELEMETRY_COLLECTOR_TOKENS.",
)
@click.option(
    "--schema",
    "schemas",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A tool's JSON Schema (`click-telemetry schema MODULE:ATTR --format json`): its"
    " custom events must be declared there and match it (repeatable, one per tool).",
)
@click.option(
    "--retain",
    default="400d",
    show_default=True,
    metavar="AGE",
    help="Delete events older than AGE (Nd or Nh) when starting and then every hour, or"
    " 'never'. 400 days, about 13 months, is enough to compare a month with the same month"
    " a year before.",
)
def serve(
    url: str | None,
    host: str,
    port: int,
    token_file: str | None,
    read_token_file: str | None,
    require_token: bool,
    allowed_hosts: tuple[str, ...],
    limit_concurrency: int,
    request_timeout: float,
    argv_tokens: tuple[str, ...],
    schemas: tuple[str, ...],
    retain: str,
) -> None:
    """Accept events on POST /v1/events and store them.

    What is stored is forwarded to every provider whose variables are set: POSTHOG_API_KEY,
    SEGMENT_WRITE_KEY, MIXPANEL_TOKEN, AMPLITUDE_API_KEY, RUDDERSTACK_WRITE_KEY with
    RUDDERSTACK_DATA_PLANE_URL, TELEMETRY_WEBHOOK_URL, OTEL_EXPORTER_OTLP_ENDPOINT, and
    TELEMETRY_PROVIDERS (custom providers' import paths); see the docs' Forwarding page
    (docs/operators/forwarding.md). A deletion request (sent by a tool's `telemetry
    disable`) deletes what the collector holds of that install, and is passed on to each of
    those providers that has an eraser.

    Tokens come from the environment or files, never the command line (where `ps` shows
    them): write tokens from CLI_TELEMETRY_COLLECTOR_TOKENS and --token-file, the read
    token from CLI_TELEMETRY_COLLECTOR_READ_TOKEN or --read-token-file.
    """
    import os

    from ..errors import ConfigurationError
    from ..providers import erasers_from_environ, from_environ
    from . import retention
    from .access import Access
    from .app import create_app
    from .erasure import erasers_of
    from .server import run
    from .storage import connect, default_url
    from .validation import Catalog, SchemaError

    if argv_tokens:
        click.echo(
            "warning: --token is deprecated: the secret shows in the process list (ps);"
            " use CLI_TELEMETRY_COLLECTOR_TOKENS or --token-file",
            err=True,
        )
    secrets: dict[str, str] = {}
    sources = [
        (TOKENS_VARIABLE, "entry", os.environ.get(TOKENS_VARIABLE, "").split()),
        ("--token", "entry", list(argv_tokens)),
    ]
    if token_file is not None:
        sources.append((token_file, "line", read_lines(token_file, "--token-file")))
    for source, unit, entries in sources:
        for number, entry in enumerate(entries, 1):
            if not entry.strip() or entry.lstrip().startswith("#"):
                continue
            tool, secret = parse_token(entry, f"{source}: {unit} {number}")
            if tool in secrets and secrets[tool] != secret:
                raise click.UsageError(f"two different write tokens for {tool}")
            secrets[tool] = secret
    read_token = os.environ.get(READ_TOKEN_VARIABLE, "").strip() or None
    if read_token_file is not None:
        lines = [line.strip() for line in read_lines(read_token_file, "--read-token-file")]
        read_token = next((line for line in lines if line), None)
        if read_token is None:
            raise click.BadParameter(f"{read_token_file} is empty", param_hint="--read-token-file")
    if require_token and not secrets:
        raise click.UsageError(
            "--require-token needs a write token (CLI_TELEMETRY_COLLECTOR_TOKENS or --token-file)"
        )
    access = Access.build(
        secrets, read_token, require_token=require_token, hosts=(host, *allowed_hosts)
    )
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
    try:
        keep = retention.parse(retain)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--retain") from None
    forward_backoff = seconds_variable("CLI_TELEMETRY_FORWARD_BACKOFF", "30")
    prune_every = seconds_variable("CLI_TELEMETRY_PRUNE_EVERY", str(retention.EVERY))
    engine = connect(url or default_url())
    click.echo(f"collector: storing in {engine.url.render_as_string(hide_password=True)}", err=True)
    if providers:
        names = ", ".join(provider.name for provider in providers)
        click.echo(f"collector: forwarding to {names}", err=True)
    erasers = erasers_of(providers)  # a custom provider may erase too
    built, notes = erasers_from_environ(os.environ)
    erasers += [eraser for eraser in built if eraser.name not in {e.name for e in erasers}]
    configured = {provider.name for provider in providers}
    why_no_eraser: dict[str, str] = {}
    for note in notes:
        name, _, why = note.partition(": ")
        if name in configured:
            why_no_eraser[name] = why
        else:  # a secret set for a provider that is not configured
            click.echo(f"collector: {note}", err=True)
    if erasers:
        names = ", ".join(eraser.name for eraser in erasers)
        click.echo(f"collector: passing deletion requests on to {names}", err=True)
    kept = f"events older than {retain}" if keep is not None else "no events (--retain never)"
    click.echo(f"collector: pruning {kept}", err=True)
    for tool in catalogs:
        click.echo(f"collector: checking {tool}'s custom events against its schema", err=True)
    if secrets:
        closed = "; no other tool's" if require_token else ""
        click.echo(f"collector: write tokens for {', '.join(sorted(secrets))}{closed}", err=True)
    if access.guarded:
        reading = "the read token" if read_token else "a read token, and none is set"
        click.echo(f"collector: / and /api/report need {reading}", err=True)
    app = create_app(
        engine,
        providers=providers,
        erasers=erasers,
        why_no_eraser=why_no_eraser,
        forward_backoff=forward_backoff,
        catalogs=catalogs,
        access=access,
        request_timeout=request_timeout,
        retain=keep,
        prune_every=prune_every,
    )
    run(app, host, port, limit_concurrency=limit_concurrency, request_timeout=request_timeout)


TOKENS_VARIABLE = "CLI_TELEMETRY_COLLECTOR_TOKENS"
READ_TOKEN_VARIABLE = "CLI_TELEMETRY_COLLECTOR_READ_TOKEN"  # noqa: S105 - a name


def seconds_variable(name: str, default: str) -> float:
    """A positive number of seconds from the environment variable ``name``."""
    import math
    import os

    text = os.environ.get(name, default)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise click.UsageError(f"{name}={text!r} is not seconds")
    return seconds


def read_lines(path: str, option: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=option) from None


def parse_token(entry: str, where: str) -> tuple[str, str]:
    """``TOOL=SECRET`` as (tool, secret). An error names where the entry is, never what it
    holds: a mistyped entry may be all secret."""
    from ..events import FIELD_RULES

    tool, sep, secret = (part.strip() for part in entry.partition("="))
    if not sep or not secret:
        raise click.UsageError(f"{where} is not TOOL=SECRET")
    if FIELD_RULES["tool"].problem(tool) is not None:
        raise click.UsageError(f"{where}: {tool[:40]!r} is not a tool name")
    return tool, secret


@collector.command()
@click.option("--db", "url", help="SQLAlchemy URL; default: a SQLite file in your data dir.")
@click.option("--older-than", "age", default="90d", show_default=True, help="e.g. 90d, 12h.")
def prune(url: str | None, age: str) -> None:
    """Delete events older than an age, now (`collector serve --retain` does it every
    hour). It deletes in chunks, so a collector on the same database goes on storing
    meanwhile; on PostgreSQL it waits for a prune that another process is running."""
    from . import retention, storage
    from .window import iso_ago, parse_age

    try:
        seconds = parse_age(age)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    engine = storage.connect(url or storage.default_url())
    deleted = retention.prune(engine, iso_ago(seconds))
    click.echo(f"deleted {deleted} event(s) older than {age}")


@main.command()
@click.option("--db", "url", help="SQLAlchemy URL; default: a SQLite file in your data dir.")
@click.option("--since", default=DEFAULT_SINCE, show_default=True, help="e.g. 7d, 24h.")
@click.option("--tool", help="Only this tool.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def report(url: str | None, since: str, tool: str | None, as_json: bool) -> None:
    """How your tools are used: commands, flags, errors, versions, platforms, custom events."""
    import json

    from .report import build, render
    from .storage import connect, default_url
    from .window import iso_ago, parse_age

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
@click.option(
    "--privacy",
    is_flag=True,
    help="The whole privacy page, for your users: a plain-language summary (from your"
    " Telemetry's privacy=Privacy(...) and its settings), then the details (Markdown).",
)
def schema(target: str, fmt: str, privacy: bool) -> None:
    """Print what a tool records: the fields of every event, the option values it records,
    and its custom events. MODULE:ATTR names its Telemetry object, e.g. cli_app.cli:telemetry
    (the module is imported, so run this where your tool is installed).

    With --privacy, print the privacy page to ship with the tool; each detail it lacks is
    a <placeholder> there, and a warning here."""
    import json
    import sys

    from .. import describe

    if privacy and fmt == "json":
        raise click.UsageError("--privacy prints Markdown: it takes no --format json")
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
        if privacy:
            from ..privacy import page

            text, warnings = page(telemetry, target)
            for warning in warnings:
                click.echo(warning, err=True)
        elif fmt == "json":
            text = json.dumps(describe.json_schema(telemetry), indent=2, ensure_ascii=False)
            text += "\n"
        else:
            text = describe.markdown(telemetry)
    except ConfigurationError as exc:  # a declaration that could record what it must not
        raise click.ClickException(f"{target}: {exc}") from None
    click.echo(text, nl=False)
