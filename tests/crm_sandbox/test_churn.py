"""The churn: realistic CRM changes, stamped like the platform stamps them, seen through the API.

Expectations come from reading the SQLite file directly (before and after the churn); what the
pipeline sees goes through simple-salesforce over HTTPS.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce

from crm_sandbox import ChurnSummary, SandboxServer, SeedSummary, churn_sandbox
from crm_sandbox.ids import is_valid_id
from crm_sandbox.objects import LEAD
from crm_sandbox.store import to_storage_datetime
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db

CHURN_NOW = SEED_NOW + timedelta(days=1)
STAMP = to_storage_datetime(CHURN_NOW)
_OBJECTS = ("Lead", "Contact", "Account", "Opportunity")
_AUDIT = {"CreatedDate", "LastModifiedDate", "SystemModstamp"}


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def _row(conn: sqlite3.Connection, table: str, record_id: str) -> dict[str, Any] | None:
    row = conn.execute(f'SELECT * FROM "{table}" WHERE "Id" = ?', (record_id,)).fetchone()
    return None if row is None else dict(row)


def _existing(conn: sqlite3.Connection, table: str, record_id: str) -> dict[str, Any]:
    row = _row(conn, table, record_id)
    assert row is not None, f"{table} {record_id} is missing"
    return row


def _in_clause(ids: list[str]) -> str:
    return "(" + ", ".join(f"'{i}'" for i in ids) + ")"


@pytest.fixture(scope="module")
def before(seeded: SeedSummary, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database as it was before the module's churn."""
    return copy_db(seeded, tmp_path_factory.mktemp("churn-before"))


@pytest.fixture(scope="module")
def churned(before: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ChurnSummary]:
    """A copy of ``before`` churned once at CHURN_NOW (enough deletes to delete Accounts)."""
    path = tmp_path_factory.mktemp("churned") / "crm.sqlite"
    shutil.copyfile(before, path)
    summary = churn_sandbox(path, deletes=60, seed=3, now=CHURN_NOW)
    return path, summary


@pytest.fixture(scope="module")
def summary(churned: tuple[Path, ChurnSummary]) -> ChurnSummary:
    return churned[1]


@pytest.fixture(scope="module")
def db(churned: tuple[Path, ChurnSummary]) -> Iterator[sqlite3.Connection]:
    conn = _connect(churned[0])
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def old_db(before: Path) -> Iterator[sqlite3.Connection]:
    conn = _connect(before)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def churn_sf(churned: tuple[Path, ChurnSummary], cert_dir: Path) -> Iterator[Salesforce]:
    clock = FakeClock(CHURN_NOW + timedelta(minutes=10))
    with SandboxServer(churned[0], cert_dir, clock=clock) as running:
        yield client_for(running)


# --- determinism -----------------------------------------------------------------------------


def test_same_file_seed_and_now_give_identical_results(before: Path, tmp_path: Path) -> None:
    paths = [tmp_path / name for name in ("a.sqlite", "b.sqlite", "c.sqlite")]
    for path in paths:
        shutil.copyfile(before, path)

    first = churn_sandbox(paths[0], seed=5, now=CHURN_NOW)
    second = churn_sandbox(paths[1], seed=5, now=CHURN_NOW)
    other = churn_sandbox(paths[2], seed=6, now=CHURN_NOW)

    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert first.counts == second.counts
    assert first.updated == second.updated and first.conversions == second.conversions
    assert other.updated != first.updated


def test_counts_follow_the_arguments(summary: ChurnSummary) -> None:
    counts = summary.counts

    assert sum(counts["updated"].values()) == 50
    assert sum(counts["created"].values()) == 20
    assert counts["converted"]["Lead"] == len(summary.conversions) == 5
    cascaded = sum(len(ids) for ids in summary.cascaded.values())
    assert sum(counts["deleted"].values()) == 60 + cascaded
    assert summary.deleted.get("Account"), "the churn must delete Accounts to test cascades"
    text = str(summary)
    assert "updated: " in text and "purged" in text and str(summary.db_path) in text


# --- stamps ----------------------------------------------------------------------------------


def test_every_change_moves_system_modstamp_to_now(
    summary: ChurnSummary, db: sqlite3.Connection
) -> None:
    for kind in ("updated", "created", "converted", "deleted"):
        for table, ids in summary.ids(kind).items():
            rows = db.execute(
                f'SELECT "SystemModstamp", "LastModifiedDate" FROM "{table}" '
                f'WHERE "Id" IN {_in_clause(ids)}'
            ).fetchall()
            assert len(rows) == len(ids), (kind, table)
            assert {(r[0], r[1]) for r in rows} == {(STAMP, STAMP)}, (kind, table)


