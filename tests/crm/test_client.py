"""The CRM client against the sandbox over HTTPS: paging, retries, re-login, clear failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceRefusedRequest

from acton_pipelines.crm.client import CrmClient, CrmUnavailable, RetryPolicy
from acton_pipelines.crm.sandbox_connection import sandbox_login
from acton_pipelines.sandbox import SandboxServer, SeedSummary

FAST = RetryPolicy(attempts=3, initial_wait_seconds=0.01, max_wait_seconds=0.02)


@pytest.fixture(scope="module")
def server(
    small_crm: SeedSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    with SandboxServer(small_crm.db_path, tmp_path_factory.mktemp("certs")) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> Iterator[CrmClient]:
    def login():  # type: ignore[no-untyped-def]
        return sandbox_login(server.instance_url, Path(server.ca_cert_path), "59.0")

    yield CrmClient(sf=login(), relogin=login, retry_policy=FAST)
    server.clear_faults()


def lead_ids(client: CrmClient) -> list[str]:
    pages = client.query_pages("SELECT Id FROM Lead")
    return [record["Id"] for page in pages for record in page.records]


def test_pages_arrive_one_by_one_and_cover_the_query(
    client: CrmClient, small_crm: SeedSummary
) -> None:
    pages = list(client.query_pages("SELECT Id FROM Lead"))
    ids = [r["Id"] for page in pages for r in page.records]
    live_leads = small_crm.counts["Lead"] - small_crm.soft_deleted.get("Lead", 0)
    assert len(ids) == len(set(ids)) == pages[0].total_size == live_leads
    assert client.api_calls == len(pages)


def test_server_errors_are_retried(client: CrmClient, server: SandboxServer) -> None:
    expected = lead_ids(client)
    server.inject_fault(
        path_contains="/query", status=503, error_code="SERVER_UNAVAILABLE", times=2
    )
    assert lead_ids(client) == expected
    assert server.pending_faults == 0


def test_the_request_limit_is_retried_a_bounded_number_of_times(
    client: CrmClient, server: SandboxServer
) -> None:
    server.inject_fault(
        path_contains="/query", status=403, error_code="REQUEST_LIMIT_EXCEEDED", times=10
    )
    with pytest.raises(SalesforceRefusedRequest):
        lead_ids(client)
    assert server.pending_faults == 10 - FAST.attempts


def test_an_expired_session_logs_in_again(client: CrmClient, server: SandboxServer) -> None:
    expected = lead_ids(client)
    server.revoke_sessions()
    assert lead_ids(client) == expected


def test_a_malformed_query_is_not_retried(client: CrmClient) -> None:
    with pytest.raises(SalesforceMalformedRequest):
        list(client.query_pages("SELECT FROM Lead"))
    assert client.api_calls == 1


def test_describe_is_fetched_once_per_client(client: CrmClient) -> None:
    first = client.describe("Lead")
    assert client.describe("Lead") is first
    assert client.api_calls == 1
    assert {"Email", "ActOn_Score__c"} <= {f["name"] for f in first["fields"]}


def test_an_unreachable_sandbox_is_a_clear_error(server: SandboxServer) -> None:
    with pytest.raises(CrmUnavailable, match="cannot reach the sandbox CRM"):
        sandbox_login("https://127.0.0.1:9", Path(server.ca_cert_path), "59.0")
