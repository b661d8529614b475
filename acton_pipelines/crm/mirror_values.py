"""The CRM's current value of one field of one record, as the mirror holds it.

Act-On-side edits are three-way merged per field: an edit remembers the CRM value it was made
against (``acton_field_edits.crm_value_at_edit``), and it stands, in ``acton_contacts`` and at
the push, only while the CRM still holds that value. Values are compared as text made the same
way every time (:func:`comparable_text`), from the same mirror column, so the representation
never decides a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, MetaData, Table, inspect, select

from acton_pipelines.crm.objects import CONTACT, LEAD
from acton_pipelines.warehouse.tables import crm_column_name

# The mirror tables of the records an Act-On contact can be.
RECORD_MIRRORS: dict[str, str] = {LEAD.name: LEAD.table, CONTACT.name: CONTACT.table}
# Ids per IN (...) query: well below every backend's limit on bound parameters.
_BATCH = 1_000

# (object, record Id, CRM field API name)
FieldRef = tuple[str, str, str]


def comparable_text(value: Any) -> str | None:
    """A mirrored value as text that compares equal exactly when the values are equal:
    ``true``/``false``, integral numbers without ``.0``, ISO dates, datetimes in UTC."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def mirror_field_values(conn: Connection, wanted: Iterable[FieldRef]) -> dict[FieldRef, str | None]:
    """The mirror's current value (:func:`comparable_text`) of each wanted field of each record.

    A field the mirror has no column for, or a record it does not hold, is left out of the
    answer (the caller decides what an unknown CRM value means)."""
    by_column: dict[tuple[str, str], dict[str, list[FieldRef]]] = {}
    for ref in wanted:
        obj, record_id, field = ref
        by_column.setdefault((obj, field), {}).setdefault(record_id, []).append(ref)
    present = set(inspect(conn).get_table_names())
    metadata = MetaData()
    mirrors: dict[str, Table] = {}
    found: dict[FieldRef, str | None] = {}
    for (obj, field), records in by_column.items():
        table_name = RECORD_MIRRORS.get(obj)
        if table_name is None or table_name not in present:
            continue
        if table_name not in mirrors:
            mirrors[table_name] = Table(table_name, metadata, autoload_with=conn)
        mirror = mirrors[table_name]
        column = crm_column_name(field)
        if column not in mirror.c:
            continue
        ids = sorted(records)
        for start in range(0, len(ids), _BATCH):
            statement = select(mirror.c.id, mirror.c[column]).where(
                mirror.c.id.in_(ids[start : start + _BATCH])
            )
            for record_id, value in conn.execute(statement):
                for ref in records[record_id]:
                    found[ref] = comparable_text(value)
    return found
