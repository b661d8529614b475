"""Act-On edits meet CRM changes per field, three-way, on both warehouse backends: an edit is
sent while the CRM still holds the value it was made against, superseded once the CRM changed
that field, settled without a call when the CRM already holds it; a refused one is tried
again by the next push."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import acton_field_edits
from tests.conftest import ActonHome, run_sync
from tests.push.helpers import crm, record_edit, rows

LATER = datetime.now(UTC) + timedelta(minutes=5)


@pytest.fixture
def home(synced_home_each_backend: ActonHome) -> ActonHome:
    """A synced home (on each backend) whose scores are in the CRM already."""
    assert run_sync(synced_home_each_backend, "push_to_crm", {}).success
    return synced_home_each_backend


def push(home: ActonHome) -> str:
    result = run_sync(home, "push_to_crm", {})
    assert result.success
    return result.run_id


def contacts_with_titles(home: ActonHome, count: int) -> list[tuple[str, str, str]]:
    """``count`` CRM Contacts with a Title: (contact_id, Contact Id, Title)."""
    found = rows(
        home,
        "SELECT a.contact_id, a.external_id, c.title FROM acton_contacts a JOIN crm_contacts c "
        "ON c.id = a.external_id WHERE c.title IS NOT NULL AND c.phone IS NOT NULL "
        "ORDER BY a.contact_id",
    )
    assert len(found) >= count
    return found[:count]


def edit_states(home: ActonHome) -> dict[int, tuple[str, str | None]]:
    return {
        edit_id: (status, reason)
        for edit_id, status, reason in rows(
            home, "SELECT id, push_status, status_reason FROM acton_field_edits"
        )
    }


def modstamp(home: ActonHome, contact: str) -> str:
    return crm(home, "SELECT SystemModstamp FROM Contact WHERE Id = ?", contact)[0][0]


def test_edits_are_decided_field_by_field_against_what_the_crm_holds(home: ActonHome) -> None:
    (a, a_id, _), (b, b_id, b_title), (c, c_id, _), (d, d_id, d_title) = contacts_with_titles(
        home, 4
    )
    (c_phone,) = crm(home, "SELECT Phone FROM Contact WHERE Id = ?", c_id)[0]
    c_stamp = modstamp(home, c_id)
    stale = record_edit(home, a, "Job Title", "Stale Title", LATER - timedelta(minutes=1))
    sent = record_edit(home, a, "Job Title", "Three Way Title", LATER)
    lost = record_edit(home, b, "Job Title", "Too Late", LATER)
    with warehouse_engine(home.warehouse_url).begin() as conn:
        # Made when the CRM held another Title; the last pull read the CRM's newer one.
        conn.execute(
            update(acton_field_edits)
            .where(acton_field_edits.c.id == lost)
            .values(crm_value_at_edit="Title Of Last Year")
        )
    held = record_edit(home, c, "Phone", c_phone, LATER)
    refused = record_edit(home, d, "Job Title", "Refused Title", LATER)
    with sqlite3.connect(home.sandbox_db) as conn:
        conn.execute("UPDATE Contact SET IsDeleted = 1 WHERE Id = ?", (d_id,))

    run_id = push(home)

    states = edit_states(home)
    assert states[stale] == ("superseded", "a later edit of the field")
    assert states[sent] == ("pushed", None)
    assert states[lost][0] == "superseded"
    assert "'Title Of Last Year'" in states[lost][1] and repr(b_title) in states[lost][1]
    assert states[held][0] == "pushed"
    assert states[refused][0] == "failed" and "ENTITY_IS_DELETED" in states[refused][1]
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", a_id) == [("Three Way Title",)]
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", b_id) == [(b_title,)]
    assert modstamp(home, c_id) == c_stamp  # nothing was sent to C
    logged = {
        record_id: (old, new, reason, outcome)
        for record_id, old, new, reason, outcome in rows(
            home,
            "SELECT record_id, old_value, new_value, reason, outcome FROM crm_push_log "
            "WHERE sync_run_id = :r AND reason = 'edit'",
            r=run_id,
        )
    }
    (a_title_before,) = rows(
        home,
        "SELECT crm_value_at_edit FROM acton_field_edits WHERE id = :i",
        i=sent,
    )[0]
    assert logged == {
        a_id: (a_title_before, "Three Way Title", "edit", "success"),
        b_id: (b_title, "Too Late", "edit", "superseded"),
        d_id: (d_title, "Refused Title", "edit", "failed"),
    }

    # The failed edit is tried again once the record can take it; the settled ones are not.
    with sqlite3.connect(home.sandbox_db) as conn:
        conn.execute("UPDATE Contact SET IsDeleted = 0 WHERE Id = ?", (d_id,))
    again = push(home)
    assert edit_states(home)[refused] == ("pushed", None)
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", d_id) == [("Refused Title",)]
    assert rows(
        home, "SELECT record_id, outcome FROM crm_push_log WHERE sync_run_id = :r", r=again
    ) == [(d_id, "success")]
