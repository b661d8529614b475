"""``crm_push``: scores and opt-outs written back to the CRM, every write logged."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from acton_pipelines.assets import groups
from acton_pipelines.assets.contact_scores import contact_scores
from acton_pipelines.build.push import push_to_crm
from acton_pipelines.resources.mapping import MappingResource
from acton_pipelines.resources.salesforce import SalesforceResource
from acton_pipelines.resources.warehouse import WarehouseResource
from acton_pipelines.step_failures import StepRecord, one_line_failure


@asset(
    group_name=groups.PUSH,
    deps=[contact_scores],
    kinds={"salesforce", "sql"},
    description=(
        "Writes back to the CRM what Act-On owns: each score field gets its score sheet's "
        "score (score fields always push), and every CRM record whose email is on the opt-out "
        "list (`opt_outs`, which CRM pulls only ever add to) gets HasOptedOutOfEmail = true. "
        "Only changed values are written, through sObject Collections (200 records a call, "
        "per-record results). Every write, failed or not, lands in `crm_push_log`; a failed "
        "one is retried by the next push. Never deletes anything. `acton push --dry-run` "
        "shows the plan without writing."
    ),
)
def crm_push(
    context: AssetExecutionContext,
    crm: SalesforceResource,
    warehouse: WarehouseResource,
    mapping: MappingResource,
) -> MaterializeResult:
    record = StepRecord(warehouse.engine, context.run.run_id, "crm_push", "push")
    with one_line_failure(record):
        result = push_to_crm(
            engine=warehouse.engine,
            client=crm.client,
            mapping=mapping.load_for_run(context, warehouse.engine),
            run_id=context.run.run_id,
            progress=context.log.info,
        )
    by_field: dict[str, int] = {}
    for write in result.plan.writes:
        key = f"{write.object}.{write.field}"
        by_field[key] = by_field.get(key, 0) + 1
    failures = [o for o in result.outcomes if not o.success]
    return MaterializeResult(
        metadata={
            "writes_planned": len(result.plan.writes),
            "writes_accepted": result.run.rows_upserted,
            "writes_failed": len(failures),
            "by_field": MetadataValue.json(by_field),
            "first_errors": MetadataValue.json([o.error for o in failures[:5]]),
            "opt_outs_added": len(result.plan.new_opt_outs),
            "api_calls": result.run.api_calls,
        }
    )
