"""A home whose warehouse holds a full sync of the small sandbox, an imports folder in it, and
the ``acton_imports`` asset materialized on demand."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, materialize
from sqlalchemy import text

from acton_pipelines import settings
from acton_pipelines.imports.assets import acton_imports
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource
from crm_sandbox import SeedSummary
from tests.conftest import ActonHome, make_home, run_full_sync


@dataclass(frozen=True)
class ImportHome:
    """An ``ACTON_HOME`` (set in the environment) with a synced warehouse at ``warehouse_url``."""

    path: Path
    warehouse_url: str

    @property
    def imports(self) -> Path:
        return settings.imports_dir()

    def drop(self, name: str, content: str) -> Path:
        """Write a file into the imports folder."""
        path = self.imports / name
        path.write_text(content, encoding="utf-8")
        return path

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        with warehouse_engine(self.warehouse_url).connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params)]

    def run_imports(self) -> tuple[str, dict[str, Any]]:
        """Materialize ``acton_imports``; returns the run id and the materialization's
        metadata values."""
        return materialize_imports(self.warehouse_url)


def materialize_imports(warehouse_url: str) -> tuple[str, dict[str, Any]]:
    result = materialize(
        [acton_imports],
        resources={
            "warehouse": WarehouseResource(url=warehouse_url),
            "mapping": MappingResource(),
        },
        instance=DagsterInstance.ephemeral(),
    )
    assert result.success
    (materialization,) = result.asset_materializations_for_node("acton_imports")
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    return result.run_id, metadata


@pytest.fixture(scope="session")
def synced_warehouse(tmp_path_factory: pytest.TempPathFactory, small_crm: SeedSummary) -> Path:
    """A SQLite warehouse after a full sync of the small sandbox, copied by each test (one
    sync for the whole session)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        home: ActonHome = make_home(
            tmp_path_factory.mktemp("imports_synced"), small_crm, monkeypatch
        )
        assert run_full_sync(home).success
    return home.path / "warehouse.sqlite"


@pytest.fixture
def home(tmp_path: Path, synced_warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> ImportHome:
    """A private home with a copy of the synced warehouse and an empty imports folder."""
    root = tmp_path / "acton_home"
    root.mkdir()
    target = root / "warehouse.sqlite"
    # The backup API copies what the write-ahead log holds too, unlike a file copy.
    with sqlite3.connect(synced_warehouse) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    monkeypatch.setenv("ACTON_HOME", str(root))
    for name in ("ACTON_IMPORTS_DIR", "ACTON_WAREHOUSE_URL", "ACTON_MAPPING_DIR"):
        monkeypatch.delenv(name, raising=False)
    return ImportHome(path=root, warehouse_url=f"sqlite:///{target}")


def utc(moment: datetime | str) -> datetime:
    """A warehouse timestamp as aware UTC (raw SQL on SQLite returns text without a zone)."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def csv_text(*lines: str) -> str:
    return "\n".join(lines) + "\n"
