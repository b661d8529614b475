"""``acton sandbox seed`` and ``acton sandbox serve``."""

from __future__ import annotations

import dataclasses
import os
import time

import click

from acton_pipelines.cli.sandbox_churn import churn
from acton_pipelines.crm.sandbox_connection import (
    SANDBOX_CREDENTIAL_ENV,
    sandbox_credentials,
    sandbox_paths,
)
from crm_sandbox import SandboxServer, seed_sandbox


@click.group()
def sandbox() -> None:
    """The local Salesforce-compatible sandbox CRM."""


@sandbox.command()
@click.option("--leads", default=2000, show_default=True, help="Number of Leads.")
@click.option("--contacts", default=1500, show_default=True, help="Number of Contacts.")
@click.option("--seed", "seed_value", default=42, show_default=True, help="Random seed.")
def seed(leads: int, contacts: int, seed_value: int) -> None:
    """(Re)create the sandbox CRM's data: realistic records with realistic dirt."""
    db_path, _ = sandbox_paths()
    click.echo(f"Seeding the sandbox CRM at {db_path} ({leads:,} leads, {contacts:,} contacts)...")
    summary = seed_sandbox(db_path, leads=leads, contacts=contacts, seed=seed_value)
    click.echo(str(summary))


sandbox.add_command(churn)


@sandbox.command()
@click.option("--port", default=8443, show_default=True, help="Port on 127.0.0.1.")
def serve(port: int) -> None:
    """Serve the sandbox CRM on https://127.0.0.1:PORT until interrupted.

    Its logins come from ACTON_SANDBOX_USERNAME, ACTON_SANDBOX_PASSWORD,
    ACTON_SANDBOX_SECURITY_TOKEN, ACTON_SANDBOX_CLIENT_ID and ACTON_SANDBOX_CLIENT_SECRET (each
    defaulting to the sandbox's built-in value); secrets are never printed.
    """
    db_path, cert_dir = sandbox_paths()
    if not db_path.exists():
        seed_sandbox(db_path)
    credentials = sandbox_credentials()
    configured = [env for env in SANDBOX_CREDENTIAL_ENV.values() if os.environ.get(env)]
    with SandboxServer(db_path, cert_dir, port=port, **dataclasses.asdict(credentials)) as server:
        url = server.instance_url
        click.echo(f"Sandbox CRM at {url} (CA certificate: {server.ca_cert_path})")
        click.echo(
            f"Logins: user {credentials.username}, "
            + (f"set by {', '.join(configured)}" if configured else "built-in defaults")
        )
        click.echo(f"Point the pipeline at it: export ACTON_SANDBOX_URL={url}")
        click.echo(
            "Or log in the way a real org is logged in to (ACTON_CRM_MODE=password or "
            "client_credentials, SALESFORCE_* as in the README): "
            f"export SALESFORCE_LOGIN_URL={url} REQUESTS_CA_BUNDLE={server.ca_cert_path}"
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            click.echo("Stopped.")
