"""``segments`` and ``segment_members``: the default and custom segments."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from acton_pipelines.contacts.assets import acton_contacts
from acton_pipelines.runs import asset_groups as groups
from acton_pipelines.runs.partitions import sync_backfill_policy, sync_partitions
from acton_pipelines.runs.run_window import run_window
from acton_pipelines.runs.step_failures import StepRecord, one_line_failure
from acton_pipelines.segments.build import build_segments
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource


@asset(
    group_name=groups.SEGMENTATION,
    deps=[acton_contacts],
    kinds={"sql", "pandas"},
    partitions_def=sync_partitions,
    backfill_policy=sync_backfill_policy,
    description=(
        "The seven default segments (All Act-On Contacts, All Leads, All Contacts, Affiliated "
        "with Leads / Prospects / Customers, Unaffiliated; affiliation rules in "
        "`segments.yaml`) and the custom rule segments. `segments` has one row per segment "
        "with its size; `segment_members` one row per member with the rule that matched."
    ),
)
def segments(
    context: AssetExecutionContext, warehouse: WarehouseResource, mapping: MappingResource
) -> MaterializeResult:
    window = run_window(context)
    record = StepRecord(warehouse.engine, context.run.run_id, "segment_members", window.mode)
    with one_line_failure(record):
        run, sizes = build_segments(
            engine=warehouse.engine,
            mapping=mapping.load_for_run(context, warehouse.engine),
            run_id=context.run.run_id,
            window=window,
            progress=context.log.info,
        )
    return MaterializeResult(
        metadata={
            "dagster/row_count": len(sizes),
            "memberships": run.rows_upserted,
            "segment_sizes": MetadataValue.json(sizes),
        }
    )
