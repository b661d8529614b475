"""An edits CSV dropped into the imports folder reaches the CRM through the sensors: allowed
fields are updated, disallowed ones left alone, every write logged."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import build_sensor_context
from sqlalchemy import text

from acton_pipelines import settings
from acton_pipelines.schedules.edits_push_sensor import edits_push_sensor
from acton_pipelines.schedules.imports_sensor import imports_sensor
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.resource import WarehouseResource
from crm_sandbox import SeedSummary
from tests.conftest import make_home, run_full_sync, run_sync

WELL_FORMED = re.compile(r"[a-z0-9._-]+@[a-z0-9.-]+\.[a-z]+")


def test_an_edits_file_updates_allowed_fields_and_leaves_the_others(
    tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_home(tmp_path / "home", small_crm, monkeypatch)
    assert run_full_sync(home).success
    with sqlite3.connect(home.sandbox_db) as conn:
        leads = conn.execute(
            "SELECT Id, Email, Title, AnnualRevenue FROM Lead WHERE IsDeleted = 0 AND "
            "IsConverted = 0 AND Email IS NOT NULL AND Email NOT IN (SELECT Email FROM Contact "
            "WHERE Email IS NOT NULL) ORDER BY Id"
        ).fetchall()
    lead_id, email, _, revenue = next(r for r in leads if WELL_FORMED.fullmatch(r[1]))
    changed_at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    folder = settings.imports_dir()
    (folder / "edits_2026-11-26.csv").write_text(
        "email,field,value,changed_at\n"
        f"{email},Job Title,Head of Imports,{changed_at}\n"
        f"{email},Annual Revenue,1,{changed_at}\n"
    )

    warehouse = WarehouseResource(url=home.warehouse_url)
    imports = imports_sensor(build_sensor_context(cursor=None))
    assert len(imports.run_requests) == 1
    assert run_sync(home, "import_files", {}).success
    push_request = edits_push_sensor(build_sensor_context(resources={"warehouse": warehouse}))
    assert len(push_request.run_requests) == 1
    push = run_sync(home, "push_to_crm", {})
    assert push.success

    with sqlite3.connect(home.sandbox_db) as conn:
        after = conn.execute(
            "SELECT Title, AnnualRevenue FROM Lead WHERE Id = ?", (lead_id,)
        ).fetchone()
    assert after == ("Head of Imports", revenue)
    with warehouse_engine(home.warehouse_url).connect() as conn:
        logged = conn.execute(
            text(
                "SELECT object, record_id, field, new_value, outcome FROM crm_push_log "
                "WHERE sync_run_id = :run AND reason = 'edit'"
            ),
            {"run": push.run_id},
        ).all()
        statuses = dict(
            conn.execute(
                text("SELECT field, push_status FROM acton_field_edits WHERE email = :e"),
                {"e": email.lower()},
            ).all()
        )
    assert [tuple(r) for r in logged] == [("Lead", lead_id, "Title", "Head of Imports", "success")]
    assert statuses == {"Job Title": "pushed", "Annual Revenue": "skipped_by_policy"}
    # Nothing pending any more: the sensor stays quiet.
    quiet = edits_push_sensor(
        build_sensor_context(cursor=push_request.cursor, resources={"warehouse": warehouse})
    )
    assert not quiet.run_requests
