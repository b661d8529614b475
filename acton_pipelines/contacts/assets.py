"""``acton_contacts``: the Act-On Contacts list, and its quality checks."""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema,
    asset,
    asset_check,
)
from dagster._core.errors import DagsterInvalidPropertyError
from sqlalchemy import func, inspect, select

from acton_pipelines.contacts.build import build_acton_contacts
from acton_pipelines.contacts.values import SchemaBreak, conform_contacts
from acton_pipelines.crm.objects import CRM_OBJECTS
from acton_pipelines.runs import asset_groups as groups
from acton_pipelines.runs.partitions import sync_backfill_policy, sync_partitions
from acton_pipelines.runs.run_window import run_window
from acton_pipelines.runs.step_failures import StepRecord, one_line_failure
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource
from acton_pipelines.warehouse.tables import (
    acton_contact_rejects,
    acton_contacts_table,
    duplicate_emails,
)


@asset(
    group_name=groups.ACTON_CONTACTS,
    deps=[o.table for o in CRM_OBJECTS],
    kinds={"sql", "pandas"},
    partitions_def=sync_partitions,
    backfill_policy=sync_backfill_policy,
    description=(
        "Act-On Contacts: one row per unconverted CRM Lead and per CRM Contact, with one typed "
        "column per mapped field, `external_id` and `record_type`, the linked account (name, "
        "type), owner (name, email) and the account's opportunity summary. Values that do not "
        "fit their data type are set to NULL and quarantined in `acton_contact_rejects`. Each "
        "build takes in every CRM sync committed since its own last successful build, so a run "
        "that failed half-way is caught up by the next. A contact keeps its `contact_id` for "
        "life (changes of its CRM record are listed in `contact_id_changes`); CRM opt-outs join "
        "`opt_outs`; addresses several records share are reported in `duplicate_emails`."
    ),
)
def acton_contacts(
    context: AssetExecutionContext, warehouse: WarehouseResource, mapping: MappingResource
) -> MaterializeResult:
    window = run_window(context)
    record = StepRecord(warehouse.engine, context.run.run_id, "acton_contacts", window.mode)
    with one_line_failure(record):
        loaded = mapping.load_for_run(context, warehouse.engine)
        build = build_acton_contacts(
            engine=warehouse.engine,
            mapping=loaded,
            run_id=context.run.run_id,
            window=window,
            progress=context.log.info,
        )
    table = acton_contacts_table(loaded)
    schema = TableSchema(
        columns=[TableColumn(c.name, str(c.type), description=c.comment) for c in table.columns]
    )
    return MaterializeResult(
        metadata={
            "dagster/row_count": build.run.rows_upserted,
            "dagster/column_schema": schema,
            "rows_deleted": build.run.rows_deleted,
            "rejected_values": build.run.rows_rejected,
            "rejects_by_reason": MetadataValue.json(build.rejects_by_reason),
            "removed_as_duplicate_email": build.removed_as_duplicates,
            "duplicate_email_policy": loaded.duplicate_email_policy,
            "shared_emails": build.duplicates.emails,
            "crm_opt_outs_added": build.crm_opt_outs.added,
            "crm_opted_out_again": build.crm_opt_outs.opted_out_again,
            "contact_id_changes": build.contact_id_changes,
            "warehouse": warehouse.display_url,
        }
    )


@asset_check(
    asset=acton_contacts,
    description="Values quarantined in acton_contact_rejects (WARN: the contacts still load).",
)
def acton_contacts_rejects(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource
) -> AssetCheckResult:
    engine = warehouse.engine
    if acton_contact_rejects.name not in inspect(engine).get_table_names():
        return AssetCheckResult(passed=True, metadata={"rejected_values": 0})
    reason = acton_contact_rejects.c.reason
    with engine.connect() as conn:
        rows = conn.execute(select(reason, func.count()).group_by(reason)).all()
    by_reason = {str(r): int(n) for r, n in rows}
    total = sum(by_reason.values())
    return AssetCheckResult(
        passed=total == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{total} values quarantined; see acton_contact_rejects" if total else "no rejects"
        ),
        metadata={"rejected_values": total, "by_reason": MetadataValue.json(by_reason)},
    )


