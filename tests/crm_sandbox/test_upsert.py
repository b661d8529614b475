"""Upserts on the ``ActOn_Contact_Id__c`` external ID, through simple-salesforce over HTTPS.

Single records (``PATCH sobjects/Lead/ActOn_Contact_Id__c/{value}``) and sObject Collections
(``PATCH composite/sobjects/Lead/ActOn_Contact_Id__c``), their errors, the lost answer after a
committed write, and an old sandbox file gaining the field. Expectations are read from the
SQLite file, not from the API under test.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)

from crm_sandbox import SandboxServer, SeedSummary, churn_sandbox, login, store
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db
from tests.crm_sandbox.sqlite_reads import IdPool, count, fetch_all, fetch_record

KEY = "ActOn_Contact_Id__c"
COLLECTION = f"composite/sobjects/Lead/{KEY}"
LIVE_LEADS = '"IsConverted" = 0 AND "IsDeleted" = 0'
ROLLED_BACK = "ALL_OR_NONE_OPERATION_ROLLED_BACK"


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(SEED_NOW + timedelta(days=3))


@pytest.fixture(scope="module")
def upsert_server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
) -> Iterator[SandboxServer]:
    db_path = copy_db(seeded, tmp_path_factory.mktemp("upserts"))
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running


@pytest.fixture
def usf(upsert_server: SandboxServer) -> Iterator[Salesforce]:
    yield client_for(upsert_server)
    upsert_server.clear_faults()


@pytest.fixture(scope="module")
def pool(upsert_server: SandboxServer) -> IdPool:
    return IdPool(upsert_server.db_path)


@pytest.fixture
def db(upsert_server: SandboxServer) -> Path:
    return upsert_server.db_path


def _upsert(sf: Salesforce, value: str, fields: dict[str, Any]) -> requests.Response:
    response: requests.Response = sf.Lead.upsert(f"{KEY}/{value}", fields, raw_response=True)
    return response


def _new_lead(**fields: Any) -> dict[str, Any]:
    return {"LastName": "Upserted", "Company": "Acme", **fields}


def _record(value: str | None, type_: str = "Lead", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": type_}, **fields}
    if value is not None:
        record[KEY] = value
    return record


def _upsert_collection(
    sf: Salesforce, records: list[dict[str, Any]], *, all_or_none: bool = False
) -> Any:
    return sf.restful(
        COLLECTION, method="PATCH", json={"allOrNone": all_or_none, "records": records}
    )


def _leads_keyed(db: Path, value: str) -> list[dict[str, Any]]:
    """Live Leads whose key equals ``value`` ignoring case, read straight from the file."""
    return fetch_all(
        db,
        f'SELECT * FROM "Lead" WHERE lower("{KEY}") = lower(?) AND "IsDeleted" = 0 ORDER BY "Id"',
        (value,),
    )


def _set_key(db: Path, table: str, ids: list[str], value: str) -> None:
    """Give records a key value behind the API's back (as data loaded before it was unique)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany(
                f'UPDATE "{table}" SET "{KEY}" = ? WHERE "Id" = ?', [(value, i) for i in ids]
            )
    finally:
        conn.close()


def _codes(result: dict[str, Any]) -> list[str]:
    return [error["statusCode"] for error in result["errors"]]


def _url(sf: Salesforce, record_id: str) -> str:
    return f"/services/data/v{sf.sf_version}/sobjects/Lead/{record_id}"


# --- describe --------------------------------------------------------------------------------


_KEY_FLAGS = {
    "label": "Act-On Contact Id",
    "type": "string",
    "length": 255,
    "custom": True,
    "externalId": True,
    "unique": True,
    "idLookup": True,
    "nillable": True,
    "createable": True,
    "updateable": True,
    "calculated": False,
}


@pytest.mark.parametrize("sobject", ["Lead", "Contact"])
def test_describe_shows_the_external_id(usf: Salesforce, sobject: str) -> None:
    fields = {f["name"]: f for f in getattr(usf, sobject).describe()["fields"]}

    key = fields[KEY]
    assert set(key) == set(fields["Email"])  # described like every other field
    assert {name: key[name] for name in _KEY_FLAGS} == _KEY_FLAGS
    assert fields["Email"]["externalId"] is False


