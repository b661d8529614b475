"""``mapping_change_sensor``'s request, run as the daemon runs it: a field added to the mapping
after a full sync requests a full sync that fills the new column."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from dagster import DagsterInstance
from sqlalchemy import text

from acton_pipelines.warehouse.engine import warehouse_engine
from tests.conftest import ActonHome, home_definitions, run_full_sync
from tests.launch import execute_request, instigator_job, sensor_tick

SENSOR = "mapping_change_sensor"
# A Lead-only CRM field the repository's mapping leaves out; the sandbox fills it for some Leads.
NEW_FIELD = """
  - destination: Lead Notes
    type: Text
    lead: Lead_Notes__c
"""


def test_a_field_added_to_the_mapping_is_filled_by_the_requested_full_sync(
    acton_home: ActonHome, mapping_dir: Path
) -> None:
    assert run_full_sync(acton_home, mapping_dir).success
    definitions = home_definitions(acton_home, mapping_dir)
    with DagsterInstance.ephemeral() as instance:
        recorded = sensor_tick(definitions, SENSOR, instance, cursor=None)
        assert recorded.run_requests == [] and recorded.cursor

        with (mapping_dir / "contact_mapping.yaml").open("a", encoding="utf-8") as mapping_file:
            mapping_file.write(NEW_FIELD)
        tick = sensor_tick(definitions, SENSOR, instance, cursor=recorded.cursor)
        (request,) = tick.run_requests
        assert request.run_key and request.run_key.startswith("mapping-1-")
        result = execute_request(
            definitions, request, instance, instigator_job(definitions, SENSOR)
        )
        assert result.success

        # The next tick has nothing to do.
        again = sensor_tick(definitions, SENSOR, instance, cursor=tick.cursor)
        assert again.run_requests == []

    with sqlite3.connect(acton_home.sandbox_db) as crm:
        notes = dict(crm.execute("SELECT Id, Lead_Notes__c FROM Lead WHERE IsDeleted = 0"))
    with warehouse_engine(acton_home.warehouse_url).connect() as conn:
        rows = conn.execute(
            text("SELECT external_id, record_type, lead_notes FROM acton_contacts")
        ).all()
    leads = {external_id: value for external_id, kind, value in rows if kind == "Lead"}
    assert sum(value is not None for value in leads.values()) > 0
    assert leads == {lead_id: notes[lead_id] for lead_id in leads}
    assert {value for _, kind, value in rows if kind == "Contact"} == {None}
