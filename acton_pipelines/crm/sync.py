"""Mirroring one CRM object into its warehouse table, fully or for a window of changes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, func, insert, literal, select

from acton_pipelines.crm.bulk_query import bulk_query_pages
from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.deletion_log import deletion_log_gap
from acton_pipelines.crm.extract import build_count_soql, build_soql, page_frame
from acton_pipelines.crm.mass_delete import (
    DeletionCheck,
    MassDeleteRefused,
    mass_delete_problem,
    max_delete_fraction,
)
from acton_pipelines.crm.objects import CrmObject
from acton_pipelines.errors import UserError
from acton_pipelines.runs.run_window import lookback
from acton_pipelines.runs.window import FULL_SYNC, SyncWindow
from acton_pipelines.settings import whole_number_from_env
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import StagedLoad, upsert_records
from acton_pipelines.warehouse.sync_runs import (
    SyncRun,
    last_fields_read,
    last_high_water_mark,
    utc_now,
)
from acton_pipelines.warehouse.tables import (
    crm_column_name,
    crm_fields,
    crm_table,
    sync_deletions,
    sync_runs,
)

IS_DELETED = "IsDeleted"
# Moved by every write to a record, our own pushes included: not a change of what we mirror.
MODIFICATION_STAMPS = frozenset({"systemmodstamp", "lastmodifieddate", "lastmodifiedbyid"})
# Which run last changed a mirror row, and when: kept by a row read again unchanged.
AUDIT_COLUMNS = ("sync_run_id", "synced_at")
CRM_READ_ENV = "ACTON_CRM_READ"
CRM_READ_MODES = ("auto", "bulk", "rest")
BULK_THRESHOLD_ENV = "ACTON_BULK_THRESHOLD"
DEFAULT_BULK_THRESHOLD = 10_000


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


def crm_read_mode() -> str:
    """``ACTON_CRM_READ``: ``auto`` (default), or ``bulk`` / ``rest`` to force one path."""
    mode = os.environ.get(CRM_READ_ENV, "").strip().lower() or "auto"
    if mode not in CRM_READ_MODES:
        raise UserError(
            f"{CRM_READ_ENV}={mode!r} is not a way to read the CRM; use one of "
            f"{', '.join(CRM_READ_MODES)} (auto: Bulk API 2.0 for full reads and large windows)"
        )
    return mode


def bulk_threshold() -> int:
    """``ACTON_BULK_THRESHOLD``: above this many records an incremental window is read through
    Bulk API 2.0 (default 10,000)."""
    return whole_number_from_env(BULK_THRESHOLD_ENV, DEFAULT_BULK_THRESHOLD, of="records")


def choose_bulk(
    client: CrmClient, crm_object: CrmObject, window: SyncWindow, include_deleted: bool
) -> tuple[bool, str]:
    """Whether to read ``window`` through Bulk API 2.0 rather than REST query, and why.

    A query job costs a few calls before its first record (create, polls) but then reads up to
    ``ACTON_BULK_PAGE_RECORDS`` records a call as CSV, where REST reads 2,000 as JSON: Bulk
    wins on volume, REST on small windows. So, with ``ACTON_CRM_READ=auto`` (the default), a
    full read goes through Bulk; an incremental window first asks ``SELECT COUNT()`` over the
    window (one REST call, no records; ``queryAll`` when deleted records count too) and goes
    through Bulk above ``ACTON_BULK_THRESHOLD`` records (default 10,000), through REST at or
    below it. ``ACTON_CRM_READ=bulk`` / ``rest`` forces one path.
    """
    mode = crm_read_mode()
    if mode != "auto":
        return mode == "bulk", f"{CRM_READ_ENV}={mode}"
    if window.is_full:
        return True, "a full read"
    threshold = bulk_threshold()
    count_soql = build_count_soql(crm_object, window)
    count = next(client.query_pages(count_soql, include_deleted=include_deleted)).total_size
    side = "above" if count > threshold else "not above"
    why = f"{count:,} records in the window, {side} {BULK_THRESHOLD_ENV}={threshold:,}"
    return count > threshold, why


def _page_frames(
    client: CrmClient,
    crm_object: CrmObject,
    types: dict[str, str],
    window: SyncWindow,
    include_deleted: bool,
    progress: Callable[[str], Any],
) -> Iterator[tuple[pd.DataFrame, int]]:
    """The window's records as typed frames (``page_frame``'s columns, whichever the path),
    each with the size of the whole read."""
    bulk, why = choose_bulk(client, crm_object, window, include_deleted)
    progress(f"{crm_object.table}: reading through {'Bulk API 2.0' if bulk else 'REST'} ({why})")
    soql = build_soql(crm_object, list(types), window)
    if bulk:
        for page in bulk_query_pages(
            client, soql, types, object_name=crm_object.name, include_deleted=include_deleted
        ):
            yield page.frame, page.total_size
    else:
        for rest_page in client.query_pages(soql, include_deleted=include_deleted):
            yield page_frame(rest_page.records, types), rest_page.total_size


def _read_pages(
    client: CrmClient,
    crm_object: CrmObject,
    types: dict[str, str],
    window: SyncWindow,
    load: StagedLoad,
    run: SyncRun,
    progress: Callable[[str], Any],
) -> dict[str, Any]:
    """Stage the window's records page by page (through Bulk API 2.0 or REST: ``choose_bulk``);
    an incremental read sets aside the deleted ones (``queryAll`` with ``IsDeleted``) instead
    of staging them: returns their Ids, each with when it was deleted."""
    with_deletions = not window.is_full and crm_object.has_is_deleted
    read_types = {**types, IS_DELETED: "boolean"} if with_deletions else types
    is_deleted = crm_column_name(IS_DELETED)
    mirrored = {crm_column_name(name) for name in types}
    deleted_at: dict[str, Any] = {}
    synced_at = utc_now()
    pages = _page_frames(client, crm_object, read_types, window, with_deletions, progress)
    for frame, total_size in pages:
        rows_read = len(frame)
        run.high_water_mark = _newest(run.high_water_mark, frame["systemmodstamp"])
        if with_deletions:
            gone = frame[is_deleted].eq(True).to_numpy()
            stamps = frame.loc[gone, "systemmodstamp"]
            deleted_at.update(zip(frame.loc[gone, "id"], stamps, strict=True))
            frame = frame.loc[~gone]
            if is_deleted not in mirrored:
                frame = frame.drop(columns=is_deleted)
        frame["sync_run_id"] = run.run_id
        frame["synced_at"] = synced_at
        load.append(frame)
        run.rows_read += rows_read
        progress(f"{crm_object.table}: read {run.rows_read:,} of {total_size:,}")
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
    api_calls_before: int | None = None,
) -> SyncRun:
    """Read ``crm_object`` page by page into a staging table, then merge it into its mirror
    table, apply deletions and record ``sync_runs``, all in one transaction.

    Records are read through Bulk API 2.0 (a full read, or an incremental window of more than
    ``ACTON_BULK_THRESHOLD`` records, default 10,000) or REST query (smaller windows): see
    :func:`choose_bulk`; ``ACTON_CRM_READ=bulk|rest`` forces one. Both give the same frames.
    An incremental sync reads its window with ``queryAll``: records with ``IsDeleted`` are
    removed from the mirror and listed in ``sync_deletions``. It turns into a full read when
    it reads fields (``types``) the last successful sync did not (a mapping change), or when
    the CRM's deletion log no longer reaches back to that sync (the reason is kept in
    ``sync_runs.message``, the fields read in ``sync_runs.fields_read``). A full sync removes
    (and lists) the rows whose record is no longer in the CRM. Either way, deletions above the
    mass-delete guard's line (``ACTON_MAX_DELETE_FRACTION``) stop the sync before anything is
    written, unless ``allow_mass_delete``. Records whose mirrored values did not change keep
    their ``sync_run_id`` (counted in ``rows_unchanged``). With ``describe`` (the object's CRM
    describe), ``crm_fields`` is refreshed in the same transaction. ``sync_runs.api_calls``
    counts the client's calls since ``api_calls_before`` (the step's start, so its describes
    count too; default: now), ``api_usage`` the org's usage the CRM last reported.
    """
    table = crm_table(crm_object.table, types.items())
    for needed in (table, sync_deletions, sync_runs, crm_fields):
        ensure_table(engine, needed)
    max_fraction = None if allow_mass_delete else max_delete_fraction()
    calls_before = client.api_calls if api_calls_before is None else api_calls_before
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
            run.api_usage = client.api_usage
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
        run.api_usage = client.api_usage
        run.record_failure(engine, error)
        raise
    return run
