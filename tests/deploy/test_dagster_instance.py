"""Dagster's own storage: ``deploy/production/dagster.yaml`` on PostgreSQL (dagster-postgres)
and ``deploy/local/dagster.yaml`` on SQLite.

What lands in PostgreSQL is read back with SQLAlchemy straight from Dagster's tables, not
through the instance API, so the tests see what the webserver and the daemon would share.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_schedule_context
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.remote_representation.external import RemoteSchedule
from dagster._core.scheduler.instigation import InstigatorStatus
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from sqlalchemy import URL, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from acton_pipelines.cli.local_run import local_dagster_home
from acton_pipelines.runs.partitions import sync_partitions
from acton_pipelines.schedules.full_sync import full_sync_schedule
from acton_pipelines.settings import REPO_ROOT
from tests.conftest import ActonHome, run_full_sync

PRODUCTION_YAML = REPO_ROOT / "deploy" / "production" / "dagster.yaml"
LOCAL_YAML = REPO_ROOT / "deploy" / "local" / "dagster.yaml"
WORKSPACE_YAML = REPO_ROOT / "workspace.yaml"

SYNCED_ASSETS = {
    "crm_leads",
    "crm_contacts",
    "crm_accounts",
    "crm_users",
    "crm_opportunities",
    "acton_contacts",
    "contact_scores",
    "segments",
}
ACTON_CONTACTS_CHECKS = {
    "acton_contacts_rejects",
    "acton_contacts_schema",
    "acton_contacts_duplicate_emails",
}
# Every sync also evaluates the freshness checks of acton_contacts and contact_scores.
CHECKS_EVALUATED = {("acton_contacts", name) for name in ACTON_CONTACTS_CHECKS} | {
    ("acton_contacts", "freshness_check"),
    ("contact_scores", "freshness_check"),
}


def production_dagster_home(root: Path, database: URL, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME holding a copy of the production ``dagster.yaml``, its DAGSTER_PG_*
    variables pointing at ``database``."""
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(PRODUCTION_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", database.host or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(database.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", database.username or "postgres")
    # Set but empty under trust authentication: the case the production file documents.
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", database.password or "")
    monkeypatch.setenv("DAGSTER_PG_DB", database.database or "")
    return home


@pytest.fixture
def production_instance(
    tmp_path: Path, postgres_database: URL, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DagsterInstance]:
    """A Dagster instance from ``deploy/production/dagster.yaml`` on an empty PostgreSQL
    database of its own (``postgres_database``)."""
    home = production_dagster_home(tmp_path, postgres_database, monkeypatch)
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def query(database: URL, sql: str, **params: Any) -> list[Any]:
    """Rows of ``sql`` run directly on ``database`` (a connection of its own, then closed)."""
    engine = create_engine(database, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params))
    finally:
        engine.dispose()


