"""Fixtures shared by the integration tests: an isolated ACTON_HOME with a seeded sandbox."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions, ExecuteInProcessResult
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.definitions import defs as project_defs
from acton_pipelines.jobs import (
    acton_imports_job,
    crm_push_job,
    full_sync_job,
    incremental_sync_job,
)
from acton_pipelines.runs.partitions import full_sync_tags, incremental_tags
from acton_pipelines.warehouse.engine import dispose_engines
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource
from crm_sandbox import SeedSummary, seed_sandbox
from crm_sandbox.store import DELETES_REFUSED_KEY

SEED_NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
# The repository's own mapping, as a user starts from it.
REPO_CONFIG = Path(__file__).resolve().parents[1] / "mapping_config"
DEFAULT_TEST_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def psycopg_url(url: str) -> URL:
    """A PostgreSQL URL for SQLAlchemy's psycopg (3) driver."""
    return make_url(url).set(drivername="postgresql+psycopg")


@pytest.fixture(scope="session")
def postgres_server() -> URL:
    """The PostgreSQL server of ``ACTON_TEST_POSTGRES_URL`` (a user that may create databases).

    Unreachable, the PostgreSQL tests are skipped, unless ``ACTON_REQUIRE_POSTGRES=1`` (as in
    CI), which fails them instead.
    """
    url = psycopg_url(os.environ.get("ACTON_TEST_POSTGRES_URL", DEFAULT_TEST_POSTGRES_URL))
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as error:
        reason = (
            f"PostgreSQL not reachable at {url.render_as_string(hide_password=True)} "
            f"({type(error.orig).__name__}); start it or set ACTON_TEST_POSTGRES_URL to run "
            "the PostgreSQL tests"
        )
        if os.environ.get("ACTON_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (ACTON_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_postgres_database(server: URL) -> Iterator[URL]:
    """A new, empty database on ``server`` for one test (dropped afterwards)."""
    name = f"acton_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_database(postgres_server: URL) -> Iterator[URL]:
    """An empty PostgreSQL database of its own for one test."""
    with fresh_postgres_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A private, empty warehouse on each backend: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
        return
    server = request.getfixturevalue("postgres_server")
    with fresh_postgres_database(server) as url:
        yield url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class ActonHome:
    """An ``ACTON_HOME`` with its sandbox CRM seeded, and the warehouse URL it uses."""

    path: Path
    sandbox_db: Path
    seed: SeedSummary

    warehouse: str | None = None

    @property
    def warehouse_url(self) -> str:
        """The warehouse this home syncs into (a SQLite file in it unless set)."""
        return self.warehouse or f"sqlite:///{self.path / 'warehouse.sqlite'}"


@pytest.fixture(scope="session")
def small_crm(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    """A small seeded sandbox (enough for every kind of dirt), copied into each home."""
    db_path = tmp_path_factory.mktemp("small_crm") / "crm.sqlite"
    return seed_sandbox(db_path, leads=600, contacts=450, seed=7, now=SEED_NOW)


# Every sandbox CRM a pipeline test synced with: none may ever have been sent a DELETE.
PIPELINE_SANDBOXES: list[Path] = []


@pytest.fixture(scope="session", autouse=True)
def no_delete_ever_reaches_the_crm() -> Iterator[None]:
    """After the whole suite: the pipeline never sent a DELETE to any sandbox CRM it used (the
    sandbox refuses and counts them). Sandbox tests that send DELETE on purpose use their own
    databases, not these."""
    yield
    sent = {}
    for db_path in PIPELINE_SANDBOXES:
        if db_path.exists():
            with sqlite3.connect(db_path) as conn:
                row = conn.execute(
                    "SELECT value FROM _sandbox_meta WHERE key = ?", (DELETES_REFUSED_KEY,)
                ).fetchone()
            if row and int(row[0]):
                sent[str(db_path)] = int(row[0])
    assert not sent, f"DELETE requests reached the sandbox CRM: {sent}"


def make_home(
    root: Path, seed: SeedSummary, monkeypatch: pytest.MonkeyPatch, warehouse: str | None = None
) -> ActonHome:
    """Point ACTON_HOME at ``root`` with a copy of ``seed`` as its sandbox CRM (and
    ``warehouse`` as its warehouse URL, default a SQLite file in ``root``)."""
    sandbox_db = root / "sandbox" / "crm.sqlite"
    sandbox_db.parent.mkdir(parents=True)
    shutil.copyfile(seed.db_path, sandbox_db)
    PIPELINE_SANDBOXES.append(sandbox_db)
    monkeypatch.setenv("ACTON_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    for name in ("ACTON_WAREHOUSE_URL", "ACTON_SANDBOX_URL", "ACTON_CRM_MODE", "ACTON_MAPPING_DIR"):
        monkeypatch.delenv(name, raising=False)
    return ActonHome(path=root, sandbox_db=sandbox_db, seed=seed, warehouse=warehouse)


@pytest.fixture
def acton_home(
    tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ActonHome]:
    """A private ACTON_HOME with the small sandbox CRM, for one test."""
    yield make_home(tmp_path / "acton_home", small_crm, monkeypatch)


class SyncedTemplates:
    """Homes after their first full sync, made once per test process and backend, copied for
    each test that starts from one: the full sync is the slowest thing a test can ask for, and
    most tests only need its result (tests of the full sync itself run it themselves)."""

    def __init__(self, root: Path, crm: SeedSummary, request: pytest.FixtureRequest) -> None:
        self._root = root
        self._crm = crm
        self._request = request
        self._templates: dict[str, ActonHome] = {}
        self._postgres_databases: list[str] = []
        # Kept from the first PostgreSQL template: at teardown the fixture is gone.
        self._postgres_server: URL | None = None

    def _template(self, backend: str) -> ActonHome:
        if backend not in self._templates:
            warehouse = None
            if backend == "postgresql":
                server: URL = self._request.getfixturevalue("postgres_server")
                self._postgres_server = server
                name = f"acton_template_{uuid.uuid4().hex[:12]}"
                self._postgres_admin(f'CREATE DATABASE "{name}"')
                self._postgres_databases.append(name)
                warehouse = server.set(database=name).render_as_string(hide_password=False)
            with pytest.MonkeyPatch.context() as env:
                home = make_home(self._root / backend, self._crm, env, warehouse)
                assert run_full_sync(home).success
            # A template database takes no copies while anyone is connected to it; a SQLite
            # file is whole (its WAL checkpointed) once its last connection closes.
            dispose_engines()
            self._templates[backend] = home
        return self._templates[backend]

    def _postgres_admin(self, statement: str) -> None:
        assert self._postgres_server is not None, "no PostgreSQL template was made"
        admin = create_engine(
            self._postgres_server, poolclass=NullPool, isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as conn:
                conn.execute(text(statement))
        finally:
            admin.dispose()

    @contextlib.contextmanager
    def copy(
        self, backend: str, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[ActonHome]:
        """A private home at ``root`` holding a copy of the synced CRM and warehouse."""
        template = self._template(backend)
        synced_crm = dataclasses.replace(self._crm, db_path=template.sandbox_db)
        if backend == "sqlite":
            home = make_home(root, synced_crm, monkeypatch)
            shutil.copyfile(
                Path(make_url(template.warehouse_url).database), root / "warehouse.sqlite"
            )
            yield dataclasses.replace(home, seed=self._crm)
            return
        template_url = make_url(template.warehouse_url)
        name = f"acton_test_{uuid.uuid4().hex[:12]}"
        self._postgres_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_url.database}"')
        url = template_url.set(database=name).render_as_string(hide_password=False)
        try:
            home = make_home(root, synced_crm, monkeypatch, url)
            yield dataclasses.replace(home, seed=self._crm)
        finally:
            dispose_engines()
            self._postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop(self) -> None:
        dispose_engines()
        for name in self._postgres_databases:
            self._postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def synced_templates(
    tmp_path_factory: pytest.TempPathFactory, small_crm: SeedSummary, request: pytest.FixtureRequest
) -> Iterator[SyncedTemplates]:
    """The small CRM fully synced once per test process and backend (see SyncedTemplates)."""
    templates = SyncedTemplates(tmp_path_factory.mktemp("synced"), small_crm, request)
    yield templates
    templates.drop()


@pytest.fixture
def synced_home(
    tmp_path: Path, synced_templates: SyncedTemplates, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ActonHome]:
    """A private ACTON_HOME with the small sandbox CRM, after its first full sync (SQLite)."""
    with synced_templates.copy("sqlite", tmp_path / "home", monkeypatch) as home:
        yield home


@pytest.fixture(params=["sqlite", "postgresql"])
def synced_home_each_backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    synced_templates: SyncedTemplates,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ActonHome]:
    """``synced_home`` with its warehouse on each backend: a SQLite file, then PostgreSQL."""
    with synced_templates.copy(request.param, tmp_path / "home", monkeypatch) as home:
        yield home


def home_resources(home: ActonHome, mapping_dir: Path | None = None) -> dict[str, object]:
    """The project's resources pointed at ``home``'s sandbox, warehouse and mapping (CRM
    retries waiting milliseconds and giving up after seconds, not minutes)."""
    return {
        "crm": SalesforceResource(
            retry_initial_wait_seconds=0.01, retry_max_wait_seconds=0.05, retry_minutes=0.05
        ),
        "warehouse": WarehouseResource(url=home.warehouse_url),
        "mapping": MappingResource(directory=str(mapping_dir) if mapping_dir else None),
    }


def home_definitions(home: ActonHome, mapping_dir: Path | None = None) -> Definitions:
    """The project's assets, checks, jobs, schedules and sensors on ``home``'s resources."""
    return Definitions(
        assets=project_defs.assets,
        asset_checks=project_defs.asset_checks,
        jobs=[full_sync_job, incremental_sync_job, crm_push_job, acton_imports_job],
        schedules=project_defs.schedules,
        sensors=project_defs.sensors,
        resources=home_resources(home, mapping_dir),
    )


def run_sync(
    home: ActonHome,
    job_name: str,
    tags: dict[str, str],
    mapping_dir: Path | None = None,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """One of the project's sync jobs, in process, on ``home``'s sandbox and warehouse.

    Runs on ``instance`` when given (e.g. one on PostgreSQL storage), else on an ephemeral one.
    """
    definitions = home_definitions(home, mapping_dir)
    return definitions.resolve_job_def(job_name).execute_in_process(
        instance=instance if instance is not None else DagsterInstance.ephemeral(),
        raise_on_error=False,
        tags=tags,
    )


def run_full_sync(
    home: ActonHome,
    mapping_dir: Path | None = None,
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """The project's full sync with ``acton sync full``'s tags (on today's partition)."""
    return run_sync(home, "full_sync", full_sync_tags(), mapping_dir, instance)


def run_incremental_sync(
    home: ActonHome, first_day: str, last_day: str | None = None, mapping_dir: Path | None = None
) -> ExecuteInProcessResult:
    """The project's incremental sync over ``first_day``..``last_day`` (``YYYY-MM-DD``)."""
    return run_sync(home, "incremental_sync", incremental_tags(first_day, last_day), mapping_dir)