# --- single-record upsert --------------------------------------------------------------------


def test_upsert_creates_then_updates_the_same_lead(
    usf: Salesforce, db: Path, clock: FakeClock
) -> None:
    leads_before = count(db, "Lead")
    clock.advance(minutes=1)

    created = _upsert(usf, "AO-1001", _new_lead(Email="ao1001@example.com"))

    assert created.status_code == 201
    new_id = created.json()["id"]
    assert created.json() == {"id": new_id, "success": True, "errors": [], "created": True}
    stored = fetch_record(db, "Lead", new_id)
    assert (stored[KEY], stored["Email"]) == ("AO-1001", "ao1001@example.com")
    assert stored["CreatedDate"] == store.to_storage_datetime(clock.now)

    clock.advance(minutes=1)
    updated = _upsert(usf, "ao-1001", {"Title": "CMO"})  # matched case-insensitively

    assert updated.status_code == 200
    assert updated.json() == {"id": new_id, "success": True, "errors": [], "created": False}
    stored = fetch_record(db, "Lead", new_id)
    assert (stored["Title"], stored[KEY]) == ("CMO", "AO-1001")
    assert stored["SystemModstamp"] == store.to_storage_datetime(clock.now)
    assert count(db, "Lead") == leads_before + 1


def test_api_versions_before_46_answer_an_update_with_204(
    upsert_server: SandboxServer, db: Path
) -> None:
    http = upsert_server.session()
    instance_url, token = login(upsert_server, http)
    old = Salesforce(instance_url=instance_url, session_id=token, session=http, version="45.0")

    created = _upsert(old, "AO-4500", _new_lead())
    updated = _upsert(old, "AO-4500", {"Title": "Old API"})

    assert created.status_code == 201
    assert set(created.json()) == {"id", "success", "errors"}
    assert (updated.status_code, updated.content) == (204, b"")
    assert [r["Title"] for r in _leads_keyed(db, "AO-4500")] == ["Old API"]


def test_several_matching_records_answer_300_and_change_nothing(
    usf: Salesforce, db: Path, pool: IdPool
) -> None:
    twins = pool.take("Lead", LIVE_LEADS, 2)
    _set_key(db, "Lead", twins, "AO-TWIN")
    before = {i: fetch_record(db, "Lead", i) for i in twins}

    with pytest.raises(SalesforceMoreThanOneRecord) as upserting:
        _upsert(usf, "ao-twin", {"Title": "Which one?"})
    with pytest.raises(SalesforceMoreThanOneRecord) as reading:
        usf.Lead.get_by_custom_id(KEY, "AO-TWIN")

    urls = [_url(usf, i) for i in sorted(twins)]
    assert upserting.value.status == reading.value.status == 300
    assert upserting.value.content == reading.value.content == urls
    assert {i: fetch_record(db, "Lead", i) for i in twins} == before


def test_get_by_external_id(usf: Salesforce, db: Path) -> None:
    lead_id = _upsert(usf, "AO-GET", _new_lead(Title="Found")).json()["id"]

    record = usf.Lead.get_by_custom_id(KEY, "ao-get")

    assert (record["Id"], record["Title"], record[KEY]) == (lead_id, "Found", "AO-GET")
    with pytest.raises(SalesforceResourceNotFound):
        usf.Lead.get_by_custom_id(KEY, "AO-NOBODY")


@pytest.mark.parametrize(
    ("field", "error", "code"),
    [
        ("Shoe_Size__c", SalesforceResourceNotFound, "NOT_FOUND"),
        ("Title", SalesforceMalformedRequest, "INVALID_FIELD"),
        ("Id", SalesforceMalformedRequest, "INVALID_FIELD"),
    ],
)
def test_only_an_external_id_field_can_be_upserted_on(
    usf: Salesforce, db: Path, field: str, error: type[Exception], code: str
) -> None:
    leads_before = count(db, "Lead")

    with pytest.raises(error) as refused:
        usf.Lead.upsert(f"{field}/AO-WRONG", _new_lead(), raw_response=True)

    content = refused.value.content  # type: ignore[attr-defined]
    assert content[0]["errorCode"] == code
    assert field in content[0]["message"]
    assert count(db, "Lead") == leads_before


