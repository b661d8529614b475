"""Fault injection: matching requests fail the way Salesforce (or the network) can fail, for the
next N of them or a seeded share, with an error answer or a connection dropped mid-body."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from crm_sandbox import SandboxServer, SeedSummary, login
from tests.crm_sandbox.conftest import client_for, copy_db


@pytest.fixture(scope="module")
def fault_server(
    seeded: SeedSummary, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxServer]:
    with SandboxServer(copy_db(seeded, tmp_path_factory.mktemp("faults")), cert_dir) as running:
        yield running


@pytest.fixture
def fsf(fault_server: SandboxServer) -> Iterator[Salesforce]:
    yield client_for(fault_server)
    fault_server.clear_faults()


def test_503_twice_then_success(fault_server: SandboxServer, fsf: Salesforce) -> None:
    fault_server.inject_fault(
        path_contains="/query", status=503, error_code="SERVER_UNAVAILABLE", times=2
    )

    for _ in range(2):
        with pytest.raises(SalesforceGeneralError) as error:
            fsf.query("SELECT Id FROM User")
        assert error.value.status == 503
        assert error.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert fsf.query("SELECT COUNT() FROM User")["totalSize"] == 20
    assert fault_server.pending_faults == 0


def test_faults_only_hit_matching_paths(fault_server: SandboxServer, fsf: Salesforce) -> None:
    fault_server.inject_fault(path_contains="/sobjects/Lead", status=500, error_code="UNKNOWN")

    assert fsf.query("SELECT COUNT() FROM Lead")["totalSize"] > 0
    assert fsf.Contact.describe()["name"] == "Contact"
    with pytest.raises(SalesforceGeneralError):
        fsf.Lead.describe()
    assert fsf.Lead.describe()["name"] == "Lead"


def test_fault_restricted_to_a_method(fault_server: SandboxServer, fsf: Salesforce) -> None:
    fault_server.inject_fault(
        path_contains="/sobjects/Contact",
        status=400,
        error_code="UNABLE_TO_LOCK_ROW",
        method="PATCH",
    )
    contact_id = fsf.query("SELECT Id FROM Contact WHERE IsDeleted = false LIMIT 1")["records"][0][
        "Id"
    ]

    assert fsf.Contact.get(contact_id)["Id"] == contact_id
    with pytest.raises(SalesforceMalformedRequest) as error:
        fsf.Contact.update(contact_id, {"Title": "CTO"})
    assert error.value.content[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"


def test_401_once_then_the_session_works_again(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    fault_server.inject_fault(path_contains="/query", status=401, error_code="INVALID_SESSION_ID")

    with pytest.raises(SalesforceExpiredSession) as error:
        fsf.query("SELECT Id FROM User LIMIT 1")
    assert error.value.content[0]["message"] == "Session expired or invalid"
    assert fsf.query("SELECT Id FROM User LIMIT 1")["totalSize"] == 1


def test_request_limit_exceeded_fault(fault_server: SandboxServer, fsf: Salesforce) -> None:
    fault_server.inject_fault(
        path_contains="/services/data", status=403, error_code="REQUEST_LIMIT_EXCEEDED"
    )
    usage = fault_server.api_usage

    with pytest.raises(SalesforceRefusedRequest) as error:
        fsf.describe()

    assert error.value.content[0] == {
        "message": "TotalRequests Limit exceeded.",
        "errorCode": "REQUEST_LIMIT_EXCEEDED",
        "fields": [],
    }
    assert fault_server.api_usage == usage  # a refused request is not counted


def test_faults_apply_in_the_middle_of_paging(fault_server: SandboxServer, fsf: Salesforce) -> None:
    first = fsf.query("SELECT Id FROM Lead")
    fault_server.inject_fault(
        path_contains="/query/01g", status=503, error_code="SERVER_UNAVAILABLE"
    )

    with pytest.raises(SalesforceGeneralError):
        fsf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    retry = fsf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(retry["records"]) == 2000


def test_login_can_fail_too(fault_server: SandboxServer) -> None:
    fault_server.inject_fault(
        path_contains="/oauth2/token", status=503, error_code="SERVER_UNAVAILABLE"
    )

    with pytest.raises(requests.HTTPError):
        client_for(fault_server)
    assert client_for(fault_server).query("SELECT COUNT() FROM User")["totalSize"] == 20


def test_clear_faults(fault_server: SandboxServer, fsf: Salesforce) -> None:
    fault_server.inject_fault(path_contains="/", status=500, error_code="UNKNOWN", times=5)
    fault_server.clear_faults()

    assert fault_server.pending_faults == 0
    assert fsf.describe() is not None


@pytest.mark.parametrize(("status", "times"), [(200, 1), (503, 0)])
def test_fault_arguments_are_checked(fault_server: SandboxServer, status: int, times: int) -> None:
    with pytest.raises(ValueError):
        fault_server.inject_fault(path_contains="/", status=status, error_code="X", times=times)


# --- probabilistic faults ------------------------------------------------------------------


def _failure_pattern(server: SandboxServer, sf: Salesforce, requests_sent: int) -> list[bool]:
    pattern = []
    for _ in range(requests_sent):
        try:
            sf.query("SELECT COUNT() FROM User")
            pattern.append(False)
        except SalesforceGeneralError:
            pattern.append(True)
    return pattern


def test_a_share_of_requests_fails_the_same_way_for_the_same_seed(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    patterns = []
    for _ in range(2):
        fault_server.inject_fault(
            path_contains="/query",
            status=503,
            error_code="SERVER_UNAVAILABLE",
            probability=0.5,
            seed=3,
        )
        patterns.append(_failure_pattern(fault_server, fsf, 20))
        fault_server.clear_faults()

    assert patterns[0] == patterns[1]
    assert 0 < sum(patterns[0]) < 20
    # random.Random(3)'s first draws: 0.24, 0.54, 0.37, 0.60 -> fail, pass, fail, pass.
    assert patterns[0][:4] == [True, False, True, False]


def test_a_probabilistic_fault_stays_armed_until_cleared_or_used_up(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    fault_server.inject_fault(
        path_contains="/query", status=500, error_code="UNKNOWN", probability=1.0
    )
    assert fault_server.pending_faults == 0  # no limit to count
    assert all(_failure_pattern(fault_server, fsf, 5))
    fault_server.clear_faults()

    fault_server.inject_fault(
        path_contains="/query", status=500, error_code="UNKNOWN", probability=1.0, times=2
    )
    assert fault_server.pending_faults == 2
    assert _failure_pattern(fault_server, fsf, 3) == [True, True, False]


@pytest.mark.parametrize("probability", [0.0, -0.1, 1.5])
def test_probability_must_be_a_share(fault_server: SandboxServer, probability: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        fault_server.drop_connections(path_contains="/", probability=probability)


# --- connections dropped mid-body ------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_a_dropped_connection_is_a_chunked_encoding_error(
    fault_server: SandboxServer, fsf: Salesforce, chunked: bool
) -> None:
    dropped, usage = fault_server.connections_dropped, fault_server.api_usage
    fault_server.drop_connections(path_contains="/query", chunked=chunked)

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fsf.query("SELECT Id, Email FROM Lead")

    assert fault_server.connections_dropped == dropped + 1
    assert fault_server.api_usage == usage + 1  # the CRM did the work; the answer got lost
    assert fault_server.pending_faults == 0
    assert fsf.query("SELECT COUNT() FROM User")["totalSize"] == 20


def test_the_headers_promise_more_body_than_arrives(fault_server: SandboxServer) -> None:
    http = fault_server.session()
    instance_url, token = login(fault_server, http)
    fault_server.drop_connections(path_contains="/limits")

    response = http.get(
        f"{instance_url}/services/data/v59.0/limits/",
        headers={"Authorization": f"Bearer {token}"},
        stream=True,
        timeout=10,
    )
    assert response.status_code == 200
    promised = int(response.headers["Content-Length"])
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(64):
            received += chunk
    assert 0 < len(received) < promised


def test_drops_hit_only_the_next_n_matching_requests(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    fault_server.drop_connections(path_contains="/query", times=2, method="GET")

    assert fsf.Lead.describe()["name"] == "Lead"  # not a matching path
    for _ in range(2):
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            fsf.query("SELECT Id FROM User")
    assert fsf.query("SELECT COUNT() FROM User")["totalSize"] == 20


def test_a_share_of_responses_is_cut_the_same_way_for_the_same_seed(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    def cut_pattern() -> list[bool]:
        fault_server.drop_connections(path_contains="/query", probability=0.4, seed=7)
        pattern = []
        for _ in range(12):
            try:
                fsf.query("SELECT Id FROM User")
                pattern.append(False)
            except requests.exceptions.ChunkedEncodingError:
                pattern.append(True)
        fault_server.clear_faults()
        return pattern

    first, second = cut_pattern(), cut_pattern()

    assert first == second
    # random.Random(7)'s first draws: 0.32, 0.15, 0.65, 0.07, 0.54 against 0.4.
    assert first[:5] == [True, True, False, True, False]


def test_a_response_without_a_body_cannot_be_cut(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    contact_id = fsf.query("SELECT Id FROM Contact WHERE IsDeleted = false LIMIT 1")["records"][0][
        "Id"
    ]
    dropped = fault_server.connections_dropped
    fault_server.drop_connections(path_contains="/sobjects/Contact", method="PATCH")

    assert fsf.Contact.update(contact_id, {"Title": "CTO"}) == 204
    assert fault_server.connections_dropped == dropped


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_deliberate_cut_is_not_logged_as_a_server_error(
    fault_server: SandboxServer, fsf: Salesforce
) -> None:
    records = _Records()
    error_log = logging.getLogger("uvicorn.error")
    error_log.addHandler(records)
    try:
        fault_server.drop_connections(path_contains="/query")
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            fsf.query("SELECT Id FROM User")
        fsf.query("SELECT COUNT() FROM User")  # the cut request's log has been written by now
    finally:
        error_log.removeHandler(records)

    assert not [m for m in records.messages if "without completing response" in m]
