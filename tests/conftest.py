"""Fixtures shared by the integration tests: an isolated ACTON_HOME with a seeded sandbox."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, ExecuteInProcessResult

from acton_pipelines.definitions import defs as project_defs
from acton_pipelines.jobs import full_sync_job
from acton_pipelines.resources.mapping import MappingResource
from acton_pipelines.resources.salesforce import SalesforceResource
from acton_pipelines.resources.warehouse import WarehouseResource
from acton_pipelines.sandbox import SeedSummary, seed_sandbox

SEED_NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class ActonHome:
    """An ``ACTON_HOME`` with its sandbox CRM seeded, and the warehouse URL it uses."""

    path: Path
    sandbox_db: Path
    seed: SeedSummary

    @property
    def warehouse_url(self) -> str:
        return f"sqlite:///{self.path / 'warehouse.sqlite'}"


@pytest.fixture(scope="session")
def small_crm(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    """A small seeded sandbox (enough for every kind of dirt), copied into each home."""
    db_path = tmp_path_factory.mktemp("small_crm") / "crm.sqlite"
    return seed_sandbox(db_path, leads=600, contacts=450, seed=7, now=SEED_NOW)


def make_home(root: Path, seed: SeedSummary, monkeypatch: pytest.MonkeyPatch) -> ActonHome:
    """Point ACTON_HOME at ``root`` with a copy of ``seed`` as its sandbox CRM."""
    sandbox_db = root / "sandbox" / "crm.sqlite"
    sandbox_db.parent.mkdir(parents=True)
    shutil.copyfile(seed.db_path, sandbox_db)
    monkeypatch.setenv("ACTON_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    for name in ("ACTON_WAREHOUSE_URL", "ACTON_SANDBOX_URL", "ACTON_CRM_MODE", "ACTON_MAPPING_DIR"):
        monkeypatch.delenv(name, raising=False)
    return ActonHome(path=root, sandbox_db=sandbox_db, seed=seed)


@pytest.fixture
def acton_home(
    tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ActonHome]:
    """A private ACTON_HOME with the small sandbox CRM, for one test."""
    yield make_home(tmp_path / "acton_home", small_crm, monkeypatch)


def run_full_sync(home: ActonHome, mapping_dir: Path | None = None) -> ExecuteInProcessResult:
    """The project's full_sync job, in process, on ``home``'s sandbox and warehouse."""
    definitions = Definitions(
        assets=project_defs.assets,
        asset_checks=project_defs.asset_checks,
        jobs=[full_sync_job],
        resources={
            "crm": SalesforceResource(retry_initial_wait_seconds=0.01),
            "warehouse": WarehouseResource(url=home.warehouse_url),
            "mapping": MappingResource(directory=str(mapping_dir) if mapping_dir else None),
        },
    )
    return definitions.resolve_job_def("full_sync").execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
