"""Bulk API 2.0 query jobs over HTTPS: job states, CSV pages by locator, queryAll, failures.

Expected Ids come from reading the server's SQLite file directly; expected values from the REST
query's answer to the same SOQL, so the two APIs are held to the same data. The library sleeps
``wait`` seconds before its first poll; tests pass 0 (the sandbox moves a job on per poll).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceOperationError

from crm_sandbox import SandboxServer, SeedSummary
from crm_sandbox.bulk_query import DEFAULT_MAX_RECORDS
from crm_sandbox.deletion_log import RECYCLE_BIN_RETENTION
from crm_sandbox.store import to_storage_datetime
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db

_API_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")
_BULK_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
# Every field type a Lead has, a polymorphic parent (User or Queue) and a parent often absent.
VALUES_SOQL = (
    "SELECT Id, FirstName, LastName, Title, Street, Email, Status, Interests__c, AnnualRevenue, "
    "NumberOfEmployees, ActOn_Score__c, HasOptedOutOfEmail, IsConverted, ConvertedDate, "
    "Last_Event_At__c, SystemModstamp, Lead_Notes__c, Owner.Name, Owner.Email, "
    "ConvertedAccount.Name FROM Lead"
)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(SEED_NOW + timedelta(hours=1))


@pytest.fixture(scope="module")
def bulk_server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
) -> Iterator[SandboxServer]:
    db_path = copy_db(seeded, tmp_path_factory.mktemp("bulk_query"))
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running


@pytest.fixture(scope="module")
def bsf(bulk_server: SandboxServer) -> Salesforce:
    return client_for(bulk_server)


@pytest.fixture
def db(bulk_server: SandboxServer) -> Iterator[sqlite3.Connection]:
    """The server's file, read (and, for the snapshot test, written) behind the API's back."""
    conn = sqlite3.connect(bulk_server.db_path)
    yield conn
    conn.close()


class QueryJobsApi:
    """Raw calls to ``jobs/query``, to see states, headers and errors the library hides."""

    def __init__(self, server: SandboxServer, sf: Salesforce, version: str = "59.0") -> None:
        self.http = server.session()
        self.base = f"{server.instance_url}/services/data/v{version}/jobs/query"
        self.headers = {"Authorization": f"Bearer {sf.session_id}"}

    def call(self, method: str, suffix: str = "", **kwargs: Any) -> requests.Response:
        return self.http.request(
            method, self.base + suffix, headers=self.headers, timeout=60, **kwargs
        )

    def create(self, soql: str, operation: str = "query", **extra: str) -> dict[str, Any]:
        response = self.call("POST", json={"operation": operation, "query": soql, **extra})
        assert response.status_code == 200, response.text
        return dict(response.json())

    def poll(self, job_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def run(self, soql: str, operation: str = "query", **extra: str) -> tuple[str, list[str]]:
        """Create a job and poll it to its end: its Id and every state seen after creation."""
        job_id = self.create(soql, operation, **extra)["id"]
        states = [self.poll(job_id)["state"]]
        while states[-1] in ("UploadComplete", "InProgress") and len(states) < 10:
            states.append(self.poll(job_id)["state"])
        return job_id, states

    def page(
        self, job_id: str, locator: str | None = None, max_records: int | str | None = None
    ) -> requests.Response:
        params: dict[str, Any] = {}
        if locator is not None:
            params["locator"] = locator
        if max_records is not None:
            params["maxRecords"] = max_records
        return self.call("GET", f"/{job_id}/results", params=params)

    def pages(self, job_id: str, max_records: int) -> list[requests.Response]:
        """Every page of a complete job, following locators to the ``null`` one."""
        pages = [self.page(job_id, max_records=max_records)]
        while pages[-1].headers["Sforce-Locator"] != "null":
            assert len(pages) < 1000
            pages.append(self.page(job_id, pages[-1].headers["Sforce-Locator"], max_records))
        return pages


@pytest.fixture(scope="module")
def jobs(bulk_server: SandboxServer, bsf: Salesforce) -> QueryJobsApi:
    return QueryJobsApi(bulk_server, bsf)


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _ids(db: sqlite3.Connection, where: str = '"IsDeleted" = 0', table: str = "Lead") -> list[str]:
    return [r[0] for r in db.execute(f'SELECT "Id" FROM "{table}" WHERE {where} ORDER BY "Id"')]


def _error_code(response: requests.Response) -> str:
    return str(response.json()[0]["errorCode"])


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A REST record as dotted columns (``Owner.Name``); a null parent nulls its fields."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _expected_cell(value: Any) -> str:
    """How a REST JSON value reads in Bulk CSV: quoted, null as an unquoted empty cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str) and _API_DATETIME.match(value):
        text = value.removesuffix("+0000") + "Z"
    else:
        text = str(value)
    return '"' + text.replace('"', '""') + '"'


