"""The CRM mirror: one asset per CRM object (``crm_leads``, ``crm_contacts``, ...)."""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
)

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.extract import field_types
from acton_pipelines.crm.objects import CRM_OBJECTS, CrmObject, fields_to_read
from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.crm.sync import sync_crm_object
from acton_pipelines.mapping import check_against_crm, with_canonical_crm_fields
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.runs import asset_groups as groups
from acton_pipelines.runs.partitions import sync_backfill_policy, sync_partitions
from acton_pipelines.runs.run_window import allows_mass_delete, run_window
from acton_pipelines.runs.step_failures import StepRecord, one_line_failure
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource
from acton_pipelines.warehouse.tables import crm_column_name

# The objects a mapping can reach: the two it maps and the ones its hops join.
MAPPED_OBJECTS = ("Lead", "Contact", "Account", "User")


def _checked_mapping(
    context: AssetExecutionContext,
    mapping: MappingResource,
    crm: SalesforceResource,
    warehouse: WarehouseResource,
) -> Mapping:
    """The run's mapping, validated on its own and against the CRM's describe."""
    loaded = mapping.load_for_run(context, warehouse.engine)
    describes = {name: crm.client.describe(name) for name in MAPPED_OBJECTS}
    problems = check_against_crm(loaded, describes)
    if problems:
        listed = "\n".join(str(p) for p in problems)
        raise Failure(description=f"The mapping does not fit the CRM:\n{listed}")
    # Records come back keyed by the CRM's spelling of each field name.
    return with_canonical_crm_fields(loaded, describes)


def api_budget_metadata(api_calls: int, client: CrmClient) -> dict[str, Any]:
    """The API budget a CRM step shows on its materialization: its calls and, as numbers
    (plotted across runs), the org's remaining daily calls, with the usage it comes from."""
    metadata: dict[str, Any] = {"api_calls": MetadataValue.int(api_calls)}
    if client.api_remaining is not None:
        metadata["api_remaining"] = MetadataValue.int(client.api_remaining)
    metadata["api_usage"] = MetadataValue.text(client.api_usage or "unknown")
    return metadata


def crm_mirror_asset(crm_object: CrmObject) -> AssetsDefinition:
    """The asset mirroring one CRM object into its warehouse table."""

    @asset(
        name=crm_object.table,
        group_name=groups.CRM,
        kinds={"salesforce", "sql"},
        partitions_def=sync_partitions,
        backfill_policy=sync_backfill_policy,
        description=(
            f"CRM {crm_object.name} records mirrored into `{crm_object.table}`: the fields the "
            "mapping reads plus those needed for linking, conversions and opt-outs. A partition "
            "is a UTC day of changes (SystemModstamp); an incremental run reads its days and "
            "removes records deleted in the CRM, a full sync (mode tag full, on today's partition) "
            "reads every "
            "record and removes rows whose record is gone. Deletions are listed in "
            "`sync_deletions`. A sync that would delete more than ACTON_MAX_DELETE_FRACTION "
            "(default 20%) of the table stops without deleting unless the run carries "
            "acton/allow_mass_delete=true. A sync that reads a field its object's last sync did "
            "not (the mapping changed) reads that object in full. Records read again with "
            "every mirrored value unchanged (our own pushes move their stamps) keep their "
            "sync_run_id. Each sync also refreshes the object's describe in `crm_fields`."
        ),
    )
    def _mirror(
        context: AssetExecutionContext,
        crm: SalesforceResource,
        warehouse: WarehouseResource,
        mapping: MappingResource,
    ) -> MaterializeResult:
        window = run_window(context)
        record = StepRecord(warehouse.engine, context.run.run_id, crm_object.table, window.mode)
        with one_line_failure(record):
            # The step's describes (the mapping check's included) count for its sync_runs row.
            calls_before = crm.client.api_calls
            checked = _checked_mapping(context, mapping, crm, warehouse)
            fields = fields_to_read(crm_object, checked)
            names = {crm_object.name, *MAPPED_OBJECTS}
            describes = {name: crm.client.describe(name) for name in names}
            types = field_types(fields, describes, crm_object.name)
            run = sync_crm_object(
                client=crm.client,
                engine=warehouse.engine,
                crm_object=crm_object,
                types=types,
                window=window,
                run_id=context.run.run_id,
                progress=context.log.info,
                allow_mass_delete=allows_mass_delete(context.run.tags),
                describe=describes[crm_object.name],
                api_calls_before=calls_before,
            )
        schema = TableSchema(columns=[TableColumn(crm_column_name(f), t) for f, t in types.items()])
        return MaterializeResult(
            metadata={
                "dagster/row_count": run.rows_upserted,
                "dagster/column_schema": schema,
                "mode": run.mode,
                "window": f"{run.window_start} .. {run.window_end}" if run.window_start else "all",
                "rows_read": run.rows_read,
                "rows_deleted": run.rows_deleted,
                "rows_unchanged": run.rows_unchanged or 0,
                **api_budget_metadata(run.api_calls, crm.client),
                "table": MetadataValue.text(crm_object.table),
                "warehouse": warehouse.display_url,
            }
        )

    return _mirror


crm_assets = [crm_mirror_asset(o) for o in CRM_OBJECTS]
