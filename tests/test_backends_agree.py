"""`acton sync full` loads the same rows into PostgreSQL as into the SQLite default."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import URL

from acton_pipelines.cli.main import cli
from acton_pipelines.warehouse.summary import REPORTED_TABLES
from tests.conftest import ActonHome
from tests.warehouse_contents import table_contents


def test_postgresql_gets_the_same_rows_as_sqlite(
    acton_home: ActonHome, postgres_database: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_run = CliRunner().invoke(cli, ["sync", "full"])
    assert sqlite_run.exit_code == 0, sqlite_run.output

    postgres_url = postgres_database.render_as_string(hide_password=False)
    monkeypatch.setenv("ACTON_WAREHOUSE_URL", postgres_url)
    postgres_run = CliRunner().invoke(cli, ["sync", "full"])
    assert postgres_run.exit_code == 0, postgres_run.output

    on_sqlite = table_contents(acton_home.warehouse_url, REPORTED_TABLES)
    on_postgres = table_contents(postgres_url, REPORTED_TABLES)
    for name in REPORTED_TABLES:
        sqlite_columns, sqlite_rows = on_sqlite[name]
        postgres_columns, postgres_rows = on_postgres[name]
        assert postgres_columns == sqlite_columns, name
        assert len(postgres_rows) == len(sqlite_rows) > 0, name
        assert postgres_rows == sqlite_rows, name
