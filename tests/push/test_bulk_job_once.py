"""A Bulk update job is created once and writes each record once, whichever of its steps
fails on the way: the answer to the job's creation or to its close is cut after the sandbox
CRM did the work, its upload meets a transient error, and the push still ends with one job
per object and every record written exactly once (counted by a trigger in the sandbox's own
database, past its API). A job whose creation answer was lost is found in the CRM's job list
and used; when the list cannot tell it apart (another client's open job fits as well), the
records go through Collections and neither job gets data. A job takes its data once: a
repeated upload is refused, and the push tells that refusal apart (it means the first upload
arrived).

The sandbox cannot cut the answer to an upload (201 has no body to cut), so a lost upload
answer is covered by the refusal it leads to, checked directly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceError

from acton_pipelines.crm.mirror_values import comparable_text
from acton_pipelines.push.build import plan_push
from acton_pipelines.push.collections import is_repeated_upload, lost_job
from acton_pipelines.push.plan import PlannedWrite, PushPlan
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SandboxServer
from crm_sandbox.bulk_ingest import JOB_KEY_PREFIX, IngestJob, JobState
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.ids import make_id
from tests.conftest import ActonHome
from tests.push.helpers import MAPPING, crm, push_with, rows, sandbox_client


def ingest_jobs(server: SandboxServer) -> list[IngestJob]:
    """Every ingest job the sandbox made, in order (it numbers them from 1 and the push never
    deletes one)."""
    jobs = []
    for serial in range(1, 100):
        try:
            jobs.append(server.state.ingest_jobs.get(make_id(JOB_KEY_PREFIX, serial)))
        except SalesforceApiError:
            break
    return jobs


@pytest.fixture
def home(synced_home_each_backend: ActonHome) -> ActonHome:
    return synced_home_each_backend


@pytest.fixture
def written(home: ActonHome) -> Callable[[], dict[str, int]]:
    """How many times each Lead and Contact has been updated so far (record Id -> count), from
    triggers in the sandbox's database: what reached the records, whichever API wrote them."""
    with sqlite3.connect(home.sandbox_db) as conn:
        conn.execute("CREATE TABLE test_record_writes (record_id TEXT NOT NULL)")
        for table in ("Lead", "Contact"):
            conn.execute(
                f"CREATE TRIGGER test_{table}_written AFTER UPDATE ON {table} "
                "BEGIN INSERT INTO test_record_writes VALUES (NEW.Id); END"
            )

    def counts() -> dict[str, int]:
        return dict(
            crm(
                home,
                "SELECT record_id, count(*) FROM test_record_writes GROUP BY record_id",
            )
        )

    return counts


def crm_holds(home: ActonHome, write: PlannedWrite) -> bool:
    (value,) = crm(home, f"SELECT {write.field} FROM {write.object} WHERE Id = ?", write.record_id)[
        0
    ]
    # The sandbox keeps booleans as 0/1.
    held = bool(value) if isinstance(write.new_value, bool) else value
    return comparable_text(held) == comparable_text(write.new_value)


@dataclass(frozen=True)
class BulkPlan:
    """A push plan whose Leads and Contacts each go as one Bulk job."""

    plan: PushPlan
    records: set[tuple[str, str]]
    by_object: dict[str, set[str]]


@pytest.fixture
def bulk_plan(home: ActonHome, monkeypatch: pytest.MonkeyPatch) -> BulkPlan:
    """The push plan, with the Bulk threshold lowered so that each object takes a job (and
    polls that do not wait: the sandbox finishes a job when it is closed)."""
    monkeypatch.setattr("acton_pipelines.push.collections.BULK_THRESHOLD", 50)
    monkeypatch.setattr("acton_pipelines.push.collections.BULK_POLL_SECONDS", 0)
    plan = plan_push(warehouse_engine(home.warehouse_url), MAPPING)
    records = {(w.object, w.record_id) for w in plan.writes}
    by_object = {obj: {r for o, r in records if o == obj} for obj in ("Lead", "Contact")}
    assert all(len(ids) > 50 for ids in by_object.values())  # a Bulk job each
    return BulkPlan(plan, records, by_object)


