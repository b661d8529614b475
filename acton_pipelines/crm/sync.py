"""Mirroring one CRM object into its warehouse table, fully or for a window of changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, literal, select

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.deletion_log import deletion_log_gap
from acton_pipelines.crm.extract import build_soql, page_frame
from acton_pipelines.crm.objects import CrmObject
from acton_pipelines.crm.window import FULL_SYNC, SyncWindow
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import StagedLoad, upsert_records
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import crm_table, sync_deletions

IS_DELETED = "IsDeleted"


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


def sync_crm_object(
    *,
    client: CrmClient,
    engine: Engine,
    crm_object: CrmObject,
    types: dict[str, str],
    window: SyncWindow,
    run_id: str,
    progress: Callable[[str], Any] = print,
) -> SyncRun:
    """Read ``crm_object`` page by page into a staging table, then merge it into its mirror
    table, apply deletions and record ``sync_runs``, all in one transaction.

    An incremental sync reads the window with ``queryAll``: records with ``IsDeleted`` are
    removed from the mirror and listed in ``sync_deletions``. It turns into a full sync when
    the CRM's deletion log no longer reaches back to the last successful sync. A full sync
    removes (and lists) the rows whose record is no longer in the CRM.
    """
    table = crm_table(crm_object.table, types.items())
    ensure_table(engine, table)
    ensure_table(engine, sync_deletions)
    if not window.is_full:
        gap = deletion_log_gap(client, engine, crm_object, utc_now())
        if gap:
            progress(f"{crm_object.table}: running a full sync instead: {gap}")
            window = FULL_SYNC
    run = SyncRun(
        run_id=run_id,
        object=crm_object.table,
        mode=window.mode,
        window_start=window.start,
        window_end=window.end,
    )
    calls_before = client.api_calls
    with_deletions = not window.is_full and crm_object.has_is_deleted
    fields = [*types, IS_DELETED] if with_deletions else list(types)
    soql = build_soql(crm_object, fields, window)
    deleted_at: dict[str, Any] = {}
    try:
        with StagedLoad(engine, table, ["id"]) as load:
            synced_at = utc_now()
            for page in client.query_pages(soql, include_deleted=with_deletions):
                frame = page_frame(page.records, types)
                if with_deletions:
                    gone = [bool(r.get(IS_DELETED)) for r in page.records]
                    stamps = frame.loc[gone, "systemmodstamp"]
                    deleted_at.update(zip(frame.loc[gone, "id"], stamps, strict=True))
                    frame = frame.loc[[not g for g in gone]]
                frame["sync_run_id"] = run_id
                frame["synced_at"] = synced_at
                load.append(frame)
                run.rows_read += len(page.records)
                progress(f"{crm_object.table}: read {run.rows_read:,} of {page.total_size:,}")
            run.api_calls = client.api_calls - calls_before
            with engine.begin() as conn:
                counts = load.merge(conn)
                run.rows_upserted = counts.upserted
                if window.is_full:
                    run.rows_deleted = _record_deletions(
                        conn, crm_object, table, load.missing(), "missing_from_full_sync", run_id
                    )
                elif deleted_at:
                    run.rows_deleted = _record_deletions(
                        conn,
                        crm_object,
                        table,
                        table.c.id.in_(list(deleted_at)),
                        "deleted_in_crm",
                        run_id,
                        deleted_at,
                    )
                run.record(conn)
    except Exception as error:
        run.api_calls = client.api_calls - calls_before
        run.record_failure(engine, error)
        raise
    return run
