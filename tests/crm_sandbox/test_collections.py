"""sObject Collections (``composite/sobjects``) through simple-salesforce's ``restful``.

Expectations are read from the SQLite file, not from the API under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceExpiredSession,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceRefusedRequest,
)

from crm_sandbox import SandboxServer, SeedSummary, store
from crm_sandbox.ids import make_id
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db
from tests.crm_sandbox.sqlite_reads import IdPool, count, fetch_record

PATH = "composite/sobjects"
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"
LIVE_LEADS = '"IsConverted" = 0 AND "IsDeleted" = 0'


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(SEED_NOW + timedelta(days=2))


@pytest.fixture(scope="module")
def coll_server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
) -> Iterator[SandboxServer]:
    db_path = copy_db(seeded, tmp_path_factory.mktemp("collections"))
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running


@pytest.fixture(scope="module")
def csf(coll_server: SandboxServer) -> Salesforce:
    return client_for(coll_server)


@pytest.fixture(scope="module")
def pool(coll_server: SandboxServer) -> IdPool:
    return IdPool(coll_server.db_path)


@pytest.fixture
def db(coll_server: SandboxServer) -> Path:
    return coll_server.db_path


def _record(type_: str, record_id: str | None = None, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": type_}, **fields}
    if record_id is not None:
        record["id"] = record_id
    return record


def _patch(sf: Salesforce, records: list[dict[str, Any]], *, all_or_none: bool = False) -> Any:
    body = {"allOrNone": all_or_none, "records": records}
    return sf.restful(PATH, method="PATCH", json=body)


def _codes(result: dict[str, Any]) -> list[str]:
    return [error["statusCode"] for error in result["errors"]]


def _stamp(clock: FakeClock) -> str:
    return store.to_storage_datetime(clock.now)


def test_update_of_mixed_objects_answers_in_request_order(
    csf: Salesforce, db: Path, pool: IdPool, clock: FakeClock
) -> None:
    first, second = pool.take("Lead", LIVE_LEADS, 2)
    (contact,) = pool.take("Contact", '"IsDeleted" = 0')
    clock.advance(minutes=7)

    results = _patch(
        csf,
        [
            _record("Lead", first, ActOn_Score__c=42, HasOptedOutOfEmail=True),
            _record("Contact", contact, Title="Chief Scorer", Email="bad address"),
            _record("Lead", second, Interests__c="SEO", Email=None),
        ],
    )

    assert [r["id"] for r in results] == [first, contact, second]
    assert [r["success"] for r in results] == [True, False, True]
    assert results[0]["errors"] == results[2]["errors"] == []
    assert results[1]["errors"] == [
        {
            "statusCode": "INVALID_EMAIL_ADDRESS",
            "message": "Email: invalid email address: bad address",
            "fields": ["Email"],
        }
    ]
    lead = fetch_record(db, "Lead", first)
    assert (lead["ActOn_Score__c"], lead["HasOptedOutOfEmail"]) == (42.0, 1)
    assert lead["SystemModstamp"] == lead["LastModifiedDate"] == _stamp(clock)
    cleared = fetch_record(db, "Lead", second)
    assert (cleared["Interests__c"], cleared["Email"]) == ("SEO", None)
    refused = fetch_record(db, "Contact", contact)
    assert refused["Title"] != "Chief Scorer"
    assert refused["SystemModstamp"] < _stamp(clock)


def test_create_of_mixed_objects_answers_new_ids_in_order(
    csf: Salesforce, db: Path, clock: FakeClock
) -> None:
    clock.advance(minutes=3)
    leads_before = count(db, "Lead")

    results = csf.restful(
        PATH,
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                _record("Contact", LastName="Collection", Email="c1@acme.example.com"),
                _record("Lead", LastName="No Company"),
                _record("Lead", LastName="Collection", Company="Acme", ActOn_Score__c=7),
            ],
        },
    )

    assert [r["success"] for r in results] == [True, False, True]
    assert "id" not in results[1]
    assert _codes(results[1]) == ["REQUIRED_FIELD_MISSING"]
    assert results[1]["errors"][0]["fields"] == ["Company"]
    contact = fetch_record(db, "Contact", results[0]["id"])
    lead = fetch_record(db, "Lead", results[2]["id"])
    assert (contact["LastName"], contact["Email"]) == ("Collection", "c1@acme.example.com")
    assert (lead["Company"], lead["ActOn_Score__c"]) == ("Acme", 7.0)
    assert lead["CreatedDate"] == lead["SystemModstamp"] == _stamp(clock)
    assert count(db, "Lead") == leads_before + 1


def test_200_records_are_accepted(csf: Salesforce, db: Path, pool: IdPool) -> None:
    ids = pool.take("Lead", LIVE_LEADS, 200)

    results = _patch(csf, [_record("Lead", i, Fit_Score__c=200) for i in ids])

    assert [r["id"] for r in results] == ids
    assert all(r["success"] for r in results)
    assert all(fetch_record(db, "Lead", i)["Fit_Score__c"] == 200.0 for i in ids)


def test_more_than_200_records_are_refused_whole(csf: Salesforce, db: Path, pool: IdPool) -> None:
    ids = pool.take("Lead", LIVE_LEADS, 201)

    with pytest.raises(SalesforceMalformedRequest) as error:
        _patch(csf, [_record("Lead", i, Fit_Score__c=201) for i in ids])

    assert error.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert "200" in error.value.content[0]["message"]
    assert all(fetch_record(db, "Lead", i)["Fit_Score__c"] != 201.0 for i in ids)


def test_converted_lead_fails_alone(csf: Salesforce, db: Path, pool: IdPool) -> None:
    (converted,) = pool.take("Lead", '"IsConverted" = 1', 1)
    (live,) = pool.take("Lead", LIVE_LEADS, 1)
    before = fetch_record(db, "Lead", converted)

    results = _patch(
        csf, [_record("Lead", converted, Title="Nope"), _record("Lead", live, Title="Yes")]
    )

    assert results[0] == {
        "id": converted,
        "success": False,
        "errors": [
            {
                "statusCode": "CANNOT_UPDATE_CONVERTED_LEAD",
                "message": "cannot reference converted lead",
                "fields": [],
            }
        ],
    }
    assert results[1]["success"] is True
    assert fetch_record(db, "Lead", converted) == before
    assert fetch_record(db, "Lead", live)["Title"] == "Yes"


@pytest.mark.parametrize(
    ("fields", "code", "reported"),
    [
        ({"Name": "Computed"}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["Name"]),
        (
            {"IsConverted": True, "SystemModstamp": "2026-01-01T00:00:00Z"},
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ["IsConverted", "SystemModstamp"],
        ),
        ({"Shoe_Size__c": 44}, "INVALID_FIELD", ["Shoe_Size__c"]),
        ({"Interests__c": "Knitting"}, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", ["Interests__c"]),
        ({"ActOn_Score__c": 10_000_000}, "NUMBER_OUTSIDE_VALID_RANGE", ["ActOn_Score__c"]),
        ({"LastName": None}, "REQUIRED_FIELD_MISSING", ["LastName"]),
        ({"OwnerId": "005000000000000AAA"}, "FIELD_INTEGRITY_EXCEPTION", ["OwnerId"]),
    ],
)
def test_field_errors_fail_the_record_and_leave_it_unchanged(
    csf: Salesforce,
    db: Path,
    pool: IdPool,
    fields: dict[str, Any],
    code: str,
    reported: list[str],
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    before = fetch_record(db, "Lead", lead_id)

    (result,) = _patch(csf, [_record("Lead", lead_id, Title="Changed", **fields)])

    assert result["id"] == lead_id
    assert result["success"] is False
    assert _codes(result) == [code]
    assert result["errors"][0]["fields"] == reported
    assert fetch_record(db, "Lead", lead_id) == before


def test_record_addressing_errors(csf: Salesforce, db: Path, pool: IdPool) -> None:
    (deleted,) = pool.take("Lead", '"IsDeleted" = 1', 1)
    (contact,) = pool.take("Contact", '"IsDeleted" = 0', 1)
    never_existed = make_id("00Q", 999_999_999)
    assert count(db, "Lead", f"\"Id\" = '{never_existed}'") == 0

    results = _patch(
        csf,
        [
            _record("Lead", deleted, Title="x"),
            _record("Lead", never_existed, Title="x"),
            _record("Lead", "not-an-id", Title="x"),
            _record("Lead", contact, Title="x"),
            _record("Lead", None, Title="x"),
        ],
    )

    assert [_codes(r) for r in results] == [
        ["ENTITY_IS_DELETED"],
        ["ENTITY_IS_DELETED"],
        ["MALFORMED_ID"],
        ["INVALID_CROSS_REFERENCE_KEY"],
        ["MISSING_ARGUMENT"],
    ]
    assert not any(r["success"] for r in results)
    assert fetch_record(db, "Lead", deleted)["IsDeleted"] == 1


def test_create_refuses_an_id(csf: Salesforce, db: Path, pool: IdPool) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    leads_before = count(db, "Lead")

    (result,) = csf.restful(
        PATH,
        method="POST",
        json={"records": [_record("Lead", lead_id, LastName="Dup", Company="Dup")]},
    )

    assert _codes(result) == ["INVALID_FIELD"]
    assert count(db, "Lead") == leads_before


def test_all_or_none_update_rolls_everything_back(
    csf: Salesforce, db: Path, pool: IdPool, clock: FakeClock
) -> None:
    good = pool.take("Lead", LIVE_LEADS, 2)
    (converted,) = pool.take("Lead", '"IsConverted" = 1', 1)
    before = {i: fetch_record(db, "Lead", i) for i in [*good, converted]}
    clock.advance(minutes=1)

    results = _patch(
        csf,
        [
            _record("Lead", good[0], ActOn_Score__c=99),
            _record("Lead", converted, ActOn_Score__c=99),
            _record("Lead", good[1], ActOn_Score__c=99),
        ],
        all_or_none=True,
    )

    assert [r["id"] for r in results] == [good[0], converted, good[1]]
    assert not any(r["success"] for r in results)
    assert [_codes(r) for r in results] == [
        [ROLLED_BACK],
        ["CANNOT_UPDATE_CONVERTED_LEAD"],
        [ROLLED_BACK],
    ]
    assert {i: fetch_record(db, "Lead", i) for i in before} == before


def test_all_or_none_create_rolls_everything_back(csf: Salesforce, db: Path) -> None:
    leads_before, contacts_before = count(db, "Lead"), count(db, "Contact")

    results = csf.restful(
        PATH,
        method="POST",
        json={
            "allOrNone": True,
            "records": [
                _record("Lead", LastName="Rolled", Company="Back"),
                _record("Contact", LastName="Rolled", Email="nope"),
            ],
        },
    )

    assert results == [
        {
            "success": False,
            "errors": [
                {
                    "statusCode": ROLLED_BACK,
                    "message": "Record rolled back because not all records were valid and the "
                    "request was using AllOrNone header",
                    "fields": [],
                }
            ],
        },
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "INVALID_EMAIL_ADDRESS",
                    "message": "Email: invalid email address: nope",
                    "fields": ["Email"],
                }
            ],
        },
    ]
    assert (count(db, "Lead"), count(db, "Contact")) == (leads_before, contacts_before)


def test_all_or_none_commits_when_every_record_succeeds(
    csf: Salesforce, db: Path, pool: IdPool, clock: FakeClock
) -> None:
    ids = pool.take("Lead", LIVE_LEADS, 2)
    clock.advance(minutes=1)

    results = _patch(csf, [_record("Lead", i, Newsletter__c=True) for i in ids], all_or_none=True)

    assert all(r["success"] for r in results)
    for lead_id in ids:
        stored = fetch_record(db, "Lead", lead_id)
        assert (stored["Newsletter__c"], stored["SystemModstamp"]) == (1, _stamp(clock))


@pytest.mark.parametrize(
    ("records", "code"),
    [
        ([{"id": "00Q5e0000000001EAA", "Title": "x"}], "INVALID_TYPE"),
        ([_record("Shoe", "00Q5e0000000001EAA", Title="x")], "INVALID_TYPE"),
        (["not a record"], "JSON_PARSER_ERROR"),
    ],
)
def test_malformed_requests_fail_whole_and_write_nothing(
    csf: Salesforce, db: Path, pool: IdPool, records: list[Any], code: str
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    before = fetch_record(db, "Lead", lead_id)

    with pytest.raises(SalesforceMalformedRequest) as error:
        _patch(csf, [_record("Lead", lead_id, Title="First"), *records])

    assert error.value.content[0]["errorCode"] == code
    assert fetch_record(db, "Lead", lead_id) == before


def test_collections_go_through_the_api_gate(
    coll_server: SandboxServer, csf: Salesforce, db: Path, pool: IdPool
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    usage = coll_server.api_usage

    # Trailing slash, as the library spells other paths; one request counts once.
    (result,) = csf.restful(
        PATH + "/", method="PATCH", json={"records": [_record("Lead", lead_id)]}
    )
    assert result["success"] is True
    assert coll_server.api_usage == usage + 1

    coll_server.inject_fault(
        path_contains="/composite/sobjects", status=503, error_code="SERVER_UNAVAILABLE"
    )
    with pytest.raises(SalesforceGeneralError) as fault:
        _patch(csf, [_record("Lead", lead_id, Title="Faulted")])
    assert fault.value.status == 503
    assert fetch_record(db, "Lead", lead_id)["Title"] != "Faulted"

    anonymous = Salesforce(
        instance_url=coll_server.instance_url, session_id="expired", session=coll_server.session()
    )
    with pytest.raises(SalesforceExpiredSession):
        _patch(anonymous, [_record("Lead", lead_id, Title="Anonymous")])
    assert fetch_record(db, "Lead", lead_id)["Title"] != "Anonymous"


def test_collection_delete_is_refused_and_counted(
    coll_server: SandboxServer, csf: Salesforce, db: Path, pool: IdPool
) -> None:
    (lead_id,) = pool.take("Lead", LIVE_LEADS, 1)
    refused = coll_server.deletes_refused

    with pytest.raises(SalesforceRefusedRequest) as error:
        csf.restful(PATH, method="DELETE", params={"ids": lead_id, "allOrNone": "false"})

    assert error.value.content[0]["errorCode"] == "DELETE_REFUSED"
    assert coll_server.deletes_refused == refused + 1
    assert fetch_record(db, "Lead", lead_id)["IsDeleted"] == 0
