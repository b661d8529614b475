"""Single-record REST operations: read, create and update one sObject record.

Writes behave like a Salesforce org's: read-only fields are refused, required fields enforced,
formula-like fields (Name, IsClosed, IsWon) recomputed, converted Leads locked, and every change
moves SystemModstamp and LastModifiedDate. Deletes are not offered at all (see the app).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from crm_sandbox import store, values
from crm_sandbox.errors import SalesforceApiError, not_found
from crm_sandbox.ids import is_valid_id, to_18
from crm_sandbox.objects import (
    CLOSED_LOST,
    CLOSED_WON,
    LEAD,
    OPPORTUNITY,
    USER,
    FieldDef,
    FieldType,
    ObjectDef,
    get_object,
)


def record_url(version: str, obj: ObjectDef, record_id: str) -> str:
    """The REST path of a record, as reported in ``attributes.url``."""
    return f"/services/data/{version}/sobjects/{obj.name}/{record_id}"


def attributes(version: str, obj: ObjectDef, record_id: str) -> dict[str, str]:
    """The ``attributes`` object every record in a response carries."""
    return {"type": obj.name, "url": record_url(version, obj, record_id)}


def _load(conn: sqlite3.Connection, obj: ObjectDef, record_id: str) -> sqlite3.Row:
    if not is_valid_id(record_id) or record_id[:3] != obj.key_prefix:
        # Salesforce reads a malformed Id as an external Id lookup, hence its wording.
        raise not_found(
            f"Provided external ID field does not exist or is not accessible: {record_id}"
        )
    row = conn.execute(
        f'SELECT * FROM {store.quote_ident(obj.name)} WHERE "Id" = ?', (to_18(record_id),)
    ).fetchone()
    if row is None:
        raise not_found()
    return row


def get_record(
    conn: sqlite3.Connection,
    obj: ObjectDef,
    record_id: str,
    version: str,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """The record as ``GET sobjects/{obj}/{id}`` returns it (all fields, or ``fields``)."""
    row = _load(conn, obj, record_id)
    if obj.has_field("IsDeleted") and row["IsDeleted"]:
        raise not_found()
    selected = obj.fields
    if fields:
        selected = tuple(_known_field(obj, name) for name in fields)
    out: dict[str, Any] = {"attributes": attributes(version, obj, row["Id"])}
    for f in selected:
        out[f.name] = values.to_api(f, row[f.name])
    return out


def _known_field(obj: ObjectDef, name: str) -> FieldDef:
    f = obj.field(name)
    if f is None:
        raise SalesforceApiError(
            400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name]
        )
    return f


def _writable(obj: ObjectDef, body: Mapping[str, Any], *, creating: bool) -> dict[FieldDef, Any]:
    """The body's fields with their stored values, refusing unknown and read-only fields."""
    if not isinstance(body, Mapping):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
    parsed: dict[FieldDef, Any] = {}
    read_only: list[str] = []
    for name, raw in body.items():
        if name == "attributes":
            continue  # Salesforce accepts and ignores a record's attributes on writes.
        f = _known_field(obj, name)
        if not (f.createable if creating else f.updateable):
            read_only.append(f.name)
            continue
        parsed[f] = values.from_api(f, raw)
    if read_only:
        raise SalesforceApiError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set.",
            read_only,
        )
    return parsed


def _check_references(conn: sqlite3.Connection, changes: Mapping[FieldDef, Any]) -> None:
    for f, value in changes.items():
        if f.type is not FieldType.REFERENCE or value is None:
            continue
        candidates = [get_object(name) for name in f.reference_to]
        match = next((o for o in candidates if o and o.key_prefix == value[:3]), None)
        exists = match is not None and (
            conn.execute(
                f'SELECT 1 FROM {store.quote_ident(match.name)} WHERE "Id" = ?', (value,)
            ).fetchone()
            is not None
        )
        if not exists:
            raise SalesforceApiError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                [f.name],
            )


def _derive(obj: ObjectDef, record: dict[str, Any]) -> None:
    """Recompute the fields the platform derives from others."""
    name_field = obj.field("Name")
    if name_field is not None and name_field.calculated:
        parts = [record.get("FirstName"), record.get("LastName")]
        record["Name"] = " ".join(p for p in parts if p)
    if obj is OPPORTUNITY:
        stage = record.get("StageName")
        record["IsClosed"] = int(stage in (CLOSED_WON, CLOSED_LOST))
        record["IsWon"] = int(stage == CLOSED_WON)


