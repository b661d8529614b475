"""Reading the CRM through Bulk API 2.0 query jobs: CSV pages typed like REST pages, locators
followed, queryAll's deleted records, failed jobs in one line, and whole syncs that fill the
warehouse exactly as REST-read ones do.

The sandbox runs each query job through a poll answered ``InProgress`` before the one that
completes it, so the polling loop is exercised without waiting; no test asserts on time.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import DagsterInstance, Definitions

from acton_pipelines.crm.bulk_query import (
    BulkPollPolicy,
    BulkQueryFailed,
    bulk_query_pages,
    csv_page_frame,
    page_records_from_env,
)
from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.extract import field_types, page_frame
from acton_pipelines.crm.objects import LEAD
from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.crm.sync import bulk_threshold, crm_read_mode, sync_crm_object
from acton_pipelines.definitions import defs as project_defs
from acton_pipelines.errors import UserError
from acton_pipelines.jobs import full_sync_job
from acton_pipelines.runs.partitions import full_sync_tags
from acton_pipelines.runs.window import FULL_SYNC, SyncWindow
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SandboxServer, SeedSummary, churn_sandbox, login
from tests.conftest import (
    ActonHome,
    fresh_postgres_database,
    home_resources,
    make_home,
    run_full_sync,
)
from tests.crm.test_client import sandbox_client
from tests.test_incremental_sync import DERIVED_TABLES
from tests.warehouse_contents import table_contents

# Fields whose CSV rendering can go wrong: numbers kept as text, quotes, separators and line
# breaks inside a value, a parent field, booleans, dates and datetimes, nulls of every kind.
TYPES = {
    "Id": "id",
    "PostalCode": "string",
    "Description": "textarea",
    "Owner.Name": "string",
    "IsConverted": "boolean",
    "NumberOfEmployees": "int",
    "AnnualRevenue": "currency",
    "ConvertedDate": "date",
    "SystemModstamp": "datetime",
    "Missing__c": "string",
}
JSON_RECORDS: list[dict[str, Any]] = [
    {
        "attributes": {"type": "Lead"},
        "Id": "00Q000000000001AAA",
        "PostalCode": "00123",
        "Description": 'He said "hi",\nthen left; back\\slash ☕',
        "Owner": {"attributes": {"type": "User"}, "Name": "Ann O'Neil"},
        "IsConverted": True,
        "NumberOfEmployees": 12,
        "AnnualRevenue": 1500000.5,
        "ConvertedDate": "2026-01-02",
        "SystemModstamp": "2024-05-01T10:00:00.000+0000",
    },
    {
        "attributes": {"type": "Lead"},
        "Id": "00Q000000000002AAA",
        "PostalCode": None,
        "Description": None,
        "Owner": None,
        "IsConverted": False,
        "NumberOfEmployees": None,
        "AnnualRevenue": None,
        "ConvertedDate": None,
        "SystemModstamp": "2024-05-01T10:00:00.123+0000",
    },
]
# The same records as a Bulk API results page: header spelled otherwise (matched ignoring
# case), columns in another order, one column the caller did not ask for, Missing__c absent.
CSV_PAGE = (
    b'"ID","SystemModstamp","postalcode","Description","owner.name","IsConverted",'
    b'"NumberOfEmployees","AnnualRevenue","ConvertedDate","Extra__c"\n'
    b'"00Q000000000001AAA","2024-05-01T10:00:00.000Z","00123","He said ""hi"",\nthen left; '
    + "back\\slash ☕".encode()
    + b'","Ann O\'Neil","true","12","1500000.5","2026-01-02","x"\n'
    b'"00Q000000000002AAA","2024-05-01T10:00:00.123Z",,"",,"false",,,,\n'
)


def test_a_csv_page_gives_the_frame_a_json_page_gives() -> None:
    from_csv = csv_page_frame(CSV_PAGE, TYPES)
    pd.testing.assert_frame_equal(from_csv, page_frame(JSON_RECORDS, TYPES))
    assert from_csv.loc[0, "postalcode"] == "00123"  # typed from the describe, not inferred
    assert from_csv.loc[0, "description"] == 'He said "hi",\nthen left; back\\slash ☕'
    assert from_csv.loc[0, "converteddate"] == date(2026, 1, 2)
    assert from_csv.loc[1, "systemmodstamp"] == pd.Timestamp("2024-05-01 10:00:00.123", tz="UTC")
    assert from_csv["missing__c"].isna().all() and "extra__c" not in from_csv


def test_an_empty_result_gives_an_empty_frame_with_every_column() -> None:
    header_only = b'"Id","SystemModstamp"\n'
    for data in (b"", header_only):
        frame = csv_page_frame(data, TYPES)
        assert list(frame.columns) == list(page_frame(JSON_RECORDS, TYPES).columns)
        assert frame.empty
        assert isinstance(frame["systemmodstamp"].dtype, pd.DatetimeTZDtype)


def test_poll_waits_start_short_grow_and_stay_bounded() -> None:
    policy = BulkPollPolicy(first_wait_seconds=0.5, max_wait_seconds=8.0)
    waits = [wait for wait, _ in zip(policy.waits(), range(20), strict=False)]
    assert waits[0] == 0.5
    assert all(later >= earlier for earlier, later in zip(waits, waits[1:], strict=False))
    assert waits[-1] == 8.0 and max(waits) == 8.0


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        ("ACTON_CRM_READ", "fast", crm_read_mode),
        ("ACTON_BULK_THRESHOLD", "ten", bulk_threshold),
        ("ACTON_BULK_PAGE_RECORDS", "0", page_records_from_env),
    ],
)
def test_a_bad_read_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, read: Callable[[], object]
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError, match=rf"^{name}='{value}' is not a "):
        read()
    monkeypatch.delenv(name)
    assert read() in ("auto", 10_000, 50_000)  # the defaults


# --- against the sandbox --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(
    small_crm: SeedSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    """A server over a copy of the small CRM with some records deleted (in the Recycle Bin)."""
    folder = tmp_path_factory.mktemp("bulk_crm")
    db_path = folder / "crm.sqlite"
    shutil.copyfile(small_crm.db_path, db_path)
    churn_sandbox(db_path, updates=0, creates=0, deletes=12, converts=0, seed=3)
    with SandboxServer(db_path, folder / "certs") as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> Iterator[CrmClient]:
    yield sandbox_client(server)
    server.clear_faults()


def every_field(client: CrmClient, object_name: str) -> dict[str, str]:
    """Each field of the object's describe (compound ones aside), with its type."""
    describe = client.describe(object_name)
    names = [f["name"] for f in describe["fields"] if f["type"] not in ("address", "location")]
    return field_types(names, {object_name: describe}, object_name)


