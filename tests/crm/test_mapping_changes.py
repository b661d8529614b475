"""A mapping change is honoured by whatever sync comes next, not only by the full sync the
mapping sensor launches: an object whose sync now reads a field its last sync did not read is
read in full, so the field's values reach acton_contacts for every record.

The incremental runs here are launched the way the schedule and ``acton sync incremental`` do
(each object from its high-water mark), with no lookback: a record changed while its field was
not read is then never read again by an incremental run, which is what a full read must heal.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dagster import ExecuteInProcessResult
from sqlalchemy import text

from acton_pipelines.crm.objects import LEAD
from acton_pipelines.crm.sync import fields_gap
from acton_pipelines.runs.partitions import incremental_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.sync_runs import SyncRun
from crm_sandbox import SeedSummary
from crm_sandbox.store import to_storage_datetime
from tests.conftest import ActonHome, make_home, run_full_sync, run_sync
from tests.crm_sandbox.sqlite_reads import fetch_all, fetch_ids
from tests.test_mapping_gains_a_field import NEW_FIELD, REPO_CONFIG

CRM_TABLES = ("crm_leads", "crm_contacts", "crm_accounts", "crm_users", "crm_opportunities")
TITLE_FROM_TITLE = "    lead: Title\n"
TITLE_FROM_NAME = "    lead: Name\n"
LIVE_LEADS = "IsDeleted = 0 AND IsConverted = 0"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


@pytest.fixture
def home(tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch) -> ActonHome:
    monkeypatch.setenv("ACTON_SYNC_LOOKBACK_MINUTES", "0")
    return make_home(tmp_path / "home", small_crm, monkeypatch)


@pytest.fixture
def mapping_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "mapping_config"
    shutil.copytree(REPO_CONFIG, directory)
    return directory


def write_mapping(mapping_dir: Path, *, title_from: str = TITLE_FROM_TITLE, notes: bool) -> None:
    """The repository's mapping, Job Title read from ``title_from``, with Lead Notes or not."""
    mapping = (REPO_CONFIG / "contact_mapping.yaml").read_text()
    assert mapping.count(TITLE_FROM_TITLE) == 1
    mapping = mapping.replace(TITLE_FROM_TITLE, title_from)
    (mapping_dir / "contact_mapping.yaml").write_text(mapping + (NEW_FIELD if notes else ""))


def run_scheduled_incremental(home: ActonHome, mapping_dir: Path) -> ExecuteInProcessResult:
    """An incremental sync as the schedule and ``acton sync incremental`` launch it."""
    tags = incremental_tags(today(), since_last_sync=True)
    result = run_sync(home, "incremental_sync", tags, mapping_dir)
    assert result.success
    return result


def change_in_crm(home: ActonHome, changes: list[tuple[str, str, str]]) -> None:
    """Set ``(Lead Id, field, value)`` in the sandbox as users would, one after the other (each
    a millisecond later than the one before), moving the record's stamps."""
    with sqlite3.connect(home.sandbox_db) as conn:
        for lead_id, field, value in changes:
            time.sleep(0.002)
            stamp = to_storage_datetime(datetime.now(UTC))
            conn.execute(
                f'UPDATE Lead SET "{field}" = ?, SystemModstamp = ?, LastModifiedDate = ? '
                "WHERE Id = ?",
                (value, stamp, stamp, lead_id),
            )


def lead_reads(home: ActonHome) -> list[tuple[str, str | None]]:
    """(mode, message) of every successful sync of crm_leads, oldest first."""
    with warehouse_engine(home.warehouse_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT mode, message FROM sync_runs WHERE object = 'crm_leads' "
                "AND status = 'success' ORDER BY seq"
            )
        )
        return [(r.mode, r.message) for r in rows]


def modes_of_run(home: ActonHome, run_id: str) -> dict[str, str]:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        rows = conn.execute(
            text("SELECT object, mode FROM sync_runs WHERE run_id = :run"), {"run": run_id}
        )
        return {r.object: r.mode for r in rows}


def as_conformed(value: str | None) -> str | None:
    """A CRM text value as acton_contacts holds it (Text values are trimmed; blank is NULL)."""
    return (value.strip() or None) if value is not None else None


def assert_leads_hold_the_crm_values(home: ActonHome, column: str, field: str) -> None:
    """``column`` of every Lead's Act-On contact equals the sandbox's ``field`` of that Lead."""
    crm = {
        row["Id"]: as_conformed(row["value"])
        for row in fetch_all(
            home.sandbox_db, f'SELECT Id, "{field}" AS value FROM Lead WHERE {LIVE_LEADS}'
        )
    }
    with warehouse_engine(home.warehouse_url).connect() as conn:
        rows = conn.execute(
            text(f"SELECT external_id, {column} FROM acton_contacts WHERE record_type = 'Lead'")
        )
        held = {r[0]: r[1] for r in rows}
    assert held == crm


