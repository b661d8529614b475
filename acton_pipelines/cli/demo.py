"""``acton demo``: seed the sandbox CRM, run a full sync, print the summary."""

from __future__ import annotations

import click

from acton_pipelines.cli.sync import run_full_sync
from acton_pipelines.crm.sandbox_connection import sandbox_paths
from crm_sandbox import seed_sandbox


@click.command()
@click.option("--leads", default=2000, show_default=True, help="Sandbox Leads to seed.")
@click.option("--contacts", default=1500, show_default=True, help="Sandbox Contacts to seed.")
@click.option("--seed", "seed_value", default=42, show_default=True, help="Random seed.")
def demo(leads: int, contacts: int, seed_value: int) -> None:
    """Seed the sandbox CRM, run a full sync and print the summary."""
    db_path, _ = sandbox_paths()
    click.echo(f"Seeding the sandbox CRM ({leads:,} leads, {contacts:,} contacts) at {db_path}")
    seed_sandbox(db_path, leads=leads, contacts=contacts, seed=seed_value)
    run_full_sync()
