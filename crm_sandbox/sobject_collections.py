"""sObject Collections (``composite/sobjects``): create or update up to 200 records per request.

Request: ``{"allOrNone": false, "records": [{"attributes": {"type": "Lead"}, "id": ..., ...}]}``;
records may be of different objects. A malformed request (no records array, more than 200
records, a record without a known type) fails as a whole with the usual error array; a record
that cannot be written fails on its own, reported in the 200 answer as Salesforce's SaveResult:
``{"id", "success", "errors": [{"statusCode", "message", "fields"}]}`` -- ``statusCode``, not the
``errorCode`` of whole-request errors.

Upsert (``PATCH composite/sobjects/{SObject}/{ExternalIdField}``, API 46.0+) takes the same body
with records of that one object, each carrying its external ID value and no Id, and answers
UpsertResults: the SaveResult plus ``created`` (true for a new record, false for an update).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crm_sandbox.batch_writes import (
    RecordWrite,
    WriteOperation,
    WriteResult,
    write_records,
)
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.objects import FieldDef, ObjectDef, get_object

MAX_RECORDS = 200


def save_collection(
    conn: sqlite3.Connection, operation: WriteOperation, body: Mapping[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """Apply a ``composite/sobjects`` request body; the SaveResults in request order."""
    all_or_none = _all_or_none(body)
    writes = _parse_records(body.get("records"))
    results = write_records(conn, operation, writes, now=now, all_or_none=all_or_none)
    return [save_result(result) for result in results]


def upsert_collection(
    conn: sqlite3.Connection,
    obj: ObjectDef,
    key: FieldDef,
    body: Mapping[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """Apply a ``PATCH composite/sobjects/{obj}/{key}`` body; the UpsertResults in request order.

    Every record must be an ``obj`` (the request fails whole otherwise) and carry its ``key``
    value: one without it, or sharing its value with another record of the request, fails alone.
    """
    all_or_none = _all_or_none(body)
    writes = _parse_records(body.get("records"))
    for write in writes:
        if write.obj is not obj:
            raise SalesforceApiError(
                400,
                "INVALID_TYPE",
                f"This request can only upsert records of type {obj.name}, not {write.obj.name}",
            )
    keyed = [dataclasses.replace(write, upsert_key=key) for write in writes]
    results = write_records(conn, WriteOperation.UPSERT, keyed, now=now, all_or_none=all_or_none)
    return [{**save_result(result), "created": result.created} for result in results]


def _all_or_none(body: Mapping[str, Any]) -> bool:
    all_or_none = body.get("allOrNone", False)
    if not isinstance(all_or_none, bool):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", f"Cannot deserialize allOrNone from {all_or_none!r}"
        )
    return all_or_none


def save_result(result: WriteResult) -> dict[str, Any]:
    """The SaveResult JSON of one record (no ``id`` when no record was created)."""
    answer: dict[str, Any] = {}
    if result.record_id is not None:
        answer["id"] = result.record_id
    answer["success"] = result.success
    error = result.error
    answer["errors"] = (
        []
        if error is None
        else [{"statusCode": error.error_code, "message": error.message, "fields": error.fields}]
    )
    return answer


def _parse_records(raw: Any) -> list[RecordWrite]:
    if not isinstance(raw, list):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "The request body must contain a records array"
        )
    if len(raw) > MAX_RECORDS:
        raise SalesforceApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
        )
    return [_parse_record(item) for item in raw]


def _parse_record(item: Any) -> RecordWrite:
    """One record of the request: its object from ``attributes.type``, its Id split off."""
    if not isinstance(item, dict):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    attributes = item.get("attributes")
    type_name = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(type_name, str) or not type_name:
        raise SalesforceApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    obj = get_object(type_name)
    if obj is None:
        raise SalesforceApiError(
            400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported."
        )
    fields = {name: value for name, value in item.items() if name.lower() != "id"}
    # Salesforce names the Id "id" in collections but reads the field name case-insensitively.
    raw_id = next((value for name, value in item.items() if name.lower() == "id"), None)
    return RecordWrite(obj, fields, None if raw_id is None else str(raw_id))
