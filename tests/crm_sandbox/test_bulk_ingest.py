"""Bulk API 2.0 ingest jobs, through simple-salesforce's ``sf.bulk2`` and raw HTTP.

Expectations are read from the SQLite file, not from the API under test. The library sleeps
``wait`` seconds before polling; the sandbox finishes a job when it is closed, so tests pass 0.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceOperationError,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from crm_sandbox import SandboxServer, SeedSummary, store
from crm_sandbox.bulk_ingest import JOBS_PER_LIST_PAGE
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db
from tests.crm_sandbox.sqlite_reads import IdPool, count, fetch_all, fetch_record

LIVE_LEADS = '"IsConverted" = 0 AND "IsDeleted" = 0 AND "Email" IS NOT NULL AND "Title" IS NOT NULL'
CONVERTED_ERROR = "CANNOT_UPDATE_CONVERTED_LEAD:cannot reference converted lead:--"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(SEED_NOW + timedelta(days=3))


@pytest.fixture(scope="module")
def bulk_server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
) -> Iterator[SandboxServer]:
    db_path = copy_db(seeded, tmp_path_factory.mktemp("bulk_ingest"))
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running


@pytest.fixture(scope="module")
def bsf(bulk_server: SandboxServer) -> Salesforce:
    return client_for(bulk_server)


@pytest.fixture(scope="module")
def pool(bulk_server: SandboxServer) -> IdPool:
    return IdPool(bulk_server.db_path)


@pytest.fixture
def db(bulk_server: SandboxServer) -> Path:
    return bulk_server.db_path


class JobsApi:
    """Raw calls to ``jobs/ingest``, for what the library does not expose (or hides)."""

    def __init__(self, server: SandboxServer, sf: Salesforce) -> None:
        self.http = server.session()
        self.instance_url = server.instance_url
        self.base = f"{server.instance_url}/services/data/v59.0/jobs/ingest"
        self.headers = {"Authorization": f"Bearer {sf.session_id}"}

    def call(
        self, method: str, suffix: str = "", *, content_type: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = dict(self.headers)
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.http.request(method, self.base + suffix, headers=headers, timeout=10, **kwargs)

    def create(self, operation: str = "update", obj: str = "Lead") -> dict[str, Any]:
        body = {"object": obj, "operation": operation, "contentType": "CSV", "lineEnding": "LF"}
        response = self.call("POST", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def state(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/{job_id}").json())

    def pages(self, **params: str) -> list[dict[str, Any]]:
        """Every page of ``GET jobs/ingest``, following ``nextRecordsUrl`` as a client does."""
        response = self.call("GET", params=params)
        pages = []
        while True:
            assert response.status_code == 200, response.text
            page = dict(response.json())
            pages.append(page)
            if page["done"]:
                return pages
            response = self.http.get(
                self.instance_url + page["nextRecordsUrl"], headers=self.headers, timeout=10
            )

    def listed(self, **params: str) -> list[dict[str, Any]]:
        """The jobs ``GET jobs/ingest`` lists, over all its pages."""
        return [job for page in self.pages(**params) for job in page["records"]]


@pytest.fixture(scope="module")
def jobs(bulk_server: SandboxServer, bsf: Salesforce) -> JobsApi:
    return JobsApi(bulk_server, bsf)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _stamp(clock: FakeClock) -> str:
    return store.to_storage_datetime(clock.now)


def test_bulk_update_maps_columns_by_header_and_keeps_empty_cells(
    bsf: Salesforce, db: Path, pool: IdPool, clock: FakeClock, tmp_path: Path
) -> None:
    first, second = pool.take("Lead", LIVE_LEADS, 2)
    before = {i: fetch_record(db, "Lead", i) for i in (first, second)}
    clock.advance(minutes=10)
    csv_file = _write_csv(
        tmp_path / "update.csv",
        ["Title", "ActOn_Score__c", "Id", "Email", "HasOptedOutOfEmail"],
        [
            ["", "55", first, "#N/A", "true"],
            ["VP Bulk", "#N/A", second, "", ""],
        ],
    )

    (summary,) = bsf.bulk2.Lead.update(csv_file=csv_file, wait=0)

    assert summary["numberRecordsProcessed"] == 2
    assert summary["numberRecordsFailed"] == 0
    assert summary["job_id"].startswith("750")
    one, two = fetch_record(db, "Lead", first), fetch_record(db, "Lead", second)
    # Empty cell: unchanged; #N/A: cleared.
    assert one["Title"] == before[first]["Title"]
    assert (one["ActOn_Score__c"], one["Email"], one["HasOptedOutOfEmail"]) == (55.0, None, 1)
    assert two["Title"] == "VP Bulk"
    assert two["ActOn_Score__c"] is None
    assert two["Email"] == before[second]["Email"]
    assert two["HasOptedOutOfEmail"] == before[second]["HasOptedOutOfEmail"]
    assert one["SystemModstamp"] == two["SystemModstamp"] == _stamp(clock)


def test_failed_rows_are_reported_and_left_alone(
    bsf: Salesforce, db: Path, pool: IdPool, clock: FakeClock, tmp_path: Path
) -> None:
    (good,) = pool.take("Lead", LIVE_LEADS, 1)
    (converted,) = pool.take("Lead", '"IsConverted" = 1', 1)
    (bad_email,) = pool.take("Lead", LIVE_LEADS, 1)
    (read_only,) = pool.take("Lead", LIVE_LEADS, 1)
    untouched = {i: fetch_record(db, "Lead", i) for i in (converted, bad_email, read_only)}
    clock.advance(minutes=10)
    csv_file = _write_csv(
        tmp_path / "mixed.csv",
        ["Id", "Fit_Score__c", "Email", "IsConverted"],
        [
            [good, "12", "", ""],
            [converted, "12", "", ""],
            [bad_email, "12", "not-an-email", ""],
            [read_only, "12", "", "true"],
        ],
    )

    (summary,) = bsf.bulk2.Lead.update(csv_file=csv_file, wait=0)

    assert (summary["numberRecordsProcessed"], summary["numberRecordsFailed"]) == (4, 3)
    job_id = summary["job_id"]
    successful = _parse(bsf.bulk2.Lead.get_successful_records(job_id))
    failed = {row["sf__Id"]: row for row in _parse(bsf.bulk2.Lead.get_failed_records(job_id))}
    assert successful == [
        {
            "sf__Id": good,
            "sf__Created": "false",
            "Id": good,
            "Fit_Score__c": "12",
            "Email": "",
            "IsConverted": "",
        }
    ]
    assert set(failed) == {converted, bad_email, read_only}
    assert failed[converted]["sf__Error"] == CONVERTED_ERROR
    assert failed[converted]["Fit_Score__c"] == "12"
    assert failed[bad_email]["sf__Error"] == (
        "INVALID_EMAIL_ADDRESS:Email: invalid email address: not-an-email:Email --"
    )
    assert failed[read_only]["sf__Error"].startswith(
        "INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update fields: IsConverted."
    )
    assert failed[read_only]["sf__Error"].endswith(":IsConverted --")
    assert fetch_record(db, "Lead", good)["Fit_Score__c"] == 12.0
    assert fetch_record(db, "Lead", good)["SystemModstamp"] == _stamp(clock)
    assert {i: fetch_record(db, "Lead", i) for i in untouched} == untouched


def test_bulk_insert_creates_records(bsf: Salesforce, db: Path, clock: FakeClock) -> None:
    clock.advance(minutes=1)
    contacts_before = count(db, "Contact")
    records = [
        {"LastName": "Bulk One", "Email": "bulk1@acme.example.com", "Title": ""},
        {"LastName": "", "Email": "bulk2@acme.example.com", "Title": "No Name"},
        {"LastName": "Bulk Three", "Email": "#N/A", "Title": "CTO"},
    ]

    (summary,) = bsf.bulk2.Contact.insert(records=records, wait=0)

    assert (summary["numberRecordsProcessed"], summary["numberRecordsFailed"]) == (3, 1)
    results = bsf.bulk2.Contact.get_all_ingest_records(summary["job_id"])
    created = {row["LastName"]: row for row in results["successfulRecords"]}
    assert set(created) == {"Bulk One", "Bulk Three"}
    assert all(row["sf__Created"] == "true" for row in created.values())
    (failure,) = results["failedRecords"]
    assert failure["sf__Id"] == ""
    assert failure["sf__Error"].startswith("REQUIRED_FIELD_MISSING:")
    assert results["unprocessedRecords"] == []
    one = fetch_record(db, "Contact", created["Bulk One"]["sf__Id"])
    three = fetch_record(db, "Contact", created["Bulk Three"]["sf__Id"])
    assert (one["Email"], one["Title"]) == ("bulk1@acme.example.com", None)
    assert (three["Email"], three["Title"]) == (None, "CTO")
    assert one["CreatedDate"] == _stamp(clock)
    assert count(db, "Contact") == contacts_before + 2


def test_large_update_in_one_job(bsf: Salesforce, db: Path, pool: IdPool, tmp_path: Path) -> None:
    ids = pool.take("Lead", '"IsConverted" = 0 AND "IsDeleted" = 0', 2500)
    csv_file = _write_csv(
        tmp_path / "large.csv", ["Id", "ActOn_Score__c"], [[i, "77"] for i in ids]
    )

    (summary,) = bsf.bulk2.Lead.update(csv_file=csv_file, wait=0)

    assert (summary["numberRecordsProcessed"], summary["numberRecordsFailed"]) == (2500, 0)
    placeholders = ", ".join("?" for _ in ids)
    scores = fetch_all(
        db, f'SELECT "ActOn_Score__c" AS s FROM "Lead" WHERE "Id" IN ({placeholders})', tuple(ids)
    )
    assert [row["s"] for row in scores] == [77.0] * 2500


def test_job_states_through_the_raw_api(jobs: JobsApi, db: Path, pool: IdPool) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    created = jobs.create()
    job_id = created["id"]
    assert job_id.startswith("750") and len(job_id) == 18
    assert (created["state"], created["object"], created["operation"]) == ("Open", "Lead", "update")
    assert (created["contentType"], created["lineEnding"], created["columnDelimiter"]) == (
        "CSV",
        "LF",
        "COMMA",
    )
    assert jobs.state(job_id)["state"] == "Open"

    early = jobs.call("GET", f"/{job_id}/successfulResults")
    assert early.status_code == 412

    csv_body = f"Id,Title\n{lead_id},Raw API\n".encode()
    uploaded = jobs.call("PUT", f"/{job_id}/batches", data=csv_body, content_type="text/csv")
    assert uploaded.status_code == 201
    assert fetch_record(db, "Lead", lead_id)["Title"] != "Raw API"  # nothing before closing
    again = jobs.call("PUT", f"/{job_id}/batches", data=csv_body, content_type="text/csv")
    assert again.status_code == 400

    closed = jobs.call("PATCH", f"/{job_id}", json={"state": "UploadComplete"})
    assert closed.status_code == 200
    assert closed.json()["state"] == "UploadComplete"

    info = jobs.state(job_id)
    assert info["state"] == "JobComplete"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (1, 0)
    assert fetch_record(db, "Lead", lead_id)["Title"] == "Raw API"
    reopened = jobs.call("PATCH", f"/{job_id}", json={"state": "UploadComplete"})
    assert reopened.status_code == 400
    assert reopened.json()[0]["errorCode"] == "INVALIDJOBSTATE"
    late = jobs.call("PUT", f"/{job_id}/batches", data=csv_body, content_type="text/csv")
    assert late.status_code == 400


def test_aborted_job_writes_nothing(jobs: JobsApi, db: Path, pool: IdPool) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    before = fetch_record(db, "Lead", lead_id)
    job_id = jobs.create()["id"]
    jobs.call("PUT", f"/{job_id}/batches", data=f"Id,Title\n{lead_id},Aborted\n".encode())

    aborted = jobs.call("PATCH", f"/{job_id}", json={"state": "Aborted"})

    assert aborted.json()["state"] == "Aborted"
    assert jobs.state(job_id)["state"] == "Aborted"
    unprocessed = _parse(jobs.call("GET", f"/{job_id}/unprocessedrecords").text)
    assert unprocessed == [{"Id": lead_id, "Title": "Aborted"}]
    assert fetch_record(db, "Lead", lead_id) == before


def test_unknown_column_fails_the_whole_job(
    bsf: Salesforce, jobs: JobsApi, db: Path, pool: IdPool, tmp_path: Path
) -> None:
    ids = pool.take("Lead", LIVE_LEADS, 2)
    before = {i: fetch_record(db, "Lead", i) for i in ids}
    csv_file = _write_csv(
        tmp_path / "unknown.csv", ["Id", "Title", "Shoe_Size__c"], [[i, "Shoe", "44"] for i in ids]
    )

    with pytest.raises(SalesforceOperationError, match="Field name not found : Shoe_Size__c"):
        bsf.bulk2.Lead.update(csv_file=csv_file, wait=0)

    assert {i: fetch_record(db, "Lead", i) for i in ids} == before
    # The library hides the failed job's Id; the raw API shows what it saw.
    job_id = jobs.create()["id"]
    body = "Id,Shoe_Size__c\n" + "".join(f"{i},44\n" for i in ids)
    jobs.call("PUT", f"/{job_id}/batches", data=body.encode())
    jobs.call("PATCH", f"/{job_id}", json={"state": "UploadComplete"})
    info = jobs.state(job_id)
    assert info["state"] == "Failed"
    assert info["errorMessage"] == "InvalidBatch : Field name not found : Shoe_Size__c"
    assert info["numberRecordsProcessed"] == 0
    unprocessed = _parse(jobs.call("GET", f"/{job_id}/unprocessedrecords").text)
    assert [row["Id"] for row in unprocessed] == ids


def test_deleting_a_job_is_allowed_and_not_a_refused_delete(
    bulk_server: SandboxServer, jobs: JobsApi, db: Path, pool: IdPool
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    refused = bulk_server.deletes_refused
    leads = count(db, "Lead", '"IsDeleted" = 0')
    job_id = jobs.create()["id"]

    still_open = jobs.call("DELETE", f"/{job_id}")
    assert still_open.status_code == 400
    jobs.call("PUT", f"/{job_id}/batches", data=f"Id,Title\n{lead_id},Kept\n".encode())
    jobs.call("PATCH", f"/{job_id}", json={"state": "UploadComplete"})
    deleted = jobs.call("DELETE", f"/{job_id}/")

    assert deleted.status_code == 204
    assert jobs.call("GET", f"/{job_id}").status_code == 404
    assert bulk_server.deletes_refused == refused
    assert fetch_record(db, "Lead", lead_id)["Title"] == "Kept"
    assert count(db, "Lead", '"IsDeleted" = 0') == leads


def test_bulk_delete_jobs_are_refused_and_counted(
    bulk_server: SandboxServer, bsf: Salesforce, db: Path, pool: IdPool, tmp_path: Path
) -> None:
    ids = pool.take("Lead", LIVE_LEADS, 2)
    refused = bulk_server.deletes_refused
    csv_file = _write_csv(tmp_path / "delete.csv", ["Id"], [[i] for i in ids])

    with pytest.raises(SalesforceRefusedRequest) as error:
        bsf.bulk2.Lead.delete(csv_file=csv_file, wait=0)
    with pytest.raises(SalesforceRefusedRequest):
        bsf.bulk2.Lead.hard_delete(csv_file=csv_file, wait=0)

    assert error.value.content[0]["errorCode"] == "DELETE_REFUSED"
    assert bulk_server.deletes_refused == refused + 2
    assert [fetch_record(db, "Lead", i)["IsDeleted"] for i in ids] == [0, 0]


def test_record_deletes_stay_refused_next_to_job_deletes(
    bulk_server: SandboxServer, jobs: JobsApi, pool: IdPool
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    refused = bulk_server.deletes_refused
    record_url = jobs.base.replace("/jobs/ingest", f"/sobjects/Lead/{lead_id}")

    answer = jobs.http.delete(record_url, headers=jobs.headers, timeout=10)

    assert answer.status_code == 403
    assert bulk_server.deletes_refused == refused + 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"object": "Shoe", "operation": "update"}, "INVALIDJOB"),
        ({"object": "Lead", "operation": "upsert", "externalIdFieldName": "Id"}, "INVALIDJOB"),
        ({"object": "Lead", "operation": "update", "contentType": "JSON"}, "INVALIDJOB"),
        ({"object": "Lead", "operation": "update", "columnDelimiter": "SPACE"}, "INVALIDJOB"),
    ],
)
def test_invalid_jobs_are_refused(jobs: JobsApi, body: dict[str, Any], code: str) -> None:
    response = jobs.call("POST", json=body)

    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_ingest_goes_through_the_api_gate(
    bulk_server: SandboxServer, bsf: Salesforce, jobs: JobsApi, db: Path, pool: IdPool
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    usage = bulk_server.api_usage
    job_id = jobs.create()["id"]
    assert bulk_server.api_usage == usage + 1
    assert jobs.call("GET", f"/{job_id}/").json()["state"] == "Open"  # trailing slash

    bulk_server.inject_fault(
        path_contains="/jobs/ingest", status=503, error_code="SERVER_UNAVAILABLE", method="POST"
    )
    with pytest.raises(SalesforceGeneralError) as fault:
        bsf.bulk2.Lead.update(records=[{"Id": lead_id, "Title": "Faulted"}], wait=0)
    assert fault.value.status == 503
    assert fetch_record(db, "Lead", lead_id)["Title"] != "Faulted"

    anonymous = jobs.http.get(f"{jobs.base}/{job_id}", timeout=10)
    assert anonymous.status_code == 401
    with pytest.raises(SalesforceResourceNotFound):
        bsf.bulk2.Lead.get_successful_records("750000000000000AAA")
    assert jobs.call("GET", f"/{job_id}/unknownResults").status_code == 404


# --- the job list (Get All Jobs) -------------------------------------------------------------


def _api_stamp(moment: datetime) -> str:
    """A datetime as Salesforce's JSON writes it (milliseconds, ``+0000``)."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}+0000"


