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
def serve(url: str | None, host: str, port: int) -> None:
    """Accept events on POST /v1/events and store them."""
    import uvicorn

    from .app import create_app
    from .storage import connect, default_url

    engine = connect(url or default_url())
    click.echo(f"collector: storing in {engine.url.render_as_string(hide_password=True)}", err=True)
    uvicorn.run(create_app(engine), host=host, port=port, log_level="warning")