def test_a_full_sync_records_its_run_events_and_checks_in_postgresql(
    acton_home: ActonHome, production_instance: DagsterInstance, postgres_database: URL
) -> None:
    for storage in (
        production_instance.run_storage,
        production_instance.event_log_storage,
        production_instance.schedule_storage,
    ):
        assert type(storage).__name__.startswith("Postgres")

    result = run_full_sync(acton_home, instance=production_instance)
    assert result.success

    runs = query(postgres_database, "SELECT run_id, pipeline_name, status FROM runs")
    assert [tuple(row) for row in runs] == [(result.run_id, "full_sync", "SUCCESS")]

    materialized = query(
        postgres_database,
        "SELECT asset_key, partition FROM event_logs "
        "WHERE run_id = :run_id AND dagster_event_type = 'ASSET_MATERIALIZATION'",
        run_id=result.run_id,
    )
    # asset_key is stored as the key's JSON path, e.g. '["crm_leads"]'. A full sync runs on
    # today's partition only: every asset is materialized once, whatever the days since the start.
    days = [result.dagster_run.tags["dagster/partition"]]
    assert days == [sync_partitions.get_last_partition_key()]
    assert sorted(("/".join(json.loads(r.asset_key)), r.partition) for r in materialized) == sorted(
        (asset, day) for asset in SYNCED_ASSETS for day in days
    )

    evaluations = query(
        postgres_database,
        "SELECT id FROM event_logs "
        "WHERE run_id = :run_id AND dagster_event_type = 'ASSET_CHECK_EVALUATION'",
        run_id=result.run_id,
    )
    assert len(evaluations) == len(CHECKS_EVALUATED)
    # Which checks those were: event_logs leaves asset_key empty for check evaluations, the
    # check executions table names them.
    checks = query(
        postgres_database,
        "SELECT asset_key, check_name FROM asset_check_executions WHERE run_id = :run_id",
        run_id=result.run_id,
    )
    assert {(json.loads(row.asset_key)[0], row.check_name) for row in checks} == CHECKS_EVALUATED

    # The warehouse is a database of its own: its tables are not among Dagster's, and Dagster's
    # tables are not in it.
    warehouse = make_url(acton_home.warehouse_url)
    assert warehouse.get_backend_name() == "sqlite"
    dagster_tables = {
        row.tablename
        for row in query(
            postgres_database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    assert {"runs", "event_logs", "instigators"} <= dagster_tables
    assert dagster_tables.isdisjoint({"acton_contacts", "sync_runs", *SYNCED_ASSETS})
    warehouse_tables = {
        row.name for row in query(warehouse, "SELECT name FROM sqlite_master WHERE type = 'table'")
    }
    assert "acton_contacts" in warehouse_tables
    assert warehouse_tables.isdisjoint({"runs", "event_logs"})


def project_schedule(context: WorkspaceProcessContext) -> RemoteSchedule:
    """``full_sync_schedule`` as the webserver and the daemon see it: loaded from
    ``workspace.yaml`` through a code server."""
    request = context.create_request_context()
    error = request.get_code_location_error("acton_pipelines")
    assert error is None, error
    location = request.get_code_location("acton_pipelines")
    (repository_name,) = location.get_repository_names()
    return location.get_repository(repository_name).get_schedule("full_sync_schedule")


def stored_schedule_status(database: URL, remote: RemoteSchedule) -> tuple[str, str] | None:
    """The schedule's status in PostgreSQL: (``instigators``, ``jobs``) rows, or None."""
    instigators = query(
        database,
        "SELECT status, instigator_type FROM instigators WHERE selector_id = :selector_id",
        selector_id=remote.selector_id,
    )
    jobs = query(
        database,
        "SELECT status, job_type FROM jobs WHERE job_origin_id = :origin_id",
        origin_id=remote.get_remote_origin_id(),
    )
    if not instigators and not jobs:
        return None
    assert [row.instigator_type for row in instigators] == ["SCHEDULE"]
    assert [row.job_type for row in jobs] == ["SCHEDULE"]
    return instigators[0].status, jobs[0].status


def test_the_biweekly_schedule_evaluates_and_keeps_its_state_in_postgresql(
    acton_home: ActonHome,
    production_instance: DagsterInstance,
    postgres_database: URL,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACTON_FULL_SYNC_ANCHOR", raising=False)

    # The anchor Monday runs; the Monday after is an off week.
    on_week = full_sync_schedule(
        build_schedule_context(
            instance=production_instance,
            scheduled_execution_time=datetime(2026, 1, 5, 2, 0, tzinfo=UTC),
        )
    )
    assert isinstance(on_week, RunRequest)
    assert on_week.run_key == "full-sync-2026-01-05T02:00:00+00:00"
    off_week = full_sync_schedule(
        build_schedule_context(
            instance=production_instance,
            scheduled_execution_time=datetime(2026, 1, 12, 2, 0, tzinfo=UTC),
        )
    )
    assert isinstance(off_week, SkipReason)
    assert "off week" in (off_week.skip_message or "")

    with WorkspaceProcessContext(
        production_instance, WorkspaceFileTarget([str(WORKSPACE_YAML)])
    ) as context:
        remote = project_schedule(context)
        origin_id, selector_id = remote.get_remote_origin_id(), remote.selector_id

        # Running by default (declared in code): nothing stored until someone toggles it.
        assert stored_schedule_status(postgres_database, remote) is None

        production_instance.stop_schedule(origin_id, selector_id, remote)
        assert stored_schedule_status(postgres_database, remote) == ("STOPPED", "STOPPED")

        production_instance.start_schedule(remote)
        assert stored_schedule_status(postgres_database, remote) == ("RUNNING", "RUNNING")
        (body,) = query(
            postgres_database,
            "SELECT instigator_body FROM instigators WHERE selector_id = :selector_id",
            selector_id=selector_id,
        )
        schedule_data = json.loads(body.instigator_body)["job_specific_data"]
        assert schedule_data["cron_schedule"] == "0 2 * * 1"
        assert schedule_data["start_timestamp"] is not None

    # Another process (the daemon, the webserver) opening the same config sees that state.
    with DagsterInstance.from_config(str(production_instance.root_directory)) as other:
        state = other.get_instigator_state(origin_id, selector_id)
        assert state is not None
        assert state.status == InstigatorStatus.RUNNING


def test_the_production_config_names_an_unset_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = production_dagster_home(
        tmp_path, make_url("postgresql://postgres@127.0.0.1:5432/dagster"), monkeypatch
    )
    # Unset is refused (an empty value is not: see the fixture): a forgotten variable fails
    # at startup, naming itself, rather than connecting with a default.
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    with pytest.raises(DagsterInvalidConfigError, match="DAGSTER_PG_PASSWORD"):
        DagsterInstance.from_config(str(home))


def test_local_runs_install_the_local_config_on_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTON_HOME", str(tmp_path / "acton_home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    home = local_dagster_home()

    assert home == tmp_path / "dagster_home"
    assert (home / "dagster.yaml").read_bytes() == LOCAL_YAML.read_bytes()
    with DagsterInstance.get() as instance:
        assert Path(instance.root_directory) == home
        for storage in (
            instance.run_storage,
            instance.event_log_storage,
            instance.schedule_storage,
        ):
            assert "Sqlite" in type(storage).__name__
        assert not instance.telemetry_enabled


def test_a_new_local_home_has_its_storage_before_any_dagster_process_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dagster dev starts the webserver, the daemon and a code server at once; if the SQLite
    # storage did not exist yet they would all create it, and can stamp two Alembic heads.
    monkeypatch.setenv("ACTON_HOME", str(tmp_path / "acton_home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))

    home = local_dagster_home()

    for database in ("schedules/schedules.db", "history/runs.db"):
        with sqlite3.connect(home / database) as connection:
            heads = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        assert len(heads) == 1, (database, heads)


def test_an_existing_dagster_yaml_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_HOME", str(tmp_path / "acton_home"))
    # Empty: the default, ACTON_HOME/dagster. Set rather than deleted, so that monkeypatch
    # restores the variable local_dagster_home() sets.
    monkeypatch.setenv("DAGSTER_HOME", "")
    existing = tmp_path / "acton_home" / "dagster" / "dagster.yaml"
    existing.parent.mkdir(parents=True)
    existing.write_text("telemetry:\n  enabled: false\n# edited by hand\n")

    home = local_dagster_home()

    assert home == existing.parent
    assert existing.read_text().endswith("# edited by hand\n")
