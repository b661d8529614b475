"""The CRM client against the sandbox over HTTPS: paging, retries that fit the error, re-login,
one-line failures.

Retry policies here wait milliseconds; no test asserts on how long anything took.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from acton_pipelines.crm.client import (
    ApiReserve,
    CrmClient,
    CrmRequestLimitExceeded,
    CrmRetriesExhausted,
    CrmUnavailable,
    RetryPolicy,
    is_transient,
)
from acton_pipelines.crm.sandbox_connection import sandbox_login
from crm_sandbox import SandboxServer, SeedSummary

# Generous total, millisecond waits: only a fault that never ends exhausts it.
FAST = RetryPolicy(give_up_after_seconds=60, initial_wait_seconds=0.001, max_wait_seconds=0.005)
# Gives up after a second of failures (how many attempts fit in it is up to the machine).
SHORT = RetryPolicy(give_up_after_seconds=1, initial_wait_seconds=0.001, max_wait_seconds=0.02)
FIXED_NOW = datetime(2026, 11, 20, 9, 41, 30, tzinfo=UTC)
GIVE_UP_LINE = re.compile(r"^CRM unavailable since (\d\d:\d\d) UTC after (\d+) attempts: (.+)$")
ENDLESS = 10_000


@pytest.fixture(scope="module")
def server(
    small_crm: SeedSummary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    # A copy: the server counts API usage in its file, and homes are copied from small_crm.
    folder = tmp_path_factory.mktemp("client_crm")
    db_path = folder / "crm.sqlite"
    shutil.copyfile(small_crm.db_path, db_path)
    with SandboxServer(db_path, folder / "certs") as running:
        yield running


def sandbox_client(server: SandboxServer, policy: RetryPolicy = FAST) -> CrmClient:
    """A client of ``server`` built the way the pipeline builds one, with a fixed clock."""

    def login() -> Salesforce:
        return sandbox_login(server.instance_url, Path(server.ca_cert_path), "59.0")

    return CrmClient(sf=login(), relogin=login, retry_policy=policy, clock=lambda: FIXED_NOW)


@pytest.fixture
def client(server: SandboxServer) -> Iterator[CrmClient]:
    yield sandbox_client(server)
    server.clear_faults()


def lead_ids(client: CrmClient, batch_size: int | None = None) -> list[str]:
    pages = client.query_pages("SELECT Id FROM Lead", batch_size=batch_size)
    return [record["Id"] for page in pages for record in page.records]


def test_pages_arrive_one_by_one_and_cover_the_query(
    client: CrmClient, small_crm: SeedSummary
) -> None:
    pages = list(client.query_pages("SELECT Id FROM Lead"))
    ids = [r["Id"] for page in pages for r in page.records]
    live_leads = small_crm.counts["Lead"] - small_crm.soft_deleted.get("Lead", 0)
    assert len(ids) == len(set(ids)) == pages[0].total_size == live_leads
    assert client.api_calls == len(pages)


def test_a_batch_size_asks_for_smaller_pages(client: CrmClient) -> None:
    pages = list(client.query_pages("SELECT Id FROM Lead", batch_size=200))

    assert len(pages) > 1
    assert {len(page.records) for page in pages[:-1]} == {200}
    assert sum(len(page.records) for page in pages) == pages[0].total_size


# --- transient failures: retried ------------------------------------------------------------


def test_server_errors_are_retried(client: CrmClient, server: SandboxServer) -> None:
    expected = lead_ids(client)
    server.inject_fault(
        path_contains="/query", status=503, error_code="SERVER_UNAVAILABLE", times=2
    )
    assert lead_ids(client) == expected
    assert server.pending_faults == 0
    assert client.retries == 2


def test_pages_dropped_mid_body_are_fetched_again(client: CrmClient, server: SandboxServer) -> None:
    expected = lead_ids(client, batch_size=200)
    dropped_before, calls_before = server.connections_dropped, client.api_calls

    server.drop_connections(path_contains="/query", probability=0.4, seed=7)
    got = lead_ids(client, batch_size=200)

    assert got == expected and len(got) > 400  # every record of every page, in order
    dropped = server.connections_dropped - dropped_before
    assert dropped > 0
    assert client.retries == dropped  # each cut page was asked for once more
    pages = -(-len(expected) // 200)
    assert client.api_calls - calls_before == pages + dropped


def test_a_chunked_body_cut_short_is_retried(client: CrmClient, server: SandboxServer) -> None:
    expected = lead_ids(client)
    server.drop_connections(path_contains="/query", times=2, chunked=True)

    assert lead_ids(client) == expected
    assert client.retries == 2


def test_server_errors_for_less_than_the_give_up_time_end_in_success(
    server: SandboxServer,
) -> None:
    client = sandbox_client(server, FAST)
    server.inject_fault(path_contains="/query", status=500, error_code="UNKNOWN_EXCEPTION", times=3)
    try:
        assert lead_ids(client)
    finally:
        server.clear_faults()
    assert client.retries == 3


# --- transient failures that outlast the policy: one line --------------------------------


def test_server_errors_past_the_give_up_time_end_in_one_line(server: SandboxServer) -> None:
    client = sandbox_client(server, SHORT)
    served_before = server.faults_served
    server.inject_fault(
        path_contains="/query", status=503, error_code="SERVER_UNAVAILABLE", times=ENDLESS
    )
    try:
        with pytest.raises(CrmRetriesExhausted) as caught:
            lead_ids(client)
    finally:
        server.clear_faults()

    message = str(caught.value)
    match = GIVE_UP_LINE.match(message)
    assert match, message
    attempts = server.faults_served - served_before
    assert attempts > 1
    assert match.groups() == ("09:41", str(attempts), "HTTP 503 SERVER_UNAVAILABLE")
    assert caught.value.attempts == client.api_calls == attempts
    assert isinstance(caught.value, CrmUnavailable)
    assert "\n" not in message and client.sf.session_id not in message
    assert "/services/" not in message and "SELECT" not in message
    assert caught.value.__cause__ is None  # the library's error (full URL) is not chained


def test_an_attempt_cap_bounds_the_attempts(server: SandboxServer) -> None:
    policy = RetryPolicy(
        give_up_after_seconds=60, initial_wait_seconds=0.001, max_wait_seconds=0.001, max_attempts=3
    )
    client = sandbox_client(server, policy)
    server.drop_connections(path_contains="/query", times=ENDLESS)
    try:
        with pytest.raises(CrmRetriesExhausted) as caught:
            lead_ids(client)
    finally:
        server.clear_faults()

    assert str(caught.value) == (
        "CRM unavailable since 09:41 UTC after 3 attempts: connection dropped mid-response "
        f"(ChunkedEncodingError) at {client.sf.sf_instance}"
    )


def test_an_unreachable_crm_is_retried_then_one_line(server: SandboxServer) -> None:
    http = server.session()
    sf = Salesforce(instance_url="https://127.0.0.1:9", session_id="not-a-real-token", session=http)
    policy = RetryPolicy(give_up_after_seconds=60, initial_wait_seconds=0.001, max_attempts=2)
    client = CrmClient(sf=sf, retry_policy=policy, clock=lambda: FIXED_NOW)

    with pytest.raises(CrmUnavailable) as caught:
        lead_ids(client)

    assert str(caught.value) == (
        "CRM unavailable since 09:41 UTC after 2 attempts: cannot connect (ConnectionError) "
        "at 127.0.0.1:9"
    )


def test_a_lost_answer_to_a_call_that_must_not_repeat_is_not_retried(
    client: CrmClient, server: SandboxServer
) -> None:
    server.drop_connections(path_contains="/query", times=2)

    with pytest.raises(CrmUnavailable, match="not repeated because it may have been applied"):
        client.call(lambda sf: sf.query("SELECT Id FROM Lead"), idempotent=False)
    assert client.api_calls == 1 and client.retries == 0
    assert server.pending_faults == 1


# --- errors that are not retried ------------------------------------------------------------


def test_the_request_limit_is_not_retried(client: CrmClient, server: SandboxServer) -> None:
    lead_ids(client)  # a successful call reports the usage
    usage = f"{server.api_usage}/{server.api_limit}"
    calls = client.api_calls
    server.inject_fault(
        path_contains="/query", status=403, error_code="REQUEST_LIMIT_EXCEEDED", times=10
    )

    with pytest.raises(CrmRequestLimitExceeded) as caught:
        lead_ids(client)

    assert server.pending_faults == 9  # one attempt, no retry
    assert client.api_calls == calls + 1 and client.retries == 0
    assert str(caught.value) == (
        f"the CRM org's daily API request limit is exhausted (api-usage {usage}): "
        "REQUEST_LIMIT_EXCEEDED; syncs resume once the org's rolling 24-hour usage drops below "
        "the limit"
    )
    assert caught.value.api_usage == usage and isinstance(caught.value, CrmUnavailable)


def test_the_org_running_out_of_api_calls_stops_at_once(
    small_crm: SeedSummary, tmp_path: Path
) -> None:
    db_path = tmp_path / "crm.sqlite"
    shutil.copyfile(small_crm.db_path, db_path)
    with SandboxServer(db_path, tmp_path / "certs", api_limit=2) as server:
        server.reset_api_usage()
        client = sandbox_client(server)
        # No reserve (ACTON_API_RESERVE=0): the org's own limit is what stops the run here.
        client.api_reserve = ApiReserve.parse("0")
        lead_ids(client)
        lead_ids(client)  # the org's last call of the day

        with pytest.raises(CrmRequestLimitExceeded, match=r"\(api-usage 2/2\)"):
            lead_ids(client)
        assert server.api_usage == 2
        # The refusal was answered, so it is counted, though the org did not charge it.
        assert client.api_calls == 3 and client.retries == 0


def test_a_request_limit_on_the_first_call_quotes_the_usage_the_refusal_reported(
    client: CrmClient, server: SandboxServer
) -> None:
    server.inject_fault(path_contains="/query", status=403, error_code="REQUEST_LIMIT_EXCEEDED")

    with pytest.raises(CrmRequestLimitExceeded) as caught:
        lead_ids(client)
    # simple-salesforce drops the usage of an error answer; the client's meter reads it.
    assert caught.value.api_usage == f"{server.api_usage}/{server.api_limit}"
    assert client.api_calls == 1


def test_a_request_limit_with_no_known_usage_says_so_plainly() -> None:
    assert str(CrmRequestLimitExceeded(None)).startswith(
        "the CRM org's daily API request limit is exhausted: REQUEST_LIMIT_EXCEEDED;"
    )


def test_an_expired_session_logs_in_again(client: CrmClient, server: SandboxServer) -> None:
    expected = lead_ids(client)
    server.revoke_sessions()
    assert lead_ids(client) == expected


def test_a_malformed_query_is_not_retried(client: CrmClient) -> None:
    with pytest.raises(SalesforceMalformedRequest):
        list(client.query_pages("SELECT FROM Lead"))
    assert client.api_calls == 1 and client.retries == 0


def test_a_certificate_that_does_not_check_out_is_not_retried(server: SandboxServer) -> None:
    untrusting = requests.Session()
    untrusting.trust_env = False  # the system CAs only, which never signed the sandbox
    sf = Salesforce(
        instance_url=server.instance_url, session_id="not-a-real-token", session=untrusting
    )
    client = CrmClient(sf=sf, retry_policy=FAST)

    with pytest.raises(CrmUnavailable, match="failed the TLS certificate check"):
        lead_ids(client)
    assert client.api_calls == 0  # the handshake failed: no request reached the CRM


def test_describe_is_fetched_once_per_client(client: CrmClient) -> None:
    first = client.describe("Lead")
    assert client.describe("Lead") is first
    assert client.api_calls == 1
    assert {"Email", "ActOn_Score__c"} <= {f["name"] for f in first["fields"]}


def test_an_unreachable_sandbox_is_a_clear_error(server: SandboxServer) -> None:
    with pytest.raises(CrmUnavailable, match="cannot reach the sandbox CRM"):
        sandbox_login("https://127.0.0.1:9", Path(server.ca_cert_path), "59.0")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead"), True),
        (requests.exceptions.ContentDecodingError("bad gzip"), False),
        (requests.ConnectionError("refused"), True),
        (requests.ReadTimeout("slow"), True),
        (ValueError("not a transport error"), False),
    ],
)
def test_which_transport_errors_are_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


@pytest.mark.parametrize(
    "arguments",
    [
        {"give_up_after_seconds": -1},
        {"initial_wait_seconds": 0},
        {"max_wait_seconds": -5},
        {"max_attempts": 0},
    ],
)
def test_retry_policy_arguments_are_checked(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


def test_the_default_policy_spans_minutes() -> None:
    policy = RetryPolicy()
    assert policy.give_up_after_seconds >= 300 and policy.max_wait_seconds >= 60
