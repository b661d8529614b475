"""A field added to the mapping becomes a new nullable column; nothing is dropped."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import inspect, text

from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SeedSummary
from tests.conftest import REPO_CONFIG, make_home, run_full_sync

NEW_FIELD = """
  - destination: Lead Notes
    type: Text
    lead: Lead_Notes__c
"""


def test_a_new_mapped_field_adds_columns_and_keeps_the_rows(
    tmp_path: Path, small_crm: SeedSummary, warehouse_url: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    mapping_dir = tmp_path / "mapping_config"
    shutil.copytree(REPO_CONFIG, mapping_dir)
    home = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse_url)
    assert run_full_sync(home, mapping_dir).success
    engine = warehouse_engine(warehouse_url)
    with engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM acton_contacts")).scalar_one()
    assert "lead_notes" not in {c["name"] for c in inspect(engine).get_columns("acton_contacts")}

    with (mapping_dir / "contact_mapping.yaml").open("a") as mapping_file:
        mapping_file.write(NEW_FIELD)
    assert run_full_sync(home, mapping_dir).success

    inspector = inspect(engine)
    added = {c["name"]: c for c in inspector.get_columns("acton_contacts")}["lead_notes"]
    assert added["nullable"]
    assert "lead_notes__c" in {c["name"] for c in inspector.get_columns("crm_leads")}
    with engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM acton_contacts")).scalar_one()
        notes = conn.execute(
            text(
                "SELECT record_type, count(lead_notes) FROM acton_contacts GROUP BY record_type "
                "ORDER BY record_type"
            )
        ).all()
    assert after == before
    counts = dict(notes)
    assert counts["Contact"] == 0 and counts["Lead"] > 0
