"""Connecting simple-salesforce to the local sandbox CRM over HTTPS."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import requests
from simple_salesforce import Salesforce

from acton_pipelines import settings
from acton_pipelines.crm.client import CrmUnavailable
from crm_sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_PASSWORD,
    SANDBOX_USERNAME,
    SandboxServer,
    seed_sandbox,
    trusting_session,
)

logger = logging.getLogger(__name__)


def sandbox_paths() -> tuple[Path, Path]:
    """The sandbox CRM's SQLite file and its certificate folder under ``ACTON_HOME``."""
    home = settings.sandbox_dir()
    return home / "crm.sqlite", home / "certs"


def sandbox_login(base_url: str, ca_cert: Path, api_version: str) -> Salesforce:
    """Log in to the sandbox's OAuth token endpoint and build a client that trusts its CA."""
    session = trusting_session(ca_cert)
    try:
        response = session.post(
            f"{base_url}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": SANDBOX_CLIENT_ID,
                "client_secret": SANDBOX_CLIENT_SECRET,
                "username": SANDBOX_USERNAME,
                "password": SANDBOX_PASSWORD,
            },
            timeout=30,
        )
    except requests.ConnectionError as error:
        raise CrmUnavailable(
            f"cannot reach the sandbox CRM at {base_url} ({type(error).__name__}); start it with "
            "`acton sandbox serve` or unset ACTON_SANDBOX_URL to run it in-process."
        ) from None
    if response.status_code != 200:
        raise CrmUnavailable(f"sandbox CRM login failed (HTTP {response.status_code})")
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
            server = stack.enter_context(SandboxServer(db_path, cert_dir))
            base_url, ca_cert = server.instance_url, server.ca_cert_path

        def login() -> Salesforce:
            return sandbox_login(base_url, Path(ca_cert), api_version)

        yield login(), login
