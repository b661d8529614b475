"""Many record writes in one SQLite transaction, each with its own result.

sObject Collections and Bulk API 2.0 ingest jobs both write many records at once and report a
result per record instead of failing the whole request. Each record goes through the
single-record logic of :mod:`records` (validation, read-only fields, converted Leads, stamps)
inside its own savepoint, so a record that fails leaves nothing behind while the others stand.
With ``all_or_none`` any failure rolls back every record, as Salesforce's AllOrNone header does.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from crm_sandbox import records
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.ids import is_valid_id, to_18
from crm_sandbox.objects import FieldDef, ObjectDef

_SAVEPOINT = "sandbox_record_write"


class WriteOperation(StrEnum):
    """What a batch does to each of its records (Salesforce's operation names)."""

    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"


def record_error(
    status_code: str, message: str, fields: list[str] | None = None
) -> SalesforceApiError:
    """A per-record failure (the HTTP status is irrelevant: it never becomes a response)."""
    return SalesforceApiError(400, status_code, message, fields)


ROLLED_BACK = record_error(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using "
    "AllOrNone header",
)


@dataclass(frozen=True)
class RecordWrite:
    """One record to write: its object, its Id (updates only) and its fields as the API sent them.

    ``fields`` holds API values (JSON values, or CSV text); ``None`` clears a field. An upsert
    names its ``upsert_key`` field, whose value is among the ``fields``.
    """

    obj: ObjectDef
    fields: Mapping[str, Any] = field(default_factory=dict)
    record_id: str | None = None
    upsert_key: FieldDef | None = None

    def key_value(self) -> Any:
        """The value of the upsert key among the fields (None when absent)."""
        assert self.upsert_key is not None
        wanted = self.upsert_key.name.lower()
        return next((v for name, v in self.fields.items() if name.lower() == wanted), None)


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one record: its Id when known, and the error when it failed."""

    record_id: str | None
    error: SalesforceApiError | None = None
    created: bool = False

    @property
    def success(self) -> bool:
        """Whether the record was written (and stays written)."""
        return self.error is None


def write_records(
    conn: sqlite3.Connection,
    operation: WriteOperation,
    writes: Sequence[RecordWrite],
    *,
    now: datetime,
    all_or_none: bool = False,
) -> list[WriteResult]:
    """Apply ``writes`` in order within the connection's transaction; one result per write.

    Nothing is committed here: the caller's connection context commits the whole batch at once
    (or rolls it back if something other than a record's own failure goes wrong).
    """
    if not conn.in_transaction:
        # Savepoints need an enclosing transaction, or each RELEASE would commit on its own.
        conn.execute("BEGIN")
    repeated = _repeated_keys(writes) if operation is WriteOperation.UPSERT else set()
    results = [
        _repeated_key_result(write)
        if _key_of(write) in repeated
        else _write_one(conn, operation, write, now)
        for write in writes
    ]
    if all_or_none and not all(result.success for result in results):
        conn.rollback()
        return [
            result if not result.success else WriteResult(_kept_id(operation, result), ROLLED_BACK)
            for result in results
        ]
    return results


def _kept_id(operation: WriteOperation, result: WriteResult) -> str | None:
    # A rolled-back insert has no record any more; a rolled-back update's record still exists.
    updated = operation is WriteOperation.UPDATE
    upsert_updated = operation is WriteOperation.UPSERT and not result.created
    return result.record_id if updated or upsert_updated else None


def _key_of(write: RecordWrite) -> str | None:
    """How an upsert's key value compares with others in the batch (case-insensitively)."""
    if write.upsert_key is None:
        return None
    value = write.key_value()
    return None if value is None or value == "" else str(value).lower()


def _repeated_keys(writes: Sequence[RecordWrite]) -> set[str]:
    """Key values more than one upsert of the batch carries: Salesforce refuses them all."""
    counts = Counter(key for key in map(_key_of, writes) if key is not None)
    return {key for key, n in counts.items() if n > 1}


def _repeated_key_result(write: RecordWrite) -> WriteResult:
    assert write.upsert_key is not None
    error = record_error(
        "DUPLICATE_VALUE",
        f"Duplicate external id specified: {write.key_value()}",
        [write.upsert_key.name],
    )
    return WriteResult(None, error)


def _write_one(
    conn: sqlite3.Connection, operation: WriteOperation, write: RecordWrite, now: datetime
) -> WriteResult:
    conn.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        if operation is WriteOperation.INSERT:
            result = WriteResult(_insert(conn, write, now), created=True)
        elif operation is WriteOperation.UPSERT:
            upserted = _upsert(conn, write, now)
            result = WriteResult(upserted.record_id, created=upserted.created)
        else:
            result = WriteResult(_update(conn, write, now))
    except SalesforceApiError as error:
        conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
        result = WriteResult(_reported_id(operation, write), error)
    conn.execute(f"RELEASE {_SAVEPOINT}")
    return result


def _reported_id(operation: WriteOperation, write: RecordWrite) -> str | None:
    # A rejected update still names its record, as Salesforce's SaveResult does.
    if operation is WriteOperation.UPDATE and write.record_id and is_valid_id(write.record_id):
        return to_18(write.record_id)
    return None


def _insert(conn: sqlite3.Connection, write: RecordWrite, now: datetime) -> str:
    if write.record_id:
        raise record_error("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
    return records.create_record(conn, write.obj, write.fields, now)


def _upsert(conn: sqlite3.Connection, write: RecordWrite, now: datetime) -> records.Upserted:
    key = write.upsert_key
    assert key is not None
    if write.record_id:
        raise record_error("INVALID_FIELD", "cannot specify Id in an upsert call", ["Id"])
    return records.upsert_record(conn, write.obj, key, write.key_value(), write.fields, now)


def _update(conn: sqlite3.Connection, write: RecordWrite, now: datetime) -> str:
    record_id = _update_target(write)
    try:
        records.update_record(conn, write.obj, record_id, write.fields, now)
    except SalesforceApiError as error:
        if error.error_code != "NOT_FOUND":
            raise
        # Ids are never reused: a well-formed Id of the right object that names no live record
        # names a deleted one (possibly purged since), which is how Salesforce's DML reports it.
        raise record_error("ENTITY_IS_DELETED", "entity is deleted") from error
    return record_id


def _update_target(write: RecordWrite) -> str:
    """The 18-character Id an update addresses, or the per-record error Salesforce gives."""
    raw = (write.record_id or "").strip()
    if not raw:
        raise record_error("MISSING_ARGUMENT", "Id not specified in an update call")
    if not is_valid_id(raw):
        raise record_error("MALFORMED_ID", f"malformed id {raw}", ["Id"])
    if raw[:3] != write.obj.key_prefix:
        raise record_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["Id"])
    return to_18(raw)