def _expected_csv(columns: list[str], records: list[dict[str, Any]]) -> str:
    """The exact CSV page of ``records`` (REST answers) under ``columns``."""
    lines = [",".join(f'"{c}"' for c in columns)]
    for record in records:
        flat = _flatten(record)
        # A relationship's fields are present only when the parent is: absent means null.
        lines.append(",".join(_expected_cell(flat.get(c)) for c in columns))
    return "\n".join(lines) + "\n"


# --- the job's life --------------------------------------------------------------------------


def test_job_moves_from_upload_complete_through_in_progress_to_job_complete(
    jobs: QueryJobsApi, db: sqlite3.Connection
) -> None:
    created = jobs.create("SELECT Id, Email FROM Lead")
    job_id = created["id"]
    assert re.fullmatch(r"750[A-Za-z0-9]{15}", job_id)
    assert created["state"] == "UploadComplete"
    assert (created["operation"], created["object"], created["contentType"]) == (
        "query",
        "Lead",
        "CSV",
    )
    assert (created["apiVersion"], created["lineEnding"], created["columnDelimiter"]) == (
        59.0,
        "LF",
        "COMMA",
    )
    assert created["concurrencyMode"] == "Parallel"
    assert _API_DATETIME.match(created["createdDate"])
    assert created["createdById"].startswith("005")

    early = jobs.page(job_id)
    assert early.status_code == 412
    assert _error_code(early) == "JOB_NOT_COMPLETE"

    first = jobs.poll(job_id)
    assert first["state"] == "InProgress"
    assert jobs.page(job_id).status_code == 412  # still running
    second, third = jobs.poll(job_id), jobs.poll(job_id)
    assert second["state"] == third["state"] == "JobComplete"
    assert second["jobType"] == "V2Query"
    assert second["numberRecordsProcessed"] == len(_ids(db))
    assert second["retries"] == 0
    assert "errorMessage" not in second


def test_pages_follow_locators_with_a_header_on_every_page(
    jobs: QueryJobsApi, db: sqlite3.Connection
) -> None:
    live = _ids(db)
    job_id, _ = jobs.run("SELECT Id, Email, Owner.Name FROM Lead")

    pages = jobs.pages(job_id, max_records=1000)

    full, rest = divmod(len(live), 1000)
    assert [int(p.headers["Sforce-NumberOfRecords"]) for p in pages] == [1000] * full + [rest]
    locators = [p.headers["Sforce-Locator"] for p in pages]
    assert locators[-1] == "null"
    assert len(set(locators[:-1])) == full and "null" not in locators[:-1]
    seen: list[str] = []
    for page in pages:
        assert page.status_code == 200
        assert page.headers["Content-Type"].startswith("text/csv")
        assert page.text.startswith('"Id","Email","Owner.Name"\n')
        rows = _rows(page.text)
        assert len(rows) == int(page.headers["Sforce-NumberOfRecords"])
        seen.extend(row["Id"] for row in rows)
    assert seen == live  # every live Lead exactly once, in Id order
    # A locator stays valid while the job exists: a page can be read again.
    again = jobs.page(job_id, locators[1], 1000)
    assert again.text == pages[2].text
    assert again.headers["Sforce-Locator"] == locators[2]


