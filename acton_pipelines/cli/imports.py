"""``acton imports``: apply the new files of the imports folder now."""

from __future__ import annotations

import click

from acton_pipelines import settings
from acton_pipelines.cli.job_runs import run_or_exit


@click.command()
def imports() -> None:
    """Apply the new CSV files in the imports folder (ACTON_IMPORTS_DIR, default
    ACTON_HOME/imports): contacts*, opt_outs*, opt_ins*, edits*, activity*. A file with any bad
    row applies nothing; see acton_import_files and acton_import_rejects."""
    click.echo(f"Importing new files from {settings.imports_dir()}...")
    run_id = run_or_exit("import_files", "import")
    click.echo(f"Done (run {run_id}); outcomes per file are in acton_import_files.")