def test_re_pointing_a_field_and_back_reads_leads_in_full_each_time(
    home: ActonHome, mapping_dir: Path
) -> None:
    write_mapping(mapping_dir, notes=False)
    assert run_full_sync(home, mapping_dir).success
    assert_leads_hold_the_crm_values(home, "job_title", "Title")
    retitled, later = fetch_ids(home.sandbox_db, "Lead", LIVE_LEADS, 2)

    # B: Job Title now comes from Name. Meanwhile one Lead's Title changes, then another Lead:
    # B reads both records, but not Title.
    change_in_crm(home, [(retitled, "Title", "Retitled while unread"), (later, "Phone", "555")])
    write_mapping(mapping_dir, title_from=TITLE_FROM_NAME, notes=False)
    to_b = run_scheduled_incremental(home, mapping_dir)
    assert_leads_hold_the_crm_values(home, "job_title", "Name")

    # Back to A: Title was not read by the last sync, so every Lead is read again.
    write_mapping(mapping_dir, notes=False)
    back_to_a = run_scheduled_incremental(home, mapping_dir)
    assert_leads_hold_the_crm_values(home, "job_title", "Title")

    reads = lead_reads(home)
    assert [mode for mode, _ in reads] == ["full", "full", "full"]
    assert reads[1][1].startswith("read in full: the mapping now reads Name, which the last sync")
    assert reads[2][1].startswith("read in full: the mapping now reads Title, which the last sync")
    for run in (to_b, back_to_a):
        modes = modes_of_run(home, run.run_id)
        assert modes["crm_contacts"] == modes["crm_accounts"] == "incremental"


def test_a_field_added_again_after_a_sync_without_it_is_read_in_full_again(
    home: ActonHome, mapping_dir: Path
) -> None:
    write_mapping(mapping_dir, notes=False)
    assert run_full_sync(home, mapping_dir).success
    write_mapping(mapping_dir, notes=True)
    with_notes = run_scheduled_incremental(home, mapping_dir)
    assert_leads_hold_the_crm_values(home, "lead_notes", "Lead_Notes__c")

    # Notes change while the mapping does not read them (and another Lead changes later).
    noted, later = fetch_ids(home.sandbox_db, "Lead", LIVE_LEADS, 2)
    change_in_crm(home, [(noted, "Lead_Notes__c", "Noted while unread"), (later, "Phone", "555")])
    write_mapping(mapping_dir, notes=False)
    without = run_scheduled_incremental(home, mapping_dir)
    write_mapping(mapping_dir, notes=True)
    with_notes_again = run_scheduled_incremental(home, mapping_dir)
    assert_leads_hold_the_crm_values(home, "lead_notes", "Lead_Notes__c")

    reads = lead_reads(home)
    assert [mode for mode, _ in reads] == ["full", "full", "incremental", "full"]
    for _, message in (reads[1], reads[3]):
        assert message.startswith("read in full: the mapping now reads Lead_Notes__c, which")
    # Only the object whose fields changed was read in full.
    for run in (with_notes, without, with_notes_again):
        modes = modes_of_run(home, run.run_id)
        assert {modes[t] for t in CRM_TABLES if t != "crm_leads"} == {"incremental"}


def test_an_unchanged_mapping_reads_incrementally_and_records_its_fields(
    home: ActonHome, mapping_dir: Path
) -> None:
    write_mapping(mapping_dir, notes=False)
    full = run_full_sync(home, mapping_dir)
    assert full.success
    runs = [run_scheduled_incremental(home, mapping_dir) for _ in range(2)]
    with warehouse_engine(home.warehouse_url).connect() as conn:
        rows = conn.execute(text("SELECT run_id, object, mode, fields_read FROM sync_runs"))
        by_run = {(r.run_id, r.object): r for r in rows if r.object in CRM_TABLES}
    for run in runs:
        assert {by_run[(run.run_id, t)].mode for t in CRM_TABLES} == {"incremental"}
        for table in CRM_TABLES:
            assert (
                by_run[(run.run_id, table)].fields_read == by_run[(full.run_id, table)].fields_read
            )
    lead_fields = by_run[(full.run_id, "crm_leads")].fields_read.split(",")
    assert lead_fields[:2] == ["Id", "Email"] and "Owner.Name" in lead_fields
    assert "Title" in lead_fields and "Lead_Notes__c" not in lead_fields

    # Syncs from before fields_read was recorded say nothing: a new field is then read as any
    # incremental run reads (a full sync back-fills it).
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(text("UPDATE sync_runs SET fields_read = NULL"))
    write_mapping(mapping_dir, notes=True)
    unknown = run_scheduled_incremental(home, mapping_dir)
    assert modes_of_run(home, unknown.run_id)["crm_leads"] == "incremental"


def test_fields_are_compared_without_regard_to_case(tmp_path: Path) -> None:
    engine = warehouse_engine(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    run_id = uuid.uuid4().hex
    with engine.begin() as conn:
        SyncRun(run_id, LEAD.table, "full", fields_read="Id,title,Email").record(conn)
    assert fields_gap(engine, LEAD, ["Id", "Email", "Title"]) is None
    gap = fields_gap(engine, LEAD, ["ID", "Title", "Foo__c", "Bar__c"])
    assert gap == (
        f"read in full: the mapping now reads Foo__c, Bar__c, which the last sync "
        f"(run {run_id[:8]}) did not read"
    )
    # A later sync that failed does not count; a later successful one without a list does.
    with engine.begin() as conn:
        SyncRun(uuid.uuid4().hex, LEAD.table, "full", fields_read="Id").record(conn, "failed")
    assert fields_gap(engine, LEAD, ["Id", "Title", "Foo__c"]) is not None
    with engine.begin() as conn:
        SyncRun(uuid.uuid4().hex, LEAD.table, "incremental").record(conn)
    assert fields_gap(engine, LEAD, ["Id", "Title", "Foo__c"]) is None
