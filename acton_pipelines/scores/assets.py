"""``contact_scores``: every contact scored with every score sheet."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from acton_pipelines.contacts.assets import acton_contacts
from acton_pipelines.runs import asset_groups as groups
from acton_pipelines.runs.partitions import sync_backfill_policy, sync_partitions
from acton_pipelines.runs.run_window import run_window
from acton_pipelines.runs.step_failures import StepRecord, one_line_failure
from acton_pipelines.scores.build import build_contact_scores
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource


@asset(
    group_name=groups.SCORING,
    deps=[acton_contacts],
    kinds={"sql", "pandas"},
    partitions_def=sync_partitions,
    backfill_policy=sync_backfill_policy,
    description=(
        "One score per Act-On contact per score sheet (`score_sheets.yaml`): the points of the "
        "profile rules the contact matches, an integer clamped to 0..999999. Score fields "
        "bound to a sheet are pushed to the CRM from here."
    ),
)
def contact_scores(
    context: AssetExecutionContext, warehouse: WarehouseResource, mapping: MappingResource
) -> MaterializeResult:
    window = run_window(context)
    record = StepRecord(warehouse.engine, context.run.run_id, "contact_scores", window.mode)
    with one_line_failure(record):
        run, summary = build_contact_scores(
            engine=warehouse.engine,
            mapping=mapping.load_for_run(context, warehouse.engine),
            run_id=context.run.run_id,
            window=window,
            progress=context.log.info,
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": run.rows_upserted,
            "contacts_scored": run.rows_read,
            "by_score_sheet": MetadataValue.json(summary),
            "rows_deleted": run.rows_deleted,
        }
    )
