"""Every run request of the schedules and sensors, run the way dagster-daemon runs it.

Each test evaluates a schedule or sensor on the project's Definitions (with their resources),
then executes the request's own job with its tags, partition key and asset selection on a real
``DagsterInstance``, and checks what the run promised against the sandbox CRM's own SQLite file
and the warehouse. ``mapping_change_sensor`` and ``imports_sensor`` have theirs in
``test_mapping_sensor_runs.py`` and ``tests/imports/test_imports_sensor_runs.py``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
)
from sqlalchemy import text

from acton_pipelines import settings
from acton_pipelines.jobs import SYNC_ASSETS
from acton_pipelines.runs.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SINCE_LAST_SYNC,
    SYNC_MODE_TAG,
    WINDOW_TAG,
    sync_partitions,
)
from acton_pipelines.schedules.full_sync_request import FULL_SYNC_REASON_TAG
from acton_pipelines.schedules.sync_history import CRM_TABLES
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import ChurnSummary, churn_sandbox
from crm_sandbox.store import to_storage_datetime
from tests.conftest import ActonHome, home_definitions, run_full_sync
from tests.launch import execute_request, instigator_job, schedule_tick, sensor_tick

# What a sync writes a sync_runs row for: every CRM mirror, then the tables built from them.
SYNCED_OBJECTS = (*CRM_TABLES, "acton_contacts", "contact_scores", "segment_members")
# The CRM object behind each mirror table (the sandbox file's table names).
CRM_OBJECT_OF = {
    "crm_leads": "Lead",
    "crm_contacts": "Contact",
    "crm_accounts": "Account",
    "crm_users": "User",
    "crm_opportunities": "Opportunity",
}
# Records an incremental read takes in again before an object's high-water mark (the lookback
# window of ACTON_SYNC_LOOKBACK_MINUTES): in the seeded sandbox, only a few.
LOOKBACK_OVERLAP = 5
WELL_FORMED = re.compile(r"[a-z0-9._-]+@[a-z0-9.-]+\.[a-z]+")


# --- reading the two sides ---------------------------------------------------------------------


def crm(home: ActonHome, sql: str, *params: object) -> list[tuple]:
    """Rows of the sandbox CRM's own SQLite file (the stored truth, not the API)."""
    with sqlite3.connect(home.sandbox_db) as conn:
        return conn.execute(sql, params).fetchall()


def rows(home: ActonHome, sql: str, **params: object) -> list[tuple]:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def crm_people(home: ActonHome) -> list[tuple[str, str]]:
    """(Id, record type) of every live unconverted Lead and every live Contact of the CRM."""
    leads = crm(home, "SELECT Id FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0")
    contacts = crm(home, "SELECT Id FROM Contact WHERE IsDeleted = 0")
    return sorted([(i, "Lead") for (i,) in leads] + [(i, "Contact") for (i,) in contacts])


def warehouse_people(home: ActonHome) -> list[tuple[str, str]]:
    return sorted(rows(home, "SELECT external_id, record_type FROM acton_contacts"))


def sync_runs_of(home: ActonHome, run_id: str) -> dict[str, tuple[str, str, int]]:
    """``sync_runs`` of one run: object -> (mode, status, rows_read)."""
    found = rows(
        home,
        "SELECT object, mode, status, rows_read FROM sync_runs WHERE run_id = :run",
        run=run_id,
    )
    return {name: (mode, status, read) for name, mode, status, read in found}


def failure(result: ExecuteInProcessResult) -> str:
    """What failed in a run, for an assertion message."""
    return "; ".join(
        f"{event.step_key}: {event.step_failure_data.error.message.strip()}"
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error
    )


def assert_full_sync_arrived(home: ActonHome, result: ExecuteInProcessResult) -> None:
    """The run succeeded as a full sync of every object, and acton_contacts holds the CRM's
    people exactly."""
    assert result.success, failure(result)
    assert_synced_in_full(home, result.run_id)


def assert_synced_in_full(home: ActonHome, run_id: str) -> None:
    """Run ``run_id`` synced every object in full, and acton_contacts holds the CRM's people
    exactly."""
    runs = sync_runs_of(home, run_id)
    assert {name: runs.get(name, (None, None))[:2] for name in SYNCED_OBJECTS} == {
        name: ("full", "success") for name in SYNCED_OBJECTS
    }
    people = crm_people(home)
    assert len(people) > 900
    assert warehouse_people(home) == people


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """A real Dagster instance (runs, event log, schedule state) for one test."""
    with DagsterInstance.ephemeral() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def definitions(acton_home: ActonHome) -> Definitions:
    """The project's Definitions on the home's sandbox, warehouse and mapping."""
    return home_definitions(acton_home)


