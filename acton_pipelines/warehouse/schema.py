"""Creating tables and evolving them safely when the mapping gains a field."""

from __future__ import annotations

from sqlalchemy import Engine, Table, inspect, text

from acton_pipelines.mapping.models import Mapping
from acton_pipelines.warehouse.tables import acton_contacts_table, metadata


def ensure_table(engine: Engine, table: Table) -> list[str]:
    """Create ``table`` if it is missing, else add the columns it lacks; returns added columns.

    New columns are added as nullable, so existing rows keep their data: the warehouse never
    drops a column or a table to follow the mapping. A column whose type changed is left as it
    is (the next full sync rewrites its values).
    """
    with engine.begin() as conn:
        table.create(conn, checkfirst=True)
        existing = {c["name"] for c in inspect(conn).get_columns(table.name)}
        preparer = conn.dialect.identifier_preparer
        added = []
        for column in table.columns:
            if column.name in existing:
                continue
            column_type = column.type.compile(dialect=conn.dialect)
            conn.execute(
                text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD COLUMN {preparer.format_column(column)} {column_type}"
                )
            )
            added.append(column.name)
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    return added


def prepare_warehouse(engine: Engine, mapping: Mapping) -> list[str]:
    """Create every table of the warehouse and add the columns ``mapping`` needs, before a
    run's steps read or write anything; returns the ``table.column``s added.

    Done once per run, when the run takes its mapping: every step then finds the tables and
    columns of that mapping (a field added to the mapping exists as a NULL column even for a
    push run that comes before the next sync fills it). The CRM mirror tables take their
    columns from the CRM's describe and are evolved by their own sync step.
    """
    added = []
    for table in [*metadata.sorted_tables, acton_contacts_table(mapping)]:
        added.extend(f"{table.name}.{column}" for column in ensure_table(engine, table))
    return added
