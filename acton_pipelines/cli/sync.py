"""``acton sync full`` and ``acton sync incremental``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import click

from acton_pipelines.cli.job_runs import run_or_exit
from acton_pipelines.cli.summary import print_summary
from acton_pipelines.runs.partitions import (
    ALLOW_MASS_DELETE_TAG,
    full_sync_tags,
    incremental_tags,
    sync_partitions,
)

verbose_option = click.option(
    "--verbose", is_flag=True, help="Print Dagster's whole event log, stack traces included."
)
mass_delete_option = click.option(
    "--allow-mass-delete",
    is_flag=True,
    help=(
        "Let this sync delete more than ACTON_MAX_DELETE_FRACTION of a table (default 20%): "
        "only when the CRM really lost those records."
    ),
)


@click.group()
def sync() -> None:
    """Run syncs in this process on the Dagster instance under ACTON_HOME."""


@sync.command()
@mass_delete_option
@verbose_option
def full(allow_mass_delete: bool, verbose: bool) -> None:
    """Full sync: every CRM record, deletions reconciled, then Act-On Contacts, scores and
    segments rebuilt."""
    run_full_sync(allow_mass_delete=allow_mass_delete, verbose=verbose)


@sync.command()
@click.option(
    "--partition",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Re-read this whole UTC day (default: the changes since each object's last sync).",
)
@mass_delete_option
@verbose_option
def incremental(day: datetime | None, allow_mass_delete: bool, verbose: bool) -> None:
    """Incremental sync: the CRM records changed or deleted since each object's last
    successful sync (or in one day with --partition), and the Act-On contacts, scores and
    segments they touch."""
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
    tags = incremental_tags(first, last, since_last_sync=day is None)
    label = "incremental sync" if day is None else f"incremental sync of {first}"
    run_sync("incremental_sync", tags, label, allow_mass_delete=allow_mass_delete, verbose=verbose)


def run_sync(
    job_name: str,
    tags: dict[str, str],
    label: str,
    *,
    allow_mass_delete: bool = False,
    verbose: bool = False,
) -> None:
    """Run a sync job, print its outcome and the warehouse summary; exit 1 on failure."""
    if allow_mass_delete:
        tags = {**tags, ALLOW_MASS_DELETE_TAG: "true"}
    click.echo(f"Running the {label} (CRM -> acton_contacts -> contact_scores -> segments)...")
    run_id = run_or_exit(job_name, label, tags, verbose=verbose)
    click.echo(f"\nThe {label} finished (run {run_id}).")
    print_summary()


def run_full_sync(*, allow_mass_delete: bool = False, verbose: bool = False) -> None:
    """The full sync, as ``acton sync full`` runs it."""
    run_sync(
        "full_sync",
        full_sync_tags(),
        "full sync",
        allow_mass_delete=allow_mass_delete,
        verbose=verbose,
    )
