"""Table definitions: the analysts' interface (DESIGN §5).

The CRM mirror tables and ``acton_contacts`` take their columns from the CRM describe and from
the mapping, so they are built by functions; the others are fixed.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.types import TypeEngine

from acton_pipelines.mapping.models import BUILTIN_COLUMNS, DataType, Mapping

metadata = MetaData()


def _audit_columns() -> list[Column]:
    # Which run last wrote the row; a full sync deletes rows it did not write (gone from the CRM).
    return [
        Column("sync_run_id", Text, nullable=True),
        Column("synced_at", DateTime(timezone=True), nullable=True),
    ]


acton_contact_rejects = Table(
    "acton_contact_rejects",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("column", Text, primary_key=True),
    Column("field", Text, nullable=False),
    Column("value", Text),
    Column("reason", Text, nullable=False),
    Column("external_id", Text),
    Column("record_type", Text),
    Column("sync_run_id", Text),
    Column("rejected_at", DateTime(timezone=True)),
)

contact_scores = Table(
    "contact_scores",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("score_sheet", Text, primary_key=True),
    Column("score", Integer, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("sync_run_id", Text),
)

segments = Table(
    "segments",
    metadata,
    Column("segment", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("description", Text),
    Column("member_count", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True)),
    Column("sync_run_id", Text),
)

segment_members = Table(
    "segment_members",
    metadata,
    Column("segment", Text, primary_key=True),
    Column("contact_id", Text, primary_key=True),
    Column("matched_rule", Text),
    Column("sync_run_id", Text),
    Index("ix_segment_members_contact_id", "contact_id"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("object", Text, primary_key=True),
    Column("mode", Text, nullable=False),
    Column("window_start", DateTime(timezone=True)),
    Column("window_end", DateTime(timezone=True)),
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("rows_upserted", BigInteger, nullable=False, default=0),
    Column("rows_deleted", BigInteger, nullable=False, default=0),
    Column("rows_rejected", BigInteger, nullable=False, default=0),
    # CRM steps: the API requests the CRM answered for this step (retries included), and the
    # org's usage ("N/M": used in the rolling 24 hours / daily allocation) it last reported.
    Column("api_calls", BigInteger, nullable=False, default=0),
    Column("api_usage", Text),
    Column("status", Text, nullable=False),
    # A note on how the run went (e.g. why an incremental sync read everything instead).
    Column("message", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    # Why a failed run failed, in one line a user can act on.
    Column("error", Text),
    # CRM objects: the newest SystemModstamp this sync has read (the next incremental run of
    # the schedule reads from here, minus the lookback).
    Column("high_water_mark", DateTime(timezone=True)),
    # Commit order: taken from sync_sequence in the transaction that writes the row, so a row
    # with a higher seq was always committed after every row with a lower one.
    Column("seq", BigInteger),
    # Derived tables (acton_contacts, contact_scores, segment_members): the seq of the newest
    # upstream sync_runs row this build took in. The next build catches up from there.
    Column("consumed_through", BigInteger),
    # CRM objects: the CRM fields the sync read (comma-separated). A later sync whose mapping
    # reads a field the object's last successful sync did not read reads the object in full.
    Column("fields_read", Text),
    # CRM objects: records read again whose mirrored values had not changed (our own pushes
    # move SystemModstamp): kept as they were, so nothing downstream treats them as changed.
    Column("rows_unchanged", BigInteger),
    Index("ix_sync_runs_object_seq", "object", "seq"),
)

# One counter per sequence; sync_runs.seq comes from the "sync_runs" row.
sync_sequence = Table(
    "sync_sequence",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)


sync_deletions = Table(
    "sync_deletions",
    metadata,
    Column("object", Text, primary_key=True),
    Column("record_id", Text, primary_key=True),
    # The record's Account (Contacts, Opportunities): its Act-On contacts need rebuilding.
    Column("account_id", Text),
    Column("deleted_at", DateTime(timezone=True)),
    # How the sync learned of it: deleted in the CRM (an incremental sync saw IsDeleted), or
    # missing from a full sync (deleted, merged or purged from the recycle bin).
    Column("detected_by", Text, nullable=False),
    Column("sync_run_id", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_sync_deletions_sync_run_id", "sync_run_id"),
)

opt_outs = Table(
    "opt_outs",
    metadata,
    Column("email", Text, primary_key=True),
    # False once the address opted back in on the Act-On side (an opt-ins import); the push
    # then sends HasOptedOutOfEmail = false. CRM pulls only ever add or re-confirm true.
    Column("opted_out", Boolean, nullable=False, default=True),
    # Where the address was first seen opted out: "crm" (HasOptedOutOfEmail) or an import file.
    Column("source", Text, nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False),
    Column("changed_at", DateTime(timezone=True)),
    Column("sync_run_id", Text),
    # For source "crm": the CRM record whose HasOptedOutOfEmail put the address on the list.
    Column("crm_object", Text),
    Column("crm_record_id", Text),
)

_AUTO_ID = BigInteger().with_variant(Integer(), "sqlite")

acton_import_files = Table(
    "acton_import_files",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("file_name", Text, nullable=False),
    # contacts, opt_outs, opt_ins, edits, activity
    Column("kind", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("rows_applied", BigInteger, nullable=False),
    Column("rows_rejected", BigInteger, nullable=False),
    # applied: every row applied; rejected: nothing applied (see acton_import_rejects)
    Column("status", Text, nullable=False),
    Column("message", Text),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("sync_run_id", Text),
)

acton_import_rejects = Table(
    "acton_import_rejects",
    metadata,
    Column("sha256", Text, primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("column", Text, primary_key=True),
    Column("file_name", Text, nullable=False),
    Column("value", Text),
    Column("reason", Text, nullable=False),
    Column("sync_run_id", Text),
)

acton_activity = Table(
    "acton_activity",
    metadata,
    Column("id", _AUTO_ID, primary_key=True),
    Column("contact_id", Text, nullable=False),
    Column("email", Text),
    # email_open, email_click, web_visit, form_submit
    Column("activity", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("asset", Text),
    Column("source_file", Text),
    Column("line", Integer),
    Index("ix_acton_activity_contact_id", "contact_id"),
)

acton_field_edits = Table(
    "acton_field_edits",
    metadata,
    Column("id", _AUTO_ID, primary_key=True),
    Column("contact_id", Text, nullable=False),
    Column("email", Text),
    Column("field", Text, nullable=False),
    Column("column", Text, nullable=False),
    Column("value", Text),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("source_file", Text),
    Column("line", Integer),
    # pending, pushed, skipped_by_policy, superseded (a later edit, or the CRM changed this
    # field since the edit), failed
    Column("push_status", Text, nullable=False, default="pending"),
    Column("pushed_at", DateTime(timezone=True)),
    # The CRM's value of this field when the edit was recorded (as mirrored, in text): the
    # push sends the edit only while the CRM still holds it (three-way, per field).
    Column("crm_value_at_edit", Text),
    # Why the edit was not pushed (skipped_by_policy, superseded), in words.
    Column("status_reason", Text),
    Index("ix_acton_field_edits_contact_id", "contact_id"),
)

crm_create_requests = Table(
    "crm_create_requests",
    metadata,
    Column("contact_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("source_file", Text),
    # pending, created, failed
    Column("status", Text, nullable=False, default="pending"),
    Column("crm_object", Text),
    Column("crm_id", Text),
    Column("error", Text),
    # Create attempts so far; after ACTON_CREATE_ATTEMPTS failed ones the request is failed.
    Column("attempts", Integer, default=0),
    Column("last_attempt_at", DateTime(timezone=True)),
)

crm_push_log = Table(
    "crm_push_log",
    metadata,
    Column("id", _AUTO_ID, primary_key=True),
    Column("object", Text, nullable=False),
    Column("record_id", Text, nullable=False),
    Column("contact_id", Text),
    Column("field", Text, nullable=False),
    # The CRM's value before the write (as last read), and the value sent.
    Column("old_value", Text),
    Column("new_value", Text),
    # score, opt-out, opt-in, edit, create
    Column("reason", Text),
    # The longer why: which score sheet, which Act-On field, the superseding CRM value...
    Column("detail", Text),
    # sent (recorded before the call; stays so if the push was killed before the answer),
    # success, failed, superseded (an edit the CRM changed since; nothing sent)
    Column("outcome", Text, nullable=False),
    Column("error", Text),
    Column("sync_run_id", Text, nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("answered_at", DateTime(timezone=True)),
    Index("ix_crm_push_log_record_id", "record_id"),
)

duplicate_emails = Table(
    "duplicate_emails",
    metadata,
    # One row per CRM record (or Act-On contact) whose address another one shares, rebuilt by
    # every acton_contacts build: which was kept as the Act-On contact and why.
    Column("email", Text, primary_key=True),
    Column("contact_id", Text, primary_key=True),
    Column("object", Text),
    Column("record_id", Text),
    Column("kept", Boolean, nullable=False),
    Column("kept_contact_id", Text),
    Column("reason", Text, nullable=False),
    Column("policy", Text, nullable=False),
    Column("sync_run_id", Text),
    Column("recorded_at", DateTime(timezone=True)),
)

contact_id_changes = Table(
    "contact_id_changes",
    metadata,
    # Every change of a contact's CRM identity. contact_id never changes for a contact; when
    # two contacts become one (a Lead converted into an existing Contact), old_contact_id is
    # the one that ends, and its scores, memberships, activity and edits move to new_contact_id.
    Column("id", _AUTO_ID, primary_key=True),
    Column("old_contact_id", Text, nullable=False),
    Column("new_contact_id", Text, nullable=False),
    Column("old_object", Text),
    Column("old_record_id", Text),
    Column("new_object", Text),
    Column("new_record_id", Text),
    # created_in_crm, lead_converted, converted_into_existing_contact
    Column("reason", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("sync_run_id", Text),
    Index("ix_contact_id_changes_old_contact_id", "old_contact_id"),
)

crm_fields = Table(
    "crm_fields",
    metadata,
    # The CRM's describe of each mirrored object's fields, refreshed by every CRM sync: what
    # import validation checks a "create in CRM" against (required fields) without a CRM call.
    Column("object", Text, primary_key=True),
    Column("field", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("nillable", Boolean),
    Column("createable", Boolean),
    Column("defaulted_on_create", Boolean),
    Column("external_id", Boolean),
    Column("described_at", DateTime(timezone=True)),
)

_CRM_TYPES: dict[str, type[TypeEngine]] = {
    "boolean": Boolean,
    "int": BigInteger,
    "double": Float,
    "currency": Float,
    "percent": Float,
    "date": Date,
    "datetime": DateTime,
}

_ACTON_TYPES: dict[DataType, type[TypeEngine]] = {
    DataType.BOOLEAN: Boolean,
    DataType.DATE: Date,
    DataType.DATETIME: DateTime,
    DataType.TEXT: Text,
    DataType.NUMBER: Float,
    DataType.SCORE: Integer,
    DataType.EMAIL: Text,
    DataType.MULTI_TEXT: Text,
}


def sql_type(data_type: DataType) -> TypeEngine:
    """The column type that stores an Act-On data type (Multi-Text: ``;``-separated text)."""
    type_class = _ACTON_TYPES[data_type]
    return DateTime(timezone=True) if type_class is DateTime else type_class()


def crm_column_name(api_name: str) -> str:
    """Mirror column of a CRM field: lower case, a relationship hop's dot as ``__``."""
    return api_name.lower().replace(".", "__")