def test_a_create_is_validated_like_a_plain_create(usf: Salesforce, db: Path) -> None:
    with pytest.raises(SalesforceMalformedRequest) as plain:
        usf.Lead.create({"LastName": "No Company"})
    with pytest.raises(SalesforceMalformedRequest) as upserted:
        _upsert(usf, "AO-NOCOMPANY", {"LastName": "No Company"})

    assert upserted.value.content == plain.value.content
    assert upserted.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert _leads_keyed(db, "AO-NOCOMPANY") == []


def test_the_body_may_repeat_the_key_only_with_the_same_value(usf: Salesforce, db: Path) -> None:
    same = _upsert(usf, "AO-BODY", _new_lead(**{KEY: "ao-body"}))
    assert same.status_code == 201

    with pytest.raises(SalesforceMalformedRequest) as different:
        _upsert(usf, "AO-BODY", {KEY: "AO-OTHER", "Title": "Moved"})

    assert different.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert [(r[KEY], r["Title"]) for r in _leads_keyed(db, "AO-BODY")] == [("AO-BODY", None)]
    assert _leads_keyed(db, "AO-OTHER") == []


def test_the_key_stays_unique_on_plain_writes(usf: Salesforce, db: Path, pool: IdPool) -> None:
    owner_id = _upsert(usf, "AO-UNIQUE", _new_lead()).json()["id"]
    (other,) = pool.take("Lead", LIVE_LEADS, 1)

    with pytest.raises(SalesforceMalformedRequest) as created:
        usf.Lead.create(_new_lead(**{KEY: "ao-unique"}))
    with pytest.raises(SalesforceMalformedRequest) as updated:
        usf.Lead.update(other, {KEY: "AO-UNIQUE"})

    for refused in (created, updated):
        assert refused.value.content[0] == {
            "errorCode": "DUPLICATE_VALUE",
            "message": f"duplicate value found: {KEY} duplicates value on record with id: "
            f"{owner_id}",
            "fields": [KEY],
        }
    assert [r["Id"] for r in _leads_keyed(db, "AO-UNIQUE")] == [owner_id]
    # Unique per object: a Contact may carry the value of a Lead.
    contact = usf.Contact.create({"LastName": "Same Person", KEY: "AO-UNIQUE"})
    assert fetch_record(db, "Contact", contact["id"])[KEY] == "AO-UNIQUE"


def test_upserts_go_through_the_api_gate(
    upsert_server: SandboxServer, usf: Salesforce, db: Path
) -> None:
    usage = upsert_server.api_usage

    answer = _upsert(usf, "AO-GATE", _new_lead())

    assert upsert_server.api_usage == usage + 1
    assert answer.headers["Sforce-Limit-Info"] == f"api-usage={usage + 1}/100000"

    upsert_server.inject_fault(
        path_contains=f"/sobjects/Lead/{KEY}/", status=503, error_code="SERVER_UNAVAILABLE"
    )
    with pytest.raises(SalesforceGeneralError) as fault:
        _upsert(usf, "AO-GATE-FAULT", _new_lead())
    assert fault.value.status == 503
    assert _leads_keyed(db, "AO-GATE-FAULT") == []


# --- sObject Collections upsert ----------------------------------------------------------------


def test_200_records_upserted_twice_are_created_once(usf: Salesforce, db: Path) -> None:
    keys = [f"AO-C{n:03d}" for n in range(200)]
    leads_before = count(db, "Lead")

    first = _upsert_collection(usf, [_record(k, **_new_lead(FirstName=k)) for k in keys])

    assert all(r["success"] and r["created"] and r["errors"] == [] for r in first)
    ids = [r["id"] for r in first]
    assert [fetch_record(db, "Lead", i)[KEY] for i in ids] == keys
    assert count(db, "Lead") == leads_before + 200

    second = _upsert_collection(usf, [_record(k, Title="Again") for k in keys])

    assert second == [{"id": i, "success": True, "errors": [], "created": False} for i in ids]
    assert count(db, "Lead") == leads_before + 200
    assert all(fetch_record(db, "Lead", i)["Title"] == "Again" for i in ids)


