"""The whole asset graph against the sandbox CRM into a temporary warehouse, on SQLite and on
PostgreSQL.

Expected counts come from the sandbox's own SQLite file, read directly.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from acton_pipelines.mapping.models import DEFAULT_SEGMENTS
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SeedSummary
from tests.conftest import ActonHome, fresh_postgres_database, make_home, run_full_sync

# What the seed's malformed addresses look like: exactly one @, no spaces or commas, and a dot
# in the domain is what a well-formed one has.
WELL_FORMED = re.compile(r"[^@\s,]+@[^@\s,]+\.[^@\s,]+")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    small_crm: SeedSummary,
) -> Iterator[ActonHome]:
    """One full sync per backend, shared by the module's tests."""
    with contextlib.ExitStack() as stack:
        warehouse = None
        if request.param == "postgresql":
            server = request.getfixturevalue("postgres_server")
            url = stack.enter_context(fresh_postgres_database(server))
            warehouse = url.render_as_string(hide_password=False)
        monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
        home = make_home(tmp_path_factory.mktemp("synced"), small_crm, monkeypatch, warehouse)
        assert run_full_sync(home).success
        yield home


def crm_rows(home: ActonHome, sql: str) -> list[tuple]:
    with sqlite3.connect(home.sandbox_db) as conn:
        return conn.execute(sql).fetchall()


def warehouse_rows(home: ActonHome, sql: str) -> list[tuple]:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_every_unconverted_lead_and_every_contact_is_an_acton_contact(synced: ActonHome) -> None:
    leads = crm_rows(synced, "SELECT Id FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0")
    contacts = crm_rows(synced, "SELECT Id FROM Contact WHERE IsDeleted = 0")
    stored = warehouse_rows(synced, "SELECT external_id, record_type FROM acton_contacts")
    assert sorted(stored) == sorted(
        [(i, "Lead") for (i,) in leads] + [(i, "Contact") for (i,) in contacts]
    )


def test_converted_and_deleted_leads_are_not_contacts(synced: ActonHome) -> None:
    gone = crm_rows(synced, "SELECT Id FROM Lead WHERE IsConverted = 1 OR IsDeleted = 1")
    assert len(gone) > 0
    ids = {i for (i,) in gone}
    stored = {i for (i,) in warehouse_rows(synced, "SELECT external_id FROM acton_contacts")}
    assert not ids & stored


def test_crm_mirror_tables_hold_every_live_record(synced: ActonHome) -> None:
    for crm_object, table in (
        ("Lead", "crm_leads"),
        ("Contact", "crm_contacts"),
        ("Account", "crm_accounts"),
        ("Opportunity", "crm_opportunities"),
    ):
        (expected,) = crm_rows(synced, f"SELECT count(*) FROM {crm_object} WHERE IsDeleted = 0")[0]
        assert warehouse_rows(synced, f"SELECT count(*) FROM {table}") == [(expected,)], table
    (users,) = crm_rows(synced, "SELECT count(*) FROM User")[0]
    assert warehouse_rows(synced, "SELECT count(*) FROM crm_users") == [(users,)]


def test_the_seeded_malformed_emails_are_quarantined(synced: ActonHome) -> None:
    every = crm_rows(synced, "SELECT Email FROM Lead UNION ALL SELECT Email FROM Contact")
    malformed_everywhere = [e for (e,) in every if e and not WELL_FORMED.fullmatch(e)]
    assert len(malformed_everywhere) == synced.seed.malformed_emails  # the test's own predicate

    live = crm_rows(
        synced,
        "SELECT Id, Email FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 "
        "UNION ALL SELECT Id, Email FROM Contact WHERE IsDeleted = 0",
    )
    expected = sorted((i, e) for i, e in live if e and not WELL_FORMED.fullmatch(e))
    assert expected, "the seed should have malformed emails on live records"
    rejects = warehouse_rows(
        synced,
        "SELECT external_id, value FROM acton_contact_rejects WHERE field = 'Email'",
    )
    assert sorted(rejects) == expected
    nulls = warehouse_rows(
        synced,
        "SELECT count(*) FROM acton_contacts WHERE email IS NULL AND external_id IN "
        "(SELECT external_id FROM acton_contact_rejects WHERE field = 'Email')",
    )
    assert nulls == [(len(expected),)]


def test_account_owner_and_opportunities_are_linked(synced: ActonHome) -> None:
    (expected,) = crm_rows(
        synced,
        "SELECT count(*) FROM Contact c JOIN Account a ON a.Id = c.AccountId "
        "JOIN Opportunity o ON o.AccountId = a.Id "
        "WHERE c.IsDeleted = 0 AND o.IsDeleted = 0 AND o.IsWon = 1",
    )[0]
    (linked,) = warehouse_rows(
        synced,
        "SELECT sum(won_opportunity_count) FROM acton_contacts WHERE record_type = 'Contact'",
    )[0]
    assert linked == expected
    sample = crm_rows(
        synced,
        "SELECT c.Id, a.Name, a.Type, u.Email FROM Contact c JOIN Account a ON a.Id = c.AccountId "
        "JOIN User u ON u.Id = c.OwnerId WHERE c.IsDeleted = 0 ORDER BY c.Id LIMIT 25",
    )
    stored = {
        r[0]: r[1:]
        for r in warehouse_rows(
            synced,
            "SELECT external_id, company, account_type, owner_email FROM acton_contacts "
            "WHERE record_type = 'Contact'",
        )
    }
    for contact_id, name, account_type, owner_email in sample:
        assert stored[contact_id] == (name, account_type, owner_email)


