"""Act-On-side edits are pushed to the CRM as soon as they appear, not on the sync schedule."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor
from sqlalchemy import func, inspect, select

from acton_pipelines.jobs import crm_push_job
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.tables import acton_field_edits, crm_create_requests


def pending_changes(warehouse: WarehouseResource) -> tuple[int, int]:
    """The newest pending edit's id and the number of pending "create in CRM" requests."""
    engine = warehouse.engine
    present = set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        newest = 0
        if acton_field_edits.name in present:
            newest = (
                conn.execute(
                    select(func.max(acton_field_edits.c.id)).where(
                        acton_field_edits.c.push_status == "pending"
                    )
                ).scalar_one()
                or 0
            )
        creates = 0
        if crm_create_requests.name in present:
            creates = conn.execute(
                select(func.count()).where(crm_create_requests.c.status == "pending")
            ).scalar_one()
    return int(newest), int(creates)


@sensor(
    job=crm_push_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Pushes Act-On-side changes as soon as they appear: when acton_field_edits has a pending "
        "edit newer than the last one pushed for (the cursor), or a create-in-CRM request is "
        "pending, requests a crm_push run."
    ),
)
def edits_push_sensor(
    context: SensorEvaluationContext, warehouse: WarehouseResource
) -> SensorResult:
    newest, creates = pending_changes(warehouse)
    last = int(context.cursor or 0)
    if newest <= last and not creates:
        return SensorResult(skip_reason="No new Act-On-side edits or create requests.")
    key = f"edits-{newest}-creates-{creates}"
    return SensorResult(run_requests=[RunRequest(run_key=key)], cursor=str(max(newest, last)))
