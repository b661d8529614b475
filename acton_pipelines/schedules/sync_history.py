"""What the warehouse's ``sync_runs`` says about the syncs the schedules and sensors launch.

Every sync writes its ``sync_runs`` row in the transaction that commits its data, so a
successful row is proof the data arrived; reading it (rather than Dagster's run history) also
counts syncs launched any other way, such as ``acton sync full`` from the command line.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from acton_pipelines.crm.deletion_log import DELETION_LOG_DAYS, last_successful_sync
from acton_pipelines.crm.objects import CRM_OBJECTS, CRM_TABLES

# The objects whose deletions only the CRM's deletion log reports (Users are never deleted).
DELETION_LOG_TABLES: tuple[str, ...] = tuple(o.table for o in CRM_OBJECTS if o.has_is_deleted)


def last_syncs(engine: Engine, tables: tuple[str, ...]) -> dict[str, datetime | None]:
    """When each table's last successful sync (any mode) started, ``None`` if never."""
    return {table: last_successful_sync(engine, table) for table in tables}


def synced_since(engine: Engine, moment: datetime) -> bool:
    """Whether every CRM object has had a successful sync that started at or after ``moment``,
    i.e. whose read reached past it."""
    return all(
        last is not None and last >= moment for last in last_syncs(engine, CRM_TABLES).values()
    )


@dataclass(frozen=True)
class FullSyncDue:
    """Why a full sync is due: a short ``label`` for run tags, the ``reason`` for logs."""

    label: str
    reason: str


def full_sync_due(engine: Engine, now: datetime) -> FullSyncDue | timedelta:
    """Why a full sync is due at ``now``, or how long incremental syncs can still carry on.

    Due when an object with deletions has never been synced, or when its last successful sync
    is older than the CRM's deletion log (``DELETION_LOG_DAYS``): an incremental sync would
    then fall back to a full read of that object anyway.
    """
    last = last_syncs(engine, DELETION_LOG_TABLES)
    synced = {table: moment for table, moment in last.items() if moment is not None}
    never = [table for table in last if table not in synced]
    if never:
        return FullSyncDue("never-synced", f"{', '.join(never)} never synced successfully")
    table = min(synced, key=synced.__getitem__)
    left = synced[table] + timedelta(days=DELETION_LOG_DAYS) - now
    if left < timedelta(0):
        return FullSyncDue(
            "deletion-log-expired",
            f"the last successful sync of {table} ({synced[table]:%Y-%m-%d %H:%M} UTC) is "
            f"older than the CRM's deletion log ({DELETION_LOG_DAYS} days)",
        )
    return left
