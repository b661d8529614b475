"""Reading whole warehouse tables back in a form two warehouses can be compared in."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import MetaData, inspect, select

from acton_pipelines.warehouse.engine import warehouse_engine

# When a row was written, by which run, and the org's API usage at that moment differ between
# any two syncs.
LOAD_COLUMNS = frozenset(
    {
        "api_usage",
        "sync_run_id",
        "synced_at",
        "updated_at",
        "rejected_at",
        "computed_at",
        "run_id",
        "started_at",
        "finished_at",
        "recorded_at",
    }
)


def comparable(value: Any) -> Any:
    """Timestamps in UTC ISO form (SQLite hands them back without a zone), floats rounded."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


def table_contents(url: str, tables: Iterable[str]) -> dict[str, tuple[list[str], list[tuple]]]:
    """Each table's columns (load columns left out) and its rows, sorted."""
    engine = warehouse_engine(url)
    metadata = MetaData()
    contents = {}
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for name in tables:
            assert name in present, f"{name} missing from {url}"
            metadata.reflect(conn, only=[name])
            table = metadata.tables[name]
            columns = sorted(c.name for c in table.columns if c.name not in LOAD_COLUMNS)
            rows = conn.execute(select(*[table.c[c] for c in columns])).all()
            normalized = sorted((tuple(comparable(v) for v in row) for row in rows), key=repr)
            contents[name] = (columns, normalized)
    return contents
