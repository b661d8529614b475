"""Record reads and writes (GET, PATCH, POST) and refused deletes, on a private server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
    SalesforceResourceNotFound,
)

from crm_sandbox import SandboxServer, SeedSummary
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db


@pytest.fixture(scope="module")
def write_clock() -> FakeClock:
    return FakeClock(SEED_NOW + timedelta(days=1))


@pytest.fixture(scope="module")
def write_server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    write_clock: FakeClock,
) -> Iterator[SandboxServer]:
    db_path = copy_db(seeded, tmp_path_factory.mktemp("writes"))
    with SandboxServer(db_path, cert_dir, clock=write_clock) as running:
        yield running


@pytest.fixture(scope="module")
def wsf(write_server: SandboxServer) -> Salesforce:
    return client_for(write_server)


def _first(sf: Salesforce, soql: str) -> dict:
    records = sf.query(soql)["records"]
    assert records, soql
    return records[0]


def test_get_record_returns_every_field(wsf: Salesforce) -> None:
    lead_id = _first(wsf, "SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")["Id"]

    record = wsf.Lead.get(lead_id)

    assert record["attributes"]["type"] == "Lead"
    assert record["Id"] == lead_id
    assert {"Email", "SystemModstamp", "ActOn_Score__c", "Interests__c"} <= set(record)


def test_get_record_with_selected_fields(write_server: SandboxServer, wsf: Salesforce) -> None:
    contact_id = _first(wsf, "SELECT Id FROM Contact LIMIT 1")["Id"]
    url = f"{write_server.instance_url}/services/data/v59.0/sobjects/Contact/{contact_id}"

    response = write_server.session().get(
        url,
        params={"fields": "Email,lastname"},
        headers={"Authorization": f"Bearer {wsf.session_id}"},
        timeout=10,
    )

    assert list(response.json()) == ["attributes", "Email", "LastName"]


@pytest.mark.parametrize("record_id", ["00Q5e0000009ZZZEAA", "003000000000000AAA", "nonsense"])
def test_missing_record_is_not_found(wsf: Salesforce, record_id: str) -> None:
    with pytest.raises(SalesforceResourceNotFound):
        wsf.Lead.get(record_id)


def test_patch_updates_fields_and_moves_the_stamps(wsf: Salesforce, write_clock: FakeClock) -> None:
    before = _first(
        wsf,
        "SELECT Id, SystemModstamp, LastModifiedDate FROM Contact "
        "WHERE Email != null AND IsDeleted = false LIMIT 1",
    )
    now = write_clock.advance(minutes=5)

    status = wsf.Contact.update(
        before["Id"],
        {"ActOn_Score__c": 87.4, "Interests__c": "SEO;Analytics", "Email": None},
    )

    assert status == 204
    after = wsf.Contact.get(before["Id"])
    assert after["ActOn_Score__c"] == 87.0  # scale 0: rounded like Salesforce does
    assert after["Interests__c"] == "Analytics;SEO"  # stored in picklist order
    assert after["Email"] is None
    expected_stamp = now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    assert after["SystemModstamp"] == after["LastModifiedDate"] == expected_stamp
    assert after["SystemModstamp"] > before["SystemModstamp"]


def test_patched_records_show_up_in_incremental_queries(
    wsf: Salesforce, write_clock: FakeClock
) -> None:
    since = write_clock.advance(hours=1)
    lead_id = _first(wsf, "SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")["Id"]
    write_clock.advance(seconds=30)
    wsf.Lead.update(lead_id, {"Fit_Score__c": 12})

    changed = wsf.query_all(format_soql("SELECT Id FROM Lead WHERE SystemModstamp >= {}", since))

    assert [r["Id"] for r in changed["records"]] == [lead_id]


def test_name_is_recomputed_from_first_and_last_name(wsf: Salesforce) -> None:
    contact_id = _first(wsf, "SELECT Id FROM Contact WHERE IsDeleted = false LIMIT 1")["Id"]

    wsf.Contact.update(contact_id, {"FirstName": "Zoë", "LastName": "Ångström"})

    assert wsf.Contact.get(contact_id)["Name"] == "Zoë Ångström"


@pytest.mark.parametrize(
    ("body", "error_code"),
    [
        ({"SystemModstamp": "2026-01-01T00:00:00Z"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Name": "Computed Field"}, "INVALID_FIELD_FOR_INSERT_UPDATE"),
        ({"Shoe_Size__c": 44}, "INVALID_FIELD"),
        ({"Email": "not an email"}, "INVALID_EMAIL_ADDRESS"),
        ({"Interests__c": "Email;Knitting"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        ({"ActOn_Score__c": 1_000_000}, "NUMBER_OUTSIDE_VALID_RANGE"),
        ({"ActOn_Score__c": "lots"}, "JSON_PARSER_ERROR"),
        ({"Renewal_Date__c": "next tuesday"}, "JSON_PARSER_ERROR"),
        ({"LastName": None}, "REQUIRED_FIELD_MISSING"),
        ({"LastName": "x" * 81}, "STRING_TOO_LONG"),
        ({"AccountId": "001000000000000AAA"}, "FIELD_INTEGRITY_EXCEPTION"),
    ],
)
def test_invalid_updates_are_refused_with_salesforce_error_codes(
    wsf: Salesforce, body: dict, error_code: str
) -> None:
    contact = _first(wsf, "SELECT Id, SystemModstamp FROM Contact WHERE IsDeleted = false LIMIT 1")

    with pytest.raises(SalesforceMalformedRequest) as error:
        wsf.Contact.update(contact["Id"], body)

    assert error.value.content[0]["errorCode"] == error_code
    assert wsf.Contact.get(contact["Id"])["SystemModstamp"] == contact["SystemModstamp"]


def test_converted_leads_cannot_be_updated(wsf: Salesforce) -> None:
    lead_id = _first(wsf, "SELECT Id FROM Lead WHERE IsConverted = true LIMIT 1")["Id"]

    with pytest.raises(SalesforceMalformedRequest) as error:
        wsf.Lead.update(lead_id, {"ActOn_Score__c": 10})

    assert error.value.content[0]["errorCode"] == "CANNOT_UPDATE_CONVERTED_LEAD"


def test_create_returns_201_with_the_new_id(wsf: Salesforce, write_clock: FakeClock) -> None:
    now = write_clock.advance(minutes=1)

    result = wsf.Lead.create(
        {"LastName": "O'Brien \\ Test", "Company": "Acme", "Email": "ob@acme.example.com"}
    )

    assert result["success"] is True
    assert result["errors"] == []
    new_id = result["id"]
    assert new_id.startswith("00Q") and len(new_id) == 18
    created = wsf.Lead.get(new_id)
    assert created["Status"] == "Open - Not Contacted"  # the picklist default
    assert created["HasOptedOutOfEmail"] is False
    assert created["OwnerId"].startswith("005")
    assert created["CreatedDate"] == now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    found = wsf.query(format_soql("SELECT Id FROM Lead WHERE LastName = {}", "O'Brien \\ Test"))
    assert [r["Id"] for r in found["records"]] == [new_id]


def test_create_status_is_201(write_server: SandboxServer, wsf: Salesforce) -> None:
    response = write_server.session().post(
        f"{write_server.instance_url}/services/data/v59.0/sobjects/Contact/",
        json={"LastName": "Status"},
        headers={"Authorization": f"Bearer {wsf.session_id}"},
        timeout=10,
    )

    assert response.status_code == 201


def test_create_without_required_fields_is_refused(wsf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        wsf.Lead.create({"FirstName": "Nobody"})

    assert error.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert set(error.value.content[0]["fields"]) == {"LastName", "Company"}


def test_delete_is_refused_and_counted(write_server: SandboxServer, wsf: Salesforce) -> None:
    lead_id = _first(wsf, "SELECT Id FROM Lead WHERE IsConverted = false LIMIT 1")["Id"]
    before = write_server.deletes_refused

    with pytest.raises(SalesforceRefusedRequest) as error:
        wsf.Lead.delete(lead_id)

    assert error.value.content[0]["errorCode"] == "DELETE_REFUSED"
    assert write_server.deletes_refused == before + 1
    assert wsf.Lead.get(lead_id)["Id"] == lead_id
    unauthenticated = write_server.session().delete(
        f"{write_server.instance_url}/services/data/v59.0/sobjects/Contact/003", timeout=10
    )
    assert unauthenticated.status_code == 403
    assert write_server.deletes_refused == before + 2


def test_paging_is_stable_while_records_change(
    write_server: SandboxServer, wsf: Salesforce, write_clock: FakeClock
) -> None:
    soql = "SELECT Id, IsConverted, SystemModstamp FROM Lead ORDER BY SystemModstamp"
    first = wsf.query(soql, headers={"Sforce-Query-Options": "batchSize=1000"})
    assert first["done"] is False
    # Concurrent CRM activity: a record of the first page moves to the end of the order, and
    # one of a later page is deleted (outside the API, which refuses deletes).
    write_clock.advance(hours=1)
    moved = next(r["Id"] for r in first["records"] if not r["IsConverted"])
    wsf.Lead.update(moved, {"Fit_Score__c": 1})
    conn = sqlite3.connect(write_server.db_path)
    with conn:
        later = conn.execute(
            'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0 ORDER BY "SystemModstamp" LIMIT 1 '
            "OFFSET 2500"
        ).fetchone()[0]
        conn.execute('UPDATE "Lead" SET "IsDeleted" = 1 WHERE "Id" = ?', (later,))
    conn.close()

    pages = [first]
    while not pages[-1]["done"]:
        pages.append(wsf.query_more(pages[-1]["nextRecordsUrl"], identifier_is_url=True))

    ids = [r["Id"] for page in pages for r in page["records"]]
    assert len(ids) == len(set(ids)) == first["totalSize"]
    assert ids.count(moved) == 1
