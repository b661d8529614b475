"""What the push tests share: reading the warehouse and the sandbox CRM independently of the
code under test, recording an Act-On edit as an import does, and pushing through a sandbox
server the test controls (to arm faults, or to stop the push half-way)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.mirror_values import mirror_field_values
from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.mapping import load_mapping
from acton_pipelines.push.build import PushResult, push_to_crm
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import acton_field_edits
from crm_sandbox import SandboxServer
from tests.conftest import REPO_CONFIG, ActonHome

MAPPING = load_mapping(REPO_CONFIG)


def rows(home: ActonHome, sql: str, **params: object) -> list[tuple]:
    """The warehouse's answer to ``sql``."""
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def crm(home: ActonHome, sql: str, *params: object) -> list[tuple]:
    """The sandbox CRM's own data (its SQLite file), read past its API."""
    with sqlite3.connect(home.sandbox_db) as conn:
        return conn.execute(sql, params).fetchall()


def record_edit(home: ActonHome, contact_id: str, field: str, value: str, at: datetime) -> int:
    """An Act-On edit as an import records it: made against the CRM value the mirror holds."""
    column = field.lower().replace(" ", "_")
    with warehouse_engine(home.warehouse_url).begin() as conn:
        external_id, record_type = conn.execute(
            text("SELECT external_id, record_type FROM acton_contacts WHERE contact_id = :c"),
            {"c": contact_id},
        ).one()
        mapped = MAPPING.field(field)
        source = mapped.source(record_type) if mapped and record_type else None
        ref = (record_type, external_id, source)
        at_edit = mirror_field_values(conn, [ref]).get(ref) if source else None
        return conn.execute(
            insert(acton_field_edits).values(
                contact_id=contact_id,
                field=field,
                column=column,
                value=value,
                changed_at=at,
                push_status="pending",
                crm_value_at_edit=at_edit,
            )
        ).inserted_primary_key[0]


@contextlib.contextmanager
def sandbox_client(
    home: ActonHome, attempts: int | None = None
) -> Iterator[tuple[SandboxServer, CrmClient]]:
    """A sandbox server over ``home``'s CRM data, and a client logged in to it whose retries
    wait milliseconds (at most ``attempts`` attempts a call, when given)."""
    cert_dir = home.path / "sandbox" / "certs"  # where sandbox_url looks for the CA
    with SandboxServer(home.sandbox_db, cert_dir) as server:
        resource = SalesforceResource(
            sandbox_url=server.instance_url,
            retry_initial_wait_seconds=0.01,
            retry_max_wait_seconds=0.05,
            retry_minutes=0.05,
            retry_attempts=attempts,
        )
        with resource.connect() as client:
            yield server, client


def push_with(
    home: ActonHome,
    client: CrmClient,
    run_id: str,
    progress: Callable[[str], Any] = lambda _: None,
) -> PushResult:
    """One push, outside Dagster, so the test hears its progress (and may act on it)."""
    return push_to_crm(
        engine=warehouse_engine(home.warehouse_url),
        client=client,
        mapping=MAPPING,
        run_id=run_id,
        progress=progress,
    )