def _missing_required(obj: ObjectDef, record: Mapping[str, Any]) -> None:
    missing = [
        f.name
        for f in obj.fields
        if not f.nillable
        and f.createable
        and f.type is not FieldType.BOOLEAN
        and record.get(f.name) is None
    ]
    if missing:
        raise SalesforceApiError(
            400,
            "REQUIRED_FIELD_MISSING",
            f"Required fields are missing: [{', '.join(missing)}]",
            missing,
        )


def matching_ids(
    conn: sqlite3.Connection, obj: ObjectDef, f: FieldDef, value: Any, *, limit: int = 2
) -> list[str]:
    """Ids of live records whose ``f`` equals the stored ``value`` (text case-insensitively, as
    Salesforce's case-insensitive unique and external ID fields compare), at most ``limit``."""
    collation = " COLLATE NOCASE" if f.is_text else ""
    live = ' AND "IsDeleted" = 0' if obj.has_field("IsDeleted") else ""
    rows = conn.execute(
        f'SELECT "Id" FROM {store.quote_ident(obj.name)} '
        f'WHERE {store.quote_ident(f.name)} = ?{collation}{live} ORDER BY "Id" LIMIT ?',
        (value, limit),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _check_unique(
    conn: sqlite3.Connection, obj: ObjectDef, record: Mapping[str, Any], own_id: str | None
) -> None:
    """Refuse a value of a unique field that another live record already has."""
    for f in obj.fields:
        value = record.get(f.name)
        if not f.unique or value is None:
            continue
        others = [i for i in matching_ids(conn, obj, f, value) if i != own_id]
        if others:
            raise SalesforceApiError(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: {f.name} duplicates value on record with id: {others[0]}",
                [f.name],
            )


def _next_stamp(now: datetime, previous: str | None) -> str:
    """``now`` as stored, but always after ``previous``: a change must move SystemModstamp."""
    stamp = store.to_storage_datetime(now)
    if previous is not None and stamp <= previous:
        stamp = store.to_storage_datetime(
            store.from_storage_datetime(previous) + timedelta(milliseconds=1)
        )
    return stamp


def api_user_id(conn: sqlite3.Connection) -> str | None:
    """The User the API acts as: it owns what it creates, and is named as a job's creator."""
    # A real org knows the session's user; the sandbox's first active user plays that role.
    row = conn.execute(
        f'SELECT "Id" FROM {store.quote_ident(USER.name)} '
        'WHERE "IsActive" = 1 ORDER BY "Id" LIMIT 1'
    ).fetchone()
    return None if row is None else str(row[0])


def create_record(
    conn: sqlite3.Connection, obj: ObjectDef, body: Mapping[str, Any], now: datetime
) -> str:
    """Insert a record from a POST body; return its new Id."""
    if not obj.createable:
        raise SalesforceApiError(
            400, "INVALID_TYPE", f"Cannot create records of type {obj.name} through the API"
        )
    changes = _writable(obj, body, creating=True)
    _check_references(conn, changes)
    record: dict[str, Any] = {}
    for f in obj.fields:
        if f.type is FieldType.BOOLEAN:
            record[f.name] = int(bool(f.default_value))
        elif f.type is FieldType.PICKLIST and isinstance(f.default_value, str):
            record[f.name] = f.default_value
    record.update({f.name: value for f, value in changes.items()})
    if obj.has_field("OwnerId") and record.get("OwnerId") is None:
        record["OwnerId"] = api_user_id(conn)
    _derive(obj, record)
    _missing_required(obj, record)
    _check_unique(conn, obj, record, None)
    stamp = _next_stamp(now, None)
    record.update(
        {
            "Id": store.allocate_id(conn, obj),
            "CreatedDate": stamp,
            "SystemModstamp": stamp,
        }
    )
    if obj.has_field("LastModifiedDate"):
        record["LastModifiedDate"] = stamp
    store.insert_rows(conn, obj, [record])
    return str(record["Id"])


def update_record(
    conn: sqlite3.Connection,
    obj: ObjectDef,
    record_id: str,
    body: Mapping[str, Any],
    now: datetime,
) -> None:
    """Apply a PATCH body to a record (JSON null clears a field)."""
    if not obj.updateable:
        raise SalesforceApiError(
            400, "INVALID_TYPE", f"Cannot update records of type {obj.name} through the API"
        )
    row = _load(conn, obj, record_id)
    if obj.has_field("IsDeleted") and row["IsDeleted"]:
        raise SalesforceApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
    if obj is LEAD and row["IsConverted"]:
        raise SalesforceApiError(
            400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"
        )
    changes = _writable(obj, body, creating=False)
    _check_references(conn, changes)
    record = dict(row)
    record.update({f.name: value for f, value in changes.items()})
    _derive(obj, record)
    _missing_required(obj, record)
    _check_unique(conn, obj, record, row["Id"])
    stamp = _next_stamp(now, row["SystemModstamp"])
    record["SystemModstamp"] = stamp
    if obj.has_field("LastModifiedDate"):
        record["LastModifiedDate"] = stamp
    assignments = [name for name in record if name != "Id"]
    conn.execute(
        f"UPDATE {store.quote_ident(obj.name)} SET "
        + ", ".join(f"{store.quote_ident(name)} = ?" for name in assignments)
        + ' WHERE "Id" = ?',
        [*(record[name] for name in assignments), row["Id"]],
    )


class MultipleMatches(SalesforceApiError):
    """An upsert's external ID value matches several records: none is written.

    The REST resource answers 300 with the records' URLs; a batch reports the record as failed
    with DUPLICATE_EXTERNAL_ID (the SOAP StatusCode for "matches more than one record").
    """

    def __init__(self, f: FieldDef, record_ids: list[str]) -> None:
        super().__init__(
            300,
            "DUPLICATE_EXTERNAL_ID",
            f"More than 1 record found for external id field: [{', '.join(record_ids)}]",
            [f.name],
        )
        self.record_ids = record_ids


@dataclass(frozen=True)
class Upserted:
    """What an upsert did: the record it wrote and whether it created it."""

    record_id: str
    created: bool


def upsert_key_field(obj: ObjectDef, name: str) -> FieldDef:
    """The field an upsert matches on, named in the URL; the error Salesforce gives otherwise."""
    f = obj.field(name)
    if f is None:
        raise not_found(f"Provided external ID field does not exist or is not accessible: {name}")
    if not f.upsert_key:
        raise SalesforceApiError(
            400,
            "INVALID_FIELD",
            f"Field name provided, {f.name} is not an External ID or indexed field for {obj.name}",
            [f.name],
        )
    return f


def upsert_record(
    conn: sqlite3.Connection,
    obj: ObjectDef,
    key: FieldDef,
    raw_value: Any,
    body: Mapping[str, Any],
    now: datetime,
) -> Upserted:
    """Create a record with ``key`` = ``raw_value`` from ``body``, or update the one that has it.

    Both branches are :func:`create_record` and :func:`update_record`, so validation is the same
    as for a plain create or update. ``body`` may repeat the key, but only with the same value.
    """
    value = values.from_api(key, raw_value)
    if value is None:
        raise SalesforceApiError(400, "MISSING_ARGUMENT", f"{key.name} not specified")
    fields = _without_key(key, value, body)
    matches = matching_ids(conn, obj, key, value)
    if len(matches) > 1:
        raise MultipleMatches(key, matching_ids(conn, obj, key, value, limit=-1))
    if matches:
        update_record(conn, obj, matches[0], fields, now)
        return Upserted(matches[0], created=False)
    return Upserted(create_record(conn, obj, {**fields, key.name: value}, now), created=True)


def _without_key(key: FieldDef, value: Any, body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without the key field, which may only repeat the value the upsert matches on."""
    fields: dict[str, Any] = {}
    for name, raw in body.items():
        if name.lower() != key.name.lower():
            fields[name] = raw
        elif not _same_key(values.from_api(key, raw), value):
            raise SalesforceApiError(
                400,
                "INVALID_FIELD",
                f"The {key.name} value in the request body does not match the external ID "
                f"it is upserted by: {raw}",
                [key.name],
            )
    return fields


def _same_key(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    return bool(a == b)
