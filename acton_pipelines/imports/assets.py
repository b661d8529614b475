"""``acton_imports``: Act-On-side changes from the CSV files of the imports folder."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from acton_pipelines import settings
from acton_pipelines.contacts.assets import acton_contacts
from acton_pipelines.imports.build import APPLIED, REJECTED, SKIPPED, build_imports
from acton_pipelines.runs import asset_groups as groups
from acton_pipelines.runs.step_failures import StepRecord, one_line_failure
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource

DESCRIPTION = """\
Act-On-side changes dropped as CSV files into the imports folder (`ACTON_IMPORTS_DIR`, default \
`ACTON_HOME/imports/`), each file processed once (identified by the sha256 of its bytes: a \
renamed copy is skipped), in name order. The name says what a file holds:

- `contacts*.csv`: form submissions and list imports. `email`, any mapped field but a score, by \
destination name (`Job Title`) or column name (`job_title`; an empty cell leaves the field as it \
is), optional `create_in_crm` (true/false, yes/no, \
1/0) and `submitted_at` (ISO 8601; default: the import time). An address with no Act-On contact \
becomes an Act-On-only contact (`acton:<email>`, segment Unaffiliated); one that has contacts \
updates them all as field edits.
- `opt_outs*.csv`: `email`, optional `opted_out_at`. `opt_ins*.csv`: `email`, optional \
`opted_in_at`. Any address, contact or not; the opt-out list keeps the most recent change.
- `edits*.csv`: `email`, `field` (destination name), `value` (empty clears), `changed_at`.
- `activity*.csv`: `email`, `activity` (email_open, email_click, web_visit, form_submit), \
`occurred_at`, optional `asset`.

Field edits are recorded in `acton_field_edits` with the CRM's value of the field at that \
moment (`crm_value_at_edit`): conflicts with the CRM are decided per field, three-way (the edit \
stands while the CRM still holds that value; once the CRM changes that field, the CRM wins). \
Between Act-On edits of one field the most recent wins. A `create_in_crm` row must give (or its \
contact already hold) every field the CRM requires on a new Lead (`crm_fields`).

**A half-bad file never half-applies silently**: every row is validated first, and a file with \
any problem (unknown name or column, malformed email, value that does not fit its data type, \
bad timestamp, unknown activity, edit or activity of an address with no contact, \
`create_in_crm` for a contact already in the CRM) applies nothing. It is recorded as `rejected` \
in `acton_import_files`, with every problem in `acton_import_rejects` (line as in the file, \
header = line 1; column; value; reason): fix the file and drop it again. Once a file's \
transaction commits it moves to `processed/` (applied, or already imported) or `rejected/` \
(with `<name>.errors.txt`, one reason per line). A valid file is applied \
in one transaction with its `acton_import_files` row. The contacts a run touched are then \
rescored and placed in segments."""


@asset(
    group_name=groups.ACTON_CONTACTS,
    deps=[acton_contacts],
    kinds={"sql", "csv"},
    description=DESCRIPTION,
)
def acton_imports(
    context: AssetExecutionContext, warehouse: WarehouseResource, mapping: MappingResource
) -> MaterializeResult:
    folder = settings.imports_dir()
    record = StepRecord(warehouse.engine, context.run.run_id, "acton_imports", "import")
    with one_line_failure(record):
        summary = build_imports(
            engine=warehouse.engine,
            mapping=mapping.load_for_run(context, warehouse.engine),
            folder=folder,
            run_id=context.run.run_id,
            progress=context.log.info,
        )
    files = {f.name: f.status for f in summary.files if f.status != SKIPPED}
    return MaterializeResult(
        metadata={
            "files_applied": summary.count(APPLIED),
            "files_rejected": summary.count(REJECTED),
            "files_already_imported": summary.count(SKIPPED),
            "rows_applied": summary.rows_applied,
            "rows_rejected": summary.rows_rejected,
            "rejects_by_reason": MetadataValue.json(summary.rejects_by_reason),
            "files": MetadataValue.json(files),
            "contacts_touched": (summary.contacts_run.rows_upserted if summary.contacts_run else 0),
            "segment_sizes": MetadataValue.json(summary.segment_sizes),
            "imports_dir": str(folder),
            "warehouse": warehouse.display_url,
        }
    )