def test_nothing_else_moves(summary: ChurnSummary, db: sqlite3.Connection) -> None:
    for table in _OBJECTS:
        stamped = {
            r[0]
            for r in db.execute(f'SELECT "Id" FROM "{table}" WHERE "SystemModstamp" = ?', (STAMP,))
        }
        expected = summary.live_changed(table) | set(summary.deleted.get(table, []))
        assert stamped == expected, table


def test_kinds_touch_distinct_records(summary: ChurnSummary) -> None:
    for table in _OBJECTS:
        seen: list[str] = []
        for kind in ("updated", "created", "converted", "deleted"):
            seen.extend(summary.ids(kind).get(table, []))
        assert len(seen) == len(set(seen)), table


# --- updates ---------------------------------------------------------------------------------


_EDITABLE = {
    "Lead": {
        "Title",
        "Phone",
        "Email",
        "Interests__c",
        "HasOptedOutOfEmail",
        "Newsletter__c",
        "ActOn_Score__c",
    },
    "Contact": {
        "Title",
        "Phone",
        "Email",
        "Interests__c",
        "HasOptedOutOfEmail",
        "Newsletter__c",
        "ActOn_Score__c",
    },
    "Account": {"Type", "Industry", "Name"},
    "Opportunity": {"StageName", "IsWon", "IsClosed", "CloseDate"},
}


def test_updates_change_realistic_fields(
    summary: ChurnSummary, db: sqlite3.Connection, old_db: sqlite3.Connection
) -> None:
    changed_fields: set[str] = set()
    for table, ids in summary.updated.items():
        for record_id in ids:
            old, new = _row(old_db, table, record_id), _row(db, table, record_id)
            assert old is not None and new is not None
            assert new["IsDeleted"] == 0
            diff = {k for k in new if new[k] != old[k]} - _AUDIT
            assert diff <= _EDITABLE[table], (table, diff)
            changed_fields |= {f"{table}.{name}" for name in diff}
            if table == "Opportunity":
                assert old["IsClosed"] == 0  # closed deals are left alone
                assert new["IsWon"] == int(new["StageName"] == "Closed Won")
                assert new["IsClosed"] == int(new["StageName"] in ("Closed Won", "Closed Lost"))
            if table == "Lead":
                assert old["IsConverted"] == 0  # converted Leads are read-only
    assert set(summary.updated) == set(_OBJECTS)
    for expected in ("Email", "Title", "Interests__c"):
        assert any(name.endswith("." + expected) for name in changed_fields), expected
    assert "Opportunity.StageName" in changed_fields
    assert changed_fields & {"Account.Type", "Account.Industry", "Account.Name"}


def test_some_email_edits_are_malformed(
    before: Path, old_db: sqlite3.Connection, tmp_path: Path
) -> None:
    path = tmp_path / "crm.sqlite"
    shutil.copyfile(before, path)

    result = churn_sandbox(path, updates=400, creates=0, deletes=0, converts=0, now=CHURN_NOW)

    conn = _connect(path)
    try:
        edited = []
        for table in ("Lead", "Contact"):
            for record_id in result.updated.get(table, []):
                old = _row(old_db, table, record_id)
                new = _row(conn, table, record_id)
                assert old is not None and new is not None
                if new["Email"] != old["Email"]:
                    edited.append(new["Email"])
    finally:
        conn.close()
    good = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    assert any(not good.match(e) for e in edited)
    assert any(good.match(e) for e in edited)


# --- creates ---------------------------------------------------------------------------------


def test_created_records_get_fresh_ids_and_now_as_created_date(
    summary: ChurnSummary, db: sqlite3.Connection, old_db: sqlite3.Connection
) -> None:
    assert set(summary.created) == set(_OBJECTS)
    for table, ids in summary.created.items():
        for record_id in ids:
            assert is_valid_id(record_id)
            assert _row(old_db, table, record_id) is None, "Id collision with an existing record"
            row = _row(db, table, record_id)
            assert row is not None
            assert row["CreatedDate"] == STAMP and row["IsDeleted"] == 0
    assert any(_existing(db, "Contact", i)["AccountId"] for i in summary.created["Contact"])


