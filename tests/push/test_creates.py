"""New Leads are made exactly once, on both warehouse backends: a create is an upsert on the
contact's id, so answers lost after the CRM made the Lead are retried safely; a create the CRM
refuses is tried ACTON_CREATE_ATTEMPTS times, then left failed with the CRM's reason."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert

from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.schema import prepare_warehouse
from acton_pipelines.warehouse.tables import acton_contacts_table, crm_create_requests
from crm_sandbox import SeedSummary
from tests.conftest import ActonHome, make_home
from tests.push.helpers import MAPPING, crm, push_with, rows, sandbox_client


@pytest.fixture
def home(
    tmp_path: Path, small_crm: SeedSummary, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> ActonHome:
    """A home with the sandbox CRM and an empty warehouse of ``warehouse_url``'s kind."""
    made = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse_url)
    prepare_warehouse(warehouse_engine(made.warehouse_url), MAPPING)
    return made


def request_create(home: ActonHome, email: str, **fields: str) -> str:
    """An Act-On-only contact (``fields``: acton_contacts columns) asked to be created."""
    contact_id = f"acton:{email}"
    now = datetime.now(UTC)
    with warehouse_engine(home.warehouse_url).begin() as conn:
        conn.execute(
            insert(acton_contacts_table(MAPPING)).values(
                contact_id=contact_id, email=email, source="acton", updated_at=now, **fields
            )
        )
        conn.execute(
            insert(crm_create_requests).values(
                contact_id=contact_id, email=email, requested_at=now, status="pending"
            )
        )
    return contact_id


def leads_with(home: ActonHome, email: str) -> list[tuple]:
    return crm(home, "SELECT Id, ActOn_Contact_Id__c FROM Lead WHERE Email = ?", email)


def request_state(home: ActonHome, contact_id: str) -> tuple:
    return rows(
        home,
        "SELECT status, crm_id, attempts, error FROM crm_create_requests WHERE contact_id = :c",
        c=contact_id,
    )[0]


def test_answers_lost_after_the_crm_made_the_lead_never_make_a_second_one(
    home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lost answer is no refusal: even a single allowed attempt leaves the request planned.
    monkeypatch.setenv("ACTON_CREATE_ATTEMPTS", "1")
    email = "lost.answer@example.com"
    contact_id = request_create(home, email, first_name="Lost", last_name="Answer", company="Co")
    with sandbox_client(home, attempts=3) as (server, client):
        # Every answer to a Lead upsert is cut after the CRM committed it.
        server.drop_connections(
            path_contains="/composite/sobjects/Lead/", method="PATCH", probability=1.0
        )
        push_with(home, client, "answers-lost")
        dropped = server.connections_dropped
        after_loss = request_state(home, contact_id)
        server.clear_faults()
        after_first = leads_with(home, email)
        push_with(home, client, "next-push")

    assert dropped == 3  # the client's three attempts all reached the CRM
    assert after_loss[:3] == ("pending", None, 1) and "connection dropped" in after_loss[3]
    ((lead_id, key),) = after_first
    assert key == contact_id
    assert leads_with(home, email) == [(lead_id, contact_id)]
    status, crm_id, attempts, error = request_state(home, contact_id)
    assert (status, crm_id, attempts, error) == ("created", lead_id, 2, None)
    assert rows(
        home,
        "SELECT contact_id, external_id, record_type, source FROM acton_contacts WHERE email = :e",
        e=email,
    ) == [(contact_id, lead_id, "Lead", "crm")]
    log = rows(
        home,
        "SELECT sync_run_id, record_id, reason, outcome, error FROM crm_push_log ORDER BY id",
    )
    assert [r[:4] for r in log] == [
        ("answers-lost", "", "create", "failed"),
        ("next-push", lead_id, "create", "success"),
    ]
    assert "connection dropped" in log[0][4]
    assert rows(
        home,
        "SELECT old_contact_id, new_contact_id, new_object, new_record_id, reason "
        "FROM contact_id_changes",
    ) == [(contact_id, contact_id, "Lead", lead_id, "created_in_crm")]


def test_a_create_the_crm_refuses_is_tried_a_set_number_of_times_then_failed(
    home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTON_CREATE_ATTEMPTS", "2")
    email = "no.name@example.com"
    contact_id = request_create(home, email, first_name="Nameless")  # no LastName, no Company
    with sandbox_client(home) as (_, client):
        push_with(home, client, "first")
        first = request_state(home, contact_id)
        push_with(home, client, "second")
        second = request_state(home, contact_id)
        push_with(home, client, "third")

    assert first[:3] == ("pending", None, 1)
    assert "REQUIRED_FIELD_MISSING" in first[3] and "LastName" in first[3]
    assert second[:3] == ("failed", None, 2)
    assert "REQUIRED_FIELD_MISSING" in second[3]
    assert request_state(home, contact_id) == second  # no longer planned
    assert rows(home, "SELECT sync_run_id, outcome FROM crm_push_log ORDER BY id") == [
        ("first", "failed"),
        ("second", "failed"),
    ]
    assert leads_with(home, email) == []
