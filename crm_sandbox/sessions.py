"""OAuth login and session tokens of one sandbox server.

Tokens are random and known only to the server that issued them, so a token from another
sandbox (or an earlier run) is rejected just like an expired Salesforce session.
"""

from __future__ import annotations

import base64
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
    """What the token endpoint accepts: a password grant or a client-credentials grant."""

    username: str
    password: str
    client_id: str
    client_secret: str


class SessionRegistry:
    """Issues and checks the access tokens of one server."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def _grant_ok(self, form: Mapping[str, str]) -> bool:
        expected = self.credentials
        grant = form.get("grant_type", "")
        if grant == "password":
            ok = _same(form.get("username"), expected.username) and _same(
                form.get("password"), expected.password
            )
            # A connected app's client id/secret may accompany a password grant.
            if "client_id" in form:
                ok = ok and _same(form.get("client_id"), expected.client_id)
            if "client_secret" in form:
                ok = ok and _same(form.get("client_secret"), expected.client_secret)
            return ok
        if grant == "client_credentials":
            return _same(form.get("client_id"), expected.client_id) and _same(
                form.get("client_secret"), expected.client_secret
            )
        return False

    def login(self, form: Mapping[str, str], instance_url: str) -> dict[str, Any] | None:
        """The token response for a valid grant, or None for bad credentials."""
        if not self._grant_ok(form):
            return None
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        with self._lock:
            self._tokens.add(token)
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

    def is_valid(self, token: str) -> bool:
        """Whether ``token`` was issued by this server and not revoked."""
        with self._lock:
            return token in self._tokens

    def revoke_all(self) -> None:
        """Expire every session, as when an admin resets them or they time out."""
        with self._lock:
            self._tokens.clear()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