def logged(home: ActonHome, run_id: str) -> list[tuple[str, str, str]]:
    """The push's log rows: (object, outcome, detail)."""
    return rows(
        home, "SELECT object, outcome, detail FROM crm_push_log WHERE sync_run_id = :r", r=run_id
    )


def pushed_once(
    home: ActonHome, written: Callable[[], dict[str, int]], bulk_plan: BulkPlan, run_id: str
) -> list[tuple[str, str, str]]:
    """Check that each planned record was written exactly once (no other record touched), the
    CRM holds every planned value and every write was logged a success; the push's log."""
    assert written() == dict.fromkeys({record_id for _, record_id in bulk_plan.records}, 1)
    assert all(crm_holds(home, w) for w in bulk_plan.plan.writes)
    log = logged(home, run_id)
    assert len(log) == len(bulk_plan.plan.writes)
    assert {outcome for _, outcome, _ in log} == {"success"}
    return log


def jobs_named(log: list[tuple[str, str, str]], obj: str) -> set[str | None]:
    """The Bulk jobs the log names for ``obj``'s rows (None for a row sent without one)."""
    return {
        detail.rsplit("[Bulk job ", 1)[-1].removesuffix("]") if "[Bulk job " in detail else None
        for o, _, detail in log
        if o == obj
    }


@pytest.mark.parametrize(
    ("step", "path", "method", "answer_lost"),
    [
        ("upload", "/batches", "PUT", False),
        ("close", "/jobs/ingest/", "PATCH", True),
    ],
)
def test_a_failed_step_never_makes_a_second_job_nor_writes_a_record_twice(
    home: ActonHome,
    written: Callable[[], dict[str, int]],
    bulk_plan: BulkPlan,
    step: str,
    path: str,
    method: str,
    answer_lost: bool,
) -> None:
    by_object = bulk_plan.by_object

    with sandbox_client(home) as (server, client):
        # The first such request (the Lead job's): served and committed with its answer cut,
        # or answered 503 without being served.
        if answer_lost:
            server.drop_connections(path_contains=path, method=method, times=1)
        else:
            server.inject_fault(
                path_contains=path,
                method=method,
                status=503,
                error_code="SERVER_UNAVAILABLE",
                times=1,
            )
        push_with(home, client, f"lost-{step}")
        hit = server.connections_dropped if answer_lost else server.faults_served
        jobs = ingest_jobs(server)

    assert hit == 1
    assert [(job.obj.name, job.operation.value) for job in jobs] == [
        ("Lead", "update"),
        ("Contact", "update"),
    ]
    lead_job, contact_job = jobs
    assert lead_job.state is JobState.JOB_COMPLETE
    assert len(lead_job.successful) == len(by_object["Lead"]) and not lead_job.failed
    assert contact_job.state is JobState.JOB_COMPLETE
    assert len(contact_job.successful) == len(by_object["Contact"])

    log = pushed_once(home, written, bulk_plan, f"lost-{step}")
    # Each job's Id was recorded on its rows before its data went up.
    assert jobs_named(log, "Lead") == {lead_job.id}
    assert jobs_named(log, "Contact") == {contact_job.id}


def test_a_job_whose_create_answer_was_lost_is_found_in_the_job_list_and_used(
    home: ActonHome, written: Callable[[], dict[str, int]], bulk_plan: BulkPlan
) -> None:
    by_object = bulk_plan.by_object

    with sandbox_client(home) as (server, client):
        # The Lead job's create: served and committed, its answer cut.
        server.drop_connections(path_contains="/jobs/ingest", method="POST", times=1)
        push_with(home, client, "lost-create")
        dropped = server.connections_dropped
        jobs = ingest_jobs(server)

    assert dropped == 1
    # One job for the Leads (the one the lost create made), not a second.
    assert [(job.obj.name, job.operation.value) for job in jobs] == [
        ("Lead", "update"),
        ("Contact", "update"),
    ]
    lead_job, contact_job = jobs
    assert lead_job.state is JobState.JOB_COMPLETE
    assert len(lead_job.successful) == len(by_object["Lead"]) and not lead_job.failed
    assert contact_job.state is JobState.JOB_COMPLETE
    log = pushed_once(home, written, bulk_plan, "lost-create")
    # Through that Bulk job, not Collections: the job is named on every Lead row.
    assert jobs_named(log, "Lead") == {lead_job.id}
    assert jobs_named(log, "Contact") == {contact_job.id}


