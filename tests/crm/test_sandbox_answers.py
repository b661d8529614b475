"""The pipeline's CRM client against each strict answer of the sandbox, over HTTPS.

A 4xx answer would be the same on every attempt, so the client sends the request once and raises
the library's error, whose body names the Salesforce ``errorCode``: an unknown API version or
route (404 NOT_FOUND), a released query cursor (400 INVALID_QUERY_LOCATOR), a query nested too
deeply (400 MALFORMED_QUERY). A real internal error (500 UNKNOWN_EXCEPTION) is retried like any
5xx. Injected 500 and 503 answers are covered in test_client.py (test_server_errors_are_retried
and the give-up tests). Requests are counted with the server's own API usage counter, which counts
every authorised request it answers.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceError,
    SalesforceMalformedRequest,
    SalesforceResourceNotFound,
)

from acton_pipelines.crm.client import (
    CrmClient,
    CrmRetriesExhausted,
    RetryPolicy,
    describe_error,
)
from acton_pipelines.crm.resource import DEFAULT_API_VERSION
from acton_pipelines.crm.sandbox_connection import sandbox_login
from crm_sandbox import SandboxServer, SeedSummary
from tests.crm.test_client import FAST, FIXED_NOW, sandbox_client

# Millisecond waits and a cap, so an answer that is retried shows as exactly three requests.
THREE_ATTEMPTS = RetryPolicy(
    give_up_after_seconds=60, initial_wait_seconds=0.001, max_wait_seconds=0.005, max_attempts=3
)
MAX_OPEN_CURSORS = 10  # Salesforce's documented limit per user


def _private_server(small_crm: SeedSummary, folder: Path) -> SandboxServer:
    """A server over a private copy of ``small_crm`` (its cursors and counters are its own)."""
    db_path = folder / "crm.sqlite"
    shutil.copyfile(small_crm.db_path, db_path)
    return SandboxServer(db_path, folder / "certs")


@pytest.fixture(scope="module")
def server(
    small_crm: SeedSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    with _private_server(small_crm, tmp_path_factory.mktemp("answers_crm")) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> CrmClient:
    return sandbox_client(server)


def _client_for_version(server: SandboxServer, version: str) -> CrmClient:
    def login() -> Salesforce:
        return sandbox_login(server.instance_url, Path(server.ca_cert_path), version)

    return CrmClient(sf=login(), relogin=login, retry_policy=FAST, clock=lambda: FIXED_NOW)


def _sent_once(server: SandboxServer, client: CrmClient, usage_before: int) -> None:
    assert server.api_usage - usage_before == 1
    assert client.api_calls == 1 and client.retries == 0


def _clear(error: SalesforceError, client: CrmClient) -> str:
    """The one line a failure reports, checked to carry no session id."""
    assert client.sf.session_id not in str(error)
    return describe_error(error)


def test_the_pipelines_api_version_is_one_the_sandbox_serves(server: SandboxServer) -> None:
    client = _client_for_version(server, DEFAULT_API_VERSION)

    assert next(client.query_pages("SELECT Id FROM Lead")).total_size > 0


def test_an_unknown_api_version_is_not_retried(server: SandboxServer) -> None:
    client = _client_for_version(server, "99.0")
    before = server.api_usage

    with pytest.raises(SalesforceResourceNotFound) as refused:
        next(client.query_pages("SELECT Id FROM Lead"))

    _sent_once(server, client, before)
    assert _clear(refused.value, client) == "NOT_FOUND: The requested resource does not exist"


def test_an_unknown_route_is_not_retried(server: SandboxServer, client: CrmClient) -> None:
    before = server.api_usage

    with pytest.raises(SalesforceResourceNotFound) as refused:
        client.call(lambda sf: sf.restful("nothing/here"))

    _sent_once(server, client, before)
    assert _clear(refused.value, client) == "NOT_FOUND: The requested resource does not exist"


def test_a_released_query_cursor_is_not_retried(server: SandboxServer, client: CrmClient) -> None:
    oldest = client.query_pages("SELECT Id FROM Lead", batch_size=200)
    assert next(oldest).records
    # Ten more paged queries left open: the eleventh cursor releases the oldest.
    newer = [
        client.query_pages("SELECT Id FROM Lead", batch_size=200) for _ in range(MAX_OPEN_CURSORS)
    ]
    for pages in newer:
        next(pages)
    calls_before, usage_before = client.api_calls, server.api_usage

    with pytest.raises(SalesforceMalformedRequest) as refused:
        next(oldest)

    assert server.api_usage - usage_before == 1
    assert client.api_calls - calls_before == 1 and client.retries == 0
    assert _clear(refused.value, client) == "INVALID_QUERY_LOCATOR: invalid query locator"
    # The ten newer ones are still open and page on.
    assert all(next(pages).records for pages in newer)


def test_a_query_nested_too_deeply_is_not_retried(server: SandboxServer, client: CrmClient) -> None:
    before = server.api_usage

    with pytest.raises(SalesforceMalformedRequest) as refused:
        next(client.query_pages("SELECT Id FROM Lead WHERE " + "NOT " * 50 + "Email = 'a'"))

    _sent_once(server, client, before)
    assert _clear(refused.value, client).startswith("MALFORMED_QUERY: The WHERE clause is nested")


def test_an_internal_error_is_retried_then_reported_in_one_line(
    small_crm: SeedSummary, tmp_path: Path
) -> None:
    broken = _private_server(small_crm, tmp_path)
    # A table gone from under the server: the query fails inside it, a genuine 500.
    with sqlite3.connect(broken.db_path) as conn:
        conn.execute('DROP TABLE "Lead"')
    conn.close()
    with broken:
        client = sandbox_client(broken, THREE_ATTEMPTS)
        before = broken.api_usage

        with pytest.raises(CrmRetriesExhausted) as gave_up:
            next(client.query_pages("SELECT Id FROM Lead"))

        assert broken.api_usage - before == 3
    assert (gave_up.value.attempts, client.retries) == (3, 2)
    assert gave_up.value.cause == "HTTP 500 UNKNOWN_EXCEPTION"
