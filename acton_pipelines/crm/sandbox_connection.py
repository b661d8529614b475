"""Connecting simple-salesforce to the local sandbox CRM over HTTPS."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from simple_salesforce import Salesforce

from acton_pipelines import settings
from acton_pipelines.crm.client import CrmUnavailable
from crm_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_SECURITY_TOKEN,
    SANDBOX_USERNAME,
    SandboxServer,
    seed_sandbox,
    trusting_session,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxCredentials:
    """The logins a sandbox accepts; field names are ``SandboxServer``'s parameters.

    A shared sandbox (``acton sandbox serve``) takes them from ``ACTON_SANDBOX_*``, and the
    pipeline reads the same variables to log in to it, so both sides agree without the
    sandbox package reading the environment itself. Secrets are left out of ``repr``.
    """

    username: str
    password: str = dataclasses.field(repr=False)
    security_token: str = dataclasses.field(repr=False)
    client_id: str
    client_secret: str = dataclasses.field(repr=False)


SANDBOX_CREDENTIAL_ENV = {
    "username": "ACTON_SANDBOX_USERNAME",
    "password": "ACTON_SANDBOX_PASSWORD",
    "security_token": "ACTON_SANDBOX_SECURITY_TOKEN",
    "client_id": "ACTON_SANDBOX_CLIENT_ID",
    "client_secret": "ACTON_SANDBOX_CLIENT_SECRET",
}
_SANDBOX_DEFAULTS = {
    "username": SANDBOX_USERNAME,
    "password": SANDBOX_PASSWORD,
    "security_token": SANDBOX_SECURITY_TOKEN,
    "client_id": SANDBOX_CLIENT_ID,
    "client_secret": SANDBOX_CLIENT_SECRET,
}


def sandbox_credentials() -> SandboxCredentials:
    """The sandbox logins from ``ACTON_SANDBOX_*``, each defaulting to the sandbox's own."""
    return SandboxCredentials(
        **{
            name: os.environ.get(env_name) or _SANDBOX_DEFAULTS[name]
            for name, env_name in SANDBOX_CREDENTIAL_ENV.items()
        }
    )


def sandbox_paths() -> tuple[Path, Path]:
    """The sandbox CRM's SQLite file and its certificate folder under ``ACTON_HOME``."""
    home = settings.sandbox_dir()
    return home / "crm.sqlite", home / "certs"


def sandbox_login(
    base_url: str,
    ca_cert: Path,
    api_version: str,
    credentials: SandboxCredentials | None = None,
) -> Salesforce:
    """Log in to the sandbox's OAuth token endpoint and build a client that trusts its CA.

    ``credentials`` default to :func:`sandbox_credentials` (``ACTON_SANDBOX_*``).
    """
    login = credentials or sandbox_credentials()
    session = trusting_session(ca_cert)
    try:
        response = session.post(
            f"{base_url}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": login.client_id,
                "client_secret": login.client_secret,
                "username": login.username,
                "password": login.password,
            },
            timeout=30,
        )
    except requests.ConnectionError as error:
        raise CrmUnavailable(
            f"cannot reach the sandbox CRM at {base_url} ({type(error).__name__}); start it with "
            "`acton sandbox serve` or unset ACTON_SANDBOX_URL to run it in-process."
        ) from None
    if response.status_code != 200:
        raise CrmUnavailable(
            f"sandbox CRM login failed (HTTP {response.status_code}); the ACTON_SANDBOX_* "
            "logins must be the ones the sandbox was served with."
        )
    token = response.json()
    return Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        session=session,
        version=api_version,
    )


@contextlib.contextmanager
def sandbox_connection(
    sandbox_url: str | None, api_version: str
) -> Iterator[tuple[Salesforce, Callable[[], Salesforce]]]:
    """A logged-in client for the sandbox and a function that logs in again.

    With no ``sandbox_url`` the sandbox is served in-process for the duration (seeded with the
    default data set the first time).
    """
    db_path, cert_dir = sandbox_paths()
    credentials = sandbox_credentials()
    with contextlib.ExitStack() as stack:
        if sandbox_url:
            base_url, ca_cert = sandbox_url.rstrip("/"), cert_dir / "ca.pem"
            if not ca_cert.is_file():
                raise CrmUnavailable(
                    f"ACTON_SANDBOX_URL is {base_url} but there is no sandbox certificate at "
                    f"{ca_cert}: serve the sandbox with `acton sandbox serve` under the same "
                    "ACTON_HOME, or unset ACTON_SANDBOX_URL to run it in-process."
                )
        else:
            if not db_path.exists():
                logger.info("seeding the sandbox CRM at %s (first use)", db_path)
                seed_sandbox(db_path)
            server = stack.enter_context(
                SandboxServer(db_path, cert_dir, **dataclasses.asdict(credentials))
            )
            base_url, ca_cert = server.instance_url, server.ca_cert_path

        def login() -> Salesforce:
            return sandbox_login(base_url, Path(ca_cert), api_version, credentials)

        yield login(), login