def test_the_job_list_shows_each_job_in_its_state(
    jobs: JobsApi, db: Path, clock: FakeClock
) -> None:
    created_at = clock.advance(minutes=5)
    opened = jobs.create()
    completed = jobs.create(obj="Contact", operation="insert")
    aborted = jobs.create()
    clock.advance(minutes=1)
    jobs.call("PUT", f"/{completed['id']}/batches", data=b"LastName\nListed\n")
    jobs.call("PATCH", f"/{completed['id']}", json={"state": "UploadComplete"})
    jobs.call("PATCH", f"/{aborted['id']}", json={"state": "Aborted"})
    finished = clock.now

    listed = {job["id"]: job for job in jobs.listed()}

    created_stamp, finished_stamp = _api_stamp(created_at), _api_stamp(finished)
    # Salesforce's list fields, with no contentUrl; an untouched job as its create answered.
    assert listed[opened["id"]] == {
        "id": opened["id"],
        "operation": "update",
        "object": "Lead",
        "createdById": opened["createdById"],
        "createdDate": created_stamp,
        "systemModstamp": created_stamp,
        "state": "Open",
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": 59.0,
        "jobType": "V2Ingest",
        "lineEnding": "LF",
        "columnDelimiter": "COMMA",
    }
    users = fetch_all(db, 'SELECT "Id" AS id FROM "User" WHERE "IsActive" = 1')
    assert opened["createdById"] in {row["id"] for row in users}
    done, stopped = listed[completed["id"]], listed[aborted["id"]]
    assert (done["object"], done["operation"], done["state"]) == (
        "Contact",
        "insert",
        "JobComplete",
    )
    assert (done["createdDate"], done["systemModstamp"]) == (created_stamp, finished_stamp)
    assert (stopped["state"], stopped["systemModstamp"]) == ("Aborted", finished_stamp)
    # Oldest first.
    order = [
        job_id for job_id in listed if job_id in (opened["id"], completed["id"], aborted["id"])
    ]
    assert order == [opened["id"], completed["id"], aborted["id"]]
    assert count(db, "Contact", "\"LastName\" = 'Listed'") == 1  # the insert job did run