def test_records_that_cannot_be_upserted_fail_alone(usf: Salesforce, db: Path) -> None:
    leads_before = count(db, "Lead")

    results = _upsert_collection(
        usf,
        [
            _record(None, **_new_lead()),
            _record("AO-TWICE", **_new_lead()),
            _record("ao-twice", **_new_lead()),
            _record("AO-FINE", **_new_lead()),
            _record("AO-NOCO", LastName="No Company"),
            _record("AO-IDENTIFIED", id="00Q000000000001AAA", **_new_lead()),
        ],
    )

    assert [_codes(r) for r in results] == [
        ["MISSING_ARGUMENT"],
        ["DUPLICATE_VALUE"],
        ["DUPLICATE_VALUE"],
        [],
        ["REQUIRED_FIELD_MISSING"],
        ["INVALID_FIELD"],
    ]
    assert results[0]["errors"][0]["message"] == f"{KEY} not specified"
    assert results[1]["errors"][0] == {
        "statusCode": "DUPLICATE_VALUE",
        "message": "Duplicate external id specified: AO-TWICE",
        "fields": [KEY],
    }
    failed = [r for i, r in enumerate(results) if i != 3]
    assert all(not r["success"] and not r["created"] and "id" not in r for r in failed)
    assert results[3]["created"] is True
    assert [r["Id"] for r in _leads_keyed(db, "AO-FINE")] == [results[3]["id"]]
    assert count(db, "Lead") == leads_before + 1


def test_a_value_on_several_records_fails_that_record(
    usf: Salesforce, db: Path, pool: IdPool
) -> None:
    twins = pool.take("Lead", LIVE_LEADS, 2)
    _set_key(db, "Lead", twins, "AO-COLL-TWIN")

    (result,) = _upsert_collection(usf, [_record("AO-COLL-TWIN", Title="Which?")])

    assert _codes(result) == ["DUPLICATE_EXTERNAL_ID"]
    assert all(fetch_record(db, "Lead", i)["Title"] != "Which?" for i in twins)


def test_all_or_none_rolls_every_record_back(usf: Salesforce, db: Path) -> None:
    existing = _upsert(usf, "AO-AON-OLD", _new_lead(Title="Before")).json()["id"]
    before = fetch_record(db, "Lead", existing)
    leads_before = count(db, "Lead")

    results = _upsert_collection(
        usf,
        [
            _record("AO-AON-OLD", Title="After"),
            _record("AO-AON-NEW", **_new_lead()),
            _record("AO-AON-BAD", LastName="No Company"),
        ],
        all_or_none=True,
    )

    assert [_codes(r) for r in results] == [
        [ROLLED_BACK],
        [ROLLED_BACK],
        ["REQUIRED_FIELD_MISSING"],
    ]
    assert results[0]["id"] == existing  # the record still exists; its change does not
    assert "id" not in results[1]
    assert not any(r["success"] or r["created"] for r in results)
    assert fetch_record(db, "Lead", existing) == before
    assert count(db, "Lead") == leads_before


@pytest.mark.parametrize(
    ("path", "records", "error", "code"),
    [
        (
            COLLECTION,
            [_record(f"AO-MANY-{n}") for n in range(201)],
            SalesforceMalformedRequest,
            "EXCEEDED_ID_LIMIT",
        ),
        (
            COLLECTION,
            [_record("AO-CONTACT", "Contact", LastName="C")],
            SalesforceMalformedRequest,
            "INVALID_TYPE",
        ),
        (
            "composite/sobjects/Lead/Shoe_Size__c",
            [_record("AO-SHOE")],
            SalesforceResourceNotFound,
            "NOT_FOUND",
        ),
        (
            "composite/sobjects/Lead/Email",
            [_record("AO-EMAIL")],
            SalesforceMalformedRequest,
            "INVALID_FIELD",
        ),
    ],
)
def test_malformed_collection_upserts_fail_whole(
    usf: Salesforce,
    db: Path,
    path: str,
    records: list[dict[str, Any]],
    error: type[Exception],
    code: str,
) -> None:
    leads_before = count(db, "Lead")

    with pytest.raises(error) as refused:
        usf.restful(path, method="PATCH", json={"records": records})

    assert refused.value.content[0]["errorCode"] == code  # type: ignore[attr-defined]
    assert count(db, "Lead") == leads_before


