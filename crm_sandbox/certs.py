"""The sandbox's TLS material: a local CA and a server certificate for the loopback address.

simple-salesforce only speaks ``https://``, so the sandbox serves real TLS. Clients trust the
CA file (``requests.Session().verify = ca_path``); nothing is added to the system trust store.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trustme

CA_FILE = "ca.pem"
CERT_FILE = "server.pem"
KEY_FILE = "server.key"
# Names the server certificate is valid for; the server only ever listens on loopback.
SERVER_IDENTITIES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class CertPaths:
    """Where the CA certificate, the server certificate chain and its private key live."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def ensure_certificates(cert_dir: Path) -> CertPaths:
    """Create the CA and server certificate under ``cert_dir`` once; reuse them afterwards.

    The files are generated in a temporary directory and moved in one by one, CA last, so a
    concurrent reader never pairs a new CA with an old server certificate for long: whoever
    finds the CA file also finds the matching server files.
    """
    cert_dir.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(cert_dir / CA_FILE, cert_dir / CERT_FILE, cert_dir / KEY_FILE)
    if all(p.exists() for p in (paths.ca_cert, paths.server_cert, paths.server_key)):
        return paths
    ca = trustme.CA(organization_name="acton_pipelines sandbox")
    leaf = ca.issue_cert(*SERVER_IDENTITIES, common_name="acton-pipelines-sandbox")
    with tempfile.TemporaryDirectory(dir=cert_dir) as tmp:
        staged = Path(tmp)
        (staged / KEY_FILE).write_bytes(leaf.private_key_pem.bytes())
        os.chmod(staged / KEY_FILE, 0o600)
        (staged / CERT_FILE).write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
        ca.cert_pem.write_to_path(staged / CA_FILE)
        for name in (KEY_FILE, CERT_FILE, CA_FILE):
            os.replace(staged / name, cert_dir / name)
    return paths
