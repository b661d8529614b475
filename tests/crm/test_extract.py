"""SOQL built from validated identifiers, and query pages typed into DataFrames."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest

from acton_pipelines.crm.extract import build_soql, field_types, page_frame
from acton_pipelines.crm.objects import ACCOUNT, CONTACT, LEAD, USER, fields_to_read
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping, ScoreSheet
from acton_pipelines.runs.window import FULL_SYNC, SyncWindow
from acton_pipelines.warehouse.tables import crm_column_name


def test_full_sync_reads_without_a_where_clause() -> None:
    assert build_soql(LEAD, ["Id", "Email"], FULL_SYNC) == "SELECT Id, Email FROM Lead"


def test_a_window_becomes_bound_datetime_literals() -> None:
    window = SyncWindow(
        "incremental", datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)
    )
    assert build_soql(CONTACT, ["Id"], window) == (
        "SELECT Id FROM Contact WHERE SystemModstamp >= 2026-11-25T00:00:00+00:00 "
        "AND SystemModstamp < 2026-11-26T00:00:00+00:00"
    )


@pytest.mark.parametrize("bad", ["Id, (SELECT Id FROM Users)", "Email; DROP", "Account..Name", ""])
def test_field_names_that_are_not_identifiers_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid Salesforce field name"):
        build_soql(LEAD, ["Id", bad], FULL_SYNC)


def test_naive_window_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SyncWindow("incremental", datetime(2026, 11, 25))


def _mapping(*fields: FieldMapping) -> Mapping:
    return Mapping(fields=list(fields), score_sheets=[ScoreSheet(name="default")])


def test_fields_to_read_joins_account_and_owner_hops_through_their_mirrors() -> None:
    mapping = _mapping(
        FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
        FieldMapping(
            destination="Company", type=DataType.TEXT, lead="Company", contact="Account.Name"
        ),
        FieldMapping(destination="Size", type=DataType.NUMBER, contact="Account.NumberOfEmployees"),
        FieldMapping(destination="Rep", type=DataType.TEXT, lead="Owner.Title"),
        FieldMapping(destination="Boss", type=DataType.EMAIL, contact="ReportsTo.Email"),
    )
    lead = fields_to_read(LEAD, mapping)
    contact = fields_to_read(CONTACT, mapping)
    account = fields_to_read(ACCOUNT, mapping)
    user = fields_to_read(USER, mapping)
    assert "Company" in lead and "Owner.Title" not in lead
    assert "Account.Name" not in contact and "ReportsTo.Email" in contact
    assert "NumberOfEmployees" in account
    assert account.count("Name") == 1  # a base field is not read twice
    assert "Title" in user


def test_a_leads_owner_name_is_read_with_the_lead_once_whatever_the_mapping() -> None:
    for spelling in ("Owner.Name", "owner.Name"):
        mapping = _mapping(
            FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
            FieldMapping(destination="Rep", type=DataType.TEXT, lead=spelling),
        )
        lead = fields_to_read(LEAD, mapping)
        assert [f for f in lead if f.lower() == "owner.name"] == ["Owner.Name"], spelling
    # A mapped Owner hop still comes from the User mirror too.
    assert fields_to_read(USER, mapping).count("Name") == 1


def test_a_polymorphic_owner_hop_is_typed_through_a_described_target() -> None:
    describes = {
        "Lead": {
            "fields": [
                {
                    "name": "OwnerId",
                    "type": "reference",
                    "relationshipName": "Owner",
                    "referenceTo": ["Group", "User"],
                },
            ]
        },
        "User": {"fields": [{"name": "Name", "type": "string"}, {"name": "Age", "type": "int"}]},
    }
    assert field_types(["Owner.Name", "Owner.Age"], describes, "Lead") == {
        "Owner.Name": "string",
        "Owner.Age": "int",
    }


def test_page_frame_types_datetimes_dates_and_relationships() -> None:
    describes = {
        "Contact": {
            "fields": [
                {"name": "Id", "type": "id"},
                {"name": "SystemModstamp", "type": "datetime"},
                {"name": "Birthdate", "type": "date"},
                {
                    "name": "ReportsToId",
                    "type": "reference",
                    "relationshipName": "ReportsTo",
                    "referenceTo": ["Contact"],
                },
                {"name": "Email", "type": "email"},
            ]
        }
    }
    types = field_types(
        ["Id", "SystemModstamp", "Birthdate", "ReportsTo.Email"], describes, "Contact"
    )
    assert types == {
        "Id": "id",
        "SystemModstamp": "datetime",
        "Birthdate": "date",
        "ReportsTo.Email": "email",
    }
    records = [
        {
            "attributes": {"type": "Contact"},
            "Id": "003A",
            "SystemModstamp": "2026-11-26T10:00:00.000+0000",
            "Birthdate": "1980-02-29",
            "ReportsTo": {"attributes": {"type": "Contact"}, "Email": "boss@example.com"},
        },
        {"Id": "003B", "SystemModstamp": None, "Birthdate": None, "ReportsTo": None},
    ]
    frame = page_frame(records, types)
    assert list(frame.columns) == ["id", "systemmodstamp", "birthdate", "reportsto__email"]
    assert frame.loc[0, "systemmodstamp"] == pd.Timestamp("2026-11-26 10:00", tz="UTC")
    assert frame.loc[0, "birthdate"] == date(1980, 2, 29)
    assert frame.loc[0, "reportsto__email"] == "boss@example.com"
    assert frame.loc[1].drop("id").isna().all()


def _page_frame_before_issue_12(
    records: list[dict[str, Any]], types: dict[str, str]
) -> pd.DataFrame:
    """``page_frame`` as it was: a lower-cased copy of each record's dict for every field, the
    dates typed record by record. The reference the faster one must equal."""

    def value(record: dict[str, Any], name: str) -> Any:
        current: Any = record
        for part in name.split("."):
            if not isinstance(current, dict):
                return None
            lowered = {k.lower(): v for k, v in current.items()}
            current = lowered.get(part.lower())
        return current

    data = {crm_column_name(name): [value(r, name) for r in records] for name in types}
    frame = pd.DataFrame(data, dtype=object)
    for name, crm_type in types.items():
        column = crm_column_name(name)
        if crm_type == "datetime":
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        elif crm_type == "date":
            parsed = pd.to_datetime(frame[column], format="ISO8601")
            frame[column] = [d.date() if pd.notna(d) else None for d in parsed]
    return frame


TRICKY_TYPES = {
    "Id": "id",
    "Email": "email",
    "SystemModstamp": "datetime",
    "Birthdate": "date",
    "ConvertedDate": "date",
    "LastActivityDate": "datetime",
    "IsConverted": "boolean",
    "NumberOfEmployees": "int",
    "AnnualRevenue": "currency",
    "Owner.Name": "string",
    "Account.Owner.Email": "email",
    "Missing__c": "string",
}

TRICKY_RECORDS: list[dict[str, Any]] = [
    {
        "attributes": {"type": "Lead"},
        "Id": "00Q000000000001AAA",
        "Email": "a@example.com",
        "SystemModstamp": "2026-11-26T10:00:00.000+0000",
        "Birthdate": "1980-02-29",
        "ConvertedDate": None,
        "LastActivityDate": None,
        "IsConverted": False,
        "NumberOfEmployees": 12,
        "AnnualRevenue": 1.5,
        "Owner": {"attributes": {"type": "User"}, "Name": "Ann"},
        "Account": {"Owner": {"Email": "boss@example.com"}},
    },
    # Keys spelled otherwise than the field list (the mapping's spelling is not the CRM's).
    {
        "id": "00Q000000000002AAA",
        "EMAIL": "B@Example.com",
        "systemmodstamp": "2026-11-27T11:30:00.123+0000",
        "birthDate": None,
        "convertedDate": "2026-01-02",
        "IsConverted": True,
        "numberofemployees": None,
        "AnnualRevenue": 0,
        "owner": {"name": "Queue One"},
        "account": {"owner": None},
    },
    # Null relationships, missing fields, a relationship that is not an object.
    {
        "Id": "00Q000000000003AAA",
        "SystemModstamp": "2026-11-28T00:00:00.000+0000",
        "Owner": None,
        "Account": "not an object",
        "IsConverted": None,
    },
    # Exact spellings again after the odd ones (nothing is cached across records).
    {
        "Id": "00Q000000000004AAA",
        "SystemModstamp": "2026-11-29T00:00:00.000+0000",
        "Email": "exact@example.com",
        "Owner": {"Name": "Exact"},
    },
]


def test_page_frame_equals_the_record_by_record_one_on_tricky_records() -> None:
    for records in (TRICKY_RECORDS, TRICKY_RECORDS[2:3] * 3):
        pd.testing.assert_frame_equal(
            page_frame(records, TRICKY_TYPES), _page_frame_before_issue_12(records, TRICKY_TYPES)
        )
    # An empty page: the same columns (the old one typed an empty date column float64, by
    # accident; nothing is loaded from an empty page).
    empty = page_frame([], TRICKY_TYPES)
    assert list(empty.columns) == list(_page_frame_before_issue_12([], TRICKY_TYPES).columns)
    assert empty.empty
    frame = page_frame(TRICKY_RECORDS, TRICKY_TYPES)
    assert frame["email"].tolist() == [
        "a@example.com",
        "B@Example.com",
        None,
        "exact@example.com",
    ]
    assert frame["owner__name"].tolist() == ["Ann", "Queue One", None, "Exact"]
    assert frame["account__owner__email"].tolist() == ["boss@example.com", None, None, None]
    assert frame["missing__c"].isna().all()
    assert frame["converteddate"].tolist() == [None, date(2026, 1, 2), None, None]
