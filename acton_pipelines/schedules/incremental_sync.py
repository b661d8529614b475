"""The hourly incremental sync: today's changes, and yesterday's until a sync has read past
midnight."""

import os
from datetime import UTC, datetime, time, timedelta

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from sqlalchemy import Engine

from acton_pipelines.jobs import incremental_sync_job
from acton_pipelines.runs.partitions import incremental_tags, sync_partitions
from acton_pipelines.schedules.sync_history import FullSyncDue, full_sync_due, synced_since
from acton_pipelines.warehouse.resource import WarehouseResource

DEFAULT_INCREMENTAL_CRON = "0 * * * *"


def incremental_cron() -> str:
    """The schedule's cron (``ACTON_INCREMENTAL_CRON``, default hourly on the hour, UTC)."""
    return os.environ.get("ACTON_INCREMENTAL_CRON") or DEFAULT_INCREMENTAL_CRON


def incremental_partition_keys(engine: Engine, scheduled: datetime) -> list[str]:
    """The days a tick at ``scheduled`` (UTC) syncs: today, preceded by yesterday until every
    CRM object has had a successful sync that started after midnight.

    Changes made late yesterday (or committed late, or by a run that failed) are only read by
    a window that covers yesterday, so yesterday stays in until a sync is known to have read
    past its end. Days before the partitions' start date are left out.
    """
    # Partitions are UTC days, like SystemModstamp.
    today = scheduled.astimezone(UTC).date()
    midnight = datetime.combine(today, time(), tzinfo=UTC)
    days = [today] if synced_since(engine, midnight) else [today - timedelta(days=1), today]
    first_day = sync_partitions.start.date()
    return [day.strftime(sync_partitions.fmt) for day in days if day >= first_day]


def incremental_run_request(engine: Engine, scheduled: datetime) -> RunRequest | SkipReason:
    """The run a tick at ``scheduled`` requests, or why it requests none."""
    due = full_sync_due(engine, scheduled)
    if isinstance(due, FullSyncDue):
        # The full sync is the deletion-log sensor's to request (once a day): an incremental
        # run now would fall back to a full read of the same objects, twice the CRM API calls.
        return SkipReason(
            f"No incremental sync: a full sync is due ({due.reason}); "
            "deletion_log_sensor requests it."
        )
    keys = incremental_partition_keys(engine, scheduled)
    if not keys:
        return SkipReason(f"{scheduled:%Y-%m-%d} is before the first sync partition.")
    return RunRequest(
        run_key=f"incremental-{scheduled.isoformat()}",
        tags=incremental_tags(keys[0], keys[-1], since_last_sync=True),
    )


@schedule(
    job=incremental_sync_job,
    cron_schedule=incremental_cron(),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Incremental sync every hour (ACTON_INCREMENTAL_CRON, UTC): one run over today's "
        "partition, and yesterday's too until a sync that started after midnight has succeeded "
        "for every CRM object. Each object reads the changes since its last successful sync's "
        "high-water mark (minus the lookback), not the whole day again. Skipped while a full "
        "sync is due (never synced, or the CRM's deletion log no longer reaches the last "
        "sync): deletion_log_sensor requests that one."
    ),
)
def incremental_sync_schedule(
    context: ScheduleEvaluationContext, warehouse: WarehouseResource
) -> RunRequest | SkipReason:
    return incremental_run_request(warehouse.engine, context.scheduled_execution_time)
