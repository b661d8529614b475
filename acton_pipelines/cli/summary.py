"""``acton summary``: what the warehouse holds."""

from __future__ import annotations

import click

from acton_pipelines import settings
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.summary import render, summarize


def print_summary() -> None:
    """Rows per table, rejects by reason, segment sizes, and where to look next."""
    url = settings.warehouse_url()
    click.echo(render(summarize(warehouse_engine(url))))
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        click.echo(
            f"\nQuery it:  sqlite3 {path} "
            '"SELECT segment, member_count FROM segments ORDER BY member_count DESC"'
        )
    click.echo("Open the Dagster UI:  make ui   (then http://127.0.0.1:3000)")


@click.command()
def summary() -> None:
    """Print what the warehouse holds."""
    print_summary()