def test_ids_keep_counting_across_churns(before: Path, tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    shutil.copyfile(before, path)

    first = churn_sandbox(path, creates=30, now=CHURN_NOW)
    second = churn_sandbox(path, creates=30, now=CHURN_NOW + timedelta(hours=1))

    for table in _OBJECTS:
        a, b = first.created.get(table, []), second.created.get(table, [])
        assert not set(a) & set(b), table


# --- deletes ---------------------------------------------------------------------------------


def test_deletes_are_soft_and_visible_to_query_all_only(
    summary: ChurnSummary, churn_sf: Salesforce
) -> None:
    for table, ids in summary.deleted.items():
        soql = f"SELECT Id, IsDeleted, SystemModstamp FROM {table} WHERE Id IN {_in_clause(ids)}"

        live = churn_sf.query_all(soql)
        everything = churn_sf.query_all(soql, include_deleted=True)

        assert live["records"] == [], table
        assert {r["Id"] for r in everything["records"]} == set(ids), table
        assert {r["IsDeleted"] for r in everything["records"]} == {True}
        assert {r["SystemModstamp"] for r in everything["records"]} == {
            CHURN_NOW.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        }


def test_deleting_an_account_deletes_its_contacts_and_opportunities(
    summary: ChurnSummary, db: sqlite3.Connection, old_db: sqlite3.Connection
) -> None:
    accounts = summary.deleted["Account"]
    children = 0
    for table in ("Contact", "Opportunity"):
        before_live = {
            r[0]
            for r in old_db.execute(
                f'SELECT "Id" FROM "{table}" WHERE "IsDeleted" = 0 '
                f'AND "AccountId" IN {_in_clause(accounts)}'
            )
        }
        assert before_live <= set(summary.deleted.get(table, []))
        assert set(summary.cascaded.get(table, [])) == before_live
        still_live = db.execute(
            f'SELECT COUNT(*) FROM "{table}" WHERE "IsDeleted" = 0 '
            f'AND "AccountId" IN {_in_clause(accounts)}'
        ).fetchone()[0]
        assert still_live == 0
        children += len(before_live)
    assert children > 0, "the deleted Accounts had no children: the cascade went untested"


def test_deletion_time_is_not_an_api_field(summary: ChurnSummary, churn_sf: Salesforce) -> None:
    names = [f["name"] for f in churn_sf.Lead.describe()["fields"]]
    lead_id = summary.deleted["Lead"][0]

    found = churn_sf.query_all(
        f"SELECT {', '.join(names)} FROM Lead WHERE Id = '{lead_id}'", include_deleted=True
    )

    assert names == [f.name for f in LEAD.fields]
    (record,) = found["records"]
    assert set(record) == {"attributes", *names}
    assert record["IsDeleted"] is True


# --- conversions -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def conversions(
    before: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, ChurnSummary]:
    """A churn doing only conversions, on a file where every Lead shares a Contact's email.

    Sharing emails makes the "existing Contact" path reachable for every Lead the churn picks;
    which path each conversion takes is then the churn's own coin flip.
    """
    folder = tmp_path_factory.mktemp("conversions")
    prepared, path = folder / "prepared.sqlite", folder / "crm.sqlite"
    shutil.copyfile(before, prepared)
    conn = _connect(prepared)
    with conn:
        contacts = [
            r[0]
            for r in conn.execute(
                'SELECT "Email" FROM "Contact" WHERE "IsDeleted" = 0 AND "Email" LIKE \'%_@_%._%\' '
                'ORDER BY "Id"'
            )
        ]
        leads = [r[0] for r in conn.execute('SELECT "Id" FROM "Lead" ORDER BY "Id"')]
        conn.executemany(
            'UPDATE "Lead" SET "Email" = ? WHERE "Id" = ?',
            [(contacts[i % len(contacts)].upper(), lead) for i, lead in enumerate(leads)],
        )
    conn.close()
    shutil.copyfile(prepared, path)
    result = churn_sandbox(
        path, updates=0, creates=0, deletes=0, converts=30, seed=11, now=CHURN_NOW
    )
    return prepared, path, result