@pytest.fixture
def synced_home(acton_home: ActonHome, instance: DagsterInstance) -> ActonHome:
    """The home after a full sync recorded on ``instance``."""
    result = run_full_sync(acton_home, instance=instance)
    assert result.success, failure(result)
    return acton_home


def this_monday() -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


def run(
    definitions: Definitions, request: RunRequest, instance: DagsterInstance, instigator: str
) -> ExecuteInProcessResult:
    """``request`` executed as the daemon would: its job, else its instigator's."""
    return execute_request(definitions, request, instance, instigator_job(definitions, instigator))


# --- full_sync_schedule ------------------------------------------------------------------------


def test_the_biweekly_full_sync_request_runs_a_full_sync(
    acton_home: ActonHome,
    definitions: Definitions,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monday = this_monday()
    assert monday > sync_partitions.start.date(), "the test needs a Monday inside the range"
    monkeypatch.setenv("ACTON_FULL_SYNC_ANCHOR", monday.isoformat())
    tick_at = datetime.combine(monday, time(2), tzinfo=UTC)

    off_week = schedule_tick(
        definitions, "full_sync_schedule", tick_at - timedelta(days=7), instance
    )
    assert off_week.run_requests == [] and off_week.skip_message
    assert "off week" in off_week.skip_message

    before = sync_partitions.get_last_partition_key()
    tick = schedule_tick(definitions, "full_sync_schedule", tick_at, instance)
    after = sync_partitions.get_last_partition_key()
    (request,) = tick.run_requests
    assert request.tags[FULL_SYNC_REASON_TAG] == "biweekly"
    # The latest partition only (today's, whichever side of midnight), not the whole range.
    assert request.partition_key in {before, after}
    assert RANGE_START_TAG not in request.tags and RANGE_END_TAG not in request.tags

    result = run(definitions, request, instance, "full_sync_schedule")
    assert result.dagster_run.job_name == "full_sync"
    assert result.dagster_run.tags[SYNC_MODE_TAG] == "full"
    assert result.dagster_run.tags[PARTITION_TAG] == request.partition_key
    assert_full_sync_arrived(acton_home, result)


# A start date three years back: the full sync run over the whole range used to record
# 3 x 365 x 8 materializations (and as many planned events), about 470 CPU-s of bookkeeping.
YEARS_OF_PARTITIONS = 3 * 365


def scheduled_full_sync_facts() -> dict[str, object]:
    """The full sync ``full_sync_schedule`` requests this Monday, run in this process as the
    daemon runs it on an instance with SQLite storage under ``DAGSTER_HOME``: what it recorded.

    Called in a child process by the test below: the partitions are built when
    ``acton_pipelines`` is imported, from the child's ``ACTON_SYNC_START_DATE``.
    """
    from acton_pipelines.definitions import defs

    tick_at = datetime.combine(this_monday(), time(2), tzinfo=UTC)
    with DagsterInstance.local_temp(str(settings.dagster_home())) as instance:
        (request,) = schedule_tick(defs, "full_sync_schedule", tick_at, instance).run_requests
        result = run(defs, request, instance, "full_sync_schedule")
        records = instance.get_records_for_run(
            result.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ).records
    return {
        "partitions": len(sync_partitions.get_partition_keys()),
        "job": result.dagster_run.job_name,
        "partition_key": request.partition_key,
        "run_id": result.run_id,
        "failure": None if result.success else failure(result) or "the run failed",
        "materialized": sorted(
            [r.asset_key.to_user_string(), r.partition_key]
            for r in records
            if r.asset_key is not None
        ),
    }


def test_the_scheduled_full_sync_records_one_materialization_per_asset_after_years(
    acton_home: ActonHome, definitions: Definitions
) -> None:
    first_day = datetime.now(UTC).date() - timedelta(days=YEARS_OF_PARTITIONS)
    env = {
        **os.environ,
        "ACTON_SYNC_START_DATE": first_day.isoformat(),
        "ACTON_FULL_SYNC_ANCHOR": this_monday().isoformat(),
    }
    days = {datetime.now(UTC).date().isoformat()}
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from tests.schedules.test_requests_run import "
            "scheduled_full_sync_facts as facts; print(json.dumps(facts()))",
        ],
        cwd=settings.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        # The old design would still finish, after some ten minutes: failing is enough.
        timeout=900,
    )
    days.add(datetime.now(UTC).date().isoformat())
    assert child.returncode == 0, child.stderr[-3000:]
    facts = json.loads(child.stdout.strip().splitlines()[-1])
    assert facts["partitions"] > YEARS_OF_PARTITIONS, "the child should see three years of days"
    assert facts["job"] == "full_sync"
    assert facts["failure"] is None, facts["failure"]
    # Today's partition (whichever side of midnight), once per asset: not once per day.
    key = facts["partition_key"]
    assert key in days
    assets = SYNC_ASSETS.resolve(definitions.resolve_asset_graph())
    assert facts["materialized"] == sorted([a.to_user_string(), key] for a in assets)

    # And the warehouse was fully synced: every mirror holds the CRM's live records.
    assert_synced_in_full(acton_home, str(facts["run_id"]))
    for table, crm_object in CRM_OBJECT_OF.items():
        live = "" if crm_object == "User" else " WHERE IsDeleted = 0"
        (expected,) = crm(acton_home, f'SELECT count(*) FROM "{crm_object}"{live}')[0]
        assert rows(acton_home, f"SELECT count(*) FROM {table}") == [(expected,)], table