def query_jobs(server: SandboxServer) -> list[dict[str, Any]]:
    """The Bulk API 2.0 query jobs the sandbox holds (its Get All Query Jobs answer)."""
    http = server.session()
    instance_url, token = login(server, http)
    listing = http.get(
        f"{instance_url}/services/data/v59.0/jobs/query",
        headers={"Authorization": f"Bearer {token}"},
    )
    listing.raise_for_status()
    return listing.json()["records"]


def read_rest(client: CrmClient, soql: str, types: dict[str, str], deleted: bool) -> pd.DataFrame:
    pages = [
        page_frame(p.records, types) for p in client.query_pages(soql, include_deleted=deleted)
    ]
    return pd.concat(pages, ignore_index=True).sort_values("id", ignore_index=True)


@pytest.mark.parametrize("object_name", ["Lead", "Contact", "Account", "User", "Opportunity"])
@pytest.mark.parametrize("include_deleted", [False, True], ids=["query", "queryAll"])
def test_bulk_pages_follow_locators_and_equal_rest_pages(
    client: CrmClient, object_name: str, include_deleted: bool
) -> None:
    types = every_field(client, object_name)
    soql = f"SELECT {', '.join(types)} FROM {object_name}"
    rest = read_rest(client, soql, types, include_deleted)
    pages = list(
        bulk_query_pages(
            client,
            soql,
            types,
            object_name=object_name,
            include_deleted=include_deleted,
            max_records=40,
        )
    )
    assert len(pages) == max(1, math.ceil(len(rest) / 40))
    assert all(len(page.frame) <= 40 for page in pages)
    assert {page.total_size for page in pages} == {len(rest)}
    bulk = pd.concat([p.frame for p in pages], ignore_index=True)
    assert bulk["id"].is_unique
    pd.testing.assert_frame_equal(bulk.sort_values("id", ignore_index=True), rest)


def test_query_all_brings_the_deleted_records_and_query_does_not(client: CrmClient) -> None:
    types = {"Id": "id", "IsDeleted": "boolean"}
    soql = "SELECT Id, IsDeleted FROM Lead"
    read = {
        deleted: pd.concat(
            [
                p.frame
                for p in bulk_query_pages(
                    client, soql, types, object_name="Lead", include_deleted=deleted
                )
            ]
        )
        for deleted in (False, True)
    }
    assert not read[False]["isdeleted"].any()
    gone = set(read[True].loc[read[True]["isdeleted"].eq(True), "id"])
    assert gone and not gone & set(read[False]["id"])
    assert set(read[True]["id"]) == set(read[False]["id"]) | gone


