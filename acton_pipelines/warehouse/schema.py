"""Creating tables and evolving them safely when the mapping gains a field."""

from __future__ import annotations

from sqlalchemy import Engine, Table, inspect, text


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
