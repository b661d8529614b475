"""Login (OAuth token endpoint and SOAP login()), session checks and API usage accounting, over
real HTTPS."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import requests
from simple_salesforce import Salesforce, SalesforceLogin
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
    SalesforceRefusedRequest,
)

from crm_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_SECURITY_TOKEN,
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


# --- OAuth: the client's credentials in an Authorization: Basic header -------------------------


def _basic(client_id: str, client_secret: str) -> dict[str, str]:
    """The header simple-salesforce's client-credentials flow sends (RFC 6749 2.3.1)."""
    encoded = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def test_client_credentials_in_a_basic_header_open_a_rest_session(server: SandboxServer) -> None:
    http = server.session()
    response = http.post(
        server.token_url,
        data={"grant_type": "client_credentials"},
        headers=_basic(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
        timeout=10,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["instance_url"] == server.instance_url and body["token_type"] == "Bearer"
    sf = Salesforce(
        instance_url=body["instance_url"], session_id=body["access_token"], session=http
    )
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 20


@pytest.mark.parametrize(
    ("form", "headers", "error"),
    [
        pytest.param(
            {"client_id": SANDBOX_CLIENT_ID, "client_secret": "wrong"},
            {},
            ("invalid_client", "invalid client credentials"),
            id="bad-secret-in-form",
        ),
        pytest.param(
            {},
            _basic(SANDBOX_CLIENT_ID, "wrong"),
            ("invalid_client", "invalid client credentials"),
            id="bad-secret-in-header",
        ),
        pytest.param(
            {"client_id": SANDBOX_CLIENT_ID, "client_secret": "wrong"},
            _basic(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
            ("invalid_client", "invalid client credentials"),
            id="form-and-header-disagree",
        ),
        pytest.param(
            {},
            {"Authorization": "Basic not-base64!"},
            ("invalid_client", "invalid client credentials"),
            id="garbled-header",
        ),
        pytest.param(
            {},
            _basic("3MVG9someone.else", SANDBOX_CLIENT_SECRET),
            ("invalid_client_id", "client identifier invalid"),
            id="unknown-client",
        ),
    ],
)
def test_bad_client_credentials_are_an_invalid_client(
    server: SandboxServer,
    form: dict[str, str],
    headers: dict[str, str],
    error: tuple[str, str],
) -> None:
    response = server.session().post(
        server.token_url,
        data={"grant_type": "client_credentials", **form},
        headers=headers,
        timeout=10,
    )

    assert response.status_code == 400
    assert response.json() == {"error": error[0], "error_description": error[1]}


# --- SOAP login(): username, password followed by the security token ---------------------------

SOAPENV = "{http://schemas.xmlsoap.org/soap/envelope/}"
PARTNER = "{urn:partner.soap.sforce.com}"
FAULT = "{urn:fault.partner.soap.sforce.com}"
INVALID_LOGIN = "Invalid username, password, security token; or user locked out."


def _library_login(
    server: SandboxServer, username: str, password: str, security_token: str
) -> tuple[str, str]:
    """simple-salesforce's own SOAP login (its envelope, its parsing of the answer), addressed
    to ``server`` through ``scratch_url``, the library's way to name a login server."""
    return SalesforceLogin(
        username=username,
        password=password,
        security_token=security_token,
        scratch_url=server.instance_url,
        session=server.session(),
    )


def _post_login(server: SandboxServer, username: str, password: str) -> requests.Response:
    """A partner ``login`` envelope like the library's, for reading the answer's XML itself."""
    envelope = (
        '<?xml version="1.0" encoding="utf-8" ?>'
        '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">'
        '<env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com">'
        f"<n1:username>{escape(username)}</n1:username>"
        f"<n1:password>{escape(password)}</n1:password>"
        "</n1:login></env:Body></env:Envelope>"
    )
    return _post_soap(server, envelope)


def _post_soap(server: SandboxServer, body: str, path: str | None = None) -> requests.Response:
    return server.session().post(
        server.instance_url + path if path else server.soap_login_url(),
        data=body.encode(),
        headers={"Content-Type": "text/xml", "SOAPAction": "login"},
        timeout=10,
    )


def _fault(response: requests.Response) -> ET.Element:
    fault = ET.fromstring(response.content).find(f"{SOAPENV}Body/{SOAPENV}Fault")
    assert fault is not None, response.text
    return fault


def test_soap_login_opens_a_session_the_rest_api_accepts(server: SandboxServer) -> None:
    before = server.api_usage
    session_id, instance = _library_login(
        server, SANDBOX_USERNAME, SANDBOX_PASSWORD, SANDBOX_SECURITY_TOKEN
    )

    assert server.api_usage == before  # logging in is not an API request
    assert f"https://{instance}" == server.instance_url
    sf = Salesforce(instance=instance, session_id=session_id, session=server.session())
    assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 20


def test_soap_login_answers_a_partner_login_response(server: SandboxServer) -> None:
    response = _post_login(server, SANDBOX_USERNAME, SANDBOX_PASSWORD + SANDBOX_SECURITY_TOKEN)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    result = ET.fromstring(response.content).find(
        f"{SOAPENV}Body/{PARTNER}loginResponse/{PARTNER}result"
    )
    assert result is not None, response.text
    org_id = result.findtext(f"{PARTNER}userInfo/{PARTNER}organizationId") or ""
    assert org_id.startswith("00D") and len(org_id) == 18
    assert result.findtext(f"{PARTNER}serverUrl") == (
        f"{server.instance_url}/services/Soap/u/59.0/{org_id[:15]}"
    )
    assert (result.findtext(f"{PARTNER}sessionId") or "").startswith(f"{org_id[:15]}!")
    user_id = result.findtext(f"{PARTNER}userId") or ""
    assert user_id.startswith("005")
    assert result.findtext(f"{PARTNER}userInfo/{PARTNER}userId") == user_id
    assert result.findtext(f"{PARTNER}userInfo/{PARTNER}userName") == SANDBOX_USERNAME
    assert result.findtext(f"{PARTNER}passwordExpired") == "false"


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param(SANDBOX_USERNAME, SANDBOX_PASSWORD, id="password-without-token"),
        pytest.param(SANDBOX_USERNAME, SANDBOX_PASSWORD + "WrongToken", id="wrong-token"),
        pytest.param(SANDBOX_USERNAME, SANDBOX_SECURITY_TOKEN, id="token-without-password"),
        pytest.param(
            "someone@else.example", SANDBOX_PASSWORD + SANDBOX_SECURITY_TOKEN, id="unknown-user"
        ),
        pytest.param("", "", id="empty"),
    ],
)
def test_bad_soap_logins_answer_salesforces_invalid_login_fault(
    server: SandboxServer, username: str, password: str
) -> None:
    response = _post_login(server, username, password)

    assert response.status_code == 500
    assert b'xmlns:sf="urn:fault.partner.soap.sforce.com"' in response.content
    fault = _fault(response)
    assert fault.findtext("faultcode") == "sf:INVALID_LOGIN"
    assert fault.findtext("faultstring") == f"INVALID_LOGIN: {INVALID_LOGIN}"
    login_fault = fault.find(f"detail/{FAULT}LoginFault")
    assert login_fault is not None
    assert login_fault.findtext(f"{FAULT}exceptionCode") == "INVALID_LOGIN"
    assert login_fault.findtext(f"{FAULT}exceptionMessage") == INVALID_LOGIN


def test_the_library_reports_a_password_without_its_token_as_invalid_login(
    server: SandboxServer,
) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as refused:
        _library_login(server, SANDBOX_USERNAME, SANDBOX_PASSWORD, "")

    assert refused.value.code == "INVALID_LOGIN"
    assert refused.value.auth_message == INVALID_LOGIN


def test_a_sandbox_served_with_its_own_logins_takes_them_xml_escaped(
    seeded: SeedSummary, cert_dir: Path, tmp_path: Path
) -> None:
    # Characters XML must escape: the envelope is parsed as XML, not searched as text. (Only
    # the password: the library escapes it but not the token, which Salesforce makes of
    # letters and digits.)
    password, token = "p&ss<w>rd\"'", "Acme0Token0Of24Characters"
    with SandboxServer(
        copy_db(seeded, tmp_path),
        cert_dir,
        username="ops+crm@acme.example",
        password=password,
        security_token=token,
    ) as running:
        session_id, instance = _library_login(running, "ops+crm@acme.example", password, token)
        sf = Salesforce(instance=instance, session_id=session_id, session=running.session())
        assert sf.query("SELECT COUNT() FROM User")["totalSize"] == 20

        with pytest.raises(SalesforceAuthenticationFailed):
            _library_login(running, SANDBOX_USERNAME, SANDBOX_PASSWORD, SANDBOX_SECURITY_TOKEN)


_GOOD_LOGIN = (
    '<env:Body><n1:login xmlns:n1="urn:partner.soap.sforce.com">'
    f"<n1:username>{SANDBOX_USERNAME}</n1:username>"
    "<n1:password>{password}</n1:password></n1:login></env:Body>"
)
_ENVELOPE = '<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/">{}</env:Envelope>'


@pytest.mark.parametrize(
    ("body", "path", "faultcode"),
    [
        pytest.param("this is not XML", None, "soapenv:Client", id="not-xml"),
        pytest.param(
            # The entity would expand to the right password: a DTD is refused before that.
            '<?xml version="1.0"?><!DOCTYPE env:Envelope ['
            f'<!ENTITY pw "{SANDBOX_PASSWORD}{SANDBOX_SECURITY_TOKEN}">]>'
            + _ENVELOPE.format(_GOOD_LOGIN.format(password="&pw;")),
            None,
            "soapenv:Client",
            id="doctype",
        ),
        pytest.param(
            _ENVELOPE.format(
                _GOOD_LOGIN.format(password=SANDBOX_PASSWORD + SANDBOX_SECURITY_TOKEN).replace(
                    "urn:partner.soap.sforce.com", "urn:enterprise.soap.sforce.com"
                )
            ),
            None,
            "soapenv:Client",
            id="not-the-partner-login",
        ),
        pytest.param(
            _ENVELOPE.format(
                _GOOD_LOGIN.format(password=SANDBOX_PASSWORD + SANDBOX_SECURITY_TOKEN)
            ),
            "/services/Soap/u/latest",
            "sf:UNSUPPORTED_API_VERSION",
            id="bad-version",
        ),
        pytest.param(
            _ENVELOPE.format(
                _GOOD_LOGIN.format(password=SANDBOX_PASSWORD + SANDBOX_SECURITY_TOKEN)
            ),
            "/services/Soap/u/99.0",
            "sf:UNSUPPORTED_API_VERSION",
            id="unserved-version",
        ),
    ],
)
def test_soap_requests_that_are_not_a_login_call_are_faults(
    server: SandboxServer, body: str, path: str | None, faultcode: str
) -> None:
    response = _post_soap(server, body, path)

    assert response.status_code == 500
    assert _fault(response).findtext("faultcode") == faultcode
    assert b"sessionId" not in response.content
