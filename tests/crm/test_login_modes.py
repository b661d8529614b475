"""The production login modes, end to end: ``acton sandbox serve`` with logins of its own from
``ACTON_SANDBOX_*``, then ``acton sync full`` with ``ACTON_CRM_MODE=password`` or
``client_credentials`` and the ``SALESFORCE_*`` settings a real org needs, pointed at the served
sandbox by ``SALESFORCE_LOGIN_URL`` and ``REQUESTS_CA_BUNDLE`` exactly as ``serve`` prints them.

simple-salesforce's own login code runs (the SOAP ``login()`` call, the client-credentials
grant with its Basic header); nothing is mocked, and everything stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_sync_failures import acton
from tests.conftest import ActonHome
from tests.test_full_sync import crm_rows, warehouse_rows

# The shared sandbox's logins: none of them the sandbox's built-in defaults, so a sync that
# works proves the values travelled from the environment on both sides.
SHARED_LOGINS = {
    "ACTON_SANDBOX_USERNAME": "etl@acme-shared.example",
    "ACTON_SANDBOX_PASSWORD": "Shared-Passw0rd-7",
    "ACTON_SANDBOX_SECURITY_TOKEN": "SharedSecurityToken00042",
    "ACTON_SANDBOX_CLIENT_ID": "3MVG9shared.acton.tests",
    "ACTON_SANDBOX_CLIENT_SECRET": "shared-client-secret-9",
}
SECRETS = ("ACTON_SANDBOX_PASSWORD", "ACTON_SANDBOX_SECURITY_TOKEN", "ACTON_SANDBOX_CLIENT_SECRET")
MODE_SETTINGS = {
    "password": {
        "SALESFORCE_USERNAME": SHARED_LOGINS["ACTON_SANDBOX_USERNAME"],
        "SALESFORCE_PASSWORD": SHARED_LOGINS["ACTON_SANDBOX_PASSWORD"],
        "SALESFORCE_SECURITY_TOKEN": SHARED_LOGINS["ACTON_SANDBOX_SECURITY_TOKEN"],
        "SALESFORCE_DOMAIN": "test",
    },
    "client_credentials": {
        "SALESFORCE_CONSUMER_KEY": SHARED_LOGINS["ACTON_SANDBOX_CLIENT_ID"],
        "SALESFORCE_CONSUMER_SECRET": SHARED_LOGINS["ACTON_SANDBOX_CLIENT_SECRET"],
        # Salesforce serves this flow only on a My Domain; the login URL sends it to the sandbox.
        "SALESFORCE_DOMAIN": "acme-shared.my",
    },
}
ALL_MODE_SETTINGS = {name for settings in MODE_SETTINGS.values() for name in settings}
_SERVE_STARTUP_S = 60.0
_SERVE_STOP_S = 20.0


@dataclass(frozen=True)
class Served:
    """A sandbox served by ``acton sandbox serve``: where, and everything it printed."""

    url: str
    ca_bundle: str
    output: str


def _read_until(process: subprocess.Popen[bytes], marker: str) -> str:
    """What ``process`` printed up to and including the line holding ``marker``."""
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + _SERVE_STARTUP_S
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while marker.encode() not in output or not output.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"`acton sandbox serve` printed no {marker!r}: {output!r}"
            if selector.select(remaining):
                chunk = os.read(process.stdout.fileno(), 65536)
                assert chunk, f"`acton sandbox serve` exited: {output.decode()}"
                output += chunk
    return output.decode()


@pytest.fixture
def served(acton_home: ActonHome) -> Iterator[Served]:
    """The home's sandbox served by ``acton sandbox serve`` (a free port) with SHARED_LOGINS."""
    env = {**os.environ, **SHARED_LOGINS}
    command = [str(Path(sys.executable).parent / "acton"), "sandbox", "serve", "--port", "0"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        output = _read_until(process, "REQUESTS_CA_BUNDLE=")
        found = re.search(r"SALESFORCE_LOGIN_URL=(\S+) REQUESTS_CA_BUNDLE=(\S+)", output)
        assert found, output
        yield Served(url=found[1], ca_bundle=found[2], output=output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(_SERVE_STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _use_mode(
    monkeypatch: pytest.MonkeyPatch, served: Served, mode: str, **changes: str
) -> dict[str, str]:
    """Set the environment ``acton`` runs with for ``mode`` against ``served``; returns the
    mode's SALESFORCE_* settings (with ``changes``)."""
    for name in ALL_MODE_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    settings = {**MODE_SETTINGS[mode], **changes}
    for name, value in {
        **settings,
        "ACTON_CRM_MODE": mode,
        "SALESFORCE_LOGIN_URL": served.url,
        "REQUESTS_CA_BUNDLE": served.ca_bundle,
    }.items():
        monkeypatch.setenv(name, value)
    return settings


def test_serve_takes_its_logins_from_the_environment_and_prints_no_secret(
    served: Served,
) -> None:
    assert served.url.startswith("https://127.0.0.1:")
    assert SHARED_LOGINS["ACTON_SANDBOX_USERNAME"] in served.output
    for name in SECRETS:
        assert SHARED_LOGINS[name] not in served.output, name


@pytest.mark.parametrize("mode", ["password", "client_credentials"])
def test_a_full_sync_logs_in_with_the_mode_and_fills_the_warehouse(
    acton_home: ActonHome, served: Served, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    _use_mode(monkeypatch, served, mode)

    result = acton(acton_home, served.url, "sync", "full")

    assert result.returncode == 0, result.stdout + result.stderr
    ((live_leads,),) = crm_rows(acton_home, "SELECT count(*) FROM Lead WHERE IsDeleted = 0")
    ((contacts,),) = crm_rows(
        acton_home,
        "SELECT (SELECT count(*) FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0)"
        " + (SELECT count(*) FROM Contact WHERE IsDeleted = 0)",
    )
    assert live_leads > 0 and contacts > live_leads
    assert warehouse_rows(acton_home, "SELECT count(*) FROM crm_leads") == [(live_leads,)]
    assert warehouse_rows(acton_home, "SELECT count(*) FROM acton_contacts") == [(contacts,)]


@pytest.mark.parametrize(
    ("mode", "wrong", "code"),
    [
        # The password without its security token: the token is a credential of its own.
        ("password", {"SALESFORCE_SECURITY_TOKEN": "NotTheToken0000000000000"}, "INVALID_LOGIN"),
        ("client_credentials", {"SALESFORCE_CONSUMER_SECRET": "not-the-secret"}, "invalid_client"),
    ],
)
def test_wrong_credentials_fail_the_sync_in_one_line_without_a_secret(
    acton_home: ActonHome,
    served: Served,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    wrong: dict[str, str],
    code: str,
) -> None:
    settings = _use_mode(monkeypatch, served, mode, **wrong)

    result = acton(acton_home, served.url, "sync", "full")

    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Stack Trace" not in output
    expected = f"Salesforce login ({mode}) at {served.url} failed with code {code}."
    (cause,) = [line for line in output.splitlines() if expected in line]
    assert "SALESFORCE_" in cause  # says where to look
    # No credential shows, right or wrong; not even the username, which the library's own
    # message would echo.
    shown = [
        value
        for name, value in {**settings, **SHARED_LOGINS}.items()
        if name != "SALESFORCE_DOMAIN" and value in output
    ]
    assert not shown