def test_the_job_is_polled_until_complete_with_growing_waits(client: CrmClient) -> None:
    waits: list[float] = []
    calls_before = client.api_calls
    policy = BulkPollPolicy(first_wait_seconds=0.001, max_wait_seconds=0.004)
    pages = list(
        bulk_query_pages(
            client,
            "SELECT Id FROM User",
            {"Id": "id"},
            object_name="User",
            poll=policy,
            sleep=waits.append,
        )
    )
    # The sandbox answers InProgress before it completes a job: at least one wait, then more
    # polls than waits (the last poll saw JobComplete): create + polls + one page.
    assert waits and waits == sorted(waits) and waits[0] == 0.001
    assert client.api_calls - calls_before == 1 + (len(waits) + 1) + len(pages)


def test_a_results_page_cut_mid_body_is_asked_for_again(
    client: CrmClient, server: SandboxServer
) -> None:
    types = {"Id": "id", "Email": "email"}
    soql = "SELECT Id, Email FROM Lead"
    dropped_before = server.connections_dropped
    server.drop_connections(path_contains="/results", times=2)
    pages = list(bulk_query_pages(client, soql, types, object_name="Lead", max_records=100))
    assert server.connections_dropped - dropped_before == 2
    bulk = pd.concat([p.frame for p in pages], ignore_index=True)
    pd.testing.assert_frame_equal(
        bulk.sort_values("id", ignore_index=True), read_rest(client, soql, types, False)
    )


def test_a_lost_answer_to_creating_a_job_is_asked_again_leaving_one_job_unread(
    client: CrmClient, server: SandboxServer
) -> None:
    """The choice bulk_query's docstring explains: a query job is read-only, so a create whose
    answer was lost is sent again (the first job, created all the same, finishes unread)
    rather than failing the whole read."""
    jobs_before, dropped_before = len(query_jobs(server)), server.connections_dropped
    server.drop_connections(path_contains="/jobs/query", method="POST", times=1)
    pages = list(bulk_query_pages(client, "SELECT Id FROM User", {"Id": "id"}, object_name="User"))
    assert server.connections_dropped - dropped_before == 1
    assert len(query_jobs(server)) - jobs_before == 2
    assert sum(len(page.frame) for page in pages) > 0


def test_a_failed_job_is_one_line_naming_the_job_and_why(
    client: CrmClient, server: SandboxServer
) -> None:
    server.fail_query_jobs(sobject="Lead", times=1, message="QUERY_TIMEOUT: took\ntoo long")
    with pytest.raises(BulkQueryFailed) as failed:
        list(bulk_query_pages(client, "SELECT Id FROM Lead", {"Id": "id"}, object_name="Lead"))
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith("Bulk API 2.0 query job 750")
    assert message.endswith("on Lead ended Failed: QUERY_TIMEOUT: took too long")
    assert client.sf.session_id not in message


def test_a_job_that_outlasts_the_poll_policy_is_aborted_and_fails_in_one_line(
    client: CrmClient, server: SandboxServer
) -> None:
    # The sandbox answers the first poll InProgress: with no time to wait, the read gives up.
    policy = BulkPollPolicy(first_wait_seconds=0.001, give_up_after_seconds=0.0)
    with pytest.raises(BulkQueryFailed) as failed:
        list(
            bulk_query_pages(
                client, "SELECT Id FROM Lead", {"Id": "id"}, object_name="Lead", poll=policy
            )
        )
    message = str(failed.value)
    assert "\n" not in message
    job_id = message.removeprefix("Bulk API 2.0 query job ").split()[0]
    assert message == (
        f"Bulk API 2.0 query job {job_id} on Lead was still InProgress after 0 min; aborted it: "
        "the next run starts a new one"
    )
    assert {job["id"]: job["state"] for job in query_jobs(server)}[job_id] == "Aborted"


# --- whole syncs -------------------------------------------------------------------------------


COMPARED_TABLES = (*DERIVED_TABLES, "sync_deletions")


