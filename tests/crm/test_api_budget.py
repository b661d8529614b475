"""The API budget meter: every run knows the CRM API calls it made and the org's remaining daily
allocation, and stops cleanly before eating the reserve left to the org's other integrations.

The sandbox counts the API requests it serves (``SandboxServer.api_usage``) and reports them in
``Sforce-Limit-Info`` like Salesforce; the client's own count is checked against it, over HTTPS.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, Definitions, ExecuteInProcessResult
from sqlalchemy import Column, MetaData, Table, inspect, select, text

from acton_pipelines.crm.client import (
    ApiReserve,
    CrmApiReserveReached,
    CrmClient,
    CrmRequestLimitExceeded,
    CrmUnavailable,
    RetryPolicy,
)
from acton_pipelines.crm.resource import SalesforceResource, crm_resource_from_env
from acton_pipelines.crm.sandbox_connection import sandbox_login
from acton_pipelines.definitions import defs as project_defs
from acton_pipelines.jobs import crm_push_job, full_sync_job
from acton_pipelines.runs.partitions import full_sync_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.sync_runs import SyncRun
from acton_pipelines.warehouse.tables import sync_runs
from crm_sandbox import SandboxServer, SeedSummary, seed_sandbox
from tests.conftest import SEED_NOW, ActonHome, home_resources, make_home

FAST = RetryPolicy(give_up_after_seconds=60, initial_wait_seconds=0.001, max_wait_seconds=0.005)
DEFAULT_LIMIT = 100_000
USAGE = re.compile(r"^(\d+)/(\d+)$")


def sandbox_client(server: SandboxServer, reserve: str | None = None) -> CrmClient:
    """A client of ``server`` built as the pipeline builds one, keeping ``reserve``."""

    def login() -> Any:
        return sandbox_login(server.instance_url, Path(server.ca_cert_path), "59.0")

    return CrmClient(
        sf=login(), relogin=login, retry_policy=FAST, api_reserve=ApiReserve.parse(reserve)
    )


@contextlib.contextmanager
def private_server(
    crm: SeedSummary, folder: Path, api_limit: int = DEFAULT_LIMIT
) -> Iterator[SandboxServer]:
    """A sandbox over a copy of ``crm`` with its usage at zero: what it counts is ours."""
    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "crm.sqlite"
    shutil.copyfile(crm.db_path, db_path)
    with SandboxServer(db_path, folder / "certs", api_limit=api_limit) as server:
        server.reset_api_usage()
        yield server


@contextlib.contextmanager
def served_home(home: ActonHome, api_limit: int = DEFAULT_LIMIT) -> Iterator[SandboxServer]:
    """``home``'s sandbox served by the test, as `acton sandbox serve` serves it, with its usage
    at zero and a daily allocation of ``api_limit``."""
    cert_dir = home.path / "sandbox" / "certs"  # where the pipeline looks for the CA
    with SandboxServer(home.sandbox_db, cert_dir, api_limit=api_limit) as server:
        server.reset_api_usage()
        yield server


def run_job(
    home: ActonHome,
    server: SandboxServer,
    job_name: str,
    tags: dict[str, str],
    instance: DagsterInstance | None = None,
) -> ExecuteInProcessResult:
    """One of the project's jobs, in process, on ``home``'s warehouse and on ``server`` (the
    test's resources otherwise serve the sandbox in-process, with the default allocation)."""
    resources = home_resources(home)
    resources["crm"] = SalesforceResource(
        sandbox_url=server.instance_url,
        retry_initial_wait_seconds=0.01,
        retry_max_wait_seconds=0.05,
        retry_minutes=0.05,
    )
    definitions = Definitions(
        assets=project_defs.assets,
        asset_checks=project_defs.asset_checks,
        jobs=[full_sync_job, crm_push_job],
        resources=resources,
    )
    return definitions.resolve_job_def(job_name).execute_in_process(
        instance=instance or DagsterInstance.ephemeral(), raise_on_error=False, tags=tags
    )


def sync_runs_rows(home: ActonHome, run_id: str) -> dict[str, Any]:
    """The run's ``sync_runs`` rows by object."""
    with warehouse_engine(home.warehouse_url).connect() as conn:
        found = conn.execute(
            select(sync_runs).where(sync_runs.c.run_id == run_id).order_by(sync_runs.c.seq)
        ).all()
    return {row.object: row for row in found}


def materialization_metadata(result: ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata values of ``asset``'s materialization in ``result``'s events."""
    (materialization,) = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in materialization.metadata.items()}


def used_of(usage: str) -> int:
    """N of an ``N/M`` usage."""
    match = USAGE.match(usage)
    assert match, usage
    return int(match.group(1))


# --- ACTON_API_RESERVE ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ApiReserve(percent=10)),
        ("", ApiReserve(percent=10)),
        ("10%", ApiReserve(percent=10)),
        (" 2.5 % ", ApiReserve(percent=2.5)),
        ("0%", ApiReserve(percent=0)),
        ("5000", ApiReserve(calls=5000)),
        ("5_000", ApiReserve(calls=5000)),
        ("20,000", ApiReserve(calls=20_000)),
        ("0", ApiReserve(calls=0)),
    ],
)
def test_acton_api_reserve_is_a_share_or_a_number_of_calls(
    raw: str | None, expected: ApiReserve
) -> None:
    assert ApiReserve.parse(raw) == expected


@pytest.mark.parametrize("raw", ["ten", "-5", "-5%", "100%", "150%", "10.5", "%", "nan%", "5k"])
def test_a_bad_acton_api_reserve_names_the_variable_the_value_and_a_good_example(raw: str) -> None:
    with pytest.raises(CrmUnavailable) as caught:
        ApiReserve.parse(raw)
    message = str(caught.value)
    assert message.startswith(f"ACTON_API_RESERVE={raw!r} is not an API reserve;")
    assert "ACTON_API_RESERVE=10%" in message and "ACTON_API_RESERVE=5000" in message
    assert "\n" not in message


def test_a_share_of_the_allocation_is_rounded_up_to_whole_calls() -> None:
    assert ApiReserve.parse("10%").calls_of(100_000) == 10_000
    assert ApiReserve.parse("10%").calls_of(5) == 1  # a reserve that exists keeps a call
    assert ApiReserve.parse("0%").calls_of(100_000) == 0
    assert ApiReserve.parse("5000").calls_of(100_000) == 5000


def test_the_resource_reads_acton_api_reserve_when_its_client_connects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACTON_API_RESERVE", raising=False)
    assert SalesforceResource().reserve() == ApiReserve(percent=10)
    monkeypatch.setenv("ACTON_API_RESERVE", "2500")
    assert SalesforceResource().reserve() == ApiReserve(calls=2500)
    # Set on the resource itself, it wins over the environment.
    assert SalesforceResource(api_reserve="1%").reserve() == ApiReserve(percent=1)


def test_a_bad_acton_api_reserve_fails_where_the_definitions_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTON_API_RESERVE", "a lot")
    with pytest.raises(CrmUnavailable, match=r"^ACTON_API_RESERVE='a lot' is not an API reserve"):
        crm_resource_from_env()


# --- the client's meter ---------------------------------------------------------------------


def test_the_client_counts_every_request_the_crm_counts_bulk_jobs_included(
    small_crm: SeedSummary, tmp_path: Path
) -> None:
    with private_server(small_crm, tmp_path) as server:
        client = sandbox_client(server)
        # The login is not an API request: nothing counted, no usage known yet.
        assert (client.api_calls, client.api_usage, client.api_remaining) == (0, None, None)

        client.describe("Lead")
        pages = list(
            client.query_pages("SELECT Id FROM Lead WHERE IsConverted = false", batch_size=200)
        )
        assert len(pages) > 1
        one_call = client.api_calls
        lead_id = pages[0].records[0]["Id"]
        # One client call, several requests (the job is created, its data uploaded, the job
        # closed and polled): counting per client call would miss all but one.
        client.call(
            lambda sf: sf.bulk2.Lead.update(records=[{"Id": lead_id, "Title": "Meter"}], wait=0.01)
        )

        assert client.api_calls - one_call > 1
        assert client.api_calls == server.api_usage
        assert client.api_usage == f"{server.api_usage}/{DEFAULT_LIMIT}"
        assert client.api_remaining == DEFAULT_LIMIT - server.api_usage


def test_a_new_session_after_an_expired_one_is_metered_too(
    small_crm: SeedSummary, tmp_path: Path
) -> None:
    with private_server(small_crm, tmp_path) as server:
        client = sandbox_client(server)
        client.describe("Lead")
        server.revoke_sessions()

        next(client.query_pages("SELECT Id FROM Lead"))
        next(client.query_pages("SELECT Id FROM Contact"))

        # The 401 was answered (and counted) though the org does not charge it; the login that
        # followed is not an API request; both queries on the new session are counted.
        assert server.api_usage == 3
        assert client.api_calls == 4
        assert client.api_usage == f"3/{DEFAULT_LIMIT}"


@pytest.mark.parametrize(("reserve", "calls_made"), [("3", 7), ("10%", 9), ("0", 10)])
def test_the_reserve_stops_before_the_call_that_would_eat_into_it(
    small_crm: SeedSummary, tmp_path: Path, reserve: str, calls_made: int
) -> None:
    with private_server(small_crm, tmp_path, api_limit=10) as server:
        client = sandbox_client(server, reserve)
        for _ in range(calls_made):
            next(client.query_pages("SELECT COUNT() FROM Lead"))

        with pytest.raises(CrmUnavailable) as caught:
            next(client.query_pages("SELECT COUNT() FROM Lead"))

        assert server.api_usage == calls_made and client.retries == 0
    if reserve == "0":
        # No reserve: the org's own limit stops it (REQUEST_LIMIT_EXCEEDED), one refused call.
        assert isinstance(caught.value, CrmRequestLimitExceeded)
        assert client.api_calls == calls_made + 1
        return
    assert client.api_calls == calls_made  # the stopped call never left
    assert isinstance(caught.value, CrmApiReserveReached)
    left = 10 - calls_made
    share = "10% of 10, " if reserve.endswith("%") else ""
    assert str(caught.value) == (
        f"the CRM org has {left} of its 10 daily API calls left (api-usage {calls_made}/10), at "
        "or below the reserve kept for its other integrations (ACTON_API_RESERVE: "
        f"{share}{ApiReserve.parse(reserve).calls_of(10)} calls); stopped before the next "
        "call: run again once the org's rolling 24-hour usage has dropped, or lower "
        "ACTON_API_RESERVE"
    )


# --- sync_runs and the materializations -----------------------------------------------------


def test_sync_runs_gains_api_usage_on_an_existing_warehouse(warehouse_url: str) -> None:
    engine = warehouse_engine(warehouse_url)
    # sync_runs as a warehouse made before the meter holds it (no api_usage column).
    old = Table(
        sync_runs.name,
        MetaData(),
        *[
            Column(c.name, c.type, primary_key=c.primary_key)
            for c in sync_runs.columns
            if c.name != "api_usage"
        ],
    )
    with engine.begin() as conn:
        old.create(conn)
    assert "api_usage" not in {c["name"] for c in inspect(engine).get_columns(sync_runs.name)}

    assert ensure_table(engine, sync_runs) == ["api_usage"]
    with engine.begin() as conn:
        SyncRun(run_id="r", object="crm_leads", mode="full", api_calls=3, api_usage="3/10").record(
            conn
        )
        assert conn.execute(text("SELECT api_calls, api_usage FROM sync_runs")).one() == (3, "3/10")
    engine.dispose()


def test_a_full_sync_and_a_push_record_their_api_calls_and_the_usage(
    tmp_path: Path, small_crm: SeedSummary, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse_url)
    with served_home(home) as server:
        synced = run_job(home, server, "full_sync", full_sync_tags())
        assert synced.success
        sync_used = server.api_usage

        pushed = run_job(home, server, "push_to_crm", {})
        assert pushed.success
        push_used = server.api_usage - sync_used

    rows = sync_runs_rows(home, synced.run_id)
    crm_steps = {name: row for name, row in rows.items() if name.startswith("crm_")}
    assert set(crm_steps) >= {"crm_leads", "crm_contacts", "crm_accounts", "crm_users"}
    # Every request the sandbox served during the run is on some step's row, once.
    assert sum(row.api_calls for row in rows.values()) == sync_used
    usages = [used_of(row.api_usage) for row in crm_steps.values()]  # in commit order
    assert usages == sorted(usages) and usages[-1] <= sync_used
    for name, row in crm_steps.items():
        assert row.api_calls >= 1, name
        assert row.api_usage.endswith(f"/{DEFAULT_LIMIT}"), name
        metadata = materialization_metadata(synced, name)
        shown = (metadata["api_calls"], metadata["api_remaining"], metadata["api_usage"])
        assert shown == (row.api_calls, DEFAULT_LIMIT - used_of(row.api_usage), row.api_usage)
    for name, row in rows.items():
        if name not in crm_steps:  # built from the warehouse only
            assert (row.api_calls, row.api_usage) == (0, None), name

    (push,) = sync_runs_rows(home, pushed.run_id).values()
    assert push.object == "crm_push" and push.status == "success"
    assert push.api_calls == push_used > 0  # the first push after a full sync sends scores
    assert push.api_usage == f"{sync_used + push_used}/{DEFAULT_LIMIT}"
    metadata = materialization_metadata(pushed, "crm_push")
    assert (metadata["api_calls"], metadata["api_remaining"]) == (
        push_used,
        DEFAULT_LIMIT - sync_used - push_used,
    )


# --- stopping cleanly -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def multi_page_crm(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    """A sandbox whose Leads take more than one read call (over 2,000 live records: more than a
    REST page)."""
    db_path = tmp_path_factory.mktemp("multi_page_crm") / "crm.sqlite"
    return seed_sandbox(db_path, leads=2100, contacts=100, seed=11, now=SEED_NOW)


def allocation_stopping_before(call: int, reserve: ApiReserve) -> int:
    """The smallest daily allocation whose ``reserve`` is reached just before request
    number ``call`` (1-based, from zero usage): after ``call - 2`` requests more than the
    reserve is left, after ``call - 1`` no more."""
    for allocation in range(call, 10 * call + 20):
        kept = reserve.calls_of(allocation)
        if allocation - (call - 1) <= kept < allocation - (call - 2):
            return allocation
    raise AssertionError(f"no allocation stops before call {call}")


def test_a_full_sync_reaching_the_reserve_mid_read_stops_with_nothing_half_written(
    tmp_path: Path,
    multi_page_crm: SeedSummary,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACTON_API_RESERVE", raising=False)  # the default, 10%
    # Bulk API results in pages of 500 records: the Leads' read takes several pages, so some
    # are staged when the reserve stops it (REST reads page by 2,000: over 2,000 Leads).
    monkeypatch.setenv("ACTON_BULK_PAGE_RECORDS", "500")
    home = make_home(tmp_path / "home", multi_page_crm, monkeypatch, warehouse_url)
    # A first full sync with plenty of budget: the warehouse's "before", and how many requests
    # a full sync makes up to the end of crm_leads (steps run one after another, in the same
    # order each time, and a full read asks the same whatever the warehouse holds).
    with served_home(home) as server:
        first = run_job(home, server, "full_sync", full_sync_tags())
        assert first.success
    rows = sync_runs_rows(home, first.run_id)
    leads = rows["crm_leads"]
    assert leads.api_calls >= 2  # its read takes more than one request
    through_leads = sum(row.api_calls for row in rows.values() if row.seq <= leads.seq)

    engine = warehouse_engine(home.warehouse_url)
    mirror = select(text("*")).select_from(text("crm_leads")).order_by(text("id"))
    with engine.connect() as conn:
        before = conn.execute(mirror).all()
    tables_before = set(inspect(engine).get_table_names())

    # An allocation that leaves no more than the reserve just before crm_leads's last request.
    reserve = ApiReserve.parse(None)
    allocation = allocation_stopping_before(through_leads, reserve)
    instance = DagsterInstance.ephemeral()
    with served_home(home, api_limit=allocation) as server:
        stopped = run_job(home, server, "full_sync", full_sync_tags(), instance)
        served = server.api_usage

    assert not stopped.success
    expected = str(CrmApiReserveReached(through_leads - 1, allocation, reserve))
    failures = {
        event.step_key: event.step_failure_data.user_failure_data.description
        for event in stopped.get_step_failure_events()
    }
    assert failures["crm_leads"] == expected
    assert set(failures.values()) == {expected}  # the CRM steps after it stop before calling
    assert served == through_leads - 1  # no request past the reserve

    # Pages were staged before the stop...
    read_logs = [
        entry.user_message
        for entry in instance.all_logs(stopped.run_id)
        if re.search(r"crm_leads: read [\d,]+ of", entry.user_message)
    ]
    assert read_logs
    # ...and dropped with the stage: the mirror is exactly as before, no table left behind.
    with engine.connect() as conn:
        assert conn.execute(mirror).all() == before
    assert set(inspect(engine).get_table_names()) == tables_before

    failed = sync_runs_rows(home, stopped.run_id)["crm_leads"]
    assert (failed.status, failed.error) == ("failed", expected)
    assert failed.api_calls == leads.api_calls - 1
    assert failed.api_usage == f"{through_leads - 1}/{allocation}"
