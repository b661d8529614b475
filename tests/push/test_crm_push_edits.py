"""Act-On-side edits, opt-ins and "create in CRM" requests pushed to the sandbox CRM, under the
push policy."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import insert, select, text, update

from acton_pipelines.crm.mirror_values import comparable_text
from acton_pipelines.push.build import plan_push
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import (
    acton_field_edits,
    crm_create_requests,
    opt_outs,
)
from crm_sandbox import SeedSummary, churn_sandbox
from tests.conftest import ActonHome, make_home, run_full_sync, run_sync
from tests.push.helpers import MAPPING, REPO_CONFIG, crm, record_edit, rows


@pytest.fixture
def home(tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch) -> ActonHome:
    """A synced home whose scores are already in the CRM (so pushes below are only edits)."""
    synced = make_home(tmp_path / "home", small_crm, monkeypatch)
    assert run_full_sync(synced).success
    assert run_sync(synced, "push_to_crm", {}).success
    return synced


def a_contact(home: ActonHome, record_type: str) -> tuple[str, str]:
    (contact_id, external_id) = rows(
        home,
        "SELECT contact_id, external_id FROM acton_contacts WHERE record_type = :t "
        "AND email IS NOT NULL ORDER BY contact_id LIMIT 1",
        t=record_type,
    )[0]
    return contact_id, external_id


def status_of(home: ActonHome, edit_id: int) -> str:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return conn.execute(
            select(acton_field_edits.c.push_status).where(acton_field_edits.c.id == edit_id)
        ).scalar_one()


def push(home: ActonHome, mapping_dir: Path | None = None) -> str:
    result = run_sync(home, "push_to_crm", {}, mapping_dir)
    assert result.success
    return result.run_id


LATER = datetime.now(UTC) + timedelta(minutes=5)


def test_an_allowed_edit_updates_the_existing_record_and_is_logged(home: ActonHome) -> None:
    contact_id, external_id = a_contact(home, "Contact")
    edit_id = record_edit(home, contact_id, "Job Title", "Chief Fun Officer", LATER)
    run_id = push(home)
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", external_id) == [
        ("Chief Fun Officer",)
    ]
    assert status_of(home, edit_id) == "pushed"
    assert rows(
        home,
        "SELECT object, field, new_value, outcome FROM crm_push_log WHERE sync_run_id = :r",
        r=run_id,
    ) == [("Contact", "Title", "Chief Fun Officer", "success")]


def test_allow_push_off_keeps_the_crm_record_as_it_is(home: ActonHome) -> None:
    contact_id, external_id = a_contact(home, "Lead")
    (before,) = crm(home, "SELECT AnnualRevenue FROM Lead WHERE Id = ?", external_id)[0]
    edit_id = record_edit(home, contact_id, "Annual Revenue", "12345", LATER)
    push(home)
    assert crm(home, "SELECT AnnualRevenue FROM Lead WHERE Id = ?", external_id) == [(before,)]
    assert status_of(home, edit_id) == "skipped_by_policy"


def test_a_field_read_through_a_relationship_is_not_pushed(home: ActonHome) -> None:
    contact_id, _ = a_contact(home, "Contact")
    edit_id = record_edit(home, contact_id, "Company", "Renamed Inc", LATER)
    push(home)
    assert status_of(home, edit_id) == "skipped_by_policy"


def test_a_change_to_another_field_of_the_record_never_stops_an_edit(home: ActonHome) -> None:
    contact_id, external_id = a_contact(home, "Contact")
    (modified,) = rows(
        home, "SELECT crm_modified_at FROM acton_contacts WHERE contact_id = :c", c=contact_id
    )[0]
    stamp = pd.Timestamp(modified)  # SQLite hands text back through text()
    modified = (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()
    # Made a day before the record's last CRM change, against the Title the CRM still holds.
    older = record_edit(
        home, contact_id, "Job Title", "Edited Before", modified - timedelta(days=1)
    )
    push(home)
    assert status_of(home, older) == "pushed"
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", external_id) == [("Edited Before",)]


def test_an_edit_of_a_field_the_crm_changed_since_is_superseded(home: ActonHome) -> None:
    (contact_id, external_id) = rows(
        home,
        "SELECT contact_id, external_id FROM acton_contacts WHERE record_type = 'Contact' "
        "AND job_title IS NOT NULL ORDER BY contact_id LIMIT 1",
    )[0]
    (title,) = crm(home, "SELECT Title FROM Contact WHERE Id = ?", external_id)[0]
    edit_id = record_edit(home, contact_id, "Job Title", "Act-On Title", LATER)
    # The edit was made against another Title than the one the last pull read since.
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            update(acton_field_edits)
            .where(acton_field_edits.c.id == edit_id)
            .values(crm_value_at_edit="Title Before The CRM Changed It")
        )
    run_id = push(home)
    assert status_of(home, edit_id) == "superseded"
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", external_id) == [(title,)]
    (reason,) = rows(home, "SELECT status_reason FROM acton_field_edits WHERE id = :i", i=edit_id)[
        0
    ]
    assert "Title Before The CRM Changed It" in reason and repr(title) in reason
    assert rows(
        home,
        "SELECT record_id, field, old_value, new_value, reason, outcome FROM crm_push_log "
        "WHERE sync_run_id = :r AND field = 'Title'",
        r=run_id,
    ) == [(external_id, "Title", title, "Act-On Title", "edit", "superseded")]


def test_pull_only_policy_pushes_no_edits_but_still_scores(home: ActonHome, tmp_path: Path) -> None:
    config = tmp_path / "pull_only"
    shutil.copytree(REPO_CONFIG, config)
    mapping_file = config / "contact_mapping.yaml"
    mapping_file.write_text(
        mapping_file.read_text().replace("push_policy: two_way", "push_policy: pull_only")
    )
    contact_id, external_id = a_contact(home, "Contact")
    edit_id = record_edit(home, contact_id, "Job Title", "Should Not Arrive", LATER)
    # Someone set the score in the CRM, and a pull read it.
    with sqlite3.connect(home.sandbox_db) as conn:
        conn.execute("UPDATE Contact SET ActOn_Score__c = 1 WHERE Id = ?", (external_id,))
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            text("UPDATE crm_contacts SET acton_score__c = 1 WHERE id = :i"), {"i": external_id}
        )
    (score,) = rows(
        home,
        "SELECT score FROM contact_scores WHERE contact_id = :c AND score_sheet = 'default'",
        c=contact_id,
    )[0]
    assert score != 1
    run_id = push(home, config)
    assert status_of(home, edit_id) == "skipped_by_policy"
    assert rows(
        home, "SELECT record_id, field FROM crm_push_log WHERE sync_run_id = :r", r=run_id
    ) == [(external_id, "ActOn_Score__c")]
    assert crm(home, "SELECT ActOn_Score__c FROM Contact WHERE Id = ?", external_id) == [(score,)]


def test_an_opt_in_sends_false_for_the_address(home: ActonHome) -> None:
    (external_id, email) = crm(
        home,
        "SELECT Id, Email FROM Contact WHERE HasOptedOutOfEmail = 1 AND IsDeleted = 0 "
        "AND Email LIKE '%@%.%' AND Email NOT LIKE '% %' ORDER BY Id LIMIT 1",
    )[0]
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            update(opt_outs)
            .where(opt_outs.c.email == email.lower())
            .values(opted_out=False, changed_at=LATER)
        )
    push(home)
    assert crm(home, "SELECT HasOptedOutOfEmail FROM Contact WHERE Id = ?", external_id) == [(0,)]


def test_a_create_in_crm_request_creates_a_lead_with_every_mapped_field(
    home: ActonHome,
) -> None:
    contact_id = "acton:new.person@example.com"
    now = datetime.now(UTC)
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO acton_contacts (contact_id, email, first_name, last_name, company, "
                "annual_revenue, source, updated_at) VALUES (:c, 'new.person@example.com', "
                "'New', 'Person', 'Newco', 250000, 'acton', :now)"
            ),
            {"c": contact_id, "now": now},
        )
        conn.execute(
            insert(crm_create_requests).values(
                contact_id=contact_id,
                email="new.person@example.com",
                requested_at=now,
                status="pending",
            )
        )
    push(home)
    (crm_id, status) = rows(
        home, "SELECT crm_id, status FROM crm_create_requests WHERE contact_id = :c", c=contact_id
    )[0]
    assert status == "created"
    assert crm(
        home,
        "SELECT FirstName, LastName, Company, AnnualRevenue, Email FROM Lead WHERE Id = ?",
        crm_id,
    ) == [("New", "Person", "Newco", 250000.0, "new.person@example.com")]
    # The contact keeps its id; the Lead is its CRM record from now on.
    assert rows(
        home, "SELECT contact_id, record_type FROM acton_contacts WHERE external_id = :i", i=crm_id
    ) == [(contact_id, "Lead")]
    assert rows(
        home,
        "SELECT old_contact_id, new_contact_id, old_object, old_record_id, new_object, "
        "new_record_id, reason FROM contact_id_changes WHERE new_record_id = :i",
        i=crm_id,
    ) == [(contact_id, contact_id, None, None, "Lead", crm_id, "created_in_crm")]


def test_a_write_to_a_lead_converted_since_the_pull_goes_to_its_contact(
    home: ActonHome,
) -> None:
    summary = churn_sandbox(home.sandbox_db, updates=0, creates=0, deletes=0, converts=3)
    conversion = summary.conversions[0]
    edit_id = record_edit(home, conversion.lead_id, "Job Title", "Converted Title", LATER)
    run_id = push(home)
    assert status_of(home, edit_id) == "pushed"
    assert crm(home, "SELECT Title FROM Contact WHERE Id = ?", conversion.contact_id) == [
        ("Converted Title",)
    ]
    logged = rows(
        home,
        "SELECT object, record_id, outcome FROM crm_push_log WHERE sync_run_id = :r "
        "AND field = 'Title'",
        r=run_id,
    )
    assert logged == [("Contact", conversion.contact_id, "success")]


def test_the_dry_run_plan_is_what_the_push_does_with_edits_and_creates(home: ActonHome) -> None:
    contact_id, external_id = a_contact(home, "Contact")
    record_edit(home, contact_id, "Job Title", "Planned Title", LATER)
    skipped = record_edit(home, contact_id, "Company", "Not Pushable", LATER)
    now = datetime.now(UTC)
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO acton_contacts (contact_id, email, last_name, company, source) "
                "VALUES ('acton:plan@example.com', 'plan@example.com', 'Plan', 'Planco', 'acton')"
            )
        )
        conn.execute(
            insert(crm_create_requests).values(
                contact_id="acton:plan@example.com",
                email="plan@example.com",
                requested_at=now,
                status="pending",
            )
        )
    plan = plan_push(warehouse_engine(home.warehouse_url), MAPPING)
    assert [d.edit_id for d in plan.not_pushed] == [skipped]
    run_id = push(home)
    logged = rows(
        home,
        "SELECT object, record_id, field, new_value FROM crm_push_log WHERE sync_run_id = :r",
        r=run_id,
    )
    (created,) = rows(
        home, "SELECT crm_id FROM crm_create_requests WHERE contact_id = 'acton:plan@example.com'"
    )[0]
    expected = {(w.object, w.record_id, w.field, comparable_text(w.new_value)) for w in plan.writes}
    expected |= {("Lead", created, "(create)", ", ".join(sorted(c.fields))) for c in plan.creates}
    assert {tuple(r) for r in logged} == expected
    assert ("Contact", external_id, "Title", "Planned Title") in expected


def test_the_push_leaves_crm_opt_outs_off_the_list_to_the_pull(home: ActonHome) -> None:
    (external_id, email) = crm(
        home,
        "SELECT Id, Email FROM Contact WHERE HasOptedOutOfEmail = 0 AND IsDeleted = 0 "
        "AND Email LIKE '%@%.%' AND Email NOT LIKE '% %' ORDER BY Id LIMIT 1",
    )[0]
    with sqlite3.connect(home.sandbox_db) as conn:
        conn.execute("UPDATE Contact SET HasOptedOutOfEmail = 1 WHERE Id = ?", (external_id,))
    listed = rows(home, "SELECT email, opted_out FROM opt_outs ORDER BY email")
    push(home)
    # The pull puts CRM opt-outs on the list; the push neither adds nor re-opts anyone out.
    assert rows(home, "SELECT email, opted_out FROM opt_outs ORDER BY email") == listed
    assert crm(home, "SELECT HasOptedOutOfEmail FROM Contact WHERE Id = ?", external_id) == [(1,)]
