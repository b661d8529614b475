"""Mirroring one CRM object into its warehouse table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.extract import build_soql, page_frame
from acton_pipelines.crm.objects import CrmObject
from acton_pipelines.crm.window import SyncWindow
from acton_pipelines.warehouse.staged_load import StagedLoad
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import crm_table


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
    table and record ``sync_runs`` in one transaction. A full sync also deletes rows whose
    record is no longer in the CRM.
    """
    table = crm_table(crm_object.table, types.items())
    run = SyncRun(
        run_id=run_id,
        object=crm_object.table,
        mode=window.mode,
        window_start=window.start,
        window_end=window.end,
    )
    calls_before = client.api_calls
    soql = build_soql(crm_object, types, window)
    try:
        with StagedLoad(engine, table, ["id"]) as load:
            synced_at = utc_now()
            for page in client.query_pages(soql):
                frame = page_frame(page.records, types)
                frame["sync_run_id"] = run_id
                frame["synced_at"] = synced_at
                load.append(frame)
                run.rows_read += len(frame)
                progress(f"{crm_object.table}: read {run.rows_read:,} of {page.total_size:,}")
            run.api_calls = client.api_calls - calls_before
            with engine.begin() as conn:
                counts = load.merge(conn, reconcile=window.is_full)
                run.rows_upserted, run.rows_deleted = counts.upserted, counts.deleted
                run.record(conn)
    except Exception as error:
        run.api_calls = client.api_calls - calls_before
        run.record_failure(engine, error)
        raise
    return run
