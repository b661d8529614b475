"""The push of scores and opt-outs to the sandbox CRM: what it writes, its log, its dry run."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from acton_pipelines.crm.mirror_values import comparable_text
from acton_pipelines.push.build import plan_push
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox.store import DELETES_REFUSED_KEY
from tests.conftest import ActonHome, run_sync
from tests.push.helpers import MAPPING, crm, rows


def run_push(home: ActonHome) -> str:
    result = run_sync(home, "push_to_crm", {})
    assert result.success
    return result.run_id


def deletes_sent(home: ActonHome) -> int:
    found = crm(home, "SELECT value FROM _sandbox_meta WHERE key = ?", DELETES_REFUSED_KEY)
    return int(found[0][0]) if found else 0


def test_after_a_push_the_crm_score_fields_equal_the_computed_scores(
    synced_home: ActonHome,
) -> None:
    run_push(synced_home)
    computed = dict(
        ((contact_id, sheet), score)
        for contact_id, sheet, score in rows(
            synced_home, "SELECT contact_id, score_sheet, score FROM contact_scores"
        )
    )
    contacts = rows(synced_home, "SELECT contact_id, external_id, record_type FROM acton_contacts")
    in_crm = {
        record_id: (primary, fit)
        for table in ("Lead", "Contact")
        for record_id, primary, fit in crm(
            synced_home, f"SELECT Id, ActOn_Score__c, Fit_Score__c FROM {table}"
        )
    }
    for contact_id, external_id, _ in contacts:
        assert in_crm[external_id] == (
            computed[(contact_id, "default")],
            computed[(contact_id, "fit")],
        ), external_id
    assert deletes_sent(synced_home) == 0


def test_the_push_sends_the_opt_out_list_as_it_is_and_leaves_the_list_alone(
    synced_home: ActonHome,
) -> None:
    # One address opted back in on the Act-On side, one opted out there: both directions.
    flagged, unflagged = (
        rows(
            synced_home,
            "SELECT lower(email) FROM acton_contacts WHERE email LIKE '%@%.%' AND email NOT LIKE "
            "'% %' AND external_id IN (SELECT id FROM crm_contacts WHERE hasoptedoutofemail = "
            f"{flag}) ORDER BY contact_id LIMIT 1",
        )[0][0]
        for flag in ("true", "false")
    )
    with warehouse_engine(synced_home.warehouse_url).begin() as conn:
        conn.execute(
            text("DELETE FROM opt_outs WHERE email IN (:a, :b)"), {"a": flagged, "b": unflagged}
        )
        for email, opted_out in ((flagged, False), (unflagged, True)):
            conn.execute(
                text(
                    "INSERT INTO opt_outs (email, opted_out, source, added_at) "
                    "VALUES (:e, :o, 'test', CURRENT_TIMESTAMP)"
                ),
                {"e": email, "o": opted_out},
            )
    listed_before = rows(synced_home, "SELECT email, opted_out FROM opt_outs ORDER BY email")
    run_push(synced_home)
    # The list is the pull's and the imports' to keep: the push only sends it.
    assert rows(synced_home, "SELECT email, opted_out FROM opt_outs ORDER BY email") == (
        listed_before
    )
    listed = {email: bool(opted_out) for email, opted_out in listed_before}
    contacts = rows(
        synced_home, "SELECT external_id, email FROM acton_contacts WHERE email IS NOT NULL"
    )
    flags = {
        record_id: flag
        for table in ("Lead", "Contact")
        for record_id, flag in crm(synced_home, f"SELECT Id, HasOptedOutOfEmail FROM {table}")
    }
    checked = 0
    for external_id, email in contacts:
        if external_id is not None and email.lower() in listed:
            assert flags[external_id] == int(listed[email.lower()]), external_id
            checked += 1
    assert checked > 0


def test_the_dry_run_predicts_exactly_what_the_push_writes(synced_home: ActonHome) -> None:
    before = crm(synced_home, "SELECT Id, ActOn_Score__c, SystemModstamp FROM Contact ORDER BY Id")
    plan = plan_push(warehouse_engine(synced_home.warehouse_url), MAPPING)
    after_plan = crm(
        synced_home, "SELECT Id, ActOn_Score__c, SystemModstamp FROM Contact ORDER BY Id"
    )
    assert after_plan == before  # the dry run wrote nothing
    run_id = run_push(synced_home)
    logged = rows(
        synced_home,
        "SELECT object, record_id, field, new_value, outcome FROM crm_push_log "
        "WHERE sync_run_id = :run",
        run=run_id,
    )
    assert {o for *_, o in logged} == {"success"}
    predicted = {
        (w.object, w.record_id, w.field, comparable_text(w.new_value)) for w in plan.writes
    }
    assert {row[:4] for row in logged} == predicted
    assert len(logged) == len(plan.writes) > 0
    assert plan_push(warehouse_engine(synced_home.warehouse_url), MAPPING).writes == []


def test_a_failed_record_is_logged_and_retried_by_the_next_push(synced_home: ActonHome) -> None:
    plan = plan_push(warehouse_engine(synced_home.warehouse_url), MAPPING)
    victim = next(w.record_id for w in plan.writes if w.object == "Contact")
    with sqlite3.connect(synced_home.sandbox_db) as conn:
        conn.execute("UPDATE Contact SET IsDeleted = 1 WHERE Id = ?", (victim,))
    first = run_push(synced_home)
    failed = rows(
        synced_home,
        "SELECT record_id, outcome, error FROM crm_push_log WHERE sync_run_id = :run AND "
        "outcome = 'failed'",
        run=first,
    )
    assert {r[0] for r in failed} == {victim}
    assert all("ENTITY_IS_DELETED" in r[2] for r in failed)
    others = rows(
        synced_home,
        "SELECT count(*) FROM crm_push_log WHERE sync_run_id = :run AND outcome = 'success'",
        run=first,
    )[0][0]
    assert others == len(plan.writes) - len(failed)
    with sqlite3.connect(synced_home.sandbox_db) as conn:
        conn.execute("UPDATE Contact SET IsDeleted = 0 WHERE Id = ?", (victim,))
    second = run_push(synced_home)
    retried = rows(
        synced_home,
        "SELECT record_id, outcome FROM crm_push_log WHERE sync_run_id = :run",
        run=second,
    )
    assert {r for r in retried} == {(victim, "success")}
    assert deletes_sent(synced_home) == 0


def test_a_large_push_goes_through_bulk_api_2(
    synced_home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("acton_pipelines.push.collections.BULK_THRESHOLD", 50)
    monkeypatch.setattr("acton_pipelines.push.collections.BULK_POLL_SECONDS", 0)
    plan = plan_push(warehouse_engine(synced_home.warehouse_url), MAPPING)
    assert len({(w.object, w.record_id) for w in plan.writes}) > 50
    victim = next(w.record_id for w in plan.writes if w.object == "Lead")
    with sqlite3.connect(synced_home.sandbox_db) as conn:
        conn.execute("UPDATE Lead SET IsDeleted = 1 WHERE Id = ?", (victim,))
    run_id = run_push(synced_home)
    outcomes = rows(
        synced_home,
        "SELECT record_id, outcome, error FROM crm_push_log WHERE sync_run_id = :run",
        run=run_id,
    )
    failed = {r[0]: r[2] for r in outcomes if r[1] == "failed"}
    assert set(failed) == {victim} and "ENTITY_IS_DELETED" in failed[victim]
    assert len(outcomes) == len(plan.writes)
    scored = dict(crm(synced_home, "SELECT Id, ActOn_Score__c FROM Lead WHERE IsDeleted = 0"))
    for write in plan.writes:
        if write.object == "Lead" and write.field == "ActOn_Score__c" and write.record_id != victim:
            assert scored[write.record_id] == write.new_value
    assert deletes_sent(synced_home) == 0
