"""Server lifecycle, certificates, loopback-only binding and per-request database reads."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from simple_salesforce import Salesforce

from crm_sandbox import SandboxServer, SeedSummary, seed_sandbox
from tests.crm_sandbox.conftest import SEED_NOW, client_for, copy_db


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_non_loopback_hosts_are_refused(host: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(tmp_path / "crm.sqlite", tmp_path / "certs", host=host)


def test_addresses_and_certificate_files(server: SandboxServer, cert_dir: Path) -> None:
    assert server.instance_url == f"https://127.0.0.1:{server.port}"
    assert server.token_url == f"{server.instance_url}/services/oauth2/token"
    assert server.ca_cert_path == cert_dir / "ca.pem"
    assert server.ca_cert_path.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_certificates_are_reused(server: SandboxServer, cert_dir: Path, tmp_path: Path) -> None:
    before = server.ca_cert_path.read_bytes()

    other = SandboxServer(tmp_path / "crm.sqlite", cert_dir)

    assert other.ca_cert_path.read_bytes() == before


def test_new_certificate_folder_gets_a_new_ca(server: SandboxServer, tmp_path: Path) -> None:
    fresh = SandboxServer(tmp_path / "crm.sqlite", tmp_path / "certs")

    assert fresh.ca_cert_path.read_bytes() != server.ca_cert_path.read_bytes()


def test_stop_releases_the_port(seeded: SeedSummary, cert_dir: Path, tmp_path: Path) -> None:
    running = SandboxServer(copy_db(seeded, tmp_path), cert_dir).start()
    client_for(running).describe()  # leaves a keep-alive connection open
    port = running.port
    running.stop()
    running.stop()  # idempotent

    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
    finally:
        probe.close()


def test_fixed_port(seeded: SeedSummary, cert_dir: Path, tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    with SandboxServer(copy_db(seeded, tmp_path), cert_dir, port=port) as running:
        assert running.instance_url.endswith(f":{port}")
        assert client_for(running).describe() is not None


def test_reseeding_while_serving_is_picked_up(cert_dir: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "crm.sqlite"
    seed_sandbox(db_path, leads=30, contacts=20, now=SEED_NOW)
    with SandboxServer(db_path, cert_dir) as running:
        sf: Salesforce = client_for(running)
        assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] <= 30

        reseeded = seed_sandbox(db_path, leads=250, contacts=20, now=SEED_NOW)

        live = 250 - reseeded.soft_deleted.get("Lead", 0)
        assert sf.query("SELECT COUNT() FROM Lead")["totalSize"] == live > 30