def crm_table(name: str, fields: Iterable[tuple[str, str]]) -> Table:
    """A CRM mirror table (``crm_leads``...) from ``(api_name, describe type)`` pairs."""
    columns = []
    for api_name, crm_type in fields:
        column = crm_column_name(api_name)
        type_class = _CRM_TYPES.get(crm_type, Text)
        column_type = DateTime(timezone=True) if type_class is DateTime else type_class()
        columns.append(Column(column, column_type, primary_key=column == "id"))
    return Table(name, MetaData(), *columns, *_audit_columns())


def acton_contacts_table(mapping: Mapping) -> Table:
    """``acton_contacts``: the builtin columns, one column per mapped field, audit columns."""
    columns: list[Column] = [Column("contact_id", Text, primary_key=True)]
    for name, data_type in BUILTIN_COLUMNS.items():
        if name != "contact_id":
            columns.append(Column(name, sql_type(data_type)))
    taken = {c.name for c in columns}
    for field in mapping.fields:
        if field.column not in taken:
            columns.append(Column(field.column, sql_type(field.type)))
            taken.add(field.column)
    columns.append(Column("updated_at", DateTime(timezone=True)))
    table = Table("acton_contacts", MetaData(), *columns, *_audit_columns())
    # (external_id, contact_id): the build looks up a CRM record's contact_id with min(); on the
    # external_id index alone PostgreSQL answers min() by walking the primary key until a row
    # matches (18 ms a lookup at 100k contacts, 30 s an incremental build), on this one it reads
    # one index entry. Warehouses made before keep their old external_id index beside it.
    Index("ix_acton_contacts_external_id_contact_id", table.c.external_id, table.c.contact_id)
    Index("ix_acton_contacts_record_type", table.c.record_type)
    if "email" in table.c:
        Index("ix_acton_contacts_email", table.c.email)
    return table


