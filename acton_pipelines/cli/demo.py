"""``acton demo``, ``acton summary`` and ``acton ui``."""

from __future__ import annotations

import os
import subprocess
import sys

import click

from acton_pipelines import settings
from acton_pipelines.crm.sandbox_connection import sandbox_paths
from acton_pipelines.local_run import local_dagster_home
from acton_pipelines.sandbox import seed_sandbox
from acton_pipelines.summary import render, summarize
from acton_pipelines.warehouse.engine import warehouse_engine


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
@click.option("--leads", default=2000, show_default=True, help="Sandbox Leads to seed.")
@click.option("--contacts", default=1500, show_default=True, help="Sandbox Contacts to seed.")
@click.option("--seed", "seed_value", default=42, show_default=True, help="Random seed.")
def demo(leads: int, contacts: int, seed_value: int) -> None:
    """Seed the sandbox CRM, run a full sync and print the summary."""
    from acton_pipelines.cli.sync import run_full_sync

    db_path, _ = sandbox_paths()
    click.echo(f"Seeding the sandbox CRM ({leads:,} leads, {contacts:,} contacts) at {db_path}")
    seed_sandbox(db_path, leads=leads, contacts=contacts, seed=seed_value)
    run_full_sync()


@click.command()
def summary() -> None:
    """Print what the warehouse holds."""
    print_summary()


@click.command()
@click.option("--port", default=3000, show_default=True)
def ui(port: int) -> None:
    """Start the Dagster UI (and daemon) on this workspace with the same ACTON_HOME."""
    home = local_dagster_home()
    click.echo(f"Dagster UI on http://127.0.0.1:{port} (DAGSTER_HOME={home})")
    workspace = settings.REPO_ROOT / "workspace.yaml"
    command = [
        os.path.join(os.path.dirname(sys.executable), "dagster"),
        "dev",
        "-w",
        str(workspace),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    raise SystemExit(subprocess.call(command, env=os.environ.copy()))