# --- incremental_sync_schedule -----------------------------------------------------------------


def test_the_hourly_request_reads_only_what_changed_since_the_last_sync(
    synced_home: ActonHome, definitions: Definitions, instance: DagsterInstance
) -> None:
    people_fields = (
        "SELECT Id, Title, Phone FROM Lead UNION ALL SELECT Id, Title, Phone FROM Contact"
    )
    before = {record_id: values for record_id, *values in crm(synced_home, people_fields)}
    # The churn's choices depend on the time it runs at: enough changes that every kind
    # touches Leads or Contacts.
    summary: ChurnSummary = churn_sandbox(
        synced_home.sandbox_db, updates=30, creates=10, deletes=8, converts=0, seed=11
    )
    after = {record_id: values for record_id, *values in crm(synced_home, people_fields)}
    edited = {
        record_id: tuple(after[record_id])
        for name in ("Lead", "Contact")
        for record_id in summary.updated.get(name, [])
        if after[record_id] != before[record_id]
    }
    created = {i for name in ("Lead", "Contact") for i in summary.created.get(name, [])}
    deleted = {i for name in ("Lead", "Contact") for i in summary.deleted.get(name, [])}
    assert edited and created and deleted, f"the churn should touch every kind:\n{summary}"
    assert deleted <= {i for i, _ in warehouse_people(synced_home)}

    now = datetime.now(UTC)
    tick_at = now.replace(minute=0, second=0, microsecond=0)
    tick = schedule_tick(definitions, "incremental_sync_schedule", tick_at, instance)
    assert tick.skip_message is None, tick.skip_message
    (request,) = tick.run_requests
    assert request.tags[WINDOW_TAG] == SINCE_LAST_SYNC
    assert request.tags[RANGE_END_TAG] == now.date().isoformat()

    result = run(definitions, request, instance, "incremental_sync_schedule")
    assert result.success, failure(result)
    assert result.dagster_run.job_name == "incremental_sync"

    # The churned changes reached acton_contacts.
    stored = {
        external_id: (title, phone)
        for external_id, title, phone in rows(
            synced_home, "SELECT external_id, job_title, phone FROM acton_contacts"
        )
    }
    assert {i: stored.get(i) for i in edited} == edited
    assert created <= set(stored)
    assert not deleted & set(stored)
    assert warehouse_people(synced_home) == crm_people(synced_home)

    # Each CRM object read what the churn changed (plus the few records of the lookback
    # overlap before its high-water mark), not the whole table.
    runs = sync_runs_of(synced_home, result.run_id)
    stamp = to_storage_datetime(summary.now)
    read_in_all = size_in_all = 0
    for table, crm_object in CRM_OBJECT_OF.items():
        mode, status, read = runs[table]
        assert (mode, status) == ("incremental", "success"), table
        (changed,) = crm(
            synced_home, f'SELECT count(*) FROM "{crm_object}" WHERE SystemModstamp >= ?', stamp
        )[0]
        (size,) = crm(synced_home, f'SELECT count(*) FROM "{crm_object}"')[0]
        assert changed <= read <= changed + LOOKBACK_OVERLAP, (table, changed, read, size)
        read_in_all += read
        size_in_all += size
    assert read_in_all < size_in_all / 10, (read_in_all, size_in_all)


# --- deletion_log_sensor -----------------------------------------------------------------------


def test_a_never_synced_warehouse_gets_its_full_sync_from_the_deletion_log_sensor(
    acton_home: ActonHome, definitions: Definitions, instance: DagsterInstance
) -> None:
    sensor = "deletion_log_sensor"
    before = datetime.now(UTC)
    tick = sensor_tick(definitions, sensor, instance)
    days = {f"deletion-log-{moment:%Y-%m-%d}" for moment in (before, datetime.now(UTC))}
    (request,) = tick.run_requests
    assert request.run_key in days
    assert request.tags[FULL_SYNC_REASON_TAG] == "never-synced"

    result = run(definitions, request, instance, sensor)
    assert result.dagster_run.job_name == "full_sync"
    assert_full_sync_arrived(acton_home, result)

    again = sensor_tick(definitions, sensor, instance, cursor=tick.cursor)
    assert again.run_requests == []
    assert again.skip_message and again.skip_message.startswith("No full sync due")