def test_the_job_list_filters_by_type_pk_chunking_and_concurrency(jobs: JobsApi) -> None:
    job_id = jobs.create()["id"]
    query_jobs = jobs.base.replace("/jobs/ingest", "/jobs/query")
    query_job = jobs.http.post(
        query_jobs,
        headers=jobs.headers,
        json={"operation": "query", "query": "SELECT Id FROM Lead"},
        timeout=10,
    ).json()["id"]

    everything = [job["id"] for job in jobs.listed()]

    assert job_id in everything
    # Query jobs have a list of their own.
    assert query_job not in everything
    for kept in (
        {"jobType": "V2Ingest"},
        {"isPkChunkingEnabled": "false"},
        {"concurrencyMode": "Parallel"},
    ):
        assert [job["id"] for job in jobs.listed(**kept)] == everything, kept
    # The sandbox has no Bulk API 1.0 (Classic), big-object, PK-chunked or serial jobs.
    for emptied in (
        {"jobType": "Classic"},
        {"jobType": "BigObjectIngest"},
        {"isPkChunkingEnabled": "true"},
        {"concurrencyMode": "Serial"},
    ):
        assert jobs.pages(**emptied) == [{"done": True, "records": [], "nextRecordsUrl": None}]
    anonymous = jobs.http.get(jobs.base, timeout=10)
    assert anonymous.status_code == 401


