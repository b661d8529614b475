"""A private SQLite warehouse whose ``sync_runs`` the tests write, and a copy of the mapping."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pytest

from acton_pipelines.settings import REPO_ROOT
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.sync_runs import SyncRun

RecordSync = Callable[..., None]


@pytest.fixture
def warehouse(tmp_path: Path) -> WarehouseResource:
    return WarehouseResource(url=f"sqlite:///{tmp_path / 'warehouse.sqlite'}")


@pytest.fixture
def record_sync(warehouse: WarehouseResource) -> RecordSync:
    """``record_sync(tables, started, mode="incremental", status="success")``: one run's rows."""

    def record(
        tables: Iterable[str],
        started: datetime,
        mode: str = "incremental",
        status: str = "success",
    ) -> None:
        run_id = str(uuid.uuid4())
        with warehouse.engine.begin() as conn:
            for table in tables:
                SyncRun(run_id=run_id, object=table, mode=mode, started_at=started).record(
                    conn, status=status
                )

    return record


@pytest.fixture
def mapping_dir(tmp_path: Path) -> Path:
    target = tmp_path / "mapping_config"
    shutil.copytree(REPO_ROOT / "mapping_config", target)
    return target
