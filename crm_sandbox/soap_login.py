"""The partner SOAP API's ``login()`` call, as Salesforce serves it and simple-salesforce uses it.

``POST /services/Soap/u/<version>`` with a SOAP 1.1 envelope whose body holds
``{urn:partner.soap.sforce.com}login`` (``username``; ``password`` = the password followed by
the security token). simple-salesforce's ``SalesforceLogin`` sends it for username + password +
token logins and reads back only ``sessionId`` and ``serverUrl`` (the instance is the host of
``serverUrl``), or on a non-200 answer the fault's ``sf:exceptionCode`` and
``sf:exceptionMessage``. The answers copy Salesforce's: a ``loginResponse`` in the partner
namespace (unprefixed) on success, and for bad credentials HTTP 500 with the
``sf:INVALID_LOGIN`` fault and its ``sf:LoginFault`` detail.

Only the login call is served: the session id it returns is for the REST API, where it is
accepted like an OAuth access token. Requests are parsed with the standard library's
ElementTree; a document type declaration is refused before any entity can be expanded (SOAP 1.1
forbids DTDs in messages, so no genuine client sends one).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

from crm_sandbox.sessions import API_USER_ID, ORG_ID, SessionRegistry

SOAP_LOGIN_PATH = "/services/Soap/u/{version}"
# What the API gate lets through without a session (the version is checked by the handler).
SOAP_LOGIN_PATH_RE = re.compile(r"^/services/Soap/u/[^/]+$")
SOAP_CONTENT_TYPE = "text/xml;charset=UTF-8"
SOAPENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "urn:partner.soap.sforce.com"
FAULT_NS = "urn:fault.partner.soap.sforce.com"
INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."
# A login envelope is well under a kilobyte; anything this large is not one.
MAX_REQUEST_BYTES = 64 * 1024
SESSION_SECONDS_VALID = 7200


class SoapFault(Exception):
    """A SOAP fault: ``faultcode``, ``faultstring`` and, for a refused login, the
    ``sf:LoginFault`` detail's exception code and message (Salesforce answers faults with 500)."""

    status = 500

    def __init__(
        self,
        faultcode: str,
        faultstring: str,
        exception_code: str | None = None,
        exception_message: str | None = None,
    ) -> None:
        super().__init__(faultstring)
        self.faultcode = faultcode
        self.faultstring = faultstring
        self.exception_code = exception_code
        self.exception_message = exception_message

    def body(self) -> bytes:
        """The fault envelope, as Salesforce writes it."""
        detail = ""
        if self.exception_code is not None:
            detail = (
                '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
                f"<sf:exceptionCode>{escape(self.exception_code)}</sf:exceptionCode>"
                f"<sf:exceptionMessage>{escape(self.exception_message or '')}"
                "</sf:exceptionMessage></sf:LoginFault></detail>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAPENV_NS}" xmlns:sf="{FAULT_NS}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            "<soapenv:Body><soapenv:Fault>"
            f"<faultcode>{escape(self.faultcode)}</faultcode>"
            f"<faultstring>{escape(self.faultstring)}</faultstring>"
            f"{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
        ).encode()


def invalid_login() -> SoapFault:
    """Salesforce's one answer to every bad username, password or security token."""
    return SoapFault(
        faultcode="sf:INVALID_LOGIN",
        faultstring=f"INVALID_LOGIN: {INVALID_LOGIN_MESSAGE}",
        exception_code="INVALID_LOGIN",
        exception_message=INVALID_LOGIN_MESSAGE,
    )


def _client_fault(message: str) -> SoapFault:
    return SoapFault(faultcode="soapenv:Client", faultstring=message)


@dataclass(frozen=True)
class LoginRequest:
    """The credentials a ``login`` envelope carries."""

    username: str
    password: str