def test_values_and_types_are_the_rest_query_s(
    bulk_server: SandboxServer, bsf: Salesforce, jobs: QueryJobsApi, db: sqlite3.Connection
) -> None:
    # A value with a quote, a delimiter and a line break, as CSV must carry them.
    (quoted_id,) = _ids(db, '"IsDeleted" = 0 AND "IsConverted" = 0')[:1]
    bsf.Lead.update(quoted_id, {"Title": 'Head of "Growth", EMEA', "Street": "1 Main St\nFloor 2"})
    rest = bsf.query_all(VALUES_SOQL)["records"]
    columns = [
        c.strip() for c in VALUES_SOQL[len("SELECT ") : VALUES_SOQL.index(" FROM")].split(",")
    ]
    job_id, _ = jobs.run(VALUES_SOQL)

    pages = jobs.pages(job_id, max_records=1500)

    assert len(pages) == -(-len(rest) // 1500)
    for number, page in enumerate(pages):
        expected = _expected_csv(columns, rest[number * 1500 : (number + 1) * 1500])
        assert page.text == expected
    rows = [row for page in pages for row in _rows(page.text)]
    quoted = next(row for row in rows if row["Id"] == quoted_id)
    assert (quoted["Title"], quoted["Street"]) == ('Head of "Growth", EMEA', "1 Main St\nFloor 2")
    # The formats themselves, not only their agreement with REST.
    assert all(_BULK_DATETIME.match(row["SystemModstamp"]) for row in rows)
    assert {row["IsConverted"] for row in rows} == {"true", "false"}
    # A parent's fields are empty where there is no parent (unconverted Leads).
    assert {bool(row["ConvertedAccount.Name"]) for row in rows} == {True, False}
    assert {bool(row["ConvertedDate"]) for row in rows} == {True, False}


def test_columns_keep_the_query_s_order_and_the_job_s_csv_format(
    jobs: QueryJobsApi, db: sqlite3.Connection
) -> None:
    job_id, _ = jobs.run(
        "SELECT email, Owner.Name, id FROM Lead WHERE IsConverted = false",
        columnDelimiter="PIPE",
        lineEnding="CRLF",
    )

    page = jobs.page(job_id)

    assert page.content.startswith(b'"Email"|"Owner.Name"|"Id"\r\n')
    rows = list(csv.reader(io.StringIO(page.text, newline=""), delimiter="|"))
    assert [row[2] for row in rows[1:]] == _ids(db, '"IsDeleted" = 0 AND "IsConverted" = 0')
    assert page.headers["Sforce-Locator"] == "null"  # under the default page size
    assert int(page.headers["Sforce-NumberOfRecords"]) == len(rows) - 1 < DEFAULT_MAX_RECORDS


def test_before_api_50_columns_come_alphabetically(
    bulk_server: SandboxServer, bsf: Salesforce
) -> None:
    old = QueryJobsApi(bulk_server, bsf, version="49.0")
    job_id, _ = old.run("SELECT Title, Id, Email FROM Lead LIMIT 3")

    assert old.page(job_id).text.splitlines()[0] == '"Email","Id","Title"'
    assert QueryJobsApi(bulk_server, bsf, version="46.0").call("GET").status_code == 404


def test_an_empty_result_is_a_header_and_a_null_locator(jobs: QueryJobsApi) -> None:
    job_id, states = jobs.run("SELECT Id, Email FROM Lead WHERE Email = 'nobody@nowhere.invalid'")

    page = jobs.page(job_id, max_records=10)

    assert states[-1] == "JobComplete"
    assert page.text == '"Id","Email"\n'
    assert (page.headers["Sforce-NumberOfRecords"], page.headers["Sforce-Locator"]) == ("0", "null")


def test_the_result_set_is_the_ids_matched_when_the_job_completed(
    bsf: Salesforce, jobs: QueryJobsApi, db: sqlite3.Connection
) -> None:
    where = '"IsDeleted" = 0 AND "IsConverted" = 0'
    matched = _ids(db, where)
    job_id, _ = jobs.run("SELECT Id, Title, IsDeleted FROM Lead WHERE IsConverted = false")
    first = jobs.page(job_id, max_records=1000)

    # After the first page: a record of page one leaves the result, one of page three changes,
    # one of page four is deleted, and a new record joins the query's matches.
    with db:
        db.execute('UPDATE "Lead" SET "IsConverted" = 1 WHERE "Id" = ?', (matched[10],))
        db.execute('UPDATE "Lead" SET "IsDeleted" = 1 WHERE "Id" = ?', (matched[3500],))
    bsf.Lead.update(matched[2500], {"Title": "Changed Mid-Read"})
    new_id = bsf.Lead.create({"LastName": "Latecomer", "Company": "Late Ltd"})["id"]
    rest = [first]
    while rest[-1].headers["Sforce-Locator"] != "null":
        rest.append(jobs.page(job_id, rest[-1].headers["Sforce-Locator"], 1000))

    rows = [row for page in rest for row in _rows(page.text)]
    assert [row["Id"] for row in rows] == matched  # nothing shifted, skipped or added
    assert [int(p.headers["Sforce-NumberOfRecords"]) for p in rest[:-1]] == [1000] * (len(rest) - 1)
    by_id = {row["Id"]: row for row in rows}
    # Values are read when their page is served, as a cursor's records are.
    assert by_id[matched[2500]]["Title"] == "Changed Mid-Read"
    assert by_id[matched[3500]]["IsDeleted"] == "true"
    later, _ = jobs.run("SELECT Id FROM Lead WHERE IsConverted = false")
    now_matching = [row["Id"] for row in _rows(jobs.page(later).text)]
    assert new_id in now_matching and matched[10] not in now_matching


# --- queryAll --------------------------------------------------------------------------------


def test_query_all_adds_records_deleted_in_the_last_15_days(
    bsf: Salesforce, jobs: QueryJobsApi, db: sqlite3.Connection, clock: FakeClock
) -> None:
    cutoff = to_storage_datetime(clock.now - RECYCLE_BIN_RETENTION)
    recent = set(_ids(db, f'"IsDeleted" = 1 AND "SystemModstamp" >= \'{cutoff}\''))
    older = set(_ids(db, f'"IsDeleted" = 1 AND "SystemModstamp" < \'{cutoff}\''))
    assert recent and older  # both sides of the 15-day line are present
    soql = "SELECT Id, IsDeleted FROM Lead"

    all_job, _ = jobs.run(soql, operation="queryAll")
    live_job, _ = jobs.run(soql)

    everything = [row for page in jobs.pages(all_job, 2000) for row in _rows(page.text)]
    live = [row for page in jobs.pages(live_job, 2000) for row in _rows(page.text)]
    assert [row["Id"] for row in everything] == sorted(set(_ids(db)) | recent)
    assert {row["Id"] for row in everything if row["IsDeleted"] == "true"} == recent
    assert [row["Id"] for row in live] == _ids(db)
    assert jobs.poll(all_job)["operation"] == "queryAll"
    rest_all = bsf.query_all(soql, include_deleted=True)["records"]
    assert [row["Id"] for row in everything] == [r["Id"] for r in rest_all]
    # simple-salesforce's own queryAll reads the same rows.
    pages = list(bsf.bulk2.Lead.query_all(soql, max_records=2000, wait=0))
    assert [row["Id"] for page in pages for row in _rows(page)] == [r["Id"] for r in rest_all]


# --- failures, abort, delete -----------------------------------------------------------------


def test_a_failed_job_reports_its_error_and_serves_no_results(
    bulk_server: SandboxServer, bsf: Salesforce, jobs: QueryJobsApi
) -> None:
    failed_before = bulk_server.query_jobs_failed
    bulk_server.fail_query_jobs(sobject="Lead", times=1, message="InvalidBatch : boom")

    contact_job, contact_states = jobs.run("SELECT Id FROM Contact")
    lead_job, lead_states = jobs.run("SELECT Id FROM Lead")
    after_job, after_states = jobs.run("SELECT Id FROM Lead LIMIT 5")

    assert contact_states == ["InProgress", "JobComplete"]  # armed for Leads only
    assert lead_states == ["InProgress", "Failed"]
    info = jobs.poll(lead_job)
    assert (info["state"], info["errorMessage"]) == ("Failed", "InvalidBatch : boom")
    refused = jobs.page(lead_job)
    assert (refused.status_code, _error_code(refused)) == (412, "JOB_NOT_COMPLETE")
    assert after_states[-1] == "JobComplete"  # times=1: spent
    assert bulk_server.query_jobs_failed == failed_before + 1
    assert bulk_server.pending_faults == 0

    bulk_server.fail_query_jobs(times=1)
    with pytest.raises(SalesforceOperationError, match="QUERY_TIMEOUT"):
        list(bsf.bulk2.Lead.query("SELECT Id FROM Lead", wait=0))


def test_a_running_job_can_be_aborted_and_a_finished_one_cannot(jobs: QueryJobsApi) -> None:
    job_id = jobs.create("SELECT Id FROM Lead")["id"]
    assert jobs.poll(job_id)["state"] == "InProgress"

    aborted = jobs.call("PATCH", f"/{job_id}", json={"state": "Aborted"})

    assert aborted.status_code == 200
    assert aborted.json()["state"] == "Aborted"
    assert jobs.poll(job_id)["state"] == jobs.poll(job_id)["state"] == "Aborted"
    assert jobs.page(job_id).status_code == 412
    again = jobs.call("PATCH", f"/{job_id}", json={"state": "Aborted"})
    assert (again.status_code, _error_code(again)) == (400, "INVALIDJOBSTATE")
    done, _ = jobs.run("SELECT Id FROM Lead LIMIT 1")
    late = jobs.call("PATCH", f"/{done}", json={"state": "Aborted"})
    assert (late.status_code, _error_code(late)) == (400, "INVALIDJOBSTATE")
    other = jobs.create("SELECT Id FROM Lead")["id"]
    closing = jobs.call("PATCH", f"/{other}", json={"state": "UploadComplete"})
    assert (closing.status_code, _error_code(closing)) == (400, "INVALIDJOBSTATE")


def test_deleting_a_job_drops_it_and_its_results_without_counting_a_refused_delete(
    bulk_server: SandboxServer, jobs: QueryJobsApi, db: sqlite3.Connection
) -> None:
    refused = bulk_server.deletes_refused
    running = jobs.create("SELECT Id FROM Lead")["id"]
    for _ in range(2):  # UploadComplete, then InProgress: not terminated yet
        early = jobs.call("DELETE", f"/{running}")
        assert (early.status_code, _error_code(early)) == (400, "API_ERROR")
        jobs.poll(running)
    job_id, _ = jobs.run("SELECT Id FROM Lead")
    ids_file = bulk_server.state.query_jobs.get(job_id).ids_file
    assert ids_file is not None and ids_file.exists()

    deleted = jobs.call("DELETE", f"/{job_id}/")

    assert deleted.status_code == 204
    assert jobs.call("GET", f"/{job_id}").status_code == 404
    assert jobs.page(job_id).status_code == 404
    assert not ids_file.exists()
    assert bulk_server.deletes_refused == refused
    assert len(_ids(db)) > 0  # no record went with it


def test_jobs_are_listed(jobs: QueryJobsApi) -> None:
    job_id = jobs.create("SELECT Id FROM Contact", operation="queryAll")["id"]

    listed = jobs.call("GET").json()
    ingest_only = jobs.call("GET", params={"jobType": "V2Ingest"}).json()

    assert listed["done"] is True and listed["nextRecordsUrl"] is None
    mine = next(job for job in listed["records"] if job["id"] == job_id)
    assert (mine["operation"], mine["object"], mine["jobType"]) == (
        "queryAll",
        "Contact",
        "V2Query",
    )
    assert ingest_only["records"] == []


# --- refused requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Lead WHERE Shoe_Size__c = 44",
        "SELECT Id FROM Shoe",
        "SELEC Id FROM Lead",
        "SELECT Id FROM Lead WHERE SystemModstamp > '2026-01-01'",
        "SELECT Id FROM Lead WHERE Owner.Shoe = 'x'",
    ],
)
def test_bad_soql_is_refused_with_the_rest_query_s_error(
    bulk_server: SandboxServer, jobs: QueryJobsApi, soql: str
) -> None:
    rest = jobs.http.get(
        f"{bulk_server.instance_url}/services/data/v59.0/query",
        params={"q": soql},
        headers=jobs.headers,
        timeout=10,
    )

    bulk = jobs.call("POST", json={"operation": "query", "query": soql})

    assert rest.status_code == bulk.status_code == 400
    assert bulk.json() == rest.json()


