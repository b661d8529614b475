"""``acton sync full``."""

from __future__ import annotations

import click

from acton_pipelines.cli.demo import print_summary
from acton_pipelines.local_run import run_job


@click.group()
def sync() -> None:
    """Run syncs in this process on the Dagster instance under ACTON_HOME."""


@sync.command()
def full() -> None:
    """Full sync: every CRM record, then Act-On Contacts, scores and segments."""
    run_full_sync()


def run_full_sync() -> None:
    """Run the full sync job, print its outcome and the warehouse summary; exit 1 on failure."""
    click.echo("Running the full sync (CRM -> acton_contacts -> contact_scores -> segments)...")
    outcome = run_job("full_sync")
    if not outcome.success:
        click.echo(f"\nThe full sync failed (run {outcome.run_id}):", err=True)
        for failure in outcome.failures:
            click.echo(f"  {failure}", err=True)
        raise SystemExit(1)
    click.echo(f"\nFull sync finished (run {outcome.run_id}).")
    print_summary()
