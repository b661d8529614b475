"""Tests of conforming raw CRM values to the mapping's data types (contact_values.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.engines import pandas_engine

from acton_pipelines.contacts.values import (
    REJECT_COLUMNS,
    ConformedContacts,
    SchemaBreak,
    conform_contacts,
    contact_schema,
    pandas_dtype,
)
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping, ScoreSheet

MAPPING = Mapping(
    fields=[
        FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
        FieldMapping(destination="Job Title", type=DataType.TEXT, lead="Title", contact="Title"),
        FieldMapping(
            destination="Employees",
            type=DataType.NUMBER,
            lead="NumberOfEmployees",
            standard=False,
        ),
        FieldMapping(
            destination="Act-On Primary Score",
            type=DataType.SCORE,
            lead="ActOn_Score__c",
            contact="ActOn_Score__c",
            score_sheet="default",
        ),
        FieldMapping(
            destination="Renewal Date",
            type=DataType.DATE,
            contact="Renewal_Date__c",
            standard=False,
        ),
        FieldMapping(
            destination="Last Seen",
            type=DataType.DATETIME,
            lead="Last_Seen__c",
            contact="Last_Seen__c",
            standard=False,
        ),
        FieldMapping(destination="VIP", type=DataType.BOOLEAN, contact="VIP__c", standard=False),
        FieldMapping(
            destination="Interests",
            type=DataType.MULTI_TEXT,
            lead="Interests__c",
            contact="Interests__c",
            standard=False,
        ),
    ],
    score_sheets=[ScoreSheet(name="default")],
)
MAPPED_COLUMNS = [
    "email",
    "job_title",
    "employees",
    "act_on_primary_score",
    "renewal_date",
    "last_seen",
    "vip",
    "interests",
]
KEYS = ["contact_id", "external_id", "record_type"]
NA = pd.NA


def raw_frame(n: int, index: list[Any] | None = None, **columns: list[Any]) -> pd.DataFrame:
    """A raw chunk of ``n`` contacts; mapped columns not given hold None, as an extract would."""
    data: dict[str, Any] = {
        "contact_id": [f"c{i}" for i in range(n)],
        "external_id": [f"00Q{i:03d}" for i in range(n)],
        "record_type": ["Lead" if i % 2 == 0 else "Contact" for i in range(n)],
    }
    for column in MAPPED_COLUMNS:
        data[column] = pd.Series(columns.get(column, [None] * n), dtype=object)
    frame = pd.DataFrame(data)
    if index is not None:
        frame.index = pd.Index(index)
    return frame


def conform_column(column: str, values: list[Any]) -> ConformedContacts:
    """Conform a chunk whose only filled mapped column is ``column``."""
    return conform_contacts(raw_frame(len(values), **{column: values}), MAPPING)


def reject_tuples(result: ConformedContacts) -> list[tuple[Any, ...]]:
    """(contact_id, field, column, value, reason) per reject."""
    columns = ["contact_id", "field", "column", "value", "reason"]
    return [tuple(row) for row in result.rejects[columns].itertuples(index=False)]


def assert_column(result: ConformedContacts, column: str, expected: pd.Series) -> None:
    pd.testing.assert_series_equal(
        result.contacts[column], expected, check_names=False, check_index=False
    )


# pandas_dtype and the generated schema ---------------------------------------------------


@pytest.mark.parametrize(
    ("data_type", "dtype"),
    [
        (DataType.TEXT, "string"),
        (DataType.EMAIL, "string"),
        (DataType.MULTI_TEXT, "string"),
        (DataType.NUMBER, "float64"),
        (DataType.SCORE, "Int64"),
        (DataType.DATE, "datetime64[us]"),
        (DataType.DATETIME, "datetime64[us, UTC]"),
        (DataType.BOOLEAN, "boolean"),
    ],
)
def test_pandas_dtype_of_each_data_type(data_type: DataType, dtype: str) -> None:
    assert pandas_dtype(data_type) == dtype


def test_schema_has_one_typed_column_per_mapped_field_plus_the_keys() -> None:
    schema = contact_schema(MAPPING)

    assert list(schema.columns) == KEYS + MAPPED_COLUMNS
    for field in MAPPING.fields:
        column = schema.columns[field.column]
        assert column.dtype == pandas_engine.Engine.dtype(pandas_dtype(field.type))
        assert column.nullable
        assert column.title == field.destination
    assert schema.columns["contact_id"].unique
    assert not schema.columns["contact_id"].nullable


def test_schema_checks_values_of_an_already_typed_frame() -> None:
    frame = raw_frame(2)
    frame = conform_contacts(frame, MAPPING).contacts
    frame["act_on_primary_score"] = pd.array([5, 1_000_000], dtype="Int64")
    frame["email"] = pd.array(["ok@example.com", "nope"], dtype="string")

    with pytest.raises(pa.errors.SchemaErrors) as caught:
        contact_schema(MAPPING).validate(frame, lazy=True)

    cases = caught.value.failure_cases
    assert sorted(zip(cases["column"], cases["index"], strict=True)) == [
        ("act_on_primary_score", 1),
        ("email", 1),
    ]


def test_conformed_contacts_pass_the_public_schema() -> None:
    raw = raw_frame(
        3,
        email=["A@B.CO", "bad", None],
        act_on_primary_score=["3", 2.5, None],
        renewal_date=["2026-11-26", "never", None],
        last_seen=["2026-11-26T10:00:00.000+0000", "later", None],
        vip=["yes", "perhaps", None],
        interests=["a;b", "x" * 300, None],
        employees=["10", "ten", None],
        job_title=["CEO", "", None],
    )

    contacts = conform_contacts(raw, MAPPING).contacts

    contact_schema(MAPPING).validate(contacts, lazy=True)


# Text ----------------------------------------------------------------------------------------


def test_text_is_stripped_string_with_empty_as_na() -> None:
    result = conform_column("job_title", ["  CEO ", "", "   ", None, np.nan, 5])

    assert_column(
        result,
        "job_title",
        pd.Series(["CEO", NA, NA, NA, NA, "5"], dtype="string"),
    )
    assert result.rejects.empty


# Email ---------------------------------------------------------------------------------------


def test_email_is_lower_cased_and_stripped() -> None:
    result = conform_column("email", [" Jane.Doe@Example.COM ", "o'neil+news@mail.example.co.uk"])

    assert_column(
        result,
        "email",
        pd.Series(["jane.doe@example.com", "o'neil+news@mail.example.co.uk"], dtype="string"),
    )
    assert result.rejects.empty


@pytest.mark.parametrize(
    "bad",
    [
        "jane at example.com",
        "john.doe@",
        "x@@y.com",
        "a b@c.com",
        "@example.com",
        "jane@example",
        "jane@example..com",
        "jane..doe@example.com",
        "jane@.example.com",
    ],
)
def test_bad_email_is_rejected_and_the_contact_kept(bad: str) -> None:
    raw = raw_frame(2, email=["ok@example.com", bad], job_title=["CEO", "CTO"])

    result = conform_contacts(raw, MAPPING)

    assert_column(result, "email", pd.Series(["ok@example.com", NA], dtype="string"))
    assert_column(result, "job_title", pd.Series(["CEO", "CTO"], dtype="string"))
    assert reject_tuples(result) == [("c1", "Email", "email", bad, "not a valid email address")]


# Number --------------------------------------------------------------------------------------


def test_number_converts_strings_and_numbers_to_float() -> None:
    result = conform_column("employees", ["12.5", 3, 4.0, " 7 ", "1e3", "-2", None, ""])

    assert_column(
        result,
        "employees",
        pd.Series([12.5, 3.0, 4.0, 7.0, 1000.0, -2.0, np.nan, np.nan], dtype="float64"),
    )
    assert result.rejects.empty


def test_number_from_an_already_numeric_column() -> None:
    raw = raw_frame(3)
    raw["employees"] = pd.array([1, None, 3], dtype="Int64")

    result = conform_contacts(raw, MAPPING)

    assert_column(result, "employees", pd.Series([1.0, np.nan, 3.0], dtype="float64"))
    assert result.rejects.empty


def test_bad_numbers_are_rejected() -> None:
    result = conform_column("employees", ["abc", "1,234", True, "inf", 8])

    assert_column(
        result, "employees", pd.Series([np.nan, np.nan, np.nan, np.nan, 8.0], dtype="float64")
    )
    assert reject_tuples(result) == [
        ("c0", "Employees", "employees", "abc", "not a number"),
        ("c1", "Employees", "employees", "1,234", "not a number"),
        ("c2", "Employees", "employees", "True", "not a number"),
        ("c3", "Employees", "employees", "inf", "not a finite number"),
    ]


def test_a_bool_column_is_not_a_number() -> None:
    raw = raw_frame(2)
    raw["employees"] = pd.Series([True, False], dtype=bool)

    result = conform_contacts(raw, MAPPING)

    assert result.contacts["employees"].isna().all()
    assert reject_tuples(result) == [
        ("c0", "Employees", "employees", "True", "not a number"),
        ("c1", "Employees", "employees", "False", "not a number"),
    ]


# Score ---------------------------------------------------------------------------------------


def test_score_becomes_nullable_integer() -> None:
    result = conform_column("act_on_primary_score", ["42", 7, 8.0, "0", 999_999, " 15 ", None])

    assert_column(
        result,
        "act_on_primary_score",
        pd.Series([42, 7, 8, 0, 999_999, 15, NA], dtype="Int64"),
    )
    assert result.rejects.empty


def test_bad_scores_are_rejected_one_reject_per_value() -> None:
    result = conform_column("act_on_primary_score", [-1, 1_000_000, 5.5, "ten", -1.5, 10])

    assert_column(
        result,
        "act_on_primary_score",
        pd.Series([NA, NA, NA, NA, NA, 10], dtype="Int64"),
    )
    field = ("Act-On Primary Score", "act_on_primary_score")
    assert reject_tuples(result) == [
        ("c0", *field, "-1", "score out of range 0..999999"),
        ("c1", *field, "1000000", "score out of range 0..999999"),
        ("c2", *field, "5.5", "score is not a whole number"),
        ("c3", *field, "ten", "not a number"),
        # Fails both range and integrality: one reject, for the first check.
        ("c4", *field, "-1.5", "score out of range 0..999999"),
    ]


# Date ----------------------------------------------------------------------------------------


def test_date_accepts_every_crm_shape_and_keeps_the_utc_date() -> None:
    minus_five = dt.timezone(dt.timedelta(hours=-5))
    values = [
        "2026-11-26",
        "2026-11-26T10:00:00.000+0000",
        "2026-11-26 10:00:00",
        dt.datetime(2026, 11, 26, 23, 30, tzinfo=minus_five),  # 2026-11-27 04:30 UTC
        dt.datetime(2026, 11, 26, 18, 0),
        dt.date(2026, 11, 26),
        pd.Timestamp("2026-11-26 18:00"),
        "9999-12-31",
        None,
    ]

    result = conform_column("renewal_date", values)

    expected = [
        pd.Timestamp("2026-11-26"),
        pd.Timestamp("2026-11-26"),
        pd.Timestamp("2026-11-26"),
        pd.Timestamp("2026-11-27"),
        pd.Timestamp("2026-11-26"),
        pd.Timestamp("2026-11-26"),
        pd.Timestamp("2026-11-26"),
        pd.Timestamp("9999-12-31"),
        pd.NaT,
    ]
    assert_column(result, "renewal_date", pd.Series(expected, dtype="datetime64[us]"))
    assert result.rejects.empty


def test_bad_dates_are_rejected_numbers_are_not_taken_for_years_or_epochs() -> None:
    result = conform_column(
        "renewal_date", ["11/26/2026", "2026-02-30", "soon", 2026, 20261126, "2026-11-26"]
    )

    assert_column(
        result,
        "renewal_date",
        pd.Series([pd.NaT] * 5 + [pd.Timestamp("2026-11-26")], dtype="datetime64[us]"),
    )
    reason = "not a date (expected YYYY-MM-DD)"
    assert reject_tuples(result) == [
        ("c0", "Renewal Date", "renewal_date", "11/26/2026", reason),
        ("c1", "Renewal Date", "renewal_date", "2026-02-30", reason),
        ("c2", "Renewal Date", "renewal_date", "soon", reason),
        ("c3", "Renewal Date", "renewal_date", "2026", reason),
        ("c4", "Renewal Date", "renewal_date", "20261126", reason),
    ]


def test_date_from_an_already_datetime_column() -> None:
    raw = raw_frame(2)
    raw["renewal_date"] = pd.Series(
        [pd.Timestamp("2026-11-26 10:00", tz="UTC"), pd.NaT], dtype="datetime64[ns, UTC]"
    )

    result = conform_contacts(raw, MAPPING)

    assert_column(
        result,
        "renewal_date",
        pd.Series([pd.Timestamp("2026-11-26"), pd.NaT], dtype="datetime64[us]"),
    )


# Datetime ------------------------------------------------------------------------------------


def test_datetime_becomes_utc() -> None:
    minus_five = dt.timezone(dt.timedelta(hours=-5))
    values = [
        "2026-11-26T10:00:00.000+0000",
        "2026-11-26T12:00:00.000+0200",
        "2026-11-26 10:00:00",
        "2026-11-26T10:00:00Z",
        dt.datetime(2026, 11, 26, 10, 0),
        dt.datetime(2026, 11, 26, 5, 0, tzinfo=minus_five),
        pd.Timestamp("2026-11-26 11:00", tz="Europe/Paris"),
        "2026-11-26",
        None,
    ]

    result = conform_column("last_seen", values)

    ten = pd.Timestamp("2026-11-26 10:00", tz="UTC")
    midnight = pd.Timestamp("2026-11-26 00:00", tz="UTC")
    assert_column(
        result,
        "last_seen",
        pd.Series([ten] * 7 + [midnight, pd.NaT], dtype="datetime64[us, UTC]"),
    )
    assert result.rejects.empty


def test_datetime_from_a_naive_datetime_column_is_taken_as_utc() -> None:
    raw = raw_frame(2)
    raw["last_seen"] = pd.Series([pd.Timestamp("2026-11-26 10:00"), pd.NaT])

    result = conform_contacts(raw, MAPPING)

    assert_column(
        result,
        "last_seen",
        pd.Series(
            [pd.Timestamp("2026-11-26 10:00", tz="UTC"), pd.NaT], dtype="datetime64[us, UTC]"
        ),
    )


def test_bad_datetimes_are_rejected() -> None:
    result = conform_column("last_seen", ["yesterday", 1_764_151_200, "26.11.2026 10:00"])

    assert result.contacts["last_seen"].isna().all()
    reason = "not a datetime (expected ISO 8601, e.g. 2026-11-26T10:00:00Z)"
    assert reject_tuples(result) == [
        ("c0", "Last Seen", "last_seen", "yesterday", reason),
        ("c1", "Last Seen", "last_seen", "1764151200", reason),
        ("c2", "Last Seen", "last_seen", "26.11.2026 10:00", reason),
    ]


# Boolean -------------------------------------------------------------------------------------


def test_boolean_accepts_bools_numbers_and_words() -> None:
    values = [True, False, "true", "FALSE", " Yes ", "no", 1, 0, "1", "0", 1.0, None]

    result = conform_column("vip", values)

    expected = [True, False, True, False, True, False, True, False, True, False, True, NA]
    assert_column(result, "vip", pd.Series(expected, dtype="boolean"))
    assert result.rejects.empty


def test_boolean_from_a_bool_column() -> None:
    raw = raw_frame(2)
    raw["vip"] = pd.Series([True, False], dtype=bool)

    result = conform_contacts(raw, MAPPING)

    assert_column(result, "vip", pd.Series([True, False], dtype="boolean"))


def test_bad_booleans_are_rejected() -> None:
    result = conform_column("vip", ["maybe", 2, "y", True])

    assert_column(result, "vip", pd.Series([NA, NA, NA, True], dtype="boolean"))
    reason = "not a boolean (expected true/false, yes/no or 1/0)"
    assert reject_tuples(result) == [
        ("c0", "VIP", "vip", "maybe", reason),
        ("c1", "VIP", "vip", "2", reason),
        ("c2", "VIP", "vip", "y", reason),
    ]


# Multi-Text ----------------------------------------------------------------------------------


def test_multi_text_values_are_stripped_deduplicated_and_rejoined() -> None:
    longest = "v" * 255
    values = ["a; b;;a ;c", "x", " ; ", f"{longest};b", "b;a;b;a", None]

    result = conform_column("interests", values)

    assert_column(
        result,
        "interests",
        pd.Series(["a;b;c", "x", NA, f"{longest};b", "b;a", NA], dtype="string"),
    )
    assert result.rejects.empty


def test_multi_text_value_over_255_characters_is_rejected() -> None:
    too_long = "v" * 256
    result = conform_column("interests", [f"a;{too_long}", "a;b"])

    assert_column(result, "interests", pd.Series([NA, "a;b"], dtype="string"))
    assert reject_tuples(result) == [
        (
            "c0",
            "Interests",
            "interests",
            f"a;{too_long}",
            "a value is longer than 255 characters",
        )
    ]


# The chunk as a whole -------------------------------------------------------------------------


def test_bad_values_are_quarantined_without_touching_the_contact() -> None:
    # A repeated, non-default index: the result must keep it as it is.
    index = ["x", "x", "y"]
    raw = raw_frame(
        3,
        index=index,
        email=["a@example.com", "not an email", "c@example.com"],
        act_on_primary_score=[10, 20, "lots"],
        job_title=["CEO", "CTO", "CFO"],
    )
    raw["account_name"] = ["Acme", None, "Globex"]
    raw["opportunity_count"] = [1, 2, 3]
    before = raw.copy()

    result = conform_contacts(raw, MAPPING)

    assert list(result.contacts.index) == index
    assert list(result.contacts.columns) == list(raw.columns)
    assert list(result.contacts["contact_id"]) == ["c0", "c1", "c2"]
    assert_column(
        result, "email", pd.Series(["a@example.com", NA, "c@example.com"], dtype="string")
    )
    assert_column(result, "act_on_primary_score", pd.Series([10, 20, NA], dtype="Int64"))
    assert_column(result, "job_title", pd.Series(["CEO", "CTO", "CFO"], dtype="string"))
    pd.testing.assert_frame_equal(
        result.contacts[["account_name", "opportunity_count"]],
        raw[["account_name", "opportunity_count"]],
    )
    pd.testing.assert_frame_equal(raw, before)  # the input is not modified

    rejects = result.rejects
    assert list(rejects.columns) == list(REJECT_COLUMNS)
    assert rejects.to_dict("records") == [
        {
            "contact_id": "c1",
            "external_id": "00Q001",
            "record_type": "Contact",
            "field": "Email",
            "column": "email",
            "value": "not an email",
            "reason": "not a valid email address",
        },
        {
            "contact_id": "c2",
            "external_id": "00Q002",
            "record_type": "Lead",
            "field": "Act-On Primary Score",
            "column": "act_on_primary_score",
            "value": "lots",
            "reason": "not a number",
        },
    ]


def test_missing_values_stay_na_without_rejects() -> None:
    raw = raw_frame(2)
    raw.loc[1, MAPPED_COLUMNS] = [np.nan, pd.NA, None, np.nan, pd.NaT, None, pd.NA, np.nan]

    result = conform_contacts(raw, MAPPING)

    assert result.contacts[MAPPED_COLUMNS].isna().all().all()
    assert result.rejects.empty
    assert list(result.rejects.columns) == list(REJECT_COLUMNS)
    for field in MAPPING.fields:
        assert str(result.contacts[field.column].dtype) == str(
            pd.Series(dtype=pandas_dtype(field.type)).dtype
        )


def test_empty_chunk() -> None:
    raw = raw_frame(0)

    result = conform_contacts(raw, MAPPING)

    assert len(result.contacts) == 0
    assert list(result.contacts.columns) == list(raw.columns)
    for field in MAPPING.fields:
        assert str(result.contacts[field.column].dtype) == str(
            pd.Series(dtype=pandas_dtype(field.type)).dtype
        )
    assert len(result.rejects) == 0
    assert list(result.rejects.columns) == list(REJECT_COLUMNS)


# Schema breaks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["vip", "contact_id", "record_type"])
def test_missing_column_is_a_schema_break(missing: str) -> None:
    raw = raw_frame(2).drop(columns=[missing])

    with pytest.raises(SchemaBreak, match=f"missing column.*'{missing}'.*Fix:") as caught:
        conform_contacts(raw, MAPPING)

    assert caught.value.columns == [missing]


@pytest.mark.parametrize(
    ("column", "values", "check"),
    [
        ("contact_id", ["c1", "c1", "c2"], "field_uniqueness"),
        ("contact_id", ["c1", None, "c2"], "not_nullable"),
        ("record_type", ["Lead", "Opportunity", None], "record_type not in"),
    ],
)
def test_broken_builtin_column_is_a_schema_break(
    column: str, values: list[Any], check: str
) -> None:
    raw = raw_frame(3, email=["a@example.com", "bad", None])
    raw[column] = values

    with pytest.raises(SchemaBreak, match=check) as caught:
        conform_contacts(raw, MAPPING)

    assert caught.value.columns == [column]
    assert "fix the extract" in str(caught.value)