def _run_id(context: AssetCheckExecutionContext) -> str | None:
    """The check's run, or ``None`` for a check invoked directly (a test, a notebook)."""
    try:
        return context.run.run_id
    except DagsterInvalidPropertyError:
        return None


# How many stored rows the schema check conforms again: enough to catch a broken build, few
# enough that the check costs the same at any table size.
SCHEMA_SAMPLE_ROWS = 10_000


@asset_check(
    asset=acton_contacts,
    blocking=True,
    description=(
        "acton_contacts has every column the mapping needs and its rows pass the schema "
        "generated from the mapping (ERROR, blocks scores and segments)."
    ),
)
def acton_contacts_schema(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, mapping: MappingResource
) -> AssetCheckResult:
    engine = warehouse.engine
    loaded = mapping.load_for_run(context, engine)
    expected = acton_contacts_table(loaded)
    actual = {c["name"] for c in inspect(engine).get_columns(expected.name)}
    missing = [c.name for c in expected.columns if c.name not in actual]
    if missing:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            description=f"acton_contacts lacks columns {missing}; run a full sync to add them.",
            metadata={"missing_columns": MetadataValue.json(missing)},
        )
    # The rows this run wrote, which is what an incremental sync can have broken; a run that
    # wrote none (or a check run on its own) checks a sample of the table as it stands.
    run_id = _run_id(context)
    written = select(expected).where(expected.c.sync_run_id == run_id)
    with engine.connect() as conn:
        sample = pd.DataFrame()
        if run_id is not None:  # `== None` would select the rows with no run id instead
            rows = conn.execute(written.limit(SCHEMA_SAMPLE_ROWS)).mappings().all()
            sample = pd.DataFrame(rows)
        if sample.empty:
            everyone = select(expected).limit(SCHEMA_SAMPLE_ROWS)
            sample = pd.DataFrame(conn.execute(everyone).mappings().all())
    if sample.empty:
        return AssetCheckResult(passed=True, metadata={"rows_checked": 0})
    try:
        rejects = conform_contacts(sample.astype(object), loaded).rejects
    except SchemaBreak as error:
        return AssetCheckResult(
            passed=False, severity=AssetCheckSeverity.ERROR, description=str(error)
        )
    return AssetCheckResult(
        passed=rejects.empty,
        severity=AssetCheckSeverity.ERROR,
        description=(
            "rows conform to the mapping's schema"
            if rejects.empty
            else f"{len(rejects)} stored values do not conform to the mapping's schema"
        ),
        metadata={"rows_checked": len(sample), "nonconforming_values": len(rejects)},
    )


@asset_check(
    asset=acton_contacts,
    description=(
        "Email addresses shared by more than one CRM record or Act-On contact (a Lead and a "
        "Contact, usually), as the last build reported them in `duplicate_emails`. WARN: kept "
        "or resolved as `duplicate_email_policy` says."
    ),
)
def acton_contacts_duplicate_emails(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, mapping: MappingResource
) -> AssetCheckResult:
    engine = warehouse.engine
    policy = mapping.load_for_run(context, engine).duplicate_email_policy
    counts = {"shared_emails": 0, "kept": 0, "not_kept": 0}
    if duplicate_emails.name in inspect(engine).get_table_names():
        report = duplicate_emails.c
        with engine.connect() as conn:
            counts["shared_emails"] = conn.execute(
                select(func.count(report.email.distinct()))
            ).scalar_one()
            for kept, rows in conn.execute(select(report.kept, func.count()).group_by(report.kept)):
                counts["kept" if kept else "not_kept"] = int(rows)
    shared = counts["shared_emails"]
    return AssetCheckResult(
        passed=shared == 0,
        severity=AssetCheckSeverity.WARN,
        description=(
            f"{shared} email addresses belong to more than one CRM record or contact "
            f"({policy}: {counts['kept']} kept, {counts['not_kept']} not kept); "
            "see duplicate_emails"
        ),
        metadata={**counts, "policy": policy},
    )
