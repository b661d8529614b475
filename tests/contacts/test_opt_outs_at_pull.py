"""Every pull adds the CRM's opt-outs (HasOptedOutOfEmail) to the opt-out list, never removes
one, and opts out again an address that opted back in before the CRM flagged it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from acton_pipelines.crm.resource import SalesforceResource
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox.store import from_storage_datetime
from tests.conftest import ActonHome, run_incremental_sync


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def update_crm_record(object_name: str, record_id: str, values: dict[str, Any]) -> None:
    """Change a record the way a CRM user does: a simple-salesforce PATCH over HTTPS to the
    home's sandbox (served in-process for the call)."""
    with SalesforceResource().connect() as client:
        client.call(lambda sf: getattr(sf, object_name).update(record_id, values))


def crm_rows(home: ActonHome, sql: str, *params: object) -> list[tuple]:
    """Rows of the sandbox CRM's own SQLite file (independent of the pipeline)."""
    with sqlite3.connect(home.sandbox_db) as conn:
        return conn.execute(sql, params).fetchall()


def rows(home: ActonHome, sql: str, **params: object) -> list[tuple]:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def as_utc(value: Any) -> datetime:
    """A timestamp read back from either backend (SQLite drops the zone) as aware UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def modstamp(home: ActonHome, object_name: str, record_id: str) -> datetime:
    (stamp,) = crm_rows(home, f"SELECT SystemModstamp FROM {object_name} WHERE Id = ?", record_id)[
        0
    ]
    return from_storage_datetime(stamp)


def listed(home: ActonHome, email: str) -> tuple | None:
    found = rows(
        home,
        "SELECT opted_out, source, crm_object, crm_record_id, changed_at FROM opt_outs "
        "WHERE email = :email",
        email=email,
    )
    return found[0] if found else None


def contact_opted_out(home: ActonHome, lead_id: str) -> bool:
    (flag,) = rows(home, "SELECT opted_out FROM acton_contacts WHERE external_id = :i", i=lead_id)[
        0
    ]
    return bool(flag)


def a_lone_lead(home: ActonHome) -> tuple[str, str]:
    """An unconverted, not opted-out Lead whose valid address no other record has."""
    candidates = crm_rows(
        home,
        "SELECT Id, lower(Email) FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 "
        "AND HasOptedOutOfEmail = 0 AND Email IS NOT NULL AND lower(Email) NOT IN "
        "(SELECT lower(Email) FROM Contact WHERE Email IS NOT NULL UNION ALL "
        "SELECT lower(Email) FROM Lead l2 WHERE l2.Email IS NOT NULL AND l2.Id != Lead.Id) "
        "ORDER BY Id",
    )
    valid = {r[0] for r in rows(home, "SELECT email FROM acton_contacts WHERE email IS NOT NULL")}
    return next((lead_id, email) for lead_id, email in candidates if email in valid)


@pytest.fixture
def home(synced_home_each_backend: ActonHome) -> ActonHome:
    return synced_home_each_backend


def test_the_first_full_sync_lists_every_crm_opt_out(home: ActonHome) -> None:
    flagged: dict[str, set[tuple[str, str]]] = {}
    for obj, record_id, email in crm_rows(
        home,
        "SELECT 'Lead', Id, lower(Email) FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 "
        "AND HasOptedOutOfEmail = 1 AND Email IS NOT NULL UNION ALL "
        "SELECT 'Contact', Id, lower(Email) FROM Contact WHERE IsDeleted = 0 "
        "AND HasOptedOutOfEmail = 1 AND Email IS NOT NULL",
    ):
        flagged.setdefault(email, set()).add((obj, record_id))
    # Malformed addresses are quarantined (NULL in acton_contacts): nothing to list.
    valid = {r[0] for r in rows(home, "SELECT email FROM acton_contacts WHERE email IS NOT NULL")}
    expected = {email for email in flagged if email in valid}
    on_list = {
        email: (opted_out, obj, record_id)
        for email, opted_out, obj, record_id in rows(
            home,
            "SELECT email, opted_out, crm_object, crm_record_id FROM opt_outs WHERE source = 'crm'",
        )
    }
    assert expected and set(on_list) == expected
    for email, (opted_out, obj, record_id) in on_list.items():
        assert opted_out and (obj, record_id) in flagged[email]


def test_a_crm_opt_out_joins_the_list_and_stays_when_the_crm_clears_it(home: ActonHome) -> None:
    lead_id, email = a_lone_lead(home)
    assert listed(home, email) is None and not contact_opted_out(home, lead_id)

    update_crm_record("Lead", lead_id, {"HasOptedOutOfEmail": True})
    assert run_incremental_sync(home, today()).success
    opted_out, source, obj, record_id, changed_at = listed(home, email)  # type: ignore[misc]
    assert (bool(opted_out), source, obj, record_id) == (True, "crm", "Lead", lead_id)
    assert as_utc(changed_at) == modstamp(home, "Lead", lead_id)
    assert contact_opted_out(home, lead_id)

    update_crm_record("Lead", lead_id, {"HasOptedOutOfEmail": False})
    assert run_incremental_sync(home, today()).success
    assert crm_rows(home, "SELECT HasOptedOutOfEmail FROM Lead WHERE Id = ?", lead_id) == [(0,)]
    assert bool(listed(home, email)[0])  # type: ignore[index]
    assert contact_opted_out(home, lead_id)


def test_an_opt_in_before_the_crm_flag_is_opted_out_again_and_not_after_it(
    home: ActonHome,
) -> None:
    lead_id, email = a_lone_lead(home)
    opted_in_at = datetime.now(UTC) - timedelta(hours=1)
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO opt_outs (email, opted_out, source, added_at, changed_at) "
                "VALUES (:email, false, 'opt_ins.csv', :at, :at)"
            ),
            {"email": email, "at": opted_in_at},
        )

    update_crm_record("Lead", lead_id, {"HasOptedOutOfEmail": True})
    assert run_incremental_sync(home, today()).success
    opted_out, source, _, _, changed_at = listed(home, email)  # type: ignore[misc]
    flagged_at = modstamp(home, "Lead", lead_id)
    assert flagged_at > opted_in_at
    assert bool(opted_out) and source == "opt_ins.csv"
    assert as_utc(changed_at) == flagged_at
    assert contact_opted_out(home, lead_id)

    # Opted back in after the CRM's last change: a pull of the (still flagged) record later
    # changed elsewhere does not undo that.
    update_crm_record("Lead", lead_id, {"Phone": "+1 555 0100"})
    opted_in_again = datetime.now(UTC) + timedelta(days=1)
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            text("UPDATE opt_outs SET opted_out = false, changed_at = :at WHERE email = :email"),
            {"email": email, "at": opted_in_again},
        )
    assert run_incremental_sync(home, today()).success
    assert not bool(listed(home, email)[0])  # type: ignore[index]
    assert not contact_opted_out(home, lead_id)


def test_every_contact_of_a_newly_listed_address_is_opted_out(home: ActonHome) -> None:
    valid = {r[0] for r in rows(home, "SELECT email FROM acton_contacts WHERE email IS NOT NULL")}
    pairs = crm_rows(
        home,
        "SELECT l.Id, c.Id, lower(l.Email) FROM Lead l JOIN Contact c "
        "ON lower(c.Email) = lower(l.Email) WHERE l.IsDeleted = 0 AND l.IsConverted = 0 "
        "AND c.IsDeleted = 0 AND l.HasOptedOutOfEmail = 0 AND c.HasOptedOutOfEmail = 0 "
        "ORDER BY l.Id",
    )
    lead_id, contact_id, email = next(p for p in pairs if p[2] in valid)
    assert listed(home, email) is None

    update_crm_record("Lead", lead_id, {"HasOptedOutOfEmail": True})
    result = run_incremental_sync(home, today())
    assert result.success
    # The Contact did not change in the CRM: only the list puts it among the opted out, and
    # the run marks it written so scores and segments see it again.
    assert crm_rows(home, "SELECT HasOptedOutOfEmail FROM Contact WHERE Id = ?", contact_id) == [
        (0,)
    ]
    contact = rows(
        home,
        "SELECT opted_out, sync_run_id FROM acton_contacts WHERE external_id = :i",
        i=contact_id,
    )
    assert [(bool(flag), run) for flag, run in contact] == [(True, result.run_id)]
    assert contact_opted_out(home, lead_id)
