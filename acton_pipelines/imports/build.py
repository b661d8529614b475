"""Processing the imports folder: each new file validated, then applied or rejected.

Each file is one transaction: its ``acton_import_files`` row, and either all of its changes
(plus the run's ``sync_runs`` row for ``acton_contacts``) or its ``acton_import_rejects``. Once
that transaction has committed, the file leaves the folder: applied to ``processed/``, rejected
to ``rejected/`` with its reasons beside it (``<name>.errors.txt``). A run killed half-way leaves
the files it had not committed to the next run; one killed between a commit and the move leaves
that file too, and the next run finds its sha256 already imported and moves it where it belongs.
When files changed Act-On contacts, the contacts they touched are rescored and re-placed in
segments in the same run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from acton_pipelines.crm.required_fields import required_on_create
from acton_pipelines.imports.apply import apply_records
from acton_pipelines.imports.contact_directory import ContactDirectory
from acton_pipelines.imports.context import ApplyContext
from acton_pipelines.imports.files import (
    ImportFile,
    import_paths,
    move_to_processed,
    move_to_rejected,
    problem_line,
)
from acton_pipelines.imports.problems import ImportProblem
from acton_pipelines.imports.validation import ValidatedFile, validate_file
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.runs.window import SyncWindow
from acton_pipelines.scores.build import build_contact_scores
from acton_pipelines.segments.build import build_segments
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import (
    acton_activity,
    acton_contacts_table,
    acton_field_edits,
    acton_import_files,
    acton_import_rejects,
    crm_create_requests,
    opt_outs,
    sync_runs,
)

APPLIED = "applied"
REJECTED = "rejected"
SKIPPED = "skipped"


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: ``applied``, ``rejected``, or ``skipped`` (already imported)."""

    name: str
    sha256: str
    status: str
    kind: str | None = None
    rows: int = 0
    rows_applied: int = 0
    rows_rejected: int = 0
    message: str | None = None
    reject_reasons: tuple[str, ...] = ()
    contacts_touched: int = 0
    # Every problem of a rejected file (what acton_import_rejects holds for it).
    problems: tuple[ImportProblem, ...] = ()
    # Where the file went once its transaction committed (None: it could not be moved).
    moved_to: Path | None = None


