"""Whether the CRM's deletion log still reaches back to the last successful sync.

Salesforce keeps deleted records (and answers getDeleted) for about 15 days, less when the
recycle bin is emptied. An incremental sync only sees deletions the log still holds, so when
the last successful sync is older than the log, a full sync must reconcile instead.

Asked for a start older than its log, Salesforce answers 400 ``INVALID_REPLICATION_DATE``
(documented); some orgs and API versions answer 200 with an ``earliestDateAvailable`` later
than the start. Both mean the same here: the log no longer reaches the last sync.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from simple_salesforce.exceptions import SalesforceMalformedRequest
from sqlalchemy import Engine, func, inspect, select

from acton_pipelines.crm.client import CrmClient, salesforce_error_code
from acton_pipelines.crm.objects import CrmObject
from acton_pipelines.warehouse.sync_runs import as_utc
from acton_pipelines.warehouse.tables import sync_runs

# Salesforce keeps deletions 15 days; a day of margin for clocks and slow runs.
DELETION_LOG_DAYS = 14
INVALID_REPLICATION_DATE = "INVALID_REPLICATION_DATE"


def last_successful_sync(engine: Engine, table: str) -> datetime | None:
    """When the last successful sync of ``table`` started (any mode), or ``None``."""
    if sync_runs.name not in inspect(engine).get_table_names():
        return None
    statement = select(func.max(sync_runs.c.started_at)).where(
        sync_runs.c.object == table, sync_runs.c.status == "success"
    )
    with engine.connect() as conn:
        started = conn.execute(statement).scalar_one()
    return as_utc(started)


def deletion_log_gap(
    client: CrmClient, engine: Engine, crm_object: CrmObject, now: datetime
) -> str | None:
    """Why an incremental sync of ``crm_object`` cannot trust the deletion log, or ``None``.

    The reason (one line) tells the caller to read the object in full instead. Any other
    error of the getDeleted call is raised.
    """
    last = last_successful_sync(engine, crm_object.table)
    if last is None:
        return f"{crm_object.table} has never been synced successfully"
    if now - last > timedelta(days=DELETION_LOG_DAYS):
        return (
            f"the last successful sync of {crm_object.table} ({last:%Y-%m-%d %H:%M} UTC) is "
            f"older than the CRM's deletion log ({DELETION_LOG_DAYS} days)"
        )
    if not crm_object.has_is_deleted or now - last < timedelta(minutes=2):
        return None
    try:
        log = client.deleted(crm_object.name, last, now)
    except SalesforceMalformedRequest as error:
        if salesforce_error_code(error) != INVALID_REPLICATION_DATE:
            raise
        # Not the window's shape: it spans two minutes or more and under 30 days (checked
        # above), so the only date the CRM can refuse is a start older than its log.
        return (
            f"the CRM's deletion log for {crm_object.name} no longer reaches the last "
            f"successful sync ({last:%Y-%m-%d %H:%M} UTC): {INVALID_REPLICATION_DATE}"
        )
    earliest = pd.Timestamp(log["earliestDateAvailable"]).to_pydatetime()
    if earliest > last:
        return (
            f"the CRM's deletion log for {crm_object.name} starts at {earliest:%Y-%m-%d %H:%M} "
            f"UTC, after the last successful sync ({last:%Y-%m-%d %H:%M} UTC)"
        )
    return None