@pytest.mark.parametrize(
    "body",
    [
        {"operation": "query", "query": "SELECT COUNT() FROM Lead"},
        {"operation": "query", "query": "SELECT Id FROM Lead OFFSET 10"},
        {"operation": "insert", "query": "SELECT Id FROM Lead"},
        {"operation": "query"},
        {"operation": "query", "query": "SELECT Id FROM Lead", "contentType": "JSON"},
        {"operation": "query", "query": "SELECT Id FROM Lead", "columnDelimiter": "SPACE"},
        {"operation": "query", "query": "SELECT Id FROM Lead", "lineEnding": "CR"},
    ],
)
def test_jobs_bulk_query_cannot_run_are_refused(jobs: QueryJobsApi, body: dict[str, str]) -> None:
    response = jobs.call("POST", json=body)

    assert (response.status_code, _error_code(response)) == (400, "INVALIDJOB")


def test_bad_result_parameters_are_refused(jobs: QueryJobsApi) -> None:
    job_id, _ = jobs.run("SELECT Id FROM Lead LIMIT 30")
    last = jobs.page(job_id, max_records=10)
    last = jobs.page(job_id, last.headers["Sforce-Locator"], 10)
    last = jobs.page(job_id, last.headers["Sforce-Locator"], 10)
    assert last.headers["Sforce-Locator"] == "null"

    for max_records in ("0", "-5", "ten"):
        refused = jobs.page(job_id, max_records=max_records)
        assert (refused.status_code, _error_code(refused)) == (400, "API_ERROR")
    for locator in ("!!", "bm90LWEtbnVtYmVy", "MzA", "MTAwMA"):  # junk, "not-a-number", 30, 1000
        refused = jobs.page(job_id, locator, 10)
        assert (refused.status_code, _error_code(refused)) == (400, "INVALID_QUERY_LOCATOR")
    missing = jobs.page("7505e0000000000AAA")
    assert (missing.status_code, _error_code(missing)) == (404, "NOT_FOUND")


