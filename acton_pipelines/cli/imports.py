"""``acton imports``: apply the new files of the imports folder now, and say what became of them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import click
from sqlalchemy import Engine, select

from acton_pipelines import settings
from acton_pipelines.cli.job_runs import run_or_exit
from acton_pipelines.imports.build import APPLIED, REJECTED
from acton_pipelines.imports.files import REJECTED_DIR, find_moved, problem_line
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import acton_import_files, acton_import_rejects


@dataclass
class RunFile:
    """One file a run imported: its name, content hash, status and rows, and when it was
    rejected every reason (lines of ``problem_line``)."""

    name: str
    sha256: str
    status: str
    rows: int
    reasons: list[str] = field(default_factory=list)


def run_files(engine: Engine, run_id: str) -> list[RunFile]:
    """The files run ``run_id`` applied or rejected, in the order it imported them, from
    ``acton_import_files`` and ``acton_import_rejects`` (files it skipped as already imported
    belong to the run that imported them)."""
    with engine.connect() as conn:
        imported = conn.execute(
            select(
                acton_import_files.c.file_name,
                acton_import_files.c.sha256,
                acton_import_files.c.status,
                acton_import_files.c.rows,
            )
            .where(acton_import_files.c.sync_run_id == run_id)
            .order_by(acton_import_files.c.imported_at, acton_import_files.c.file_name)
        ).all()
        rejects = conn.execute(
            select(
                acton_import_rejects.c.sha256,
                acton_import_rejects.c.file_name,
                acton_import_rejects.c.line,
                acton_import_rejects.c.column,
                acton_import_rejects.c.value,
                acton_import_rejects.c.reason,
            )
            .where(acton_import_rejects.c.sync_run_id == run_id)
            .order_by(acton_import_rejects.c.line, acton_import_rejects.c.column)
        ).all()
    reasons: dict[str, list[str]] = defaultdict(list)
    for sha256, *problem in rejects:
        reasons[sha256].append(problem_line(*problem))
    return [
        RunFile(name, sha256, status, rows, reasons.get(sha256, []))
        for name, sha256, status, rows in imported
    ]


def report_run(files: list[RunFile], folder: Path) -> bool:
    """Print what became of each file; ``True`` when any was rejected."""
    if not files:
        click.echo("No new files.")
        return False
    for file in files:
        if file.status == APPLIED:
            click.echo(f"Applied {file.name} ({file.rows:,} row(s)).")
    rejected = [f for f in files if f.status == REJECTED]
    for file in rejected:
        moved = find_moved(folder / REJECTED_DIR, file.name, file.sha256)
        where = f"moved to {moved}" if moved else f"not found in {folder / REJECTED_DIR}"
        click.echo(f"Rejected {file.name} ({where}); nothing of it was applied:", err=True)
        for reason in file.reasons:
            click.echo(f"  {reason}", err=True)
    if rejected:
        click.echo(
            "Fix the rejected file(s) and drop them into the imports folder again.", err=True
        )
    return bool(rejected)


@click.command()
def imports() -> None:
    """Apply the new CSV files in the imports folder (ACTON_IMPORTS_DIR, default
    ACTON_HOME/imports): contacts*, opt_outs*, opt_ins*, edits*, activity*. A file with any bad
    row applies nothing. Applied files move to processed/, rejected ones to rejected/ with
    their reasons in <file>.errors.txt. Exits with status 1 when a file was rejected."""
    folder = settings.imports_dir()
    click.echo(f"Importing new files from {folder}...")
    run_id = run_or_exit("import_files", "import")
    files = run_files(warehouse_engine(settings.warehouse_url()), run_id)
    any_rejected = report_run(files, folder)
    click.echo(f"Run {run_id}; outcomes per file are in acton_import_files.")
    if any_rejected:
        raise SystemExit(1)
