"""`acton sync full` loads the same rows into PostgreSQL as into the SQLite default."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import URL, MetaData, inspect, select

from acton_pipelines.cli.main import cli
from acton_pipelines.summary import REPORTED_TABLES
from acton_pipelines.warehouse.engine import warehouse_engine
from tests.conftest import ActonHome

# When a row was written and by which run differ between any two syncs.
LOAD_COLUMNS = {
    "sync_run_id",
    "synced_at",
    "updated_at",
    "rejected_at",
    "computed_at",
    "run_id",
    "started_at",
    "finished_at",
}


def comparable(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value


def table_contents(url: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every reported table: its columns (load columns left out) and its sorted rows."""
    engine = warehouse_engine(url)
    metadata = MetaData()
    contents = {}
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for name in REPORTED_TABLES:
            assert name in present, f"{name} missing from {url}"
            metadata.reflect(conn, only=[name])
            table = metadata.tables[name]
            columns = sorted(c.name for c in table.columns if c.name not in LOAD_COLUMNS)
            rows = conn.execute(select(*[table.c[c] for c in columns])).all()
            normalized = sorted((tuple(comparable(v) for v in row) for row in rows), key=repr)
            contents[name] = (columns, normalized)
    return contents


def test_postgresql_gets_the_same_rows_as_sqlite(
    acton_home: ActonHome, postgres_database: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_run = CliRunner().invoke(cli, ["sync", "full"])
    assert sqlite_run.exit_code == 0, sqlite_run.output

    postgres_url = postgres_database.render_as_string(hide_password=False)
    monkeypatch.setenv("ACTON_WAREHOUSE_URL", postgres_url)
    postgres_run = CliRunner().invoke(cli, ["sync", "full"])
    assert postgres_run.exit_code == 0, postgres_run.output

    on_sqlite = table_contents(acton_home.warehouse_url)
    on_postgres = table_contents(postgres_url)
    for name in REPORTED_TABLES:
        sqlite_columns, sqlite_rows = on_sqlite[name]
        postgres_columns, postgres_rows = on_postgres[name]
        assert postgres_columns == sqlite_columns, name
        assert len(postgres_rows) == len(sqlite_rows) > 0, name
        assert postgres_rows == sqlite_rows, name
