"""OAuth and SOAP login, and the session tokens, of one sandbox server.

Tokens are random and known only to the server that issued them, so a token from another
sandbox (or an earlier run) is rejected just like an expired Salesforce session. Both logins
issue the same kind of token: a SOAP ``sessionId`` works on the REST API exactly like an OAuth
``access_token``, as on a real org.

The security token is a credential of its own: the SOAP ``login()`` call needs the password
followed by it (the sandbox org has no trusted IP ranges). The OAuth password grant goes through
the sandbox's connected app, whose policy relaxes IP restrictions, so there the password alone
is enough (Salesforce's "Relax IP restrictions" setting).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_sandbox.ids import make_id

ORG_ID = make_id("00D", 1)
# The first seeded user doubles as the integration user the API logs in as.
API_USER_ID = make_id("005", 1)


@dataclass(frozen=True)
class Credentials:
    """What the server accepts: the integration user's login and its connected app."""

    username: str
    password: str
    client_id: str
    client_secret: str
    security_token: str = ""


class OAuthError(Exception):
    """A refused token request; Salesforce answers 400 with ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        """The JSON body Salesforce sends for this refusal."""
        return {"error": self.error, "error_description": self.description}


def _invalid_grant() -> OAuthError:
    return OAuthError("invalid_grant", "authentication failure")


def _invalid_client() -> OAuthError:
    return OAuthError("invalid_client", "invalid client credentials")


def _invalid_client_id() -> OAuthError:
    return OAuthError("invalid_client_id", "client identifier invalid")


class SessionRegistry:
    """Issues and checks the access tokens of one server."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def oauth_token(
        self, form: Mapping[str, str], authorization: str | None, instance_url: str
    ) -> dict[str, Any]:
        """The token response for a valid grant; raises :class:`OAuthError` otherwise.

        The connected app's id and secret may come as form fields or, as simple-salesforce's
        client-credentials flow sends them, in an ``Authorization: Basic`` header (RFC 6749
        2.3.1); both are accepted, as Salesforce does.
        """
        client_id, client_secret = _client_credentials(form, authorization)
        grant = form.get("grant_type", "")
        if grant == "password":
            # A connected app's id/secret may accompany a password grant; checked when present.
            if client_id is not None or client_secret is not None:
                self._check_client(client_id, client_secret, secret_required=False)
            expected = self.credentials
            if not (
                _same(form.get("username"), expected.username)
                and _same(form.get("password"), expected.password)
            ):
                raise _invalid_grant()
        elif grant == "client_credentials":
            self._check_client(client_id, client_secret, secret_required=True)
        else:
            raise _invalid_grant()
        return self._token_response(self._issue(), instance_url)

    def soap_login(self, username: str, password: str) -> str | None:
        """A new session id for SOAP ``login()``, or None for bad credentials.

        ``password`` is what the call carries: the password followed by the security token.
        """
        expected = self.credentials
        if _same(username, expected.username) and _same(
            password, expected.password + expected.security_token
        ):
            return self._issue()
        return None

    def is_valid(self, token: str) -> bool:
        """Whether ``token`` was issued by this server and not revoked."""
        with self._lock:
            return token in self._tokens

    def revoke_all(self) -> None:
        """Expire every session, as when an admin resets them or they time out."""
        with self._lock:
            self._tokens.clear()

    def _check_client(
        self, client_id: str | None, client_secret: str | None, *, secret_required: bool
    ) -> None:
        expected = self.credentials
        if not _same(client_id, expected.client_id):
            raise _invalid_client_id()
        if (secret_required or client_secret is not None) and not _same(
            client_secret, expected.client_secret
        ):
            raise _invalid_client()

    def _issue(self) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._tokens.add(token)
        return token

    def _token_response(self, token: str, instance_url: str) -> dict[str, Any]:
        identity = f"{instance_url}/id/{ORG_ID}/{API_USER_ID}"
        issued_at = str(int(time.time() * 1000))
        digest = hmac.new(
            self.credentials.client_secret.encode(),
            (identity + issued_at).encode(),
            hashlib.sha256,
        ).digest()
        return {
            "access_token": token,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest).decode(),
        }


def _client_credentials(
    form: Mapping[str, str], authorization: str | None
) -> tuple[str | None, str | None]:
    """The connected app's (id, secret): from a Basic header if there is one, else the form.

    A form that names the client as well must name the same one (two different clients in one
    request are refused rather than one of them silently chosen).
    """
    in_form = (form.get("client_id"), form.get("client_secret"))
    if authorization is None:
        return in_form
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return in_form
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client() from None
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        raise _invalid_client()
    for given, in_header in zip(in_form, (client_id, client_secret), strict=True):
        if given is not None and not _same(given, in_header):
            raise _invalid_client()
    return client_id, client_secret


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
