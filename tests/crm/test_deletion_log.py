"""Whether the CRM's deletion log still reaches the last sync, asked of a real sandbox.

The sandbox answers getDeleted for a start older than its log the way Salesforce documents
(400 INVALID_REPLICATION_DATE) or, as some orgs do, with 200 and a late earliestDateAvailable;
``deletion_log_gap`` must turn both into a reason to read the object in full.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest
from sqlalchemy import Engine

from acton_pipelines.crm.client import CrmClient, RetryPolicy
from acton_pipelines.crm.deletion_log import deletion_log_gap
from acton_pipelines.crm.objects import LEAD
from acton_pipelines.crm.sandbox_connection import sandbox_login
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.sync_runs import SyncRun
from crm_sandbox import SandboxServer, SeedSummary, churn_sandbox
from crm_sandbox.replication import INVALID_REPLICATION_DATE, LATE_EARLIEST_DATE

# Days after the small CRM's seed, so that its own deletions are all weeks old.
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LAST_SYNC = NOW - timedelta(days=5)  # well inside the 15 days the log keeps
FAST = RetryPolicy(give_up_after_seconds=5, initial_wait_seconds=0.001, max_wait_seconds=0.005)


@pytest.fixture(params=[INVALID_REPLICATION_DATE, LATE_EARLIEST_DATE])
def server(
    request: pytest.FixtureRequest, small_crm: SeedSummary, tmp_path: Path
) -> Iterator[SandboxServer]:
    """A private sandbox at ``NOW``, answering a too-old start either way."""
    db_path = tmp_path / "crm.sqlite"
    shutil.copyfile(small_crm.db_path, db_path)
    with SandboxServer(
        db_path, tmp_path / "certs", clock=lambda: NOW, deleted_before_log=request.param
    ) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> CrmClient:
    def login() -> Salesforce:
        return sandbox_login(server.instance_url, Path(server.ca_cert_path), "59.0")

    return CrmClient(sf=login(), relogin=login, retry_policy=FAST)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """A warehouse whose Leads were last synced successfully at ``LAST_SYNC``."""
    warehouse = WarehouseResource(url=f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    with warehouse.engine.begin() as conn:
        SyncRun(
            run_id=str(uuid.uuid4()), object=LEAD.table, mode="incremental", started_at=LAST_SYNC
        ).record(conn, status="success")
    return warehouse.engine


def purge_deletions_after_the_last_sync(server: SandboxServer) -> None:
    """Leads deleted two days after the last sync, then purged by a one-day Recycle Bin: the
    log now starts after the last sync."""
    deleted = churn_sandbox(
        server.db_path, updates=0, creates=0, converts=0, deletes=5, now=LAST_SYNC + timedelta(2)
    )
    assert deleted.deleted.get("Lead")
    purge = churn_sandbox(
        server.db_path, updates=0, creates=0, converts=0, deletes=0, now=NOW, retention_days=1
    )
    assert set(deleted.deleted["Lead"]) <= set(purge.purged["Lead"])


def test_a_log_reaching_the_last_sync_is_no_gap(client: CrmClient, engine: Engine) -> None:
    assert deletion_log_gap(client, engine, LEAD, NOW) is None
    assert client.api_calls == 1


def test_a_purged_log_is_a_gap_whichever_way_the_crm_answers(
    server: SandboxServer, client: CrmClient, engine: Engine
) -> None:
    purge_deletions_after_the_last_sync(server)

    reason = deletion_log_gap(client, engine, LEAD, NOW)

    if server.state.deleted_before_log == INVALID_REPLICATION_DATE:
        assert reason == (
            "the CRM's deletion log for Lead no longer reaches the last successful sync "
            "(2026-11-21 12:00 UTC): INVALID_REPLICATION_DATE"
        )
    else:
        assert reason == (
            "the CRM's deletion log for Lead starts at 2026-11-23 12:01 UTC, after the last "
            "successful sync (2026-11-21 12:00 UTC)"
        )
    assert client.api_calls == 1  # a refused date is not retried


def test_other_bad_requests_still_raise(
    server: SandboxServer, client: CrmClient, engine: Engine
) -> None:
    server.inject_fault(
        path_contains="/sobjects/Lead/deleted", status=400, error_code="MALFORMED_QUERY"
    )

    with pytest.raises(SalesforceMalformedRequest) as caught:
        deletion_log_gap(client, engine, LEAD, NOW)
    assert caught.value.content[0]["errorCode"] == "MALFORMED_QUERY"


def test_a_last_sync_older_than_the_log_needs_no_call(client: CrmClient, tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=f"sqlite:///{tmp_path / 'old.sqlite'}")
    with warehouse.engine.begin() as conn:
        SyncRun(
            run_id="old", object=LEAD.table, mode="full", started_at=NOW - timedelta(days=16)
        ).record(conn, status="success")

    reason = deletion_log_gap(client, warehouse.engine, LEAD, NOW)

    assert reason is not None and "older than the CRM's deletion log" in reason
    assert client.api_calls == 0