def test_a_lost_create_whose_job_cannot_be_told_apart_goes_through_collections(
    home: ActonHome, written: Callable[[], dict[str, int]], bulk_plan: BulkPlan
) -> None:
    by_object = bulk_plan.by_object

    with sandbox_client(home) as (server, client):
        # Another client's open Lead update job, made just before the push: the job list
        # then shows two that could be the one the lost create made.
        other_id = client.sf.bulk2.Lead._client.create_job(Operation.update)["id"]
        server.drop_connections(path_contains="/jobs/ingest", method="POST", times=1)
        push_with(home, client, "lost-create")
        dropped = server.connections_dropped
        jobs = ingest_jobs(server)

    assert dropped == 1
    assert [(job.obj.name, job.operation.value) for job in jobs] == [
        ("Lead", "update"),
        ("Lead", "update"),
        ("Contact", "update"),
    ]
    other_job, lead_job, contact_job = jobs
    assert other_job.id == other_id
    # Neither open job was given data: another client's job must never carry ours.
    assert [(job.state, job.upload) for job in (other_job, lead_job)] == [(JobState.OPEN, None)] * 2
    assert contact_job.state is JobState.JOB_COMPLETE
    assert len(contact_job.successful) == len(by_object["Contact"])
    log = pushed_once(home, written, bulk_plan, "lost-create")
    # The Leads went through Collections: no Bulk job is named on their rows.
    assert jobs_named(log, "Lead") == {None}
    assert jobs_named(log, "Contact") == {contact_job.id}


def job_info(
    job_id: str, obj: str = "Lead", operation: str = "update", state: str = "Open", **info: Any
) -> dict[str, Any]:
    created = info.pop("created", datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC))
    return {
        "id": job_id,
        "object": obj,
        "operation": operation,
        "state": state,
        "createdDate": created.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        **info,
    }


ATTEMPTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_the_job_a_lost_create_made_is_the_only_open_update_job_of_its_object_since() -> None:
    ours = job_info("750A")
    others = [
        job_info("750B", obj="Contact"),
        job_info("750C", operation="insert"),
        job_info("750D", state="JobComplete"),
        job_info("750E", created=ATTEMPTED - timedelta(hours=1)),
    ]
    assert lost_job([*others, ours], "Lead", ATTEMPTED) == "750A"
    # The CRM's clock a little behind ours: still found.
    behind = job_info("750F", created=ATTEMPTED - timedelta(minutes=2))
    assert lost_job([*others, behind], "Lead", ATTEMPTED) == "750F"
    # Two could be ours (another client's job among them): neither is used.
    assert lost_job([ours, behind], "Lead", ATTEMPTED) is None
    assert lost_job(others, "Lead", ATTEMPTED) is None
    assert lost_job([job_info("750G", createdDate="not a date")], "Lead", ATTEMPTED) is None


def test_a_job_takes_its_data_once_and_a_repeat_is_told_apart(
    home: ActonHome, written: Callable[[], dict[str, int]]
) -> None:
    leads = [r for (r,) in crm(home, "SELECT Id FROM Lead WHERE IsConverted = 0 LIMIT 3")]
    data = "Id,Title\n" + "".join(f"{lead},Repeated Title\n" for lead in leads)
    with sandbox_client(home) as (server, client):
        bulk = client.sf.bulk2.Lead._client
        job_id = bulk.create_job(Operation.update)["id"]
        bulk.upload_job_data(job_id, data)
        with pytest.raises(SalesforceError) as repeated:
            bulk.upload_job_data(job_id, data)
        bulk.close_job(job_id)
        # Other refusals are not taken for it: a closed job takes no data at all.
        with pytest.raises(SalesforceError) as closed:
            bulk.upload_job_data(job_id, data)
        (job,) = ingest_jobs(server)

    # What the push takes, on a repeated attempt, for "the first upload arrived".
    assert is_repeated_upload(repeated.value)
    assert job.id == job_id and job.state is JobState.JOB_COMPLETE
    assert len(job.successful) == len(leads) == 3
    assert not is_repeated_upload(closed.value)
    assert written() == dict.fromkeys(leads, 1)