def test_every_call_goes_through_the_api_gate(
    bulk_server: SandboxServer, jobs: QueryJobsApi
) -> None:
    usage = bulk_server.api_usage
    job_id, states = jobs.run("SELECT Id FROM Lead LIMIT 5")
    page = jobs.page(job_id)

    assert bulk_server.api_usage == usage + 1 + len(states) + 1
    assert page.headers["Sforce-Limit-Info"] == f"api-usage={usage + 4}/{bulk_server.api_limit}"
    anonymous = jobs.http.get(f"{jobs.base}/{job_id}/results", timeout=10)
    assert (anonymous.status_code, _error_code(anonymous)) == (401, "INVALID_SESSION_ID")
    bulk_server.inject_fault(
        path_contains="/jobs/query", status=503, error_code="SERVER_UNAVAILABLE", method="POST"
    )
    faulted = jobs.call("POST", json={"operation": "query", "query": "SELECT Id FROM Lead"})
    assert (faulted.status_code, _error_code(faulted)) == (503, "SERVER_UNAVAILABLE")


def test_a_page_lost_mid_stream_is_read_again_by_its_locator(
    bulk_server: SandboxServer, jobs: QueryJobsApi
) -> None:
    job_id, _ = jobs.run("SELECT Id, Email FROM Lead")
    first = jobs.page(job_id, max_records=1000)
    locator = first.headers["Sforce-Locator"]
    dropped = bulk_server.connections_dropped
    bulk_server.drop_connections(path_contains=f"/{job_id}/results", times=1)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        jobs.page(job_id, locator, 1000)
    retried = jobs.page(job_id, locator, 1000)

    assert bulk_server.connections_dropped == dropped + 1
    assert retried.status_code == 200
    assert len(_rows(retried.text)) == int(retried.headers["Sforce-NumberOfRecords"]) == 1000
    assert not {r["Id"] for r in _rows(first.text)} & {r["Id"] for r in _rows(retried.text)}


