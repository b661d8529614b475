"""The CRM resource: simple-salesforce against Salesforce or the local sandbox CRM."""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from dagster import ConfigurableResource, EnvVar, InitResourceContext
from pydantic import Field, PrivateAttr
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed

from acton_pipelines.crm.client import (
    API_RESERVE_ENV,
    ApiReserve,
    CrmClient,
    CrmUnavailable,
    RetryPolicy,
)

DEFAULT_API_VERSION = "59.0"
RETRY_MINUTES_ENV = "ACTON_CRM_RETRY_MINUTES"
LOGIN_URL_ENV = "SALESFORCE_LOGIN_URL"
DEFAULT_RETRY_MINUTES = 10.0


class SalesforceResource(ConfigurableResource):
    """The CRM the sync reads from (and, later, pushes to).

    Modes:
    - ``sandbox`` (default): the local Salesforce-compatible sandbox CRM over HTTPS on
      127.0.0.1. With no ``sandbox_url`` it is started in-process over the data in
      ``ACTON_HOME/sandbox`` (seeded on first use).
    - ``password``: username + password + security token (``SALESFORCE_USERNAME``,
      ``SALESFORCE_PASSWORD``, ``SALESFORCE_SECURITY_TOKEN``).
    - ``client_credentials``: an External Client App's OAuth client credentials flow
      (``SALESFORCE_CONSUMER_KEY``, ``SALESFORCE_CONSUMER_SECRET``, ``SALESFORCE_DOMAIN`` = your
      My Domain, e.g. ``acme.my``).
    Secrets come from environment variables (``EnvVar``) and never reach logs or metadata.

    Both production modes log in with simple-salesforce's own code, which always addresses
    ``https://{domain}.salesforce.com``. To run them against a test server instead (the sandbox
    served by ``acton sandbox serve``), set ``login_url`` (``SALESFORCE_LOGIN_URL``, e.g.
    ``https://127.0.0.1:8443``; loopback HTTPS only) and trust the server's CA with requests' own
    ``REQUESTS_CA_BUNDLE`` (``ACTON_HOME/sandbox/certs/ca.pem``). The client then gets a
    ``requests.Session`` whose transport adapter, mounted on that one login host, sends each
    request to ``login_url`` with the same path and query. This was chosen over the other ways
    in: ``domain`` cannot carry a host and port (the library appends ``.salesforce.com``), the
    SOAP-only ``scratch_url`` does not cover the OAuth flow, and patching the library would test
    something other than what runs in production. The login itself, its request and its parsing
    of the answer stay the library's, and the instance it returns (the test server's address)
    serves the REST calls. Without ``login_url`` no session is passed and nothing changes.

    Retries: 5xx answers, timeouts and dropped connections are retried with waits doubling
    from ``retry_initial_wait_seconds`` up to ``retry_max_wait_seconds``, for up to
    ``retry_minutes`` per call (``ACTON_CRM_RETRY_MINUTES``, default 10); then the step fails
    with one line ("CRM unavailable since HH:MM UTC after N attempts: ..."). The org's daily
    API limit (REQUEST_LIMIT_EXCEEDED) is never retried: the run stops at once.

    API budget: the client stops before a call once the org's remaining daily API calls are
    down to ``api_reserve`` (``ACTON_API_RESERVE``, default 10%), leaving them to the org's
    other integrations.
    """

    mode: Literal["sandbox", "password", "client_credentials"] = "sandbox"
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    consumer_key: str | None = None
    consumer_secret: str | None = None
    domain: str = Field(default="login", description="'login', 'test' or your My Domain.")
    api_version: str = DEFAULT_API_VERSION
    sandbox_url: str | None = Field(
        default=None, description="URL of a running sandbox CRM (`acton sandbox serve`)."
    )
    login_url: str | None = Field(
        default=None,
        description=(
            "Tests only: a loopback HTTPS server that answers the password and "
            "client_credentials logins instead of https://{domain}.salesforce.com "
            "(env SALESFORCE_LOGIN_URL; its CA from REQUESTS_CA_BUNDLE)."
        ),
    )
    retry_minutes: float = Field(
        default=DEFAULT_RETRY_MINUTES,
        ge=0,
        description=(
            "How long one CRM call keeps retrying 5xx errors, timeouts and dropped connections "
            f"before the step fails, in minutes (env {RETRY_MINUTES_ENV}; 0: no retries)."
        ),
    )
    retry_initial_wait_seconds: float = Field(
        default=2.0, gt=0, description="Wait before the first retry; it doubles at each retry."
    )
    retry_max_wait_seconds: float = Field(
        default=120.0, gt=0, description="Longest wait between two attempts of a CRM call."
    )
    retry_attempts: int | None = Field(
        default=None,
        ge=1,
        description="Optional cap on the attempts of one CRM call (default: only retry_minutes).",
    )

    api_reserve: str | None = Field(
        default=None,
        description=(
            "The share of the org's daily API calls ('10%') or the number of calls ('5000') "
            "left to its other integrations: a run stops before its next CRM call once no "
            f"more remain (unset: env {API_RESERVE_ENV}, read when the client connects; "
            "default 10%; 0 keeps no reserve)."
        ),
    )

    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)
    _client: CrmClient | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # Connecting waits for the first step that uses the CRM: a login that fails there is
        # that step's failure, told in one line on the run page, rather than a resource
        # initialisation error; and steps that never touch the CRM never log in.
        self._stack = contextlib.ExitStack()

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()

    @property
    def client(self) -> CrmClient:
        """The connected client (inside a Dagster run), logged in on first use."""
        if self._client is None:
            if self._stack is None:
                raise RuntimeError(
                    "SalesforceResource is not set up; use `with resource.connect()`"
                )
            self._client = self._stack.enter_context(self.connect())
        return self._client

    @contextlib.contextmanager
    def connect(self) -> Iterator[CrmClient]:
        """Log in and yield a client; an embedded sandbox is started and stopped around it."""
        policy, reserve = self.retry_policy(), self.reserve()
        if self.mode != "sandbox":
            yield CrmClient(
                sf=self._login_to_salesforce(), retry_policy=policy, api_reserve=reserve
            )
            return
        from acton_pipelines.crm.sandbox_connection import sandbox_connection

        with sandbox_connection(self.sandbox_url, self.api_version) as (sf, relogin):
            yield CrmClient(sf=sf, relogin=relogin, retry_policy=policy, api_reserve=reserve)

    def reserve(self) -> ApiReserve:
        """The client's API reserve: ``api_reserve``, else ``ACTON_API_RESERVE`` (read now, so
        once per client), else 10%."""
        if self.api_reserve is not None:
            return ApiReserve.parse(self.api_reserve)
        return ApiReserve.parse(os.environ.get(API_RESERVE_ENV))

    def retry_policy(self) -> RetryPolicy:
        """The client's retry policy from the ``retry_*`` fields."""
        return RetryPolicy(
            give_up_after_seconds=self.retry_minutes * 60,
            initial_wait_seconds=self.retry_initial_wait_seconds,
            # Never more than the total: a short retry_minutes would otherwise be one long wait.
            max_wait_seconds=max(
                min(self.retry_max_wait_seconds, self.retry_minutes * 60),
                self.retry_initial_wait_seconds,
            ),
            max_attempts=self.retry_attempts,
        )

    def _login_to_salesforce(self) -> Salesforce:
        login_host = f"https://{self.domain}.salesforce.com"
        where = self.login_url or login_host
        # None (the library's own session) unless a test server stands in for Salesforce.
        session = _test_login_session(self.login_url, login_host) if self.login_url else None
        try:
            if self.mode == "password":
                _require(self, "username", "password", "security_token")
                return Salesforce(
                    username=self.username,
                    password=self.password,
                    security_token=self.security_token,
                    domain=self.domain,
                    version=self.api_version,
                    session=session,
                )
            _require(self, "consumer_key", "consumer_secret")
            if self.domain in ("login", "test"):
                raise CrmUnavailable(
                    "CRM mode 'client_credentials' needs SALESFORCE_DOMAIN set to your My Domain "
                    "(e.g. acme.my): Salesforce serves this flow only there."
                )
            return Salesforce(
                consumer_key=self.consumer_key,
                consumer_secret=self.consumer_secret,
                domain=self.domain,
                version=self.api_version,
                session=session,
            )
        except SalesforceAuthenticationFailed as error:
            # The library's message can echo the username; say only what to check.
            raise CrmUnavailable(
                f"Salesforce login ({self.mode}) at {where} failed with code {error.code}. Check "
                "the credentials in the SALESFORCE_* environment variables and SALESFORCE_DOMAIN."
            ) from None
        except requests.exceptions.SSLError:
            raise CrmUnavailable(
                f"cannot verify the TLS certificate of {where}; for a test server set "
                "REQUESTS_CA_BUNDLE to its CA file (the sandbox's is "
                "ACTON_HOME/sandbox/certs/ca.pem)."
            ) from None
        except requests.ConnectionError:
            raise CrmUnavailable(
                f"cannot reach Salesforce at {where}; check SALESFORCE_DOMAIN "
                f"{'and SALESFORCE_LOGIN_URL ' if self.login_url else ''}and the network."
            ) from None


