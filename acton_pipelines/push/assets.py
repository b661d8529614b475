"""``crm_push``: scores, opt-out flags, Act-On edits and new Leads written back to the CRM,
every write logged as sent and as answered."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from acton_pipelines.crm.assets import api_budget_metadata
from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.push.build import push_to_crm
from acton_pipelines.push.plan import PUSHED, SKIPPED_BY_POLICY, SUPERSEDED
from acton_pipelines.runs import asset_groups as groups
from acton_pipelines.runs.step_failures import StepRecord, one_line_failure
from acton_pipelines.scores.assets import contact_scores
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource


@asset(
    group_name=groups.PUSH,
    deps=[contact_scores],
    kinds={"salesforce", "sql"},
    description=(
        "Writes back to the CRM what Act-On owns, only where the CRM (as the mirror holds it: "
        "the last pull plus earlier pushes) differs: each score field gets its score sheet's "
        "score (score fields always push); every record whose address is on `opt_outs` gets "
        "HasOptedOutOfEmail = true, or false once the address opted back in on the Act-On "
        "side (the pull keeps the list; the push only sends it); Act-On edits go to existing "
        "records where `allow_push` allows, decided per field, three-way: an edit is sent "
        "while the CRM still holds the value it was made against, and superseded once the "
        "CRM changed that field (changes to other fields never matter); `create_in_crm` "
        "contacts become Leads through an upsert on the external-ID field "
        "ActOn_Contact_Id__c (ACTON_CRM_CONTACT_ID_FIELD) keyed by the contact_id, so a "
        "retried create never makes a second Lead (a refused one "
        "is tried ACTON_CREATE_ATTEMPTS times, then left failed). Writes go through sObject "
        "Collections (200 records a call) or Bulk API 2.0 above 2,000 records; a write to a "
        "Lead converted since the pull goes to its Contact. Each batch is logged in "
        "`crm_push_log` as sent before its call and as answered (with its effects) after, "
        "so a killed push loses nothing it heard back; a failed write is retried by the next "
        "push. Never deletes anything. `acton push --dry-run` shows the plan without writing."
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
    failures = [o.error for o in result.outcomes if not o.success]
    failures += [o.error for o in result.created.values() if o.record_id is None]
    decisions = result.plan.not_pushed
    return MaterializeResult(
        metadata={
            "writes_planned": len(result.plan.writes),
            "writes_accepted": sum(o.success for o in result.outcomes),
            "writes_failed": sum(not o.success for o in result.outcomes),
            "writes_by_reason": MetadataValue.json(result.writes_by_reason()),
            "by_field": MetadataValue.json(by_field),
            "edits_superseded_by_crm": len(result.plan.superseded_by_crm),
            "edits_superseded_by_later_edit": sum(
                d.status == SUPERSEDED and d.unsent is None for d in decisions
            ),
            "edits_skipped_by_policy": sum(d.status == SKIPPED_BY_POLICY for d in decisions),
            "edits_already_in_crm": sum(d.status == PUSHED for d in decisions),
            "creates_made": sum(o.record_id is not None for o in result.created.values()),
            "creates_failed": sum(o.record_id is None for o in result.created.values()),
            "first_errors": MetadataValue.json(failures[:5]),
            **api_budget_metadata(result.run.api_calls, crm.client),
        }
    )
