"""Mirroring one CRM object into its warehouse table, fully or for a window of changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, func, insert, literal, select

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.deletion_log import deletion_log_gap
from acton_pipelines.crm.extract import build_soql, page_frame
from acton_pipelines.crm.mass_delete import (
    DeletionCheck,
    MassDeleteRefused,
    mass_delete_problem,
    max_delete_fraction,
)
from acton_pipelines.crm.objects import CrmObject
from acton_pipelines.runs.run_window import lookback
from acton_pipelines.runs.window import FULL_SYNC, SyncWindow
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import StagedLoad, upsert_records
from acton_pipelines.warehouse.sync_runs import (
    SyncRun,
    last_fields_read,
    last_high_water_mark,
    utc_now,
)
from acton_pipelines.warehouse.tables import crm_fields, crm_table, sync_deletions, sync_runs

IS_DELETED = "IsDeleted"
# Moved by every write to a record, our own pushes included: not a change of what we mirror.
MODIFICATION_STAMPS = frozenset({"systemmodstamp", "lastmodifieddate", "lastmodifiedbyid"})
# Which run last changed a mirror row, and when: kept by a row read again unchanged.
AUDIT_COLUMNS = ("sync_run_id", "synced_at")


def _record_deletions(
    conn: Connection,
    crm_object: CrmObject,
    table: Table,
    condition: Any,
    detected_by: str,
    run_id: str,
    deleted_at: dict[str, Any] | None = None,
) -> int:
    """Write the mirror rows matching ``condition`` to ``sync_deletions``, then delete them."""
    account = table.c.accountid if "accountid" in table.c else literal(None)
    rows = conn.execute(select(table.c.id, account).where(condition)).all()
    now = utc_now()
    records = [
        {
            "object": crm_object.name,
            "record_id": record_id,
            "account_id": account_id,
            "deleted_at": (deleted_at or {}).get(record_id, now),
            "detected_by": detected_by,
            "sync_run_id": run_id,
            "recorded_at": now,
        }
        for record_id, account_id in rows
    ]
    # A deletion seen again (an overlapping window, a re-run) keeps its first record.
    if records:
        upsert_records(conn, sync_deletions, records, ["object", "record_id"], update=False)
        conn.execute(delete(table).where(condition))
    return len(records)


def _newest(mark: datetime | None, stamps: pd.Series) -> datetime | None:
    """The later of ``mark`` and the newest of ``stamps`` (the page's SystemModstamps)."""
    newest = stamps.max() if len(stamps) else None
    if newest is None or pd.isna(newest):
        return mark
    newest = newest.to_pydatetime()
    return newest if mark is None or newest > mark else mark


def fields_gap(engine: Engine, crm_object: CrmObject, fields: Sequence[str]) -> str | None:
    """Why ``crm_object`` must be read in full because this sync reads ``fields`` its last
    successful sync did not (the mapping changed: records not read since would lack their
    values), or ``None``. Unknown (no such sync, or one that did not record its fields) is no
    reason. Salesforce names compare case-insensitively."""
    last = last_fields_read(engine, crm_object.table)
    if last is None or last[1] is None:
        return None
    run_id, read_before = last
    known = {name.lower() for name in read_before}
    new = [name for name in fields if name.lower() not in known]
    if not new:
        return None
    return (
        f"read in full: the mapping now reads {', '.join(new)}, which the last sync "
        f"(run {run_id[:8]}) did not read"
    )


def resolve_window(
    client: CrmClient,
    engine: Engine,
    crm_object: CrmObject,
    window: SyncWindow,
    mark: datetime | None,
    fields: Sequence[str] = (),
) -> SyncWindow:
    """The window this object actually reads: a full read when it now reads ``fields`` its
    last successful sync did not, or when the CRM's deletion log no longer reaches that sync;
    from its high-water mark ``mark`` (minus the lookback) when the run asks for
    ``since_last_sync`` and one is known; else ``window``."""
    if window.is_full:
        return window
    gap = fields_gap(engine, crm_object, fields)
    if gap:
        return replace(FULL_SYNC, reason=gap)
    gap = deletion_log_gap(client, engine, crm_object, utc_now())
    if gap:
        return replace(FULL_SYNC, reason=f"read in full instead of incrementally: {gap}")
    if mark is None or not window.since_last_sync:
        return window
    start = mark - lookback()
    return replace(
        window,
        start=start,
        reason=f"{window.reason}: from {start:%Y-%m-%d %H:%M:%S} UTC (high-water mark "
        f"{mark:%Y-%m-%d %H:%M:%S} UTC minus the lookback)",
    )


def _guard_deletions(
    conn: Connection,
    table: Table,
    crm_object: CrmObject,
    doomed: Any,
    rows_read: int,
    max_fraction: float | None,
) -> None:
    """Refuse (``MassDeleteRefused``) before deleting the rows matching ``doomed`` when they
    are a mass deletion; ``max_fraction`` None means the run confirmed mass deletions."""
    if max_fraction is None:
        return
    held = conn.execute(select(func.count()).select_from(table)).scalar_one()
    to_delete = conn.execute(select(func.count()).select_from(table).where(doomed)).scalar_one()
    check = DeletionCheck(table.name, crm_object.name, int(held), rows_read, int(to_delete))
    problem = mass_delete_problem(check, max_fraction)
    if problem:
        raise MassDeleteRefused(problem)


def replace_crm_fields(
    conn: Connection, object_name: str, describe: dict[str, Any], described_at: datetime
) -> None:
    """Replace ``object_name``'s rows of ``crm_fields`` with its ``describe``: every field,
    not only those read, so an import can tell which fields a new record needs without
    asking the CRM."""
    conn.execute(delete(crm_fields).where(crm_fields.c.object == object_name))
    rows = [
        {
            "object": object_name,
            "field": described["name"],
            "type": described.get("type") or "string",
            "nillable": described.get("nillable"),
            "createable": described.get("createable"),
            "defaulted_on_create": described.get("defaultedOnCreate"),
            "external_id": described.get("externalId"),
            "described_at": described_at,
        }
        for described in describe.get("fields", [])
    ]
    if rows:
        conn.execute(insert(crm_fields), rows)


def _read_pages(
    client: CrmClient,
    crm_object: CrmObject,
    types: dict[str, str],
    window: SyncWindow,
    load: StagedLoad,
    run: SyncRun,
    progress: Callable[[str], Any],
) -> dict[str, Any]:
    """Stage the window's records page by page; an incremental read sets aside the deleted
    ones (``queryAll`` with ``IsDeleted``) instead of staging them: returns their Ids, each
    with when it was deleted."""
    with_deletions = not window.is_full and crm_object.has_is_deleted
    fields = [*types, IS_DELETED] if with_deletions else list(types)
    soql = build_soql(crm_object, fields, window)
    deleted_at: dict[str, Any] = {}
    synced_at = utc_now()
    for page in client.query_pages(soql, include_deleted=with_deletions):
        frame = page_frame(page.records, types)
        run.high_water_mark = _newest(run.high_water_mark, frame["systemmodstamp"])
        if with_deletions:
            gone = [bool(r.get(IS_DELETED)) for r in page.records]
            stamps = frame.loc[gone, "systemmodstamp"]
            deleted_at.update(zip(frame.loc[gone, "id"], stamps, strict=True))
            frame = frame.loc[[not g for g in gone]]
        frame["sync_run_id"] = run.run_id
        frame["synced_at"] = synced_at
        load.append(frame)
        run.rows_read += len(page.records)
        progress(f"{crm_object.table}: read {run.rows_read:,} of {page.total_size:,}")
    return deleted_at


def _merge(
    conn: Connection,
    load: StagedLoad,
    crm_object: CrmObject,
    window: SyncWindow,
    deleted_at: dict[str, Any],
    run: SyncRun,
    max_fraction: float | None,
) -> None:
    """Merge the staged records into the mirror and apply the deletions, in ``conn``'s
    transaction. Records read again with every mirrored value as the mirror holds it (our own
    push moved their stamps, or the CRM changed a field we do not mirror) keep the run that
    last changed them, so the builds downstream do not take them for changes."""
    table = load.target
    if window.is_full:
        doomed, detected_by = load.missing(), "missing_from_full_sync"
    else:
        doomed, detected_by = table.c.id.in_(list(deleted_at)), "deleted_in_crm"
    if window.is_full or deleted_at:
        _guard_deletions(conn, table, crm_object, doomed, run.rows_read, max_fraction)
    ignored = {*MODIFICATION_STAMPS, *AUDIT_COLUMNS, *load.key}
    compared = [c.name for c in table.columns if c.name not in ignored]
    run.rows_unchanged = load.keep_unchanged(conn, compared, AUDIT_COLUMNS)
    run.rows_upserted = load.merge(conn).upserted
    if window.is_full or deleted_at:
        run.rows_deleted = _record_deletions(
            conn, crm_object, table, doomed, detected_by, run.run_id, deleted_at
        )


def sync_crm_object(
    *,
    client: CrmClient,
    engine: Engine,
    crm_object: CrmObject,
    types: dict[str, str],
    window: SyncWindow,
    run_id: str,
    progress: Callable[[str], Any] = print,
    allow_mass_delete: bool = False,
    describe: dict[str, Any] | None = None,
) -> SyncRun:
    """Read ``crm_object`` page by page into a staging table, then merge it into its mirror
    table, apply deletions and record ``sync_runs``, all in one transaction.

    An incremental sync reads its window with ``queryAll``: records with ``IsDeleted`` are
    removed from the mirror and listed in ``sync_deletions``. It turns into a full read when
    it reads fields (``types``) the last successful sync did not (a mapping change), or when
    the CRM's deletion log no longer reaches back to that sync (the reason is kept in
    ``sync_runs.message``, the fields read in ``sync_runs.fields_read``). A full sync removes
    (and lists) the rows whose record is no longer in the CRM. Either way, deletions above the
    mass-delete guard's line (``ACTON_MAX_DELETE_FRACTION``) stop the sync before anything is
    written, unless ``allow_mass_delete``. Records whose mirrored values did not change keep
    their ``sync_run_id`` (counted in ``rows_unchanged``). With ``describe`` (the object's CRM
    describe), ``crm_fields`` is refreshed in the same transaction.
    """
    table = crm_table(crm_object.table, types.items())
    for needed in (table, sync_deletions, sync_runs, crm_fields):
        ensure_table(engine, needed)
    max_fraction = None if allow_mass_delete else max_delete_fraction()
    calls_before = client.api_calls
    run = SyncRun(run_id=run_id, object=crm_object.table, mode=window.mode)
    run.fields_read = ",".join(types)
    try:
        # Carried forward when this sync reads nothing newer.
        run.high_water_mark = last_high_water_mark(engine, crm_object.table)
        window = resolve_window(client, engine, crm_object, window, run.high_water_mark, [*types])
        if window.reason:
            progress(f"{crm_object.table}: {window.reason}")
        run.mode, run.message = window.mode, window.reason or None
        run.window_start, run.window_end = window.start, window.end
        with StagedLoad(engine, table, ["id"], run_id) as load:
            deleted_at = _read_pages(client, crm_object, types, window, load, run, progress)
            run.api_calls = client.api_calls - calls_before
            with engine.begin() as conn:
                _merge(conn, load, crm_object, window, deleted_at, run, max_fraction)
                if describe is not None:
                    replace_crm_fields(conn, crm_object.name, describe, utc_now())
                run.record(conn)
        progress(
            f"{crm_object.table}: merged {run.rows_upserted:,} records, {run.rows_unchanged:,} "
            "of them read again unchanged (kept their sync run), "
            f"deleted {run.rows_deleted:,}"
        )
    except Exception as error:
        run.api_calls = client.api_calls - calls_before
        run.record_failure(engine, error)
        raise
    return run