# The mapping each run used: its files, read once at the run's first step (so an edit made
# while the run is in flight waits for the next run), and which version each run took.
mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column("mapping_hash", Text, primary_key=True),
    # {"contact_mapping.yaml": "<text>", ...}: the files exactly as they were read.
    Column("files", Text, nullable=False),
    Column("source_dir", Text),
    Column("first_run_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

run_mappings = Table(
    "run_mappings",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("mapping_hash", Text, nullable=False),
    Column("adopted_at", DateTime(timezone=True), nullable=False),
)


run_failures = Table(
    "run_failures",
    metadata,
    # One row per failed Dagster run, written by the run_failure_alerts sensor (upsert by run).
    Column("run_id", Text, primary_key=True),
    Column("job_name", Text, nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=False),
    # One line: "step: cause" per distinct cause (a Failure's description or the innermost
    # error's message), never a stack trace.
    Column("cause", Text, nullable=False),
    # The failed steps, comma-separated; empty when the run failed outside its steps.
    Column("step_keys", Text),
    # JSON object of the run's acton/* and partition tags (mode, partition range, ...).
    Column("tags", Text),
    # Whether the alert webhook (ACTON_ALERT_WEBHOOK_URL) accepted the alert; alert_error says
    # why not (the webhook's scheme and host only, never its URL).
    Column("alerted", Boolean, nullable=False, default=False),
    Column("alert_error", Text),
    Index("ix_run_failures_failed_at", "failed_at"),
)
