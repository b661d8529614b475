"""A contact keeps its contact_id for life: a Lead converted into an existing Contact hands its
activity to that Contact's contact, a Lead converted into a new Contact continues as it, an
Act-On contact created in the CRM keeps its ``acton:`` id, and full and incremental syncs agree."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from sqlalchemy import text

from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import store
from crm_sandbox.conversion import Conversion, convert_lead
from crm_sandbox.generators import RecordGenerator
from crm_sandbox.objects import CONTACT, LEAD
from tests.conftest import ActonHome, run_full_sync, run_incremental_sync
from tests.contacts.test_opt_outs_at_pull import crm_rows, rows, today, update_crm_record

CONVERTED = "lead_converted"
CHANGES = (
    "SELECT old_contact_id, new_contact_id, old_object, old_record_id, new_object, "
    "new_record_id, reason FROM contact_id_changes"
)


def convert(home: ActonHome, lead_id: str, into_contact: str | None) -> Conversion:
    """Convert a Lead in the sandbox the way the CRM does (into ``into_contact``, an existing
    Contact's Id, or into a new Contact): the sandbox's API has no convertLead call."""
    conn = store.connect(home.sandbox_db)
    try:
        with conn:
            row = conn.execute('SELECT * FROM "Lead" WHERE "Id" = ?', (lead_id,)).fetchone()
            existing = None
            if into_contact is not None:
                existing = dict(
                    conn.execute(
                        'SELECT * FROM "Contact" WHERE "Id" = ?', (into_contact,)
                    ).fetchone()
                )
            owners = [r[0] for r in conn.execute('SELECT "Id" FROM "User" WHERE "IsActive" = 1')]
            now = datetime.now(UTC)
            generator = RecordGenerator(random.Random(lead_id), 1, now, backdate=False)
            return convert_lead(
                conn,
                dict(row),
                generator,
                now,
                owners,
                existing_contact=existing,
                with_opportunity=False,
            )
    finally:
        conn.close()


def contact_ids(home: ActonHome) -> dict[str, str]:
    """Each CRM record's contact_id (external_id -> contact_id)."""
    return dict(rows(home, "SELECT external_id, contact_id FROM acton_contacts"))


def unconverted_leads(home: ActonHome) -> list[str]:
    """Lead contacts with no other record sharing their address (so no duplicate rule or
    seeded conversion gets in the way)."""
    return [
        r[0]
        for r in crm_rows(
            home,
            "SELECT Id FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 AND Email IS NOT NULL "
            "AND lower(Email) NOT IN (SELECT lower(Email) FROM Contact WHERE Email IS NOT NULL) "
            "ORDER BY Id",
        )
    ]


def contact_of_its_own(home: ActonHome) -> str:
    """A Contact no Lead was converted into: its contact_id is its own Id."""
    return crm_rows(
        home,
        "SELECT Id FROM Contact WHERE IsDeleted = 0 AND Id NOT IN (SELECT ConvertedContactId "
        "FROM Lead WHERE ConvertedContactId IS NOT NULL) ORDER BY Id LIMIT 1",
    )[0][0]


def test_contact_ids_stay_through_conversions_and_crm_creation(
    synced_home_each_backend: ActonHome,
) -> None:
    home = synced_home_each_backend
    into_existing, into_new, created_from_act_on = unconverted_leads(home)[:3]
    existing_contact = contact_of_its_own(home)
    before = contact_ids(home)
    assert before[into_existing] == into_existing and before[existing_contact] == existing_contact
    (email,) = crm_rows(home, "SELECT lower(Email) FROM Lead WHERE Id = ?", created_from_act_on)[0]
    act_on_id = f"acton:{email}"
    engine = warehouse_engine(home.warehouse_url)
    with engine.begin() as conn:
        # The Lead's activity, and an edit waiting for the push, before the conversion.
        for occurred_at in (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)):
            conn.execute(
                text(
                    "INSERT INTO acton_activity (contact_id, email, activity, occurred_at) "
                    "VALUES (:contact, 'lead@example.com', 'email_open', :at)"
                ),
                {"contact": into_existing, "at": occurred_at},
            )
        conn.execute(
            text(
                'INSERT INTO acton_field_edits (contact_id, field, "column", value, changed_at, '
                "push_status) VALUES (:contact, 'Job Title', 'job_title', 'CTO', :at, 'pending')"
            ),
            {"contact": into_existing, "at": datetime.now(UTC)},
        )
        # As the push leaves an Act-On-only contact it created in the CRM as a Lead.
        conn.execute(
            text(
                "UPDATE acton_contacts SET contact_id = :act_on, source = 'crm' "
                "WHERE external_id = :lead"
            ),
            {"act_on": act_on_id, "lead": created_from_act_on},
        )

    joined = convert(home, into_existing, existing_contact)
    became = convert(home, into_new, None)
    assert not joined.new_contact and became.new_contact
    update_crm_record("Lead", created_from_act_on, {"Phone": "+1 555 0142"})
    assert run_incremental_sync(home, today()).success

    after = contact_ids(home)
    assert after[existing_contact] == existing_contact
    assert into_existing not in after.values() and into_existing not in after
    assert after[became.contact_id] == into_new and into_new not in after
    assert after[created_from_act_on] == act_on_id
    assert created_from_act_on not in after.values()
    changes = set(rows(home, CHANGES))
    assert changes == {
        (
            into_existing,
            existing_contact,
            LEAD.name,
            into_existing,
            CONTACT.name,
            existing_contact,
            "converted_into_existing_contact",
        ),
        (
            into_new,
            into_new,
            LEAD.name,
            into_new,
            CONTACT.name,
            became.contact_id,
            "lead_converted",
        ),
    }
    moved = "SELECT count(*) FROM {} WHERE contact_id = :contact"
    for table, count in (("acton_activity", 2), ("acton_field_edits", 1)):
        assert rows(home, moved.format(table), contact=existing_contact) == [(count,)]
        assert rows(home, moved.format(table), contact=into_existing) == [(0,)]
    # The absorbed contact's scores are gone; the surviving contact was rebuilt.
    assert rows(home, moved.format("contact_scores"), contact=into_existing) == [(0,)]
    assert rows(home, moved.format("contact_scores"), contact=existing_contact) != [(0,)]

    assert run_full_sync(home).success
    assert contact_ids(home) == after
    assert set(rows(home, CHANGES)) == changes
