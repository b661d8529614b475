"""A run reads the mapping once: an edit made while it is in flight waits for the next run.

A full sync is started with ``acton sync full`` in its own process; as soon as it has taken its
mapping (the ``run_mappings`` row of its first step), a field is added to the mapping on disk.
The run must finish on the version it started with (its later steps would otherwise look for a
column its CRM steps never read), and a push started afterwards takes the new version, whose
columns exist before anything reads them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dagster import DagsterInstance
from sqlalchemy import inspect, select

from acton_pipelines.settings import REPO_ROOT
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.run_mappings import MAPPING_VERSION_TAG, MappingVersion
from acton_pipelines.warehouse.tables import run_mappings, sync_runs
from tests.conftest import ActonHome, run_sync

NEW_FIELD = """
  - destination: Lead Notes
    type: Text
    lead: Lead_Notes__c
"""


def recorded_versions(url: str) -> dict[str, str]:
    engine = warehouse_engine(url)
    if run_mappings.name not in inspect(engine).get_table_names():
        return {}
    with engine.connect() as conn:
        return dict(conn.execute(select(run_mappings.c.run_id, run_mappings.c.mapping_hash)).all())


def test_a_mapping_edited_during_a_run_is_used_from_the_next_run_on(
    acton_home: ActonHome, tmp_path: Path
) -> None:
    mapping_dir = tmp_path / "mapping_config"
    shutil.copytree(REPO_ROOT / "mapping_config", mapping_dir)
    before = MappingVersion.read(mapping_dir).mapping_hash
    env = {
        **os.environ,
        "ACTON_HOME": str(acton_home.path),
        "DAGSTER_HOME": str(acton_home.path / "dagster"),
        "ACTON_MAPPING_DIR": str(mapping_dir),
    }
    acton = str(Path(sys.executable).parent / "acton")
    process = subprocess.Popen(
        [acton, "sync", "full"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not recorded_versions(acton_home.warehouse_url):
            assert process.poll() is None, "the sync ended before taking its mapping"
            assert time.monotonic() < deadline, "the sync never took its mapping"
            time.sleep(0.05)
        with (mapping_dir / "contact_mapping.yaml").open("a", encoding="utf-8") as mapping_file:
            mapping_file.write(NEW_FIELD)
        with warehouse_engine(acton_home.warehouse_url).connect() as conn:
            built = conn.execute(
                select(sync_runs.c.object).where(sync_runs.c.object == "acton_contacts")
            ).all()
        assert built == [], "the edit came too late to prove anything: acton_contacts had run"
        output, _ = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output

    ((run_id, used),) = recorded_versions(acton_home.warehouse_url).items()
    assert used == before
    with DagsterInstance.from_config(str(acton_home.path / "dagster")) as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.tags[MAPPING_VERSION_TAG] == before[:12]
    engine = warehouse_engine(acton_home.warehouse_url)
    columns = {c["name"] for c in inspect(engine).get_columns("acton_contacts")}
    assert "lead_notes" not in columns

    # The next run (a push: it reads acton_contacts, it does not build it) takes the new
    # version, and its column is there before the push reads it.
    pushed = run_sync(acton_home, "push_to_crm", {}, mapping_dir=mapping_dir)
    assert pushed.success
    columns = {c["name"] for c in inspect(engine).get_columns("acton_contacts")}
    assert "lead_notes" in columns
    versions = recorded_versions(acton_home.warehouse_url)
    assert versions[pushed.run_id] == MappingVersion.read(mapping_dir).mapping_hash != before