def test_conversion_marks_the_lead_and_keeps_it(
    conversions: tuple[Path, Path, ChurnSummary],
) -> None:
    prepared, path, result = conversions
    conn, old = _connect(path), _connect(prepared)
    try:
        assert len(result.conversions) == 30
        for c in result.conversions:
            assert _existing(old, "Lead", c.lead_id)["IsConverted"] == 0
            lead = _row(conn, "Lead", c.lead_id)
            assert lead is not None and lead["IsDeleted"] == 0
            assert lead["IsConverted"] == 1
            assert lead["Status"] == "Closed - Converted"
            assert lead["ConvertedDate"] == CHURN_NOW.date().isoformat()
            assert lead["ConvertedContactId"] == c.contact_id
            assert lead["ConvertedAccountId"] == c.account_id
            assert lead["ConvertedOpportunityId"] == c.opportunity_id
            assert lead["SystemModstamp"] == STAMP
            contact = _row(conn, "Contact", c.contact_id)
            assert contact is not None and contact["IsDeleted"] == 0
            assert contact["AccountId"] == c.account_id
            assert contact["Email"].lower() == lead["Email"].lower()
            assert contact["SystemModstamp"] == STAMP
            account = _row(conn, "Account", c.account_id)
            assert account is not None and account["IsDeleted"] == 0
            if c.new_account:
                assert account["Name"] == lead["Company"] and account["CreatedDate"] == STAMP
            if c.opportunity_id:
                opportunity = _row(conn, "Opportunity", c.opportunity_id)
                assert opportunity is not None and opportunity["AccountId"] == c.account_id
    finally:
        conn.close()
        old.close()


def test_conversion_creates_new_contacts_or_reuses_existing_ones(
    conversions: tuple[Path, Path, ChurnSummary],
) -> None:
    prepared, path, result = conversions
    conn, old = _connect(path), _connect(prepared)
    try:
        new = [c for c in result.conversions if c.new_contact]
        existing = [c for c in result.conversions if not c.new_contact]
        assert new and existing
        for c in new:
            assert _row(old, "Contact", c.contact_id) is None
            contact, lead = _row(conn, "Contact", c.contact_id), _row(conn, "Lead", c.lead_id)
            assert contact is not None and lead is not None
            assert contact["CreatedDate"] == STAMP
            assert (contact["FirstName"], contact["LastName"]) == (
                lead["FirstName"],
                lead["LastName"],
            )
            assert contact["MailingCity"] == lead["City"]
            assert contact["OwnerId"].startswith("005")  # never a queue
        for c in existing:
            contact = _row(old, "Contact", c.contact_id)
            assert contact is not None and contact["CreatedDate"] < STAMP
            lead = _existing(conn, "Lead", c.lead_id)
            assert contact["Email"].lower() == lead["Email"].lower()
            assert c.new_account == (contact["AccountId"] is None)
    finally:
        conn.close()
        old.close()


# --- purge -----------------------------------------------------------------------------------


def test_purge_hard_deletes_after_retention(before: Path, tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    shutil.copyfile(before, path)
    first = churn_sandbox(path, updates=0, creates=0, converts=0, deletes=20, now=CHURN_NOW)

    kept = churn_sandbox(
        path, updates=0, creates=0, converts=0, deletes=0, now=CHURN_NOW + timedelta(days=14)
    )
    purged = churn_sandbox(
        path, updates=0, creates=0, converts=0, deletes=0, now=CHURN_NOW + timedelta(days=16)
    )

    for table, ids in first.deleted.items():
        assert not set(ids) & set(kept.purged.get(table, [])), table
        assert set(ids) <= set(purged.purged.get(table, [])), table
    conn = _connect(path)
    try:
        for table, ids in first.deleted.items():
            left = conn.execute(
                f'SELECT COUNT(*) FROM "{table}" WHERE "Id" IN {_in_clause(ids)}'
            ).fetchone()[0]
            assert left == 0, table
    finally:
        conn.close()


def test_seeded_deletions_older_than_retention_are_purged(
    summary: ChurnSummary, old_db: sqlite3.Connection, db: sqlite3.Connection
) -> None:
    cutoff = to_storage_datetime(CHURN_NOW - timedelta(days=15))
    for table in _OBJECTS:
        expected = {
            r[0]
            for r in old_db.execute(
                f'SELECT "Id" FROM "{table}" WHERE "IsDeleted" = 1 AND "SystemModstamp" < ?',
                (cutoff,),
            )
        }
        assert set(summary.purged.get(table, [])) == expected, table
        assert not db.execute(
            f'SELECT 1 FROM "{table}" WHERE "Id" IN {_in_clause(sorted(expected))}'
        ).fetchone()
    assert sum(len(ids) for ids in summary.purged.values()) > 0


def test_bad_arguments_are_refused(before: Path, tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    shutil.copyfile(before, path)

    with pytest.raises(ValueError, match="negative"):
        churn_sandbox(path, deletes=-1, now=CHURN_NOW)
    with pytest.raises(ValueError, match="timezone"):
        churn_sandbox(path, now=CHURN_NOW.replace(tzinfo=None))
    with pytest.raises(FileNotFoundError):
        churn_sandbox(tmp_path / "missing.sqlite", now=CHURN_NOW)
