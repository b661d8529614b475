"""Turning CRM objects into SOQL and CRM query pages into typed DataFrames."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import pandas as pd
from simple_salesforce import format_soql

from acton_pipelines.crm.objects import CrmObject
from acton_pipelines.runs.window import SyncWindow
from acton_pipelines.warehouse.tables import crm_column_name

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")


def check_identifier(name: str) -> str:
    """A field or object name safe to place in SOQL, or ``ValueError``."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"'{name}' is not a valid Salesforce field name")
    return name


_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


def check_record_id(record_id: str) -> str:
    """A Salesforce record Id safe to quote in SOQL, or ``ValueError``."""
    if not _RECORD_ID.match(record_id):
        raise ValueError(f"'{record_id}' is not a Salesforce record Id")
    return record_id


def build_soql(crm_object: CrmObject, fields: Iterable[str], window: SyncWindow) -> str:
    """``SELECT <fields> FROM <object> [WHERE SystemModstamp in the window]``.

    Identifiers are validated; the window bounds go through ``format_soql``.
    """
    select = ", ".join(check_identifier(f) for f in fields)
    soql = f"SELECT {select} FROM {check_identifier(crm_object.name)}"
    conditions = []
    if window.start is not None:
        conditions.append(format_soql("SystemModstamp >= {}", window.start))
    if window.end is not None:
        conditions.append(format_soql("SystemModstamp < {}", window.end))
    if conditions:
        soql += " WHERE " + " AND ".join(conditions)
    return soql


def field_types(
    fields: Iterable[str], describes: dict[str, dict[str, Any]], object_name: str
) -> dict[str, str]:
    """Describe type of each field (``"string"``, ``"datetime"``...); hops resolve through the
    first of the reference field's targets whose describe is at hand (a Lead's ``Owner`` is a
    Group or a User), else count as ``"string"``."""
    by_object = {
        name: {f["name"].lower(): f for f in describe.get("fields", [])}
        for name, describe in describes.items()
    }
    own = by_object.get(object_name, {})
    types: dict[str, str] = {}
    for name in fields:
        relationship, _, leaf = name.rpartition(".")
        if not relationship:
            types[name] = own.get(leaf.lower(), {}).get("type", "string")
            continue
        reference = next(
            (
                f
                for f in own.values()
                if (f.get("relationshipName") or "").lower() == relationship.lower()
            ),
            None,
        )
        targets = (reference or {}).get("referenceTo") or []
        target = next((by_object[t] for t in targets if t in by_object), {})
        types[name] = target.get(leaf.lower(), {}).get("type", "string")
    return types


def _value(record: dict[str, Any], name: str) -> Any:
    current: Any = record
    for part in name.split("."):
        if not isinstance(current, dict):
            return None
        lowered = {k.lower(): v for k, v in current.items()}
        current = lowered.get(part.lower())
    return current


def page_frame(records: list[dict[str, Any]], types: dict[str, str]) -> pd.DataFrame:
    """One query page as a DataFrame: one column per field (``crm_column_name``), typed."""
    data = {crm_column_name(name): [_value(r, name) for r in records] for name in types}
    frame = pd.DataFrame(data, dtype=object)
    for name, crm_type in types.items():
        column = crm_column_name(name)
        if crm_type == "datetime":
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        elif crm_type == "date":
            parsed = pd.to_datetime(frame[column], format="ISO8601")
            frame[column] = [d.date() if pd.notna(d) else None for d in parsed]
    return frame