def test_the_job_list_pages_a_thousand_jobs_at_a_time_by_query_locator(
    bulk_server: SandboxServer, jobs: JobsApi, clock: FakeClock
) -> None:
    # Made in the server's registry, not over HTTPS: 1,500 creates would only slow the test.
    with bulk_server.state.connection() as conn:
        made = [
            bulk_server.state.ingest_jobs.create(
                conn, {"object": "Lead", "operation": "insert"}, "v59.0", clock.now
            ).id
            for _ in range(1500)
        ]

    pages = jobs.pages()

    assert len(pages) >= 2
    *full, last = pages
    assert all(len(page["records"]) == JOBS_PER_LIST_PAGE == 1000 for page in full)
    assert all(page["done"] is False for page in full)
    assert 0 < len(last["records"]) <= JOBS_PER_LIST_PAGE
    assert (last["done"], last["nextRecordsUrl"]) == (True, None)
    listed = [job["id"] for page in pages for job in page["records"]]
    assert len(listed) == len(set(listed))
    # Every job once, in the order made, across the page boundaries.
    assert [job_id for job_id in listed if job_id in set(made)] == made
    # A locator may be read again: the same page.
    next_url = pages[0]["nextRecordsUrl"]
    assert next_url.startswith("/services/data/v59.0/jobs/ingest?queryLocator=")
    again = jobs.http.get(jobs.instance_url + next_url, headers=jobs.headers, timeout=10)
    assert again.json() == pages[1]
    bad = jobs.call("GET", params={"queryLocator": "not-a-locator"})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