# --- edits_push_sensor -------------------------------------------------------------------------


def test_an_imported_edit_is_pushed_by_the_edits_push_sensors_request(
    synced_home: ActonHome, definitions: Definitions, instance: DagsterInstance
) -> None:
    leads = crm(
        synced_home,
        "SELECT Id, Email, Title FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 AND Email IS "
        "NOT NULL AND Email NOT IN (SELECT Email FROM Contact WHERE Email IS NOT NULL) "
        "ORDER BY Id",
    )
    lead_id, email, title = next(r for r in leads if WELL_FORMED.fullmatch(r[1]))
    new_title = "Head of Requests" if title != "Head of Requests" else "Head of Runs"
    changed_at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    (settings.imports_dir() / "edits_requests.csv").write_text(
        f"email,field,value,changed_at\n{email},Job Title,{new_title},{changed_at}\n",
        encoding="utf-8",
    )

    imports = sensor_tick(definitions, "imports_sensor", instance)
    (import_request,) = imports.run_requests
    imported = run(definitions, import_request, instance, "imports_sensor")
    assert imported.success, failure(imported)
    assert rows(
        synced_home,
        "SELECT field, value, push_status FROM acton_field_edits WHERE email = :e",
        e=email.lower(),
    ) == [("Job Title", new_title, "pending")]

    sensor = "edits_push_sensor"
    tick = sensor_tick(definitions, sensor, instance)
    (request,) = tick.run_requests
    result = run(definitions, request, instance, sensor)
    assert result.success, failure(result)
    assert result.dagster_run.job_name == "push_to_crm"

    assert crm(synced_home, "SELECT Title FROM Lead WHERE Id = ?", lead_id) == [(new_title,)]
    logged = rows(
        synced_home,
        "SELECT object, record_id, field, new_value, outcome FROM crm_push_log "
        "WHERE sync_run_id = :run AND reason = 'edit'",
        run=result.run_id,
    )
    assert logged == [("Lead", lead_id, "Title", new_title, "success")]

    # Nothing pending any more: the next tick requests nothing.
    again = sensor_tick(definitions, sensor, instance, cursor=tick.cursor)
    assert again.run_requests == []


# --- push_after_sync ---------------------------------------------------------------------------


def test_the_push_after_a_sync_writes_every_computed_score_to_the_crm(
    acton_home: ActonHome, definitions: Definitions, instance: DagsterInstance
) -> None:
    sensor = "push_after_sync"
    # The daemon's first tick only starts the sensor's cursor at the newest run event.
    started = sensor_tick(definitions, sensor, instance)
    assert started.run_requests == [] and started.cursor

    sync = run_full_sync(acton_home, instance=instance)
    assert sync.success, failure(sync)
    tick = sensor_tick(definitions, sensor, instance, cursor=started.cursor)
    (request,) = tick.run_requests
    assert request.run_key == f"push-after-{sync.run_id}"

    result = run(definitions, request, instance, sensor)
    assert result.success, failure(result)
    assert result.dagster_run.job_name == "push_to_crm"

    computed = {
        (contact_id, sheet): score
        for contact_id, sheet, score in rows(
            acton_home, "SELECT contact_id, score_sheet, score FROM contact_scores"
        )
    }
    in_crm = {
        record_id: (primary, fit)
        for name in ("Lead", "Contact")
        for record_id, primary, fit in crm(
            acton_home, f"SELECT Id, ActOn_Score__c, Fit_Score__c FROM {name}"
        )
    }
    contacts = rows(acton_home, "SELECT contact_id, external_id FROM acton_contacts")
    assert len(contacts) > 900
    mismatched = {
        external_id: (in_crm[external_id], computed[(cid, "default")], computed[(cid, "fit")])
        for cid, external_id in contacts
        if in_crm[external_id] != (computed[(cid, "default")], computed[(cid, "fit")])
    }
    assert mismatched == {}
    (written,) = rows(
        acton_home,
        "SELECT count(*) FROM crm_push_log WHERE sync_run_id = :run AND outcome = 'success'",
        run=result.run_id,
    )[0]
    assert written > 0

    # The push run is not a sync: it requests nothing more.
    again = sensor_tick(definitions, sensor, instance, cursor=tick.cursor)
    assert again.run_requests == []
