"""Act-On's own values survive a CRM sync: Act-On-only fields, and edits newer than the CRM."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import Connection, Table, exists, func, inspect, or_, select, update

from acton_pipelines.mapping.models import DataType, Mapping
from acton_pipelines.warehouse.tables import acton_field_edits, opt_outs


def typed_value(text: Any, data_type: DataType) -> Any:
    """An edit's text as the value its ``acton_contacts`` column stores."""
    if text is None or (isinstance(text, float) and pd.isna(text)) or text == "":
        return None
    value = str(text).strip()
    if data_type is DataType.NUMBER:
        return float(value)
    if data_type is DataType.SCORE:
        return int(float(value))
    if data_type is DataType.BOOLEAN:
        return value.lower() in ("true", "1", "yes", "1.0")
    if data_type is DataType.DATE:
        return pd.Timestamp(value).date()
    if data_type is DataType.DATETIME:
        stamp = pd.Timestamp(value)
        return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()
    return value.lower() if data_type is DataType.EMAIL else value


def keep_act_on_values(conn: Connection, stage: Table, target: Table, mapping: Mapping) -> None:
    """Before staged CRM values are merged into ``acton_contacts``:

    - an Act-On-only field (no CRM source on Leads or Contacts) keeps the value Act-On holds:
      the CRM has no say in it;
    - an Act-On-side edit later than the record's last CRM change keeps its value (the most
      recent change wins; ties go to the CRM), pushed to the CRM or not;
    - ``opted_out`` follows the opt-out list (``opt_outs``) for the addresses on it: the push
      brings the CRM's flag in line, the list is what Act-On goes by.
    """
    for field in mapping.fields:
        if field.lead is None and field.contact is None:
            kept = (
                select(target.c[field.column])
                .where(target.c.contact_id == stage.c.contact_id)
                .scalar_subquery()
            )
            conn.execute(update(stage).values({field.column: kept}))
    present = set(inspect(conn).get_table_names())
    if opt_outs.name in present:
        listed = (
            select(opt_outs.c.opted_out)
            .where(opt_outs.c.email == func.lower(stage.c.email))
            .scalar_subquery()
        )
        on_list = exists(
            select(opt_outs.c.email).where(opt_outs.c.email == func.lower(stage.c.email))
        )
        conn.execute(update(stage).where(on_list).values(opted_out=listed))
    if acton_field_edits.name not in present:
        return
    edits = pd.DataFrame(
        conn.execute(
            select(
                acton_field_edits.c.id,
                acton_field_edits.c.contact_id,
                acton_field_edits.c.field,
                acton_field_edits.c.value,
                acton_field_edits.c.changed_at,
            ).where(
                acton_field_edits.c.push_status != "superseded",
                acton_field_edits.c.contact_id.in_(select(stage.c.contact_id)),
            )
        ).all(),
        columns=["id", "contact_id", "field", "value", "changed_at"],
    )
    if edits.empty:
        return
    latest = edits.sort_values(["changed_at", "id"]).groupby(["contact_id", "field"]).tail(1)
    for row in latest.itertuples(index=False):
        field = mapping.field(row.field)
        if field is None:
            continue
        conn.execute(
            update(stage)
            .where(
                stage.c.contact_id == row.contact_id,
                or_(stage.c.crm_modified_at.is_(None), stage.c.crm_modified_at < row.changed_at),
            )
            .values({field.column: typed_value(row.value, field.type)})
        )