@contextlib.contextmanager
def second_warehouse(
    warehouse_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """Another empty warehouse on the backend of ``warehouse_url``."""
    if warehouse_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.sqlite'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url.render_as_string(hide_password=False)


def full_sync_contents(
    root: Path, seed: SeedSummary, monkeypatch: pytest.MonkeyPatch, url: str, read: str
) -> dict[str, tuple[list[str], list[tuple]]]:
    """The compared tables of warehouse ``url`` after a full sync reading the CRM by ``read``."""
    monkeypatch.setenv("ACTON_CRM_READ", read)
    home = make_home(root / read, seed, monkeypatch, url)
    instance = DagsterInstance.ephemeral()
    result = run_full_sync(home, instance=instance)
    assert result.success
    said = {entry.user_message for entry in instance.all_logs(result.run_id)}
    path = "Bulk API 2.0" if read == "bulk" else "REST"
    for table in ("crm_leads", "crm_contacts", "crm_accounts", "crm_users"):
        assert f"{table}: reading through {path} (ACTON_CRM_READ={read})" in said, table
    return table_contents(url, COMPARED_TABLES)


def test_a_full_sync_through_bulk_fills_the_warehouse_a_rest_one_does(
    tmp_path: Path,
    small_crm: SeedSummary,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    rest = full_sync_contents(tmp_path, small_crm, monkeypatch, warehouse_url, "rest")
    with second_warehouse(warehouse_url, tmp_path, request) as url:
        bulk = full_sync_contents(tmp_path, small_crm, monkeypatch, url, "bulk")
    for table in COMPARED_TABLES:
        assert bulk[table] == rest[table], table
    assert len(bulk["crm_leads"][1]) > 500  # not two empty warehouses


def test_auto_reads_a_window_through_bulk_above_the_threshold_and_rest_at_or_below(
    client: CrmClient, server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTON_CRM_READ", raising=False)
    engine = warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    describes = {name: client.describe(name) for name in ("Lead", "User")}
    types = field_types(LEAD.base_fields, describes, "Lead")
    window = SyncWindow(
        "incremental", datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )

    def sync(window: SyncWindow) -> tuple[list[str], int, int]:
        said: list[str] = []
        jobs_before = len(query_jobs(server))
        run = sync_crm_object(
            client=client,
            engine=engine,
            crm_object=LEAD,
            types=types,
            window=window,
            run_id=str(uuid.uuid4()),
            progress=said.append,
        )
        return said, run.rows_read, len(query_jobs(server)) - jobs_before

    said, full_rows, jobs = sync(FULL_SYNC)
    assert "crm_leads: reading through Bulk API 2.0 (a full read)" in said and jobs == 1

    # The window holds every Lead, deleted ones too (queryAll): more than 100, fewer than 10k.
    monkeypatch.setenv("ACTON_BULK_THRESHOLD", "100")
    said, rows, jobs = sync(window)
    assert rows > full_rows > 100 and jobs == 1
    assert (
        f"crm_leads: reading through Bulk API 2.0 ({rows:,} records in the window, above "
        "ACTON_BULK_THRESHOLD=100)" in said
    )

    monkeypatch.setenv("ACTON_BULK_THRESHOLD", str(rows))
    said, rows_again, jobs = sync(window)
    assert rows_again == rows and jobs == 0
    assert (
        f"crm_leads: reading through REST ({rows:,} records in the window, not above "
        f"ACTON_BULK_THRESHOLD={rows:,})" in said
    )


def test_a_failed_job_fails_the_step_in_one_line(
    acton_home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTON_CRM_READ", "bulk")
    cert_dir = acton_home.path / "sandbox" / "certs"  # where sandbox_url looks for the CA
    with SandboxServer(acton_home.sandbox_db, cert_dir) as server:
        server.fail_query_jobs(sobject="Lead", times=1)
        crm = SalesforceResource(sandbox_url=server.instance_url, retry_initial_wait_seconds=0.01)
        definitions = Definitions(
            assets=project_defs.assets,
            asset_checks=project_defs.asset_checks,
            jobs=[full_sync_job],
            resources={**home_resources(acton_home), "crm": crm},
        )
        result = definitions.resolve_job_def("full_sync").execute_in_process(
            instance=DagsterInstance.ephemeral(), raise_on_error=False, tags=full_sync_tags()
        )
        assert server.query_jobs_failed == 1
    assert not result.success
    failures = {
        event.step_key: event.step_failure_data.user_failure_data.description
        for event in result.get_step_failure_events()
        if event.step_failure_data.user_failure_data is not None
    }
    line = failures["crm_leads"]
    assert "\n" not in line
    assert "Bulk API 2.0 query job 750" in line and "on Lead ended Failed: " in line
    assert "QUERY_TIMEOUT" in line
