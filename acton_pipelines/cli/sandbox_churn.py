"""``acton sandbox churn``: a batch of realistic CRM changes on the sandbox CRM."""

from __future__ import annotations

import click

from acton_pipelines.crm.sandbox_connection import sandbox_paths
from crm_sandbox import DEFAULT_RETENTION_DAYS, churn_sandbox


@click.command()
@click.option("--updates", default=50, show_default=True, help="Records to edit.")
@click.option("--creates", default=20, show_default=True, help="Records to create.")
@click.option(
    "--deletes",
    default=10,
    show_default=True,
    help="Records to delete (an Account takes its Contacts and Opportunities along).",
)
@click.option("--converts", default=5, show_default=True, help="Leads to convert.")
@click.option("--seed", "seed_value", default=1, show_default=True, help="Random seed.")
@click.option(
    "--retention-days",
    default=DEFAULT_RETENTION_DAYS,
    show_default=True,
    help="Purge deletions older than this many days.",
)
def churn(
    updates: int, creates: int, deletes: int, converts: int, seed_value: int, retention_days: int
) -> None:
    """Change the sandbox CRM like a day of real CRM activity (now, in UTC)."""
    db_path, _ = sandbox_paths()
    if not db_path.exists():
        raise click.ClickException(
            f"no sandbox CRM at {db_path}: create it first with `acton sandbox seed`"
        )
    for name, value in (
        ("--updates", updates),
        ("--creates", creates),
        ("--deletes", deletes),
        ("--converts", converts),
        ("--retention-days", retention_days),
    ):
        if value < 0:
            raise click.BadParameter("must not be negative", param_hint=name)
    summary = churn_sandbox(
        db_path,
        updates=updates,
        creates=creates,
        deletes=deletes,
        converts=converts,
        seed=seed_value,
        retention_days=retention_days,
    )
    click.echo(str(summary))