@dataclass
class ImportSummary:
    """What one pass over the imports folder did."""

    files: list[FileOutcome] = field(default_factory=list)
    contacts_run: SyncRun | None = None
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    segment_sizes: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def rows_applied(self) -> int:
        return sum(f.rows_applied for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def rejects_by_reason(self) -> dict[str, int]:
        return dict(Counter(reason for f in self.files for reason in f.reject_reasons))


def build_imports(
    *,
    engine: Engine,
    mapping: Mapping,
    folder: Path,
    run_id: str,
    progress: Callable[[str], Any] = print,
) -> ImportSummary:
    """Import every file of ``folder`` whose sha256 is not in ``acton_import_files``, in name
    order, then rescore and re-place in segments the contacts the files touched."""
    contacts = acton_contacts_table(mapping)
    for table in (
        contacts,
        acton_import_files,
        acton_import_rejects,
        acton_activity,
        acton_field_edits,
        crm_create_requests,
        opt_outs,
        sync_runs,
    ):
        ensure_table(engine, table)
    with engine.connect() as conn:
        done = set(conn.execute(select(acton_import_files.c.sha256)).scalars())

    summary = ImportSummary()
    # One sync_runs row for the whole run, rewritten with each file that touches contacts: it
    # tells the score and segment builds to take the contacts this run wrote.
    run = SyncRun(run_id=run_id, object="acton_contacts", mode="incremental")
    for path in import_paths(folder):
        outcome = _import_path(engine, mapping, path, run, done, progress)
        if outcome is not None:
            summary.files.append(outcome)

    if run.rows_upserted:
        summary.contacts_run = run
        window = SyncWindow("incremental", run.started_at, utc_now())
        _, summary.scores = build_contact_scores(
            engine=engine, mapping=mapping, run_id=run_id, window=window, progress=progress
        )
        _, summary.segment_sizes = build_segments(
            engine=engine, mapping=mapping, run_id=run_id, window=window, progress=progress
        )
    return summary


def _import_path(
    engine: Engine,
    mapping: Mapping,
    path: Path,
    run: SyncRun,
    done: set[str],
    progress: Callable[[str], Any],
) -> FileOutcome | None:
    """Import the file at ``path`` unless its content is already imported (``done``), then
    move it out of the folder; ``None`` when another run took it first."""
    try:
        file = ImportFile.read(path)
    except FileNotFoundError:
        progress(f"acton_imports: {path.name}: gone before it was read (another run took it).")
        return None
    if file.sha256 in done:
        outcome = FileOutcome(file.name, file.sha256, SKIPPED)
    else:
        done.add(file.sha256)
        outcome = _import_file(engine, mapping, file, run)
    # Only now, its transaction committed: a file moved before would be lost if the commit
    # failed; one not moved yet is found again and moved by the next run (as skipped).
    outcome = replace(outcome, moved_to=_move(engine, path, outcome, progress))
    progress(_outcome_line(outcome))
    return outcome


def _outcome_line(outcome: FileOutcome) -> str:
    """The run log's line for one file."""
    where = f"moved to {outcome.moved_to}" if outcome.moved_to else "not moved (see above)"
    if outcome.status == SKIPPED:
        return (
            f"acton_imports: {outcome.name}: skipped, its content (sha256 {outcome.sha256[:12]}) "
            f"was already imported; {where}"
        )
    return f"acton_imports: {outcome.name}: {outcome.status} ({outcome.message}); {where}"


def _move(
    engine: Engine, path: Path, outcome: FileOutcome, progress: Callable[[str], Any]
) -> Path | None:
    """Move an imported file to ``processed/``, or to ``rejected/`` with its reasons. A file
    skipped as already imported goes where its first import sent it: a rejected content
    re-dropped (or left by a run killed before its move) is rejected again, with its reasons.

    A file that cannot be moved stays in the folder: its import is committed, the next run
    skips it and tries the move again. The run goes on with the other files.
    """
    status, problems = outcome.status, outcome.problems
    if status == SKIPPED:
        status, problems = _recorded_outcome(engine, outcome.sha256)
    try:
        if status == REJECTED:
            reasons = [
                problem_line(path.name, p.line, p.column, p.value, p.reason) for p in problems
            ]
            return move_to_rejected(path, reasons)
        return move_to_processed(path)
    except FileNotFoundError:
        # Another run (the sensor's and ``acton imports`` at once) moved it meanwhile.
        progress(f"acton_imports: {path.name}: already moved out by another run.")
        return None
    except OSError as error:
        progress(
            f"acton_imports: could not move {path} out of the imports folder: {error} Its "
            "import is committed; once that is fixed, the next run moves it."
        )
        return None


def _recorded_outcome(engine: Engine, sha256: str) -> tuple[str, tuple[ImportProblem, ...]]:
    """How the content ``sha256`` was imported before: its status, and its problems when it
    was rejected (from ``acton_import_rejects``)."""
    with engine.connect() as conn:
        status = conn.execute(
            select(acton_import_files.c.status).where(acton_import_files.c.sha256 == sha256)
        ).scalar_one_or_none()
        if status != REJECTED:
            return status or APPLIED, ()
        rows = conn.execute(
            select(
                acton_import_rejects.c.line,
                acton_import_rejects.c.column,
                acton_import_rejects.c.value,
                acton_import_rejects.c.reason,
            )
            .where(acton_import_rejects.c.sha256 == sha256)
            .order_by(acton_import_rejects.c.line, acton_import_rejects.c.column)
        ).all()
    return REJECTED, tuple(ImportProblem(*row) for row in rows)


def _import_file(engine: Engine, mapping: Mapping, file: ImportFile, run: SyncRun) -> FileOutcome:
    """Validate ``file`` and apply or reject it in one transaction; ``run`` counts the
    contacts it touched once that transaction has committed."""
    contacts = acton_contacts_table(mapping)
    context = ApplyContext(
        file_name=file.name,
        sha256=file.sha256,
        run_id=run.run_id,
        now=utc_now(),
        mapping=mapping,
        contacts=contacts,
    )
    try:
        with engine.begin() as conn:
            validated = validate_file(
                file,
                mapping,
                lambda emails: ContactDirectory.load(conn, contacts, emails),
                required_on_create(conn, "Lead"),
            )
            if not validated.valid:
                return _reject(conn, validated, context)
            outcome = _apply(conn, validated, context, run)
    except IntegrityError:
        # Another run imported the same file meanwhile: its row took the key first.
        if _imported(engine, file.sha256):
            return FileOutcome(file.name, file.sha256, SKIPPED)
        raise
    if outcome.contacts_touched:
        run.rows_read += outcome.rows
        run.rows_upserted += outcome.contacts_touched
    return outcome


def _apply(
    conn: Connection, validated: ValidatedFile, context: ApplyContext, run: SyncRun
) -> FileOutcome:
    assert validated.kind is not None  # a valid file has a kind
    # The file's row first: a concurrent import of the same file fails here, before applying.
    conn.execute(insert(acton_import_files), [_file_row(validated, context, APPLIED)])
    applied = apply_records(conn, validated.kind, validated.records, validated.directory, context)
    message = applied.summary()
    conn.execute(
        update(acton_import_files)
        .where(acton_import_files.c.sha256 == context.sha256)
        .values(message=message)
    )
    if applied.touched:
        replace(
            run,
            rows_read=run.rows_read + validated.rows,
            rows_upserted=run.rows_upserted + len(applied.touched),
        ).record(conn)
    return FileOutcome(
        name=context.file_name,
        sha256=context.sha256,
        status=APPLIED,
        kind=validated.kind.value,
        rows=validated.rows,
        rows_applied=validated.rows,
        message=message,
        contacts_touched=len(applied.touched),
    )


def _reject(conn: Connection, validated: ValidatedFile, context: ApplyContext) -> FileOutcome:
    lines = len({p.line for p in validated.problems})
    message = f"{len(validated.problems)} problem(s) on {lines} line(s); nothing applied"
    conn.execute(
        insert(acton_import_files), [_file_row(validated, context, REJECTED) | {"message": message}]
    )
    conn.execute(
        insert(acton_import_rejects),
        [
            {
                "sha256": context.sha256,
                "line": problem.line,
                "column": problem.column,
                "file_name": context.file_name,
                "value": problem.value,
                "reason": problem.reason,
                "sync_run_id": context.run_id,
            }
            for problem in validated.problems
        ],
    )
    return FileOutcome(
        name=context.file_name,
        sha256=context.sha256,
        status=REJECTED,
        kind=validated.kind.value if validated.kind else None,
        rows=validated.rows,
        rows_rejected=validated.rejected_rows,
        message=message,
        reject_reasons=tuple(p.reason for p in validated.problems),
        problems=tuple(validated.problems),
    )


def _file_row(validated: ValidatedFile, context: ApplyContext, status: str) -> dict[str, Any]:
    applied = status == APPLIED
    return {
        "sha256": context.sha256,
        "file_name": context.file_name,
        # A file whose name announces no kind is recorded too, so it is not read again.
        "kind": validated.kind.value if validated.kind else "unknown",
        "rows": validated.rows,
        "rows_applied": validated.rows if applied else 0,
        "rows_rejected": 0 if applied else validated.rejected_rows,
        "status": status,
        "message": None,
        "imported_at": context.now,
        "sync_run_id": context.run_id,
    }


def _imported(engine: Engine, sha256: str) -> bool:
    statement = select(acton_import_files.c.sha256).where(acton_import_files.c.sha256 == sha256)
    with engine.connect() as conn:
        return conn.execute(statement).first() is not None
