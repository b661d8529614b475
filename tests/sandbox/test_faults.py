"""Fault injection: the next N matching requests fail the way Salesforce can fail."""

from __future__ import annotations

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

from acton_pipelines.sandbox import SandboxServer, SeedSummary
from tests.sandbox.conftest import client_for, copy_db


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
