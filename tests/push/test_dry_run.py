"""``acton push --dry-run`` reads and nothing else: on a warehouse missing tables it plans what
it can and creates no table, on both warehouse backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from acton_pipelines.cli.main import cli
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.tables import acton_contacts_table
from tests.push.helpers import MAPPING


def tables(url: str) -> list[str]:
    return sorted(inspect(warehouse_engine(url)).get_table_names())


def test_a_dry_run_creates_no_table(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ACTON_WAREHOUSE_URL", warehouse_url)
    monkeypatch.delenv("ACTON_MAPPING_DIR", raising=False)
    assert tables(warehouse_url) == []

    empty = CliRunner().invoke(cli, ["push", "--dry-run"])
    assert empty.exit_code == 0, empty.output
    assert empty.output.startswith("Nothing to push")
    assert tables(warehouse_url) == []

    # Contacts but nothing else yet (no scores, no mirror, no edits): still nothing created.
    ensure_table(warehouse_engine(warehouse_url), acton_contacts_table(MAPPING))
    partial = CliRunner().invoke(cli, ["push", "--dry-run"])
    assert partial.exit_code == 0, partial.output
    assert tables(warehouse_url) == ["acton_contacts"]
