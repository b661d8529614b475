"""The fields the CRM requires on a new record, from the describe the last sync stored."""

from __future__ import annotations

from sqlalchemy import Connection, false, inspect, select, true

from acton_pipelines.warehouse.tables import crm_fields


def required_on_create(conn: Connection, crm_object: str) -> tuple[str, ...]:
    """API names of the fields a create of ``crm_object`` must set: not nillable, createable,
    not defaulted on create (Salesforce's own definition of a required field; booleans are never
    required, they default to false). Empty when no sync has stored the object's describe yet:
    the CRM then answers for itself at the push (REQUIRED_FIELD_MISSING)."""
    if crm_fields.name not in inspect(conn).get_table_names():
        return ()
    statement = (
        select(crm_fields.c.field)
        .where(
            crm_fields.c.object == crm_object,
            crm_fields.c.nillable == false(),
            crm_fields.c.createable == true(),
            crm_fields.c.defaulted_on_create == false(),
            crm_fields.c.type != "boolean",
        )
        .order_by(crm_fields.c.field)
    )
    return tuple(conn.execute(statement).scalars())
