"""``acton sync full`` and ``acton sync incremental``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import click

from acton_pipelines.cli.demo import print_summary
from acton_pipelines.cli.job_runs import run_or_exit
from acton_pipelines.partitions import full_sync_tags, incremental_tags, sync_partitions


@click.group()
def sync() -> None:
    """Run syncs in this process on the Dagster instance under ACTON_HOME."""


@sync.command()
def full() -> None:
    """Full sync: every CRM record, deletions reconciled, then Act-On Contacts, scores and
    segments rebuilt."""
    run_full_sync()


@sync.command()
@click.option(
    "--partition",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The UTC day to sync (default: yesterday and today).",
)
def incremental(day: datetime | None) -> None:
    """Incremental sync: the CRM records changed or deleted in one day's partition (default:
    yesterday and today), and the Act-On contacts, scores and segments they touch."""
    keys = set(sync_partitions.get_partition_keys())
    if day is None:
        today = datetime.now(UTC).date()
        first, last = (today - timedelta(days=1)).isoformat(), today.isoformat()
        first = first if first in keys else last
    else:
        first = last = date(day.year, day.month, day.day).isoformat()
    if first not in keys or last not in keys:
        raise click.BadParameter(
            f"{first} is not a sync partition (they run from "
            f"{sync_partitions.get_first_partition_key()} to today; set ACTON_SYNC_START_DATE "
            "to move the start)",
            param_hint="--partition",
        )
    run_sync("incremental_sync", incremental_tags(first, last), f"incremental sync {first}..{last}")


def run_sync(job_name: str, tags: dict[str, str], label: str) -> None:
    """Run a sync job, print its outcome and the warehouse summary; exit 1 on failure."""
    click.echo(f"Running the {label} (CRM -> acton_contacts -> contact_scores -> segments)...")
    run_id = run_or_exit(job_name, label, tags)
    click.echo(f"\nThe {label} finished (run {run_id}).")
    print_summary()


def run_full_sync() -> None:
    """The full sync, as ``acton sync full`` runs it."""
    run_sync("full_sync", full_sync_tags(), "full sync")
