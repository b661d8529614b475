"""A full sync before the CRM's deletion log forgets what the warehouse has not seen."""

from datetime import datetime, timedelta

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor
from sqlalchemy import Engine

from acton_pipelines.crm.deletion_log import DELETION_LOG_DAYS
from acton_pipelines.jobs import full_sync_job
from acton_pipelines.schedules.full_sync_request import full_sync_request
from acton_pipelines.schedules.sync_history import FullSyncDue, full_sync_due
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.sync_runs import utc_now


def deletion_log_evaluation(engine: Engine, now: datetime) -> tuple[RunRequest | SkipReason, str]:
    """What the sensor does at ``now``: a full sync request or a skip, and why (for its log).

    The run key holds the UTC date, so at most one full sync a day: one that fails is not
    requested again every ten minutes, and the next day tries again.
    """
    due = full_sync_due(engine, now)
    if isinstance(due, FullSyncDue):
        request = full_sync_request(f"deletion-log-{now:%Y-%m-%d}", reason=due.label)
        return request, f"Requesting a full sync: {due.reason}."
    days = due / timedelta(days=1)
    message = (
        f"No full sync due: the CRM's deletion log still reaches the last successful syncs; "
        f"{days:.1f} of {DELETION_LOG_DAYS} days remain."
    )
    return SkipReason(message), message


@sensor(
    job=full_sync_job,
    minimum_interval_seconds=600,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Requests a full sync when the warehouse has never been synced, or when the last "
        f"successful sync of a CRM object with deletions is older than {DELETION_LOG_DAYS} days: "
        "the CRM's deletion log (about 15 days) no longer reaches it, so only a full sync can "
        "remove the records deleted meanwhile. At most one request a day (run key "
        "deletion-log-<date>); the run's acton/full_sync_reason tag says why."
    ),
)
def deletion_log_sensor(
    context: SensorEvaluationContext, warehouse: WarehouseResource
) -> RunRequest | SkipReason:
    result, message = deletion_log_evaluation(warehouse.engine, utc_now())
    context.log.info(message)
    return result
