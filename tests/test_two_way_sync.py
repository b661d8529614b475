"""Two-way sync on the user's path: CRM changes made through the CRM's API, syncs, imports and
pushes run as the jobs the schedules and sensors start; the CRM's own data checked after."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from acton_pipelines import settings
from acton_pipelines.crm.resource import SalesforceResource
from tests.conftest import ActonHome, home_resources, run_incremental_sync, run_sync
from tests.push.helpers import crm, rows

WELL_FORMED = re.compile(r"[a-z0-9._-]+@[a-z0-9.-]+\.[a-z]+")


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def lone_leads(home: ActonHome, n: int) -> list[tuple[str, str]]:
    """``n`` unconverted, not opted-out Leads whose well-formed address nobody else has."""
    found = crm(
        home,
        "SELECT Id, lower(Email) FROM Lead WHERE IsDeleted = 0 AND IsConverted = 0 "
        "AND HasOptedOutOfEmail = 0 AND Email IS NOT NULL AND lower(Email) NOT IN "
        "(SELECT lower(Email) FROM Contact WHERE Email IS NOT NULL) AND lower(Email) IN "
        "(SELECT lower(Email) FROM Lead WHERE Email IS NOT NULL GROUP BY lower(Email) "
        "HAVING count(*) = 1) ORDER BY Id",
    )
    picked = [(i, e) for i, e in found if WELL_FORMED.fullmatch(e)][:n]
    assert len(picked) == n
    return picked


def crm_update(home: ActonHome, lead_id: str, fields: dict[str, Any]) -> None:
    """A change made in the CRM by someone else, through its REST API."""
    crm: SalesforceResource = home_resources(home)["crm"]  # type: ignore[assignment]
    with crm.connect() as connected:
        connected.call(lambda sf: sf.Lead.update(lead_id, fields))


def test_an_opt_out_cleared_in_the_crm_stays_on_the_list_and_is_pushed_back(
    synced_home: ActonHome,
) -> None:
    ((lead_id, email),) = lone_leads(synced_home, 1)
    crm_update(synced_home, lead_id, {"HasOptedOutOfEmail": True})
    assert run_incremental_sync(synced_home, today()).success
    assert rows(
        synced_home,
        "SELECT source, crm_object, crm_record_id, opted_out FROM opt_outs WHERE email = :e",
        e=email,
    ) == [("crm", "Lead", lead_id, True)]

    # A rep clears the flag (by mistake, or a CRM workflow does): the address stays opted out.
    crm_update(synced_home, lead_id, {"HasOptedOutOfEmail": False})
    assert run_incremental_sync(synced_home, today()).success
    assert rows(synced_home, "SELECT opted_out FROM opt_outs WHERE email = :e", e=email) == [
        (True,)
    ]
    assert rows(
        synced_home, "SELECT opted_out FROM acton_contacts WHERE external_id = :i", i=lead_id
    ) == [(True,)]
    assert crm(synced_home, "SELECT HasOptedOutOfEmail FROM Lead WHERE Id = ?", lead_id) == [(0,)]

    # The push (the job push_after_sync starts) sets the CRM's flag again, and logs why.
    push = run_sync(synced_home, "push_to_crm", {})
    assert push.success
    assert crm(synced_home, "SELECT HasOptedOutOfEmail FROM Lead WHERE Id = ?", lead_id) == [(1,)]
    assert rows(
        synced_home,
        "SELECT field, old_value, new_value, reason, outcome FROM crm_push_log "
        "WHERE record_id = :i AND sync_run_id = :r AND field = 'HasOptedOutOfEmail'",
        i=lead_id,
        r=push.run_id,
    ) == [("HasOptedOutOfEmail", "false", "true", "opt-out", "success")]


def test_an_edit_survives_a_crm_change_of_another_field_and_yields_to_one_of_its_own(
    synced_home: ActonHome,
) -> None:
    (kept_id, kept_email), (lost_id, lost_email) = lone_leads(synced_home, 2)
    changed_at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    (settings.imports_dir() / "edits-titles.csv").write_text(
        "email,field,value,changed_at\n"
        f"{kept_email},Job Title,Head of Kept Edits,{changed_at}\n"
        f"{lost_email},Job Title,Head of Lost Edits,{changed_at}\n"
    )
    assert run_sync(synced_home, "import_files", {}).success
    # After the edits: the CRM changes Phone on one record, Title on the other.
    crm_update(synced_home, kept_id, {"Phone": "+1 555 0100"})
    crm_update(synced_home, lost_id, {"Title": "Chief of the CRM"})
    assert run_incremental_sync(synced_home, today()).success
    titles = dict(
        rows(
            synced_home,
            "SELECT external_id, job_title FROM acton_contacts WHERE external_id IN (:a, :b)",
            a=kept_id,
            b=lost_id,
        )
    )
    assert titles == {kept_id: "Head of Kept Edits", lost_id: "Chief of the CRM"}

    push = run_sync(synced_home, "push_to_crm", {})
    assert push.success
    in_crm = dict(
        crm(synced_home, "SELECT Id, Title FROM Lead WHERE Id IN (?, ?)", kept_id, lost_id)
    )
    assert in_crm == {kept_id: "Head of Kept Edits", lost_id: "Chief of the CRM"}
    statuses = dict(
        rows(
            synced_home,
            "SELECT email, push_status FROM acton_field_edits WHERE email IN (:a, :b)",
            a=kept_email,
            b=lost_email,
        )
    )
    assert statuses == {kept_email: "pushed", lost_email: "superseded"}
    superseded = rows(
        synced_home,
        "SELECT record_id, field, old_value, new_value, reason, outcome FROM crm_push_log "
        "WHERE sync_run_id = :r AND outcome = 'superseded'",
        r=push.run_id,
    )
    assert superseded == [
        (lost_id, "Title", "Chief of the CRM", "Head of Lost Edits", "edit", "superseded")
    ]