class _LoginServerAdapter(HTTPAdapter):
    """A transport adapter that sends every request it gets to ``login_url`` instead, with the
    same path and query (mounted for Salesforce's login host only)."""

    def __init__(self, login_url: str) -> None:
        super().__init__()
        self._login_url = login_url.rstrip("/")

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        request.url = self._login_url + request.path_url
        # Proxies were chosen for the Salesforce host; a loopback server is never behind one.
        kwargs["proxies"] = {}
        return super().send(request, **kwargs)


def _test_login_session(login_url: str, login_host: str) -> requests.Session:
    """A session whose requests to ``login_host`` reach the test server at ``login_url``.

    Only loopback HTTPS is accepted: credentials sent there never leave the machine, and the
    setting cannot quietly send production secrets elsewhere. Certificates are verified as
    requests always does (``REQUESTS_CA_BUNDLE`` names the test server's CA).
    """
    parts = urlsplit(login_url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme != "https" or not loopback or parts.path.strip("/"):
        raise CrmUnavailable(
            f"SALESFORCE_LOGIN_URL={login_url!r} must be a loopback HTTPS address such as "
            "https://127.0.0.1:8443 (a test server, e.g. `acton sandbox serve`); unset it to "
            "log in to Salesforce itself."
        )
    http = requests.Session()
    http.mount(f"{login_host}/", _LoginServerAdapter(login_url))
    return http


CRM_MODES = ("sandbox", "password", "client_credentials")
_SECRETS_BY_MODE = {
    "password": ("username", "password", "security_token"),
    "client_credentials": ("consumer_key", "consumer_secret"),
}
_ENV_NAMES = {
    "username": "SALESFORCE_USERNAME",
    "password": "SALESFORCE_PASSWORD",
    "security_token": "SALESFORCE_SECURITY_TOKEN",
    "consumer_key": "SALESFORCE_CONSUMER_KEY",
    "consumer_secret": "SALESFORCE_CONSUMER_SECRET",
}


def _require(resource: SalesforceResource, *names: str) -> None:
    missing = [_ENV_NAMES[n] for n in names if not getattr(resource, n)]
    if missing:
        raise CrmUnavailable(
            f"CRM mode '{resource.mode}' needs {', '.join(missing)}; set them in the environment "
            "(or set ACTON_CRM_MODE=sandbox to use the local sandbox CRM)."
        )


def crm_resource_from_env(*, as_env_vars: bool = True) -> SalesforceResource:
    """The CRM resource ``ACTON_CRM_MODE`` asks for (default ``sandbox``).

    With ``as_env_vars`` the secrets are Dagster ``EnvVar`` references, read at run time and
    never shown in the UI; without, they are read now (for the command line).
    """
    mode = os.environ.get("ACTON_CRM_MODE", "sandbox")
    if mode not in CRM_MODES:
        raise CrmUnavailable(
            f"ACTON_CRM_MODE='{mode}' is not a CRM mode; use one of {', '.join(CRM_MODES)}."
        )
    retry_minutes = retry_minutes_from_env()
    # Checked now, like the retry minutes, so a bad value fails where the definitions load;
    # the client reads the variable again when it connects.
    ApiReserve.parse(os.environ.get(API_RESERVE_ENV))
    if mode == "sandbox":
        return SalesforceResource(
            mode="sandbox",
            sandbox_url=os.environ.get("ACTON_SANDBOX_URL"),
            retry_minutes=retry_minutes,
        )
    secrets: dict[str, Any] = {}
    for name in _SECRETS_BY_MODE[mode]:
        env_name = _ENV_NAMES[name]
        secrets[name] = EnvVar(env_name) if as_env_vars else os.environ.get(env_name)
    return SalesforceResource(
        mode=mode,  # type: ignore[arg-type]
        domain=os.environ.get("SALESFORCE_DOMAIN", "login"),
        login_url=os.environ.get(LOGIN_URL_ENV) or None,
        retry_minutes=retry_minutes,
        **secrets,
    )


def retry_minutes_from_env() -> float:
    """``ACTON_CRM_RETRY_MINUTES`` (how long a CRM call keeps retrying), default 10 minutes."""
    raw = os.environ.get(RETRY_MINUTES_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRY_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = math.nan
    if not math.isfinite(minutes) or minutes < 0:
        raise CrmUnavailable(
            f"{RETRY_MINUTES_ENV}={raw!r} is not a number of minutes; set it to how long a CRM "
            f"call may keep retrying, e.g. {RETRY_MINUTES_ENV}=10 (0 turns retries off)."
        )
    return minutes
