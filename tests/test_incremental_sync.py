"""Incremental syncs: after CRM churn they give the tables a fresh full sync gives, read about
as many records as changed, propagate deletions and conversions, and re-run idempotently."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, Definitions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.runs.partitions import incremental_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.tables import opt_outs
from crm_sandbox import SandboxServer, SeedSummary, churn_sandbox
from crm_sandbox.replication import INVALID_REPLICATION_DATE, LATE_EARLIEST_DATE
from crm_sandbox.store import to_storage_datetime
from tests.conftest import (
    ActonHome,
    home_definitions,
    home_resources,
    make_home,
    run_full_sync,
    run_incremental_sync,
)
from tests.warehouse_contents import table_contents

# Tables whose contents depend on the CRM alone (sync_runs and sync_deletions are history).
DERIVED_TABLES = (
    "crm_leads",
    "crm_contacts",
    "crm_accounts",
    "crm_users",
    "crm_opportunities",
    "acton_contacts",
    "acton_contact_rejects",
    "contact_scores",
    "segments",
    "segment_members",
    "duplicate_emails",
)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def rows(home: ActonHome, sql: str, **params: object) -> list[tuple]:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def crm(home: ActonHome, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(home.sandbox_db) as conn:
        return conn.execute(sql, params).fetchall()


def copy_opt_out_list(home: ActonHome, into: ActonHome) -> None:
    """Give ``into``'s warehouse ``home``'s opt-out list."""
    with warehouse_engine(home.warehouse_url).connect() as conn:
        listed = [dict(r) for r in conn.execute(select(opt_outs)).mappings()]
    engine = warehouse_engine(into.warehouse_url)
    ensure_table(engine, opt_outs)
    if listed:
        with engine.begin() as conn:
            conn.execute(opt_outs.insert(), listed)


def fresh_full_sync_of(home: ActonHome, root: Path, monkeypatch: pytest.MonkeyPatch) -> ActonHome:
    """A second home over a copy of ``home``'s (churned) CRM, fully synced from scratch. It
    starts with ``home``'s opt-out list, Act-On-side state no CRM read rebuilds: an address
    stays on the list (and its contacts opted out) after the CRM clears its flag."""
    fresh = ActonHome(path=root, sandbox_db=root / "sandbox" / "crm.sqlite", seed=home.seed)
    fresh.sandbox_db.parent.mkdir(parents=True)
    fresh.sandbox_db.write_bytes(home.sandbox_db.read_bytes())
    copy_opt_out_list(home, fresh)
    monkeypatch.setenv("ACTON_HOME", str(root))
    assert run_full_sync(fresh).success
    monkeypatch.setenv("ACTON_HOME", str(home.path))
    return fresh


# The CRM read through REST query, and through Bulk API 2.0 query jobs (queryAll for the
# incremental window, as REST's queryAll).
@pytest.mark.parametrize("crm_read", ["rest", "bulk"])
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    seed=st.integers(min_value=0, max_value=10_000),
    updates=st.integers(min_value=0, max_value=40),
    creates=st.integers(min_value=0, max_value=15),
    deletes=st.integers(min_value=0, max_value=8),
    converts=st.integers(min_value=0, max_value=6),
)
def test_incremental_after_churn_equals_a_fresh_full_sync(
    tmp_path_factory: pytest.TempPathFactory,
    small_crm: SeedSummary,
    crm_read: str,
    seed: int,
    updates: int,
    creates: int,
    deletes: int,
    converts: int,
) -> None:
    root = tmp_path_factory.mktemp("churn")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("ACTON_CRM_READ", crm_read)
        home = make_home(root / "incremental", small_crm, monkeypatch)
        assert run_full_sync(home).success
        churn_sandbox(
            home.sandbox_db,
            updates=updates,
            creates=creates,
            deletes=deletes,
            converts=converts,
            seed=seed,
        )
        assert run_incremental_sync(home, today()).success
        fresh = fresh_full_sync_of(home, root / "fresh", monkeypatch)
    incremental = table_contents(home.warehouse_url, DERIVED_TABLES)
    full = translated_ids(table_contents(fresh.warehouse_url, DERIVED_TABLES), renamed_ids(home))
    for name in DERIVED_TABLES:
        assert incremental[name] == full[name], name


def renamed_ids(home: ActonHome) -> dict[str, str]:
    """A contact keeps its id for life: where a fresh warehouse would name a contact otherwise
    (a Lead converted into an existing Contact), ``home``'s contact_id_changes says how
    (fresh id -> ``home``'s id)."""
    return dict(
        rows(
            home,
            "SELECT old_contact_id, new_contact_id FROM contact_id_changes "
            "WHERE old_contact_id <> new_contact_id",
        )
    )


def translated_ids(
    contents: dict[str, tuple[list[str], list[tuple]]], renamed: dict[str, str]
) -> dict[str, tuple[list[str], list[tuple]]]:
    """``contents`` with every contact id column's values renamed (old -> new)."""
    translated = {}
    for name, (columns, table_rows) in contents.items():
        at = [i for i, c in enumerate(columns) if c in ("contact_id", "kept_contact_id")]
        new_rows = [
            tuple(renamed.get(v, v) if i in at else v for i, v in enumerate(row))
            for row in table_rows
        ]
        translated[name] = (columns, sorted(new_rows, key=repr))
    return translated


def test_an_incremental_run_reads_about_what_changed(synced_home: ActonHome) -> None:
    summary = churn_sandbox(synced_home.sandbox_db, updates=12, creates=5, deletes=3, converts=2)
    assert run_incremental_sync(synced_home, today()).success
    changed = crm(
        synced_home,
        "SELECT count(*) FROM (SELECT SystemModstamp FROM Lead UNION ALL "
        "SELECT SystemModstamp FROM Contact UNION ALL SELECT SystemModstamp FROM Account "
        "UNION ALL SELECT SystemModstamp FROM Opportunity UNION ALL SELECT SystemModstamp "
        "FROM User) WHERE SystemModstamp >= ?",
        to_storage_datetime(summary.now),
    )[0][0]
    runs = rows(
        synced_home,
        "SELECT object, mode, rows_read FROM sync_runs WHERE object LIKE 'crm%' "
        "AND mode = 'incremental'",
    )
    assert {mode for _, mode, _ in runs} == {"incremental"} and len(runs) == 5
    assert sum(read for *_, read in runs) == changed
    (all_records,) = crm(synced_home, "SELECT count(*) FROM Lead")[0]
    assert changed < all_records / 10


def test_the_schema_check_of_an_incremental_run_checks_the_rows_it_wrote(
    synced_home: ActonHome,
) -> None:
    # Not a sample of the whole table: what this run wrote is what it can have broken, and the
    # check then costs the same however large acton_contacts grows.
    churn_sandbox(synced_home.sandbox_db, updates=12, creates=5, deletes=0, converts=0)
    result = run_incremental_sync(synced_home, today())
    assert result.success

    written = rows(
        synced_home,
        "SELECT count(*) FROM acton_contacts WHERE sync_run_id = :run",
        run=result.run_id,
    )[0][0]
    everyone = rows(synced_home, "SELECT count(*) FROM acton_contacts")[0][0]
    schema = next(
        e for e in result.get_asset_check_evaluations() if e.check_name == "acton_contacts_schema"
    )
    assert schema.passed
    assert 0 < written < everyone
    assert schema.metadata["rows_checked"].value == written


def test_deletions_reach_acton_contacts_and_are_listed(synced_home: ActonHome) -> None:
    summary = churn_sandbox(synced_home.sandbox_db, updates=0, creates=0, deletes=6, converts=0)
    deleted = {i for ids in summary.deleted.values() for i in ids}
    deleted_people = set(summary.deleted.get("Lead", []) + summary.deleted.get("Contact", []))
    assert deleted_people
    assert run_incremental_sync(synced_home, today()).success
    remaining = (
        rows(
            synced_home,
            "SELECT external_id FROM acton_contacts WHERE external_id IN :ids",
            ids=tuple(deleted_people),
        )
        if False
        else [
            r
            for r in rows(synced_home, "SELECT external_id FROM acton_contacts")
            if r[0] in deleted_people
        ]
    )
    assert remaining == []
    listed = rows(
        synced_home,
        "SELECT object, record_id, detected_by FROM sync_deletions WHERE detected_by = "
        "'deleted_in_crm'",
    )
    assert {record_id for _, record_id, _ in listed} == deleted
    scores = [
        r
        for r in rows(synced_home, "SELECT contact_id FROM contact_scores")
        if r[0] in deleted_people
    ]
    assert scores == []


def test_a_converted_lead_continues_as_its_contact(synced_home: ActonHome) -> None:
    summary = churn_sandbox(synced_home.sandbox_db, updates=0, creates=0, deletes=0, converts=4)
    into_new = [c for c in summary.conversions if c.new_contact]
    assert into_new
    conversion = into_new[0]
    before = rows(
        synced_home,
        "SELECT contact_id, record_type FROM acton_contacts WHERE external_id = :lead",
        lead=conversion.lead_id,
    )
    assert before == [(conversion.lead_id, "Lead")]
    assert run_incremental_sync(synced_home, today()).success
    after = rows(
        synced_home,
        "SELECT contact_id, external_id, record_type FROM acton_contacts "
        "WHERE contact_id = :lead OR external_id IN (:lead, :contact)",
        lead=conversion.lead_id,
        contact=conversion.contact_id,
    )
    assert after == [(conversion.lead_id, conversion.contact_id, "Contact")]


def test_equal_timestamps_at_a_window_edge_are_not_missed(synced_home: ActonHome) -> None:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (midnight - timedelta(days=1)).date().isoformat()
    leads = [
        r[0]
        for r in crm(
            synced_home,
            "SELECT Id FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 ORDER BY Id LIMIT 3",
        )
    ]
    edge, before_edge, at_edge_too = leads
    with sqlite3.connect(synced_home.sandbox_db) as conn:
        for lead_id, stamp, title in (
            (edge, midnight, "Edge"),
            (at_edge_too, midnight, "Edge too"),
            (before_edge, midnight - timedelta(milliseconds=1), "Before edge"),
        ):
            conn.execute(
                "UPDATE Lead SET Title = ?, SystemModstamp = ? WHERE Id = ?",
                (title, to_storage_datetime(stamp), lead_id),
            )
    titles = "SELECT external_id, job_title FROM acton_contacts WHERE external_id IN (:a, :b, :c)"
    assert run_incremental_sync(synced_home, yesterday).success
    after_yesterday = dict(rows(synced_home, titles, a=edge, b=before_edge, c=at_edge_too))
    assert after_yesterday[before_edge] == "Before edge"
    assert after_yesterday[edge] != "Edge" and after_yesterday[at_edge_too] != "Edge too"
    assert run_incremental_sync(synced_home, today()).success
    after_today = dict(rows(synced_home, titles, a=edge, b=before_edge, c=at_edge_too))
    assert after_today == {edge: "Edge", at_edge_too: "Edge too", before_edge: "Before edge"}


def test_an_old_last_sync_turns_the_incremental_run_into_a_full_sync(
    synced_home: ActonHome,
) -> None:
    with warehouse_engine(synced_home.warehouse_url).begin() as conn:
        conn.execute(
            text("UPDATE sync_runs SET started_at = :old"),
            {"old": datetime.now(UTC) - timedelta(days=20)},
        )
    assert run_incremental_sync(synced_home, today()).success
    modes = dict(
        rows(
            synced_home,
            "SELECT object, mode FROM sync_runs WHERE started_at > :recent",
            recent=datetime.now(UTC) - timedelta(days=1),
        )
    )
    assert modes["crm_leads"] == modes["crm_contacts"] == "full"
    assert modes["acton_contacts"] == "full"


@pytest.mark.parametrize("answer", [INVALID_REPLICATION_DATE, LATE_EARLIEST_DATE])
def test_a_purged_deletion_log_turns_the_incremental_run_into_a_full_sync(
    synced_home: ActonHome, answer: str
) -> None:
    """Both ways a CRM says its deletion log no longer reaches the last sync: HTTP 400
    INVALID_REPLICATION_DATE (Salesforce), or 200 with a later earliestDateAvailable."""
    # The last sync "was" three days ago; since then the recycle bin was emptied.
    with warehouse_engine(synced_home.warehouse_url).begin() as conn:
        conn.execute(
            text("UPDATE sync_runs SET started_at = :old"),
            {"old": datetime.now(UTC) - timedelta(days=3)},
        )
    recent = churn_sandbox(synced_home.sandbox_db, updates=0, creates=0, deletes=2, converts=0)
    emptied = churn_sandbox(
        synced_home.sandbox_db,
        updates=0,
        creates=0,
        deletes=0,
        converts=0,
        retention_days=0,
        now=datetime.now(UTC) + timedelta(seconds=1),
    )
    assert emptied.purged
    cert_dir = synced_home.path / "sandbox" / "certs"  # where sandbox_url looks for the CA
    with SandboxServer(synced_home.sandbox_db, cert_dir, deleted_before_log=answer) as server:
        definitions = home_definitions(synced_home)
        resources = {
            **home_resources(synced_home),
            "crm": SalesforceResource(
                sandbox_url=server.instance_url, retry_initial_wait_seconds=0.01
            ),
        }
        job = Definitions(
            assets=definitions.assets,
            asset_checks=definitions.asset_checks,
            jobs=definitions.jobs,
            resources=resources,
        ).resolve_job_def("incremental_sync")
        result = job.execute_in_process(
            instance=DagsterInstance.ephemeral(),
            tags=incremental_tags(today()),
            raise_on_error=False,
        )
    assert result.success
    synced = {
        obj: (mode, message)
        for obj, mode, message in rows(
            synced_home,
            "SELECT object, mode, message FROM sync_runs WHERE run_id = :run",
            run=result.run_id,
        )
    }
    tables = {
        "Lead": "crm_leads",
        "Contact": "crm_contacts",
        "Account": "crm_accounts",
        "Opportunity": "crm_opportunities",
    }
    reason = "INVALID_REPLICATION_DATE" if answer == INVALID_REPLICATION_DATE else "starts at"
    # Deletions made after the last sync and purged since: the log no longer holds them, so
    # each object with such a deletion was read in full, saying why, and lost those records.
    assert recent.deleted
    for crm_object, ids in recent.deleted.items():
        assert crm_object in emptied.purged
        mode, message = synced[tables[crm_object]]
        assert mode == "full", crm_object
        assert "read in full instead of incrementally" in message and reason in message
        left = rows(
            synced_home,
            f"SELECT id FROM {tables[crm_object]} WHERE id IN ({', '.join(repr(i) for i in ids)})",
        )
        assert left == [], crm_object
    assert synced["acton_contacts"][0] == "full"


def test_re_running_a_partition_changes_nothing(synced_home: ActonHome) -> None:
    churn_sandbox(synced_home.sandbox_db, updates=10, creates=4, deletes=3, converts=2, seed=5)
    assert run_incremental_sync(synced_home, today()).success
    once = table_contents(synced_home.warehouse_url, DERIVED_TABLES)
    assert run_incremental_sync(synced_home, today()).success
    assert table_contents(synced_home.warehouse_url, DERIVED_TABLES) == once
