"""The facts ``acton status`` reports, gathered from real warehouses (SQLite and PostgreSQL), a
real Dagster instance (SQLite storage under a temporary DAGSTER_HOME) and a real imports folder.

Times are injected (``now``) wherever a fact depends on them; where real runs take place (at
wall-clock time) the tests check what happened, never how long ago.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance
from sqlalchemy import Engine, update

from acton_pipelines.cli.local_run import local_dagster_home
from acton_pipelines.cli.status_facts import (
    FULL_SYNC_JOB,
    INCREMENTAL_SYNC_JOB,
    PUSH_OBJECT,
    SYNC_OBJECTS,
    WORKSPACE_FILE,
    DagsterFacts,
    ImportsFacts,
    StatusReport,
    age,
    ago,
    build_report,
    dagster_facts,
    imports_facts,
    warehouse_facts,
)
from acton_pipelines.schedules.run_failure_sensor import FailedRun as RecordedFailure
from acton_pipelines.schedules.run_failure_sensor import record_run_failure
from acton_pipelines.schedules.sync_history import CRM_TABLES
from acton_pipelines.warehouse import tables
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.sync_runs import SyncRun
from acton_pipelines.warehouse.tables import sync_runs
from tests.conftest import ActonHome, run_full_sync
from tests.launch import run_sensor_daemon_once

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
FRESHNESS = timedelta(hours=26)


def record(
    engine: Engine,
    tables: Iterable[str],
    started: datetime,
    *,
    mode: str = "incremental",
    status: str = "success",
    error: str | None = None,
) -> str:
    """One run's ``sync_runs`` rows, as the pipeline writes them, started at ``started`` and
    finished a minute later; returns the run id."""
    run_id = str(uuid.uuid4())
    with engine.begin() as conn:
        for table in tables:
            run = SyncRun(run_id=run_id, object=table, mode=mode, started_at=started, error=error)
            run.record(conn, status=status)
        # record() stamps finish time with the wall clock; this run happened at `started`.
        conn.execute(
            update(sync_runs)
            .where(sync_runs.c.run_id == run_id)
            .values(finished_at=started + timedelta(minutes=1))
        )
    return run_id


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture
def imports(tmp_path: Path) -> ImportsFacts:
    folder = tmp_path / "imports"
    folder.mkdir()
    return imports_facts(folder)


def report_for(
    url: str,
    imports: ImportsFacts,
    now: datetime = NOW,
    freshness: timedelta | None = FRESHNESS,
    dagster: DagsterFacts | None = None,
) -> StatusReport:
    """The report on the warehouse at ``url`` (and, when given, an instance's facts)."""
    return build_report(
        warehouse_facts(url, now), dagster or DagsterFacts(), imports, now, freshness
    )


def problems(report: StatusReport) -> list[str]:
    return [item.problem for item in report.attention]


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """A real instance with the local config (SQLite run, event and schedule storage)."""
    monkeypatch.setenv("ACTON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    local_dagster_home()
    with DagsterInstance.get() as opened:
        yield opened


# --- the warehouse ----------------------------------------------------------------------------


def test_a_new_warehouse_is_never_synced(warehouse_url: str, imports: ImportsFacts) -> None:
    report = report_for(warehouse_url, imports)
    assert report.warehouse.error is None
    assert [o.object for o in report.warehouse.objects] == list(SYNC_OBJECTS)
    assert all(o.last_success is None and o.rows is None for o in report.warehouse.objects)
    assert report.warehouse.rows == {}
    assert report.warehouse.deletion_log_left is None
    # Never synced says it all: no second item for the full sync that is therefore due.
    assert problems(report) == ["never synced"]
    assert report.attention[0].action == "run `acton sync full`"
    if warehouse_url.startswith("sqlite:///"):
        # Looking does not create the warehouse.
        assert not Path(warehouse_url.removeprefix("sqlite:///")).exists()


def test_last_full_and_incremental_sync_per_object(
    warehouse_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(warehouse_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(days=3), mode="full")
    record(engine, SYNC_OBJECTS, NOW - timedelta(hours=2))
    report = report_for(warehouse_url, imports)
    leads = report.warehouse.objects[0]
    assert leads.object == "crm_leads"
    assert leads.last_full == NOW - timedelta(days=3)
    assert leads.last_incremental == NOW - timedelta(hours=2)
    assert leads.last_success == NOW - timedelta(hours=2)
    assert report.warehouse.rows["sync_runs"] == 2 * len(SYNC_OBJECTS)
    # The deletion log counts from the last successful sync of any mode.
    assert report.warehouse.deletion_log_left == timedelta(days=14) - timedelta(hours=2)
    assert report.warehouse.full_sync_due is None
    assert report.attention == []


def test_a_partly_synced_warehouse_names_what_never_synced(
    sqlite_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(sqlite_url)
    record(engine, [t for t in CRM_TABLES if t != "crm_users"], NOW - timedelta(hours=1))
    assert problems(report_for(sqlite_url, imports)) == ["never synced: crm_users"]


def test_a_full_sync_is_due_when_the_deletion_log_no_longer_reaches_the_last_sync(
    sqlite_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(sqlite_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(days=20), mode="full")
    report = report_for(sqlite_url, imports)
    assert report.warehouse.full_sync_due_label == "deletion-log-expired"
    # One item: the data is stale too, but the full sync is what to do about it.
    (item,) = report.attention
    assert item.problem.startswith("a full sync is due: the last successful sync of ")
    assert "older than the CRM's deletion log (14 days)" in item.problem
    assert "`acton sync full`" in item.action


def test_data_older_than_the_freshness_window_is_stale(
    sqlite_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(sqlite_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(hours=30), mode="full")
    (item,) = report_for(sqlite_url, imports).attention
    assert item.problem == (
        "stale data: crm_leads, crm_contacts, crm_accounts, crm_users, crm_opportunities last "
        "synced successfully 30 h ago, more than ACTON_FRESHNESS_HOURS (26 h)"
    )
    assert "dagster-daemon" in item.action
    assert report_for(sqlite_url, imports, freshness=timedelta(hours=48)).attention == []


def test_failed_runs_stay_until_a_later_success_heals_them(
    sqlite_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(sqlite_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(days=5), mode="full")
    record(engine, CRM_TABLES, NOW - timedelta(hours=4))
    incremental = record(
        engine,
        ["crm_leads", "crm_contacts"],
        NOW - timedelta(hours=3, minutes=1),
        status="failed",
        error="CRM unavailable (503 SERVER_UNAVAILABLE)",
    )
    # A full sync that failed outside sync_runs, as the run_failure_alerts sensor records it.
    full = str(uuid.uuid4())
    record_run_failure(
        engine,
        RecordedFailure(
            run_id=full,
            job_name=FULL_SYNC_JOB,
            failed_at=NOW - timedelta(hours=2),
            cause="crm_leads: The mapping in /nowhere has 1 problem",
            step_keys=["crm_leads"],
            tags={},
        ),
    )
    report = report_for(sqlite_url, imports)
    assert [(f.run_id, f.job) for f in report.failed_runs] == [
        (full, FULL_SYNC_JOB),
        (incremental, INCREMENTAL_SYNC_JOB),
    ]
    assert report.failed_runs[1].cause == (
        "crm_leads, crm_contacts: CRM unavailable (503 SERVER_UNAVAILABLE)"
    )
    assert problems(report) == [
        f"the last full sync failed 2 h ago, run {full[:8]}: crm_leads: The mapping in /nowhere "
        "has 1 problem",
        f"the last incremental sync failed 3 h ago, run {incremental[:8]}: crm_leads, "
        "crm_contacts: CRM unavailable (503 SERVER_UNAVAILABLE)",
    ]
    assert report.attention[0].action == "fix the cause, then `acton sync full`"

    # A later incremental sync of every CRM object heals the incremental failure, not the full
    # one: the deletions a full sync reconciles have still not been reconciled.
    record(engine, CRM_TABLES, NOW - timedelta(hours=1))
    assert [f.run_id for f in report_for(sqlite_url, imports).failed_runs] == [full]
    record(engine, SYNC_OBJECTS, NOW - timedelta(minutes=30), mode="full")
    healed = report_for(sqlite_url, imports)
    assert healed.failed_runs == [] and healed.attention == []


def test_failures_older_than_two_weeks_are_left_to_the_deletion_log(
    sqlite_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(sqlite_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(days=40), mode="full")
    record(engine, ["crm_leads"], NOW - timedelta(days=15), mode="full", status="failed")
    report = report_for(sqlite_url, imports)
    assert report.failed_runs == []
    assert [p.split(":")[0] for p in problems(report)] == ["a full sync is due"]


def test_an_unreachable_warehouse_is_one_line_without_its_password(
    imports: ImportsFacts,
) -> None:
    url = "postgresql+psycopg://acton:s3cret-pw@127.0.0.1:1/acton_warehouse"
    report = report_for(url, imports)
    assert report.warehouse.error
    assert report.warehouse.url == "postgresql+psycopg://acton:***@127.0.0.1:1/acton_warehouse"
    (item,) = report.attention
    assert item.problem.startswith(f"the warehouse {report.warehouse.url} cannot be read: ")
    assert "s3cret-pw" not in json.dumps(report.to_dict())


def test_the_last_push_and_what_waits_for_the_next_one(
    warehouse_url: str, imports: ImportsFacts
) -> None:
    engine = warehouse_engine(warehouse_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(hours=5), mode="full")
    older = record(engine, [PUSH_OBJECT], NOW - timedelta(hours=4), mode="push")
    newest = record(engine, [PUSH_OBJECT], NOW - timedelta(hours=3), mode="push")
    tables.metadata.create_all(
        engine,
        tables=[tables.crm_push_log, tables.acton_field_edits, tables.crm_create_requests],
    )
    log = [
        (older, "failed"),
        (newest, "success"),
        (newest, "failed"),
        (newest, "failed"),
    ]
    with engine.begin() as conn:
        conn.execute(
            tables.crm_push_log.insert(),
            [
                {
                    "object": "Lead",
                    "record_id": f"00Q{index}",
                    "field": "Act_On_Score__c",
                    "outcome": outcome,
                    "sync_run_id": run_id,
                    "attempted_at": NOW,
                }
                for index, (run_id, outcome) in enumerate(log)
            ],
        )
        conn.execute(
            tables.acton_field_edits.insert(),
            [
                {
                    "contact_id": f"c{index}",
                    "field": "Job Title",
                    "column": "job_title",
                    "changed_at": NOW,
                    "push_status": status,
                }
                for index, status in enumerate(["pending", "failed", "pushed", "superseded"])
            ],
        )
        conn.execute(
            tables.crm_create_requests.insert(),
            [
                {
                    "contact_id": f"acton:{status}@example.com",
                    "email": f"{status}@example.com",
                    "status": status,
                    "requested_at": NOW,
                }
                for status in ("pending", "created")
            ],
        )
    facts = report_for(warehouse_url, imports).warehouse
    assert facts.last_push == NOW - timedelta(hours=3)
    # The newest push's failed writes only: the older one's were retried by it.
    assert facts.failed_push_writes == 2
    # A failed edit waits too: the next push retries it.
    assert (facts.pending_edits, facts.pending_creates) == (2, 1)


# --- the imports folder -----------------------------------------------------------------------


def test_imports_waiting_and_rejected(tmp_path: Path, sqlite_url: str) -> None:
    folder = tmp_path / "imports"
    (folder / "rejected").mkdir(parents=True)
    (folder / "processed").mkdir()
    (folder / "contacts_2.csv").write_text("email\na@example.com\n")
    (folder / ".contacts_3.csv").write_text("being written\n")
    (folder / "processed" / "contacts_1.csv").write_text("email\nb@example.com\n")
    (folder / "rejected" / "edits_1.csv").write_text("email,field\n")
    (folder / "rejected" / "edits_1.csv.errors.txt").write_text("edits_1.csv, line 1: ...\n")
    facts = imports_facts(folder)
    assert facts.waiting == ["contacts_2.csv"]
    assert facts.rejected == ["edits_1.csv"]
    engine = warehouse_engine(sqlite_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(hours=1), mode="full")
    (item,) = report_for(sqlite_url, facts).attention
    assert item.problem == f"1 import file rejected in {folder / 'rejected'}"
    assert "<name>.errors.txt" in item.action


# --- the Dagster instance ---------------------------------------------------------------------


def test_schedules_next_ticks_and_no_tick_before_the_daemon_runs(
    instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTON_FULL_SYNC_ANCHOR", raising=False)
    # A Tuesday: the full sync ran yesterday (an "on" Monday counted from 2026-01-05), the
    # next Monday is an off week, so the next full sync is in two weeks.
    facts = dagster_facts(instance, NOW, home=str(instance.root_directory))
    assert facts.error is None and facts.definitions_error is None
    schedules = {s.name: s for s in facts.schedules}
    assert schedules["full_sync_schedule"].running
    assert schedules["full_sync_schedule"].next_tick == datetime(2026, 12, 21, 2, 0, tzinfo=UTC)
    assert schedules["incremental_sync_schedule"].next_tick == datetime(
        2026, 12, 8, 11, 0, tzinfo=UTC
    )
    assert {s.name for s in facts.sensors} == {
        "mapping_change_sensor",
        "deletion_log_sensor",
        "push_after_sync",
        "imports_sensor",
        "edits_push_sensor",
        "run_failure_alerts",
        "freshness_checks_sensor",
    }
    assert all(s.running and s.last_tick is None for s in facts.sensors)
    assert not facts.ticked and facts.daemon_heartbeat is None
    assert facts.failures == [] and facts.active_runs == []


def test_a_stopped_schedule_has_no_next_tick(instance: DagsterInstance) -> None:
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    (origin,) = location_origins_from_yaml_paths([str(WORKSPACE_FILE)])
    local = InProcessCodeLocationOrigin(
        origin.loadable_target_origin, location_name=origin.location_name
    )
    with local.create_location(instance) as location:
        (repository_name,) = location.get_repository_names()
        remote = location.get_repository(repository_name).get_schedule("full_sync_schedule")
        # As the UI's "stop" does it: a stored state, found again by its selector.
        instance.stop_schedule(remote.get_remote_origin_id(), remote.selector_id, remote)
    schedules = {s.name: s for s in dagster_facts(instance, NOW).schedules}
    assert not schedules["full_sync_schedule"].running
    assert schedules["full_sync_schedule"].next_tick is None
    assert schedules["incremental_sync_schedule"].running


def test_each_sensor_shows_its_last_result_after_a_daemon_tick(instance: DagsterInstance) -> None:
    run_sensor_daemon_once(instance)
    facts = dagster_facts(instance, datetime.now(UTC))
    ticks = {s.name: s.last_tick for s in facts.sensors}
    assert all(tick is not None for tick in ticks.values()), ticks
    assert facts.ticked
    # Never synced: the deletion-log sensor requests a full sync; without a daemon to start it,
    # the run waits in the queue.
    requested = ticks["deletion_log_sensor"]
    assert requested is not None and requested.outcome == "success"
    assert requested.detail == "requested 1 run"
    assert (FULL_SYNC_JOB, "queued") in [(r.job, r.status) for r in facts.active_runs]
    skipped = ticks["imports_sensor"]
    assert skipped is not None and skipped.outcome == "skipped"
    assert skipped.detail.startswith("No new files in ")
    schedules = {s.name: s for s in facts.schedules}
    assert schedules["full_sync_schedule"].last_tick is None


def test_a_sensor_that_fails_its_evaluation_needs_attention(
    instance: DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sensors read ACTON_WAREHOUSE_URL when they run: one they cannot use makes those that
    # read the warehouse fail.
    monkeypatch.setenv("ACTON_WAREHOUSE_URL", "mysql://nobody@127.0.0.1/warehouse")
    run_sensor_daemon_once(instance)
    now = datetime.now(UTC)
    facts = dagster_facts(instance, now)
    failed = {s.name: s.last_tick for s in facts.sensors}["deletion_log_sensor"]
    assert failed is not None and failed.outcome == "failure"
    assert "neither SQLite nor PostgreSQL" in failed.detail
    assert "Traceback" not in failed.detail
    report = build_report(
        warehouse_facts(f"sqlite:///{tmp_path / 'warehouse.sqlite'}", now),
        facts,
        imports_facts(tmp_path / "imports"),
        now,
        FRESHNESS,
    )
    assert (
        f"sensor deletion_log_sensor failed its last evaluation {ago(failed.at, now)}: "
        f"{failed.detail}"
    ) in problems(report)


def table_counts(warehouse: Path, tables: Iterable[str]) -> dict[str, int]:
    with sqlite3.connect(warehouse) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def test_a_real_failed_run_shows_its_cause_until_a_full_sync_succeeds(
    acton_home: ActonHome,
) -> None:
    local_dagster_home()
    with DagsterInstance.get() as instance:
        failed = run_full_sync(acton_home, mapping_dir=Path("/nonexistent"), instance=instance)
        assert not failed.success
        now = datetime.now(UTC)
        facts = dagster_facts(instance, now)
        (failure,) = facts.failures
        assert (failure.run_id, failure.job) == (failed.run_id, FULL_SYNC_JOB)
        assert failure.cause is not None
        assert "/nonexistent: the mapping folder does not exist" in failure.cause
        imports = imports_facts(acton_home.path / "imports")
        report = build_report(
            warehouse_facts(acton_home.warehouse_url, now), facts, imports, now, FRESHNESS
        )
        assert report.failed_runs == [failure]
        assert any(
            p.startswith(f"the last full sync failed {ago(failure.failed_at, now)}, run ")
            and "/nonexistent" in p
            for p in problems(report)
        )

        assert run_full_sync(acton_home, instance=instance).success
        now = datetime.now(UTC)
        report = build_report(
            warehouse_facts(acton_home.warehouse_url, now),
            dagster_facts(instance, now),
            imports,
            now,
            FRESHNESS,
        )
    assert report.failed_runs == []
    # Quarantined values are shown, not attention.
    assert report.warehouse.quarantined > 0
    assert report.attention == [], report.attention
    counts = table_counts(acton_home.path / "warehouse.sqlite", SYNC_OBJECTS)
    assert {o.object: o.rows for o in report.warehouse.objects} == counts
    assert all(o.last_full is not None for o in report.warehouse.objects)


# --- small helpers and the JSON form ----------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=12, seconds=40), "12 min"),
        (timedelta(minutes=89), "89 min"),
        (timedelta(hours=3, minutes=59), "3 h"),
        (timedelta(hours=47), "47 h"),
        (timedelta(days=2, hours=23), "2 d"),
    ],
)
def test_ages_read_the_way_people_say_them(delta: timedelta, text: str) -> None:
    assert age(delta) == text
    assert ago(NOW - delta, NOW) == f"{text} ago"
    assert ago(NOW + delta, NOW) == f"in {text}"


def test_the_report_is_plain_json(sqlite_url: str, imports: ImportsFacts) -> None:
    engine = warehouse_engine(sqlite_url)
    record(engine, SYNC_OBJECTS, NOW - timedelta(days=1), mode="full")
    data = json.loads(json.dumps(report_for(sqlite_url, imports).to_dict()))
    assert data["now"] == NOW.isoformat()
    assert data["needs_attention"] is False and data["attention"] == []
    assert data["warehouse"]["objects"][0] == {
        "object": "crm_leads",
        "last_full": (NOW - timedelta(days=1)).isoformat(),
        "last_incremental": None,
        "rows": None,
    }
    assert data["warehouse"]["deletion_log_left"] == timedelta(days=13).total_seconds()
    assert "failures" not in data["warehouse"]