class _NoDoctype(ET.TreeBuilder):
    """A tree builder that refuses document type declarations (and so entity definitions)."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise _client_fault("DOCTYPE is not allowed in a SOAP message")


def parse_login_request(body: bytes) -> LoginRequest:
    """The username and password of a ``login`` envelope; a ``soapenv:Client`` fault when the
    body is not one."""
    if len(body) > MAX_REQUEST_BYTES:
        raise _client_fault("The request is too large for a login call")
    parser = ET.XMLParser(target=_NoDoctype())
    try:
        parser.feed(body)
        envelope = parser.close()
    except ET.ParseError as error:
        raise _client_fault(f"Unable to parse the request: {error}") from None
    if envelope.tag != f"{{{SOAPENV_NS}}}Envelope":
        raise _client_fault(f"The root element must be {{{SOAPENV_NS}}}Envelope")
    soap_body = envelope.find(f"{{{SOAPENV_NS}}}Body")
    call = soap_body[0] if soap_body is not None and len(soap_body) else None
    if call is None or call.tag != f"{{{PARTNER_NS}}}login":
        operation = call.tag if call is not None else "(none)"
        raise _client_fault(
            f"No operation available for request {operation}, please check the WSDL for the "
            "service."
        )
    return LoginRequest(
        username=(call.findtext(f"{{{PARTNER_NS}}}username") or "").strip(),
        password=call.findtext(f"{{{PARTNER_NS}}}password") or "",
    )


def login_response(*, instance_url: str, version: str, session_id: str, username: str) -> bytes:
    """The ``loginResponse`` envelope for a session on ``instance_url``."""
    soap_url = f"{instance_url}/services/Soap"
    fields = {
        "metadataServerUrl": f"{soap_url}/m/{version}/{ORG_ID[:15]}",
        "passwordExpired": "false",
        "sandbox": "true",
        "serverUrl": f"{soap_url}/u/{version}/{ORG_ID[:15]}",
        "sessionId": session_id,
        "userId": API_USER_ID,
    }
    user_info = {
        "accessibilityMode": "false",
        "chatterExternal": "false",
        "currencySymbol": "$",
        "orgAttachmentFileSizeLimit": "5242880",
        "orgDefaultCurrencyIsoCode": "USD",
        "orgDefaultCurrencyLocale": "en_US",
        "orgDisallowHtmlAttachments": "false",
        "orgHasPersonAccounts": "false",
        "organizationId": ORG_ID,
        "organizationMultiCurrency": "false",
        "organizationName": "Acme Sandbox",
        "sessionSecondsValid": str(SESSION_SECONDS_VALID),
        "userEmail": username,
        "userFullName": "Integration User",
        "userId": API_USER_ID,
        "userLanguage": "en_US",
        "userLocale": "en_US",
        "userName": username,
        "userTimeZone": "America/Los_Angeles",
        "userType": "Standard",
        "userUiSkin": "Theme3",
    }
    result = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in fields.items())
    info = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in user_info.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAPENV_NS}" xmlns="{PARTNER_NS}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><loginResponse><result>{result}<userInfo>{info}</userInfo>"
        "</result></loginResponse></soapenv:Body></soapenv:Envelope>"
    ).encode()


def answer_login(
    body: bytes,
    version: str,
    instance_url: str,
    sessions: SessionRegistry,
    served_versions: frozenset[str],
) -> tuple[int, bytes]:
    """(HTTP status, XML body) for a ``login`` call to ``/services/Soap/u/<version>``; a
    version outside ``served_versions`` (``"59.0"``, ...) is refused as Salesforce does."""
    try:
        if version not in served_versions:
            raise SoapFault(
                faultcode="sf:UNSUPPORTED_API_VERSION",
                faultstring="UNSUPPORTED_API_VERSION: Invalid Api version specified on URL",
            )
        request = parse_login_request(body)
        session_id = sessions.soap_login(request.username, request.password)
        if session_id is None:
            raise invalid_login()
    except SoapFault as fault:
        return fault.status, fault.body()
    return 200, login_response(
        instance_url=instance_url,
        version=version,
        session_id=session_id,
        username=request.username,
    )
