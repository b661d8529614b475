"""A full sync through a CRM whose answers are cut mid-body 40% of the time still mirrors every
record: each cut answer is asked for again (the client's retries), and nothing is lost.
"""

from __future__ import annotations

import sqlite3

from dagster import DagsterInstance, Definitions
from sqlalchemy import text

from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.definitions import defs as project_defs
from acton_pipelines.jobs import full_sync_job
from acton_pipelines.runs.partitions import full_sync_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SandboxServer
from tests.conftest import ActonHome, home_resources

MIRRORS = {
    "Lead": "crm_leads",
    "Contact": "crm_contacts",
    "Account": "crm_accounts",
    "Opportunity": "crm_opportunities",
}


def test_a_full_sync_survives_connections_dropped_mid_body(acton_home: ActonHome) -> None:
    cert_dir = acton_home.path / "sandbox" / "certs"  # where sandbox_url looks for the CA
    with SandboxServer(acton_home.sandbox_db, cert_dir) as server:
        # Every API answer (describes, query pages), not the login: 40%, the same ones each run.
        server.drop_connections(path_contains="/services/data/", probability=0.4, seed=7)
        crm = SalesforceResource(
            sandbox_url=server.instance_url,
            retry_initial_wait_seconds=0.01,
            retry_max_wait_seconds=0.05,
        )
        definitions = Definitions(
            assets=project_defs.assets,
            asset_checks=project_defs.asset_checks,
            jobs=[full_sync_job],
            resources={**home_resources(acton_home), "crm": crm},
        )
        result = definitions.resolve_job_def("full_sync").execute_in_process(
            instance=DagsterInstance.ephemeral(), raise_on_error=False, tags=full_sync_tags()
        )
        dropped, requests_served = server.connections_dropped, server.api_usage

    assert result.success, [
        event.message for event in result.all_events if event.event_type_value == "STEP_FAILURE"
    ]
    # The sync really went through cut answers, at about the rate asked for.
    assert dropped > 0 and dropped >= requests_served // 5
    with sqlite3.connect(acton_home.sandbox_db) as crm_db:
        expected = {
            table: crm_db.execute(f'SELECT "Id" FROM "{name}" WHERE "IsDeleted" = 0').fetchall()
            for name, table in MIRRORS.items()
        }
        (users,) = crm_db.execute('SELECT count(*) FROM "User"').fetchone()
    with warehouse_engine(acton_home.warehouse_url).connect() as conn:
        for table, ids in expected.items():
            stored = conn.execute(text(f"SELECT id FROM {table}")).fetchall()
            assert sorted(r[0] for r in stored) == sorted(r[0] for r in ids), table
        assert conn.execute(text("SELECT count(*) FROM crm_users")).scalar_one() == users