# --- a lost answer after the commit ------------------------------------------------------------


def test_a_lost_collection_answer_is_safe_to_retry(
    upsert_server: SandboxServer, usf: Salesforce, db: Path
) -> None:
    keys = ["AO-LOST-1", "AO-LOST-2", "AO-LOST-3"]
    batch = [_record(k, **_new_lead()) for k in keys]
    leads_before, dropped = count(db, "Lead"), upsert_server.connections_dropped
    upsert_server.drop_connections(path_contains=f"/composite/sobjects/Lead/{KEY}", method="PATCH")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _upsert_collection(usf, batch)

    assert upsert_server.connections_dropped == dropped + 1
    made = {k: [r["Id"] for r in _leads_keyed(db, k)] for k in keys}
    assert all(len(ids) == 1 for ids in made.values())  # the server did commit the creates

    retried = _upsert_collection(usf, batch)

    assert [(r["id"], r["created"]) for r in retried] == [(made[k][0], False) for k in keys]
    assert count(db, "Lead") == leads_before + 3


def test_a_lost_single_upsert_answer_is_safe_to_retry(
    upsert_server: SandboxServer, usf: Salesforce, db: Path
) -> None:
    leads_before = count(db, "Lead")
    upsert_server.drop_connections(path_contains=f"/sobjects/Lead/{KEY}/", method="PATCH")

    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _upsert(usf, "AO-LOST-ONE", _new_lead())

    (made,) = _leads_keyed(db, "AO-LOST-ONE")
    retried = _upsert(usf, "AO-LOST-ONE", _new_lead())
    assert (retried.status_code, retried.json()["id"]) == (200, made["Id"])
    assert count(db, "Lead") == leads_before + 1


# --- a sandbox file from before the field --------------------------------------------------------


@pytest.fixture
def old_file(seeded: SeedSummary, tmp_path: Path) -> Path:
    """A seeded file as an earlier sandbox wrote it: no key column, no index on it."""
    path = copy_db(seeded, tmp_path)
    conn = sqlite3.connect(path)
    try:
        for table in ("Lead", "Contact"):
            conn.execute(f'DROP INDEX IF EXISTS "ix_{table}_{KEY}"')
            conn.execute(f'ALTER TABLE "{table}" DROP COLUMN "{KEY}"')
        conn.commit()
    finally:
        conn.close()
    assert KEY not in _columns(path, "Lead")
    return path


def _columns(path: Path, table: str) -> set[str]:
    return {row["name"] for row in fetch_all(path, f'PRAGMA table_info("{table}")')}


def test_an_old_file_gets_the_column_when_served(
    old_file: Path, cert_dir: Path, clock: FakeClock
) -> None:
    leads = count(old_file, "Lead")

    with SandboxServer(old_file, cert_dir, clock=clock) as running:
        created = _upsert(client_for(running), "AO-OLD-FILE", _new_lead())

    assert {KEY} <= _columns(old_file, "Lead") & _columns(old_file, "Contact")
    assert count(old_file, "Lead", f'"{KEY}" IS NULL') == leads  # the seeded ones stay NULL
    assert fetch_record(old_file, "Lead", created.json()["id"])[KEY] == "AO-OLD-FILE"


def test_an_old_file_can_be_churned(old_file: Path) -> None:
    summary = churn_sandbox(old_file, now=SEED_NOW + timedelta(days=1))

    assert summary.created["Lead"]
    assert KEY in _columns(old_file, "Contact")
    new_leads = ", ".join(f"'{i}'" for i in summary.created["Lead"])
    assert count(old_file, "Lead", f'"Id" IN ({new_leads}) AND "{KEY}" IS NULL') == len(
        summary.created["Lead"]
    )
