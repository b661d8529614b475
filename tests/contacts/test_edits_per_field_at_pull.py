"""At a pull, an Act-On edit waiting for the push keeps its value while the CRM still holds the
value the edit was made against (per field: a CRM change of another field does not matter);
once the CRM changes that field, the CRM's value stands."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from acton_pipelines.crm.mirror_values import comparable_text
from acton_pipelines.warehouse.engine import warehouse_engine
from tests.conftest import ActonHome, run_incremental_sync
from tests.contacts.test_opt_outs_at_pull import crm_rows, rows, today, update_crm_record

EDITED_TITLE = "Head of Three-Way Merges"


def test_an_edit_survives_a_crm_change_of_another_field_but_not_of_its_own(
    synced_home_each_backend: ActonHome,
) -> None:
    home = synced_home_each_backend
    lead_id, contact_id, email = rows(
        home,
        "SELECT external_id, contact_id, email FROM acton_contacts WHERE record_type = 'Lead' "
        "AND email IS NOT NULL ORDER BY external_id",
    )[0]
    (mirrored_title,) = rows(home, "SELECT title FROM crm_leads WHERE id = :i", i=lead_id)[0]
    # The edit is older than the CRM change to come: by timestamps alone the CRM would win.
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            text(
                'INSERT INTO acton_field_edits (contact_id, email, field, "column", value, '
                "changed_at, push_status, crm_value_at_edit) VALUES (:contact, :email, "
                "'Job Title', 'job_title', :value, :at, 'pending', :crm_value)"
            ),
            {
                "contact": contact_id,
                "email": email,
                "value": EDITED_TITLE,
                "at": datetime.now(UTC),
                "crm_value": comparable_text(mirrored_title),
            },
        )
        conn.execute(
            text("UPDATE acton_contacts SET job_title = :value WHERE contact_id = :contact"),
            {"value": EDITED_TITLE, "contact": contact_id},
        )
    titles = "SELECT job_title, phone FROM acton_contacts WHERE contact_id = :contact"

    update_crm_record("Lead", lead_id, {"Phone": "+1 555 0199"})
    assert run_incremental_sync(home, today()).success
    assert rows(home, titles, contact=contact_id) == [(EDITED_TITLE, "+1 555 0199")]

    update_crm_record("Lead", lead_id, {"Title": "Chief Conflict Officer"})
    assert run_incremental_sync(home, today()).success
    (crm_title,) = crm_rows(home, "SELECT Title FROM Lead WHERE Id = ?", lead_id)[0]
    assert crm_title == "Chief Conflict Officer"
    assert rows(home, titles, contact=contact_id) == [(crm_title, "+1 555 0199")]
