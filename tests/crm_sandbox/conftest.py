"""Shared sandbox fixtures: one seeded database per session, servers over copies of it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from simple_salesforce import Salesforce

from crm_sandbox import SandboxServer, SeedSummary, login, seed_sandbox

# Fixed "now" for the seed and the servers' clocks, so no test depends on the wall clock.
SEED_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PAGING_LEADS = 4500
PAGING_CONTACTS = 1500


class FakeClock:
    """A clock that only moves when told to (each read returns the current fake time)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    """A database big enough to page (4,500 Leads); servers use copies of it."""
    db_path = tmp_path_factory.mktemp("seed") / "pristine.sqlite"
    return seed_sandbox(db_path, leads=PAGING_LEADS, contacts=PAGING_CONTACTS, now=SEED_NOW)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One certificate folder for every server of the session (certificates are reused)."""
    return tmp_path_factory.mktemp("certs")


def copy_db(seeded: SeedSummary, target_dir: Path) -> Path:
    """A private copy of the session's seeded database."""
    target = target_dir / "crm.sqlite"
    shutil.copyfile(seeded.db_path, target)
    return target


@pytest.fixture(scope="session")
def clock() -> FakeClock:
    """The clock of the shared read-mostly server (one hour after the seed's "now")."""
    return FakeClock(SEED_NOW + timedelta(hours=1))


@pytest.fixture(scope="session")
def server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
) -> Iterator[SandboxServer]:
    """The session's server, over a copy of the seeded database. Tests must not write to it."""
    db_path = copy_db(seeded, tmp_path_factory.mktemp("server"))
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running


def client_for(server: SandboxServer) -> Salesforce:
    """A simple-salesforce client logged in to ``server`` the way the pipeline builds one."""
    http = server.session()
    instance_url, token = login(server, http)
    return Salesforce(instance_url=instance_url, session_id=token, session=http)


@pytest.fixture(scope="session")
def sf(server: SandboxServer) -> Salesforce:
    """A client of the session's server."""
    return client_for(server)