def test_one_score_per_contact_per_sheet(synced: ActonHome) -> None:
    (contacts,) = warehouse_rows(synced, "SELECT count(*) FROM acton_contacts")[0]
    per_sheet = warehouse_rows(
        synced,
        "SELECT score_sheet, count(DISTINCT contact_id), min(score), max(score) "
        "FROM contact_scores GROUP BY score_sheet ORDER BY score_sheet",
    )
    assert [row[:2] for row in per_sheet] == [("default", contacts), ("fit", contacts)]
    assert all(0 <= low <= high <= 999_999 for _, _, low, high in per_sheet)
    assert any(high > 0 for *_, high in per_sheet)


def test_all_seven_default_segments_have_members(synced: ActonHome) -> None:
    sizes = dict(
        warehouse_rows(synced, "SELECT segment, count(*) FROM segment_members GROUP BY segment")
    )
    (contacts,) = warehouse_rows(synced, "SELECT count(*) FROM acton_contacts")[0]
    (leads,) = crm_rows(
        synced, "SELECT count(*) FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0"
    )[0]
    (without_account,) = crm_rows(
        synced, "SELECT count(*) FROM Contact WHERE IsDeleted = 0 AND AccountId IS NULL"
    )[0]
    assert sizes["All Act-On Contacts"] == contacts
    assert sizes["All Leads"] == sizes["Affiliated with Leads"] == leads
    assert sizes["All Contacts"] == contacts - leads
    assert sizes["Unaffiliated"] == without_account > 0
    assert all(sizes[name] > 0 for name in DEFAULT_SEGMENTS)
    recorded = dict(warehouse_rows(synced, "SELECT segment, member_count FROM segments"))
    assert {name: recorded[name] for name in sizes} == sizes


def test_customer_and_prospect_segments_follow_account_type_and_won_deals(
    synced: ActonHome,
) -> None:
    customers = set(
        crm_rows(
            synced,
            "SELECT c.Id FROM Contact c JOIN Account a ON a.Id = c.AccountId WHERE c.IsDeleted = 0 "
            "AND (a.Type LIKE 'Customer%' OR EXISTS (SELECT 1 FROM Opportunity o WHERE "
            "o.AccountId = a.Id AND o.IsWon = 1 AND o.IsDeleted = 0))",
        )
    )
    prospects = (
        set(
            crm_rows(
                synced,
                "SELECT c.Id FROM Contact c JOIN Account a ON a.Id = c.AccountId "
                "WHERE c.IsDeleted = 0 AND a.Type = 'Prospect'",
            )
        )
        - customers
    )
    members = warehouse_rows(
        synced,
        "SELECT m.segment, c.external_id FROM segment_members m "
        "JOIN acton_contacts c ON c.contact_id = m.contact_id "
        "WHERE m.segment IN ('Affiliated with Customers', 'Affiliated with Prospects')",
    )
    assert {(i,) for s, i in members if s == "Affiliated with Customers"} == customers
    assert {(i,) for s, i in members if s == "Affiliated with Prospects"} == prospects


def test_sync_runs_records_each_object(synced: ActonHome) -> None:
    rows = warehouse_rows(
        synced, "SELECT object, mode, status, rows_read, api_calls FROM sync_runs"
    )
    by_object = {r[0]: r[1:] for r in rows}
    assert set(by_object) >= {
        "crm_leads",
        "crm_contacts",
        "crm_accounts",
        "crm_users",
        "crm_opportunities",
        "acton_contacts",
        "contact_scores",
        "segment_members",
    }
    assert all(mode == "full" and status == "success" for mode, status, *_ in by_object.values())
    (leads,) = crm_rows(synced, "SELECT count(*) FROM Lead WHERE IsDeleted = 0")[0]
    assert by_object["crm_leads"][2] == leads
    assert by_object["crm_leads"][3] >= 1


def test_a_second_full_sync_removes_what_the_crm_deleted(
    tmp_path: Path, small_crm: SeedSummary, warehouse_url: str
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse_url)
        assert run_full_sync(home).success
        (victim,) = crm_rows(
            home, "SELECT Id FROM Contact WHERE IsDeleted = 0 ORDER BY Id LIMIT 1"
        )[0]
        with sqlite3.connect(home.sandbox_db) as conn:
            conn.execute("UPDATE Contact SET IsDeleted = 1 WHERE Id = ?", (victim,))
        assert run_full_sync(home).success
        for table, column in (
            ("crm_contacts", "id"),
            ("acton_contacts", "external_id"),
            ("contact_scores", "contact_id"),
            ("segment_members", "contact_id"),
        ):
            assert warehouse_rows(
                home, f"SELECT count(*) FROM {table} WHERE {column} = '{victim}'"
            ) == [(0,)], table