# --- simple-salesforce -----------------------------------------------------------------------


def test_simple_salesforce_reads_a_query_job_page_by_page(
    bsf: Salesforce, db: sqlite3.Connection, tmp_path: Path
) -> None:
    soql = "SELECT Id, Email, Owner.Name FROM Lead"

    pages = list(bsf.bulk2.Lead.query(soql, max_records=2000, wait=0))
    downloads = bsf.bulk2.Lead.download(soql, str(tmp_path), max_records=3000, wait=0)

    live = _ids(db)
    assert len(pages) == -(-len(live) // 2000)
    assert all(page.startswith('"Id","Email","Owner.Name"\n') for page in pages)
    assert [row["Id"] for page in pages for row in _rows(page)] == live
    assert [d["number_of_records"] for d in downloads] == [3000, len(live) - 3000]
    assert downloads[-1]["locator"] == ""
    read = [row["Id"] for d in downloads for row in _rows(Path(d["file"]).read_text())]
    assert read == live


# --- streaming -------------------------------------------------------------------------------

BIG_COPIES = 45


def _multiply_leads(db_path: Path, copies: int) -> int:
    """Add ``copies`` copies of every live Lead (new Ids, same values); the live count after.

    Ids keep their shape and order: body characters 4-6 (zero in every seeded Id) carry the
    copy's number. One statement, from a temporary copy of the originals.
    """
    conn = sqlite3.connect(db_path)
    try:
        # A scratch copy: no journal, no fsync, and a cache that holds the indexes being filled.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        columns = [row[1] for row in conn.execute('PRAGMA table_info("Lead")')]
        names = ", ".join(f'"{c}"' for c in columns)
        new_id = 'substr(b."Id", 1, 6) || printf(\'%03d\', n.k) || substr(b."Id", 10)'
        picked = ", ".join(new_id if c == "Id" else f'b."{c}"' for c in columns)
        with conn:
            conn.execute('CREATE TEMP TABLE base AS SELECT * FROM "Lead" WHERE "IsDeleted" = 0')
            conn.execute(
                "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < ?) "
                f'INSERT INTO "Lead" ({names}) SELECT {picked} FROM n CROSS JOIN temp.base AS b',
                (copies,),
            )
        return int(conn.execute('SELECT COUNT(*) FROM "Lead" WHERE "IsDeleted" = 0').fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def big_server(
    seeded: SeedSummary, cert_dir: Path, tmp_path: Path, clock: FakeClock
) -> Iterator[tuple[SandboxServer, int]]:
    db_path = copy_db(seeded, tmp_path)
    live = _multiply_leads(db_path, BIG_COPIES)
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running, live
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_a_large_result_is_streamed_not_built_in_memory(
    big_server: tuple[SandboxServer, int],
) -> None:
    """The server runs in this process, so tracemalloc sees every Python allocation it makes
    (SQLite's own page cache is C memory and not counted: it is bounded anyway). Building the
    page, or the list of its Ids, in Python would cost at least its size; streaming costs a
    batch. The client side reads 64 KiB at a time and keeps only counts."""
    server, live = big_server
    assert live > 200_000
    jobs = QueryJobsApi(server, client_for(server))
    soql = (
        "SELECT Id, FirstName, LastName, Email, Company, Title, Street, City, Country, Status, "
        "Interests__c, SystemModstamp, Owner.Name FROM Lead"
    )
    job_id = jobs.create(soql)["id"]
    assert jobs.poll(job_id)["state"] == "InProgress"

    tracemalloc.start()
    try:
        completed = jobs.poll(job_id)
        _, completing_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        received = lines = 0
        with jobs.call(
            "GET", f"/{job_id}/results", params={"maxRecords": live}, stream=True
        ) as page:
            assert page.headers["Sforce-NumberOfRecords"] == str(live)
            assert page.headers["Sforce-Locator"] == "null"
            for chunk in page.iter_content(64 * 1024):
                received += len(chunk)
                lines += chunk.count(b"\n")
        _, streaming_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert completed["state"] == "JobComplete"
    assert completed["numberRecordsProcessed"] == live
    assert lines >= live + 1  # header + one line per record (Street may add line breaks)
    assert received > 30_000_000
    # Generous bounds that a materialised answer cannot meet: the Ids alone as a Python list
    # would take over 15 MB, the page as one bytes object its full size (over 30 MB), as rows
    # several times that.
    assert completing_peak < 4_000_000, completing_peak
    assert streaming_peak < received / 4, (streaming_peak, received)
