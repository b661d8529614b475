"""Our own writes are not CRM changes: a record the push wrote (the CRM moved its stamps, the
push already set the accepted value in the mirror) is merged again by the next sync but keeps
the run that last changed it, so acton_contacts and everything after it leave it alone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from dagster import ExecuteInProcessResult
from sqlalchemy import Engine, text

from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.crm.sync import AUDIT_COLUMNS
from acton_pipelines.runs.partitions import incremental_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.staged_load import StagedLoad
from acton_pipelines.warehouse.tables import crm_table
from crm_sandbox import SeedSummary
from crm_sandbox.store import from_storage_datetime
from tests.conftest import ActonHome, make_home, run_full_sync, run_sync
from tests.crm_sandbox.sqlite_reads import fetch_ids, fetch_record

CRM_TABLES = ("crm_leads", "crm_contacts", "crm_accounts", "crm_users", "crm_opportunities")
NEW_TITLE = "Chief Echo Officer"


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def run_scheduled_incremental(home: ActonHome) -> ExecuteInProcessResult:
    """An incremental sync as the schedule and ``acton sync incremental`` launch it."""
    return run_sync(home, "incremental_sync", incremental_tags(today(), since_last_sync=True))


def one_row(engine: Engine, sql: str, **params: object) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(text(sql), params).mappings().one())


def utc(value: object) -> datetime:
    """A timestamp read back with plain SQL (SQLite hands text back, without a zone)."""
    stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    aware = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return aware.to_pydatetime()


def stamp_in_crm(home: ActonHome, lead_id: str) -> datetime:
    return from_storage_datetime(fetch_record(home.sandbox_db, "Lead", lead_id)["SystemModstamp"])


# --- the merge itself, on both backends ----------------------------------------------------


def _frame(rows: list[tuple], run_id: str, stamp: datetime) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["id", "title", "score"], dtype=object)
    frame["systemmodstamp"] = stamp
    frame["sync_run_id"] = run_id
    frame["synced_at"] = stamp
    return frame


def test_only_rows_equal_in_every_compared_column_keep_their_run(warehouse_url: str) -> None:
    engine = warehouse_engine(warehouse_url)
    table = crm_table(
        "crm_things",
        [("Id", "id"), ("Title", "string"), ("Score", "double"), ("SystemModstamp", "datetime")],
    )
    before, after = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    held = [("a", "x", None), ("b", "y", 1.0), ("c", None, 2.0), ("e", None, None)]
    with StagedLoad(engine, table, ["id"], "old") as load:
        load.append(_frame(held, "old", before))
        with engine.begin() as conn:
            load.merge(conn)
    staged = [
        ("a", "changed", None),  # then staged again as it was: its last version counts
        ("a", "x", None),
        ("b", "y", 3.0),  # a value changed
        ("c", None, 2.0),  # NULL equals NULL
        ("d", "new", None),  # not held yet
        ("e", "now set", None),  # NULL became a value
    ]
    with StagedLoad(engine, table, ["id"], "new") as load:
        load.append(_frame(staged, "new", after))
        with engine.begin() as conn:
            kept = load.keep_unchanged(conn, ["title", "score"], AUDIT_COLUMNS)
            load.merge(conn)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, sync_run_id, systemmodstamp FROM crm_things"))
        merged = {r.id: (r.sync_run_id, utc(r.systemmodstamp)) for r in rows}
    assert kept == 2
    assert merged == {
        "a": ("old", after),
        "b": ("new", after),
        "c": ("old", after),
        "d": ("new", after),
        "e": ("new", after),
    }


# --- a pushed record read back by the next syncs ---------------------------------------------


@pytest.fixture
def home(
    tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch, warehouse_url: str
) -> ActonHome:
    return make_home(tmp_path / "home", small_crm, monkeypatch, warehouse_url)


def test_a_pushed_record_read_back_keeps_its_run_down_to_acton_contacts(home: ActonHome) -> None:
    full = run_full_sync(home)
    assert full.success
    engine = warehouse_engine(home.warehouse_url)
    echoed, changed = fetch_ids(home.sandbox_db, "Lead", "IsDeleted = 0 AND IsConverted = 0", 2)
    old_score = fetch_record(home.sandbox_db, "Lead", echoed)["ActOn_Score__c"]
    score = 7.0 if old_score != 7.0 else 8.0
    stamp_before = stamp_in_crm(home, echoed)

    # What the push does: write the CRM through its API, then set the accepted value in the
    # mirror itself. Another Lead is changed in the CRM by someone else meanwhile.
    with SalesforceResource().connect() as crm:
        crm.sf.Lead.update(echoed, {"ActOn_Score__c": score})
        crm.sf.Lead.update(changed, {"Title": NEW_TITLE})
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE crm_leads SET acton_score__c = :score WHERE id = :id"),
            {"score": score, "id": echoed},
        )
    stamp_after = stamp_in_crm(home, echoed)
    assert stamp_after > stamp_before

    incremental = run_scheduled_incremental(home)
    assert incremental.success
    mirror = "SELECT * FROM crm_leads WHERE id = :id"
    echo_row = one_row(engine, mirror, id=echoed)
    assert utc(echo_row["systemmodstamp"]) == stamp_after
    assert echo_row["acton_score__c"] == score
    assert echo_row["sync_run_id"] == full.run_id
    changed_row = one_row(engine, mirror, id=changed)
    assert (changed_row["title"], changed_row["sync_run_id"]) == (NEW_TITLE, incremental.run_id)
    with engine.connect() as conn:
        new_run = conn.execute(
            text("SELECT id FROM crm_leads WHERE sync_run_id = :run"), {"run": incremental.run_id}
        ).all()
    assert [r.id for r in new_run] == [changed]
    run = one_row(
        engine,
        "SELECT mode, rows_read, rows_unchanged FROM sync_runs WHERE object = 'crm_leads' "
        "AND run_id = :run",
        run=incremental.run_id,
    )
    assert run["mode"] == "incremental"
    assert run["rows_unchanged"] >= 1 and run["rows_unchanged"] == run["rows_read"] - 1

    contact = "SELECT sync_run_id, job_title FROM acton_contacts WHERE external_id = :id"
    assert one_row(engine, contact, id=echoed)["sync_run_id"] == full.run_id
    assert one_row(engine, contact, id=changed) == {
        "sync_run_id": incremental.run_id,
        "job_title": NEW_TITLE,
    }

    # A full sync reads everything again: nothing changed, so no mirror row takes its run,
    # and acton_contacts is rebuilt in full all the same.
    again = run_full_sync(home)
    assert again.success
    with engine.connect() as conn:
        for table in CRM_TABLES:
            taken = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE sync_run_id = :run"),
                {"run": again.run_id},
            ).scalar_one()
            assert taken == 0, table
        runs = conn.execute(
            text(
                "SELECT object, mode, rows_upserted, rows_unchanged FROM sync_runs "
                "WHERE run_id = :run"
            ),
            {"run": again.run_id},
        ).all()
        rebuilt = conn.execute(
            text(
                "SELECT count(*) FROM acton_contacts WHERE sync_run_id <> :run "
                "OR sync_run_id IS NULL"
            ),
            {"run": again.run_id},
        ).scalar_one()
    by_object = {r.object: r for r in runs}
    for table in CRM_TABLES:
        assert by_object[table].mode == "full"
        assert by_object[table].rows_unchanged == by_object[table].rows_upserted > 0, table
    assert by_object["acton_contacts"].mode == "full"
    assert rebuilt == 0
