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


def _window_conditions(window: SyncWindow) -> str:
    """`` WHERE SystemModstamp in the window`` (empty for a full read), bounds through
    ``format_soql``."""
    conditions = []
    if window.start is not None:
        conditions.append(format_soql("SystemModstamp >= {}", window.start))
    if window.end is not None:
        conditions.append(format_soql("SystemModstamp < {}", window.end))
    return " WHERE " + " AND ".join(conditions) if conditions else ""


def build_soql(crm_object: CrmObject, fields: Iterable[str], window: SyncWindow) -> str:
    """``SELECT <fields> FROM <object> [WHERE SystemModstamp in the window]``.

    Identifiers are validated; the window bounds go through ``format_soql``.
    """
    select = ", ".join(check_identifier(f) for f in fields)
    soql = f"SELECT {select} FROM {check_identifier(crm_object.name)}"
    return soql + _window_conditions(window)


def build_count_soql(crm_object: CrmObject, window: SyncWindow) -> str:
    """``SELECT COUNT() FROM <object> [WHERE SystemModstamp in the window]``: how many records
    a read of ``window`` would bring, for the price of one call and no records."""
    return f"SELECT COUNT() FROM {check_identifier(crm_object.name)}" + _window_conditions(window)


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


def _get(mapping: dict[str, Any], key: str) -> Any:
    """``mapping[key]``; only when that key is missing, the first key equal to it ignoring case
    (SOQL names are case-insensitive and a mapping may spell a field otherwise than the
    describe, whose casing the CRM answers with), else ``None``."""
    try:
        return mapping[key]
    except KeyError:
        lowered = key.lower()
        return next((v for k, v in mapping.items() if k.lower() == lowered), None)


def _column_values(records: list[dict[str, Any]], name: str) -> list[Any]:
    """Field ``name`` (``Email``, or a hop like ``Owner.Name``) of each record; ``None`` where
    the record lacks it or a hop's parent is null."""
    first, *hops = name.split(".")
    # Most lookups hit the exact key: keep them free of a Python call per record.
    values = [r[first] if first in r else _get(r, first) for r in records]
    for hop in hops:
        values = [_get(v, hop) if isinstance(v, dict) else None for v in values]
    return values


def _dates(column: pd.Series) -> pd.Series:
    """ISO date strings (or ``None``) as ``datetime.date`` objects (or ``None``)."""
    parsed = pd.to_datetime(column, format="ISO8601")
    values = parsed.dt.date.to_numpy(dtype=object, copy=True)
    values[parsed.isna().to_numpy()] = None
    return pd.Series(values, index=column.index, dtype=object)


def page_frame(records: list[dict[str, Any]], types: dict[str, str]) -> pd.DataFrame:
    """One query page as a DataFrame: one column per field (``crm_column_name``), typed.

    Columns are ``object`` holding the JSON values (``None`` for null), except datetimes
    (``datetime64[.., UTC]``) and dates (``datetime.date`` objects): the Bulk API reader
    (``crm.bulk_query``) gives the same columns, so the load does not care which path read them.
    """
    data = {crm_column_name(name): _column_values(records, name) for name in types}
    frame = pd.DataFrame(data, dtype=object)
    for name, crm_type in types.items():
        column = crm_column_name(name)
        if crm_type == "datetime":
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        elif crm_type == "date":
            frame[column] = _dates(frame[column])
    return frame
