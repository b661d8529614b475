"""Running a job from the command line: progress in the terminal, failures as exit 1."""

from __future__ import annotations

import click

from acton_pipelines.cli.local_run import run_job


def run_or_exit(
    job_name: str, label: str, tags: dict[str, str] | None = None, *, verbose: bool = False
) -> str:
    """Run ``job_name`` in this process (after any run in progress); on failure print one line
    per failed step and the run id, and exit with status 1. Returns the run id."""
    try:
        outcome = run_job(job_name, tags, verbose=verbose, say=lambda m: click.echo(m, err=True))
    except TimeoutError as error:
        raise click.ClickException(f"The {label} did not start: {error}") from None
    if not outcome.success:
        click.echo(f"\nThe {label} failed (run {outcome.run_id}):", err=True)
        for failure in outcome.failures or ["no failure was recorded; see the run in the UI"]:
            click.echo(f"  {failure}", err=True)
        if not verbose:
            click.echo(
                "The full log is in the Dagster UI (`acton ui`, then Runs); --verbose prints it "
                "here.",
                err=True,
            )
        raise SystemExit(1)
    return outcome.run_id
