"""Login, session checks and API usage accounting, over real HTTPS."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest

from crm_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    SandboxServer,
    SeedSummary,
)
from tests.crm_sandbox.conftest import client_for, copy_db


def _token(server: SandboxServer, **form: str) -> requests.Response:
    return server.session().post(server.token_url, data=form, timeout=10)


def test_password_grant_returns_a_salesforce_token_response(server: SandboxServer) -> None:
    response = _token(
        server, grant_type="password", username=SANDBOX_USERNAME, password=SANDBOX_PASSWORD
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at"}
    assert body["instance_url"] == server.instance_url
    assert body["token_type"] == "Bearer"
    assert body["signature"]


def test_password_grant_with_connected_app_credentials(server: SandboxServer) -> None:
    response = _token(
        server,
        grant_type="password",
        username=SANDBOX_USERNAME,
        password=SANDBOX_PASSWORD,
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
    )

    assert response.status_code == 200


def test_client_credentials_grant(server: SandboxServer) -> None:
    response = _token(
        server,
        grant_type="client_credentials",
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
    )

    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize(
    "form",
    [
        {"grant_type": "password", "username": SANDBOX_USERNAME, "password": "wrong"},
        {"grant_type": "password", "username": "someone@else.example", "password": "x"},
        {
            "grant_type": "client_credentials",
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": "wrong",
        },
        {"grant_type": "authorization_code", "code": "abc"},
        {},
    ],
)
def test_bad_credentials_are_an_invalid_grant(server: SandboxServer, form: dict[str, str]) -> None:
    response = _token(server, **form)

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "authentication failure",
    }


def test_requests_without_a_token_are_refused(server: SandboxServer) -> None:
    response = server.session().get(f"{server.instance_url}/services/data/v59.0/sobjects")

    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
    ]
    assert response.headers["Sforce-Limit-Info"].startswith("api-usage=")


def test_a_bad_token_raises_expired_session(server: SandboxServer) -> None:
    sf = Salesforce(
        instance_url=server.instance_url, session_id="00Dforged!token", session=server.session()
    )

    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Lead LIMIT 1")


def test_a_token_of_another_server_is_refused(
    server: SandboxServer, seeded: SeedSummary, cert_dir: Path, tmp_path: Path
) -> None:
    with SandboxServer(copy_db(seeded, tmp_path), cert_dir) as other:
        foreign = client_for(other)
        sf = Salesforce(
            instance_url=server.instance_url,
            session_id=foreign.session_id,
            session=server.session(),
        )
        with pytest.raises(SalesforceExpiredSession):
            sf.describe()


def test_revoked_sessions_are_refused(seeded: SeedSummary, cert_dir: Path, tmp_path: Path) -> None:
    with SandboxServer(copy_db(seeded, tmp_path), cert_dir) as running:
        sf = client_for(running)
        sf.describe()
        running.revoke_sessions()
        with pytest.raises(SalesforceExpiredSession):
            sf.describe()


def test_plain_requests_session_with_verify_works_without_ca_bundle_overrides(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override Session.verify; without them the
    # documented construction (a plain Session with verify = the CA file) works as is.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    http = requests.Session()
    http.verify = str(server.ca_cert_path)
    token = http.post(
        server.token_url,
        data={"grant_type": "password", "username": SANDBOX_USERNAME, "password": SANDBOX_PASSWORD},
        timeout=10,
    ).json()["access_token"]
    sf = Salesforce(instance_url=server.instance_url, session_id=token, session=http)

    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 20


def test_every_api_request_is_counted_and_reported(sf: Salesforce, server: SandboxServer) -> None:
    before = server.api_usage
    sf.query("SELECT Id FROM User LIMIT 1")
    lead = sf.Lead  # each attribute access builds a new SFType, which keeps its own usage
    lead.describe()

    assert server.api_usage == before + 2
    assert sf.api_usage["api-usage"].used == before + 1  # the query's response
    assert lead.api_usage["api-usage"].used == before + 2
    assert sf.api_usage["api-usage"].total == 100_000


def test_limits_resource_reports_daily_api_requests(sf: Salesforce, server: SandboxServer) -> None:
    limits = sf.limits()

    assert limits["DailyApiRequests"]["Max"] == 100_000
    assert limits["DailyApiRequests"]["Remaining"] == 100_000 - server.api_usage


def test_exhausted_allocation_answers_request_limit_exceeded(
    seeded: SeedSummary, cert_dir: Path, tmp_path: Path
) -> None:
    with SandboxServer(copy_db(seeded, tmp_path), cert_dir, api_limit=3) as running:
        sf = client_for(running)  # logging in is not an API request
        sf.describe()
        sf.describe()
        sf.describe()
        with pytest.raises(SalesforceRefusedRequest) as refused:
            sf.describe()
        assert refused.value.content[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert running.api_usage == 3

        running.reset_api_usage()
        assert sf.describe() is not None
