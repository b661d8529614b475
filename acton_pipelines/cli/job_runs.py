"""Running a job from the command line: progress in the terminal, failures as exit 1."""

from __future__ import annotations

import click

from acton_pipelines.local_run import run_job


def run_or_exit(job_name: str, label: str, tags: dict[str, str] | None = None) -> str:
    """Run ``job_name`` in this process; on failure print each failed step's message and exit
    with status 1. Returns the run id."""
    outcome = run_job(job_name, tags)
    if not outcome.success:
        click.echo(f"\nThe {label} failed (run {outcome.run_id}):", err=True)
        for failure in outcome.failures:
            click.echo(f"  {failure}", err=True)
        raise SystemExit(1)
    return outcome.run_id
