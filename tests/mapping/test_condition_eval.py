"""Rule evaluation and description on hand-made contacts."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest
from pydantic import TypeAdapter

from acton_pipelines.mapping.condition_eval import describe_rule, evaluate, resolve_field
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping, Rule, ScoreSheet

RULE = TypeAdapter(Rule)

MAPPING = Mapping(
    fields=[
        FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
        FieldMapping(destination="Job Title", type=DataType.TEXT, lead="Title", contact="Title"),
        FieldMapping(destination="Industry", type=DataType.TEXT, lead="Industry"),
        FieldMapping(destination="Interests", type=DataType.MULTI_TEXT, lead="Interests__c"),
        FieldMapping(destination="Employees", type=DataType.NUMBER, lead="NumberOfEmployees"),
        FieldMapping(
            destination="Lead Score", type=DataType.SCORE, lead="Score__c", score_sheet="default"
        ),
        FieldMapping(destination="Renewal Date", type=DataType.DATE, contact="Renewal__c"),
        FieldMapping(destination="Last Visit", type=DataType.DATETIME, lead="Last_Visit__c"),
        FieldMapping(destination="VIP", type=DataType.BOOLEAN, lead="VIP__c"),
    ],
    score_sheets=[ScoreSheet(name="default")],
)


def _contacts() -> pd.DataFrame:
    """Four contacts: two full ones, one with every value missing, one with blank/zero values.

    The index is deliberately not a RangeIndex, so results must keep it.
    """
    return pd.DataFrame(
        {
            "contact_id": ["a", "b", "c", "d"],
            "external_id": ["00Q1", "0031", None, "0032"],
            "record_type": ["Lead", "Contact", None, "Contact"],
            "opted_out": pd.array([False, True, None, False], dtype="boolean"),
            "email": ["Ann@Example.com", "bob@example.com", None, "dee@example.com"],
            "job_title": [" VP of Sales ", "engineer", None, "   "],
            "industry": ["Banking", "retail", None, "Insurance"],
            "interests": ["Golf; Tennis ;Chess", "Tennis", None, " ; "],
            "employees": [250.0, 10.0, None, 0.0],
            "lead_score": [40.0, 0.0, None, 100.0],
            "renewal_date": pd.to_datetime(["2024-05-01", "2024-06-15", None, "2023-12-31"]),
            "last_visit": pd.to_datetime(
                [
                    "2024-05-01T23:30:00Z",
                    "2024-05-02T00:30:00Z",
                    None,
                    "2024-04-30T12:00:00Z",
                ],
                utc=True,
            ),
            "vip": pd.array([True, False, None, True], dtype="boolean"),
        },
        index=[10, 20, 30, 40],
    )


def _check(rule: dict[str, Any], contacts: pd.DataFrame | None = None) -> list[bool]:
    frame = _contacts() if contacts is None else contacts
    result = evaluate(RULE.validate_python(rule), frame, MAPPING)
    assert result.dtype == bool
    assert list(result.index) == list(frame.index)
    return result.tolist()


T, F = True, False

CASES = [
    # Text: trimmed, case-insensitive; a missing or blank value fails all but the negations.
    ("Job Title", "equals", "vp of sales", [T, F, F, F]),
    ("Job Title", "equals", "VP", [F, F, F, F]),
    ("Job Title", "not_equals", "ENGINEER", [T, F, T, T]),
    ("Industry", "in", ["BANKING", " Retail "], [T, T, F, F]),
    ("Industry", "not_in", ["banking"], [F, T, T, T]),
    ("Job Title", "contains", "vp", [T, F, F, F]),
    ("Job Title", "contains", "ENGIN", [F, T, F, F]),
    ("Job Title", "starts_with", "vp", [T, F, F, F]),
    ("Job Title", "starts_with", "sales", [F, F, F, F]),
    # A blank value is missing too, even for a test every string passes.
    ("Job Title", "contains", "", [T, T, F, F]),
    ("Job Title", "is_empty", None, [F, F, T, T]),
    ("Job Title", "is_not_empty", None, [T, T, F, F]),
    # Email behaves as text.
    ("Email", "equals", "ann@example.com", [T, F, F, F]),
    ("Email", "contains", "@EXAMPLE", [T, T, F, T]),
    # Multi-Text: each ';'-separated value is tested on its own.
    ("Interests", "equals", "tennis", [T, T, F, F]),
    ("Interests", "equals", "Golf; Tennis", [F, F, F, F]),
    ("Interests", "equals", "ten", [F, F, F, F]),
    ("Interests", "contains", "ches", [T, F, F, F]),
    ("Interests", "in", ["chess", "Squash"], [T, F, F, F]),
    ("Interests", "starts_with", "TEN", [T, T, F, F]),
    ("Interests", "not_equals", "golf", [F, T, T, T]),
    ("Interests", "not_in", ["tennis"], [F, F, T, T]),
    ("Interests", "is_empty", None, [F, F, T, T]),
    ("Interests", "is_not_empty", None, [T, T, F, F]),
    # Number / Score: numeric; NaN fails comparisons; 0 is a value, not empty.
    ("Employees", "equals", 10, [F, T, F, F]),
    ("Employees", "equals", "10", [F, T, F, F]),
    ("Employees", "greater_than", 10, [T, F, F, F]),
    ("Employees", "less_than", 10, [F, F, F, T]),
    ("Employees", "in", [0, 250], [T, F, F, T]),
    ("Employees", "not_in", [0], [T, T, T, F]),
    ("Employees", "not_equals", 250, [F, T, T, T]),
    ("Employees", "is_empty", None, [F, F, T, F]),
    ("Lead Score", "greater_than", 39, [T, F, F, T]),
    ("Lead Score", "less_than", 40, [F, T, F, F]),
    # Date: calendar dates, ISO strings or YAML dates.
    ("Renewal Date", "equals", "2024-05-01", [T, F, F, F]),
    ("Renewal Date", "equals", date(2024, 5, 1), [T, F, F, F]),
    ("Renewal Date", "greater_than", "2024-05-01", [F, T, F, F]),
    ("Renewal Date", "less_than", "2024-05-01", [F, F, F, T]),
    ("Renewal Date", "in", ["2024-06-15", "2023-12-31"], [F, T, F, T]),
    ("Renewal Date", "not_equals", "2024-05-01", [F, T, T, T]),
    ("Renewal Date", "is_empty", None, [F, F, T, F]),
    # Datetime: UTC instants; a naive value is UTC; a date-only value compares UTC days.
    ("Last Visit", "greater_than", "2024-05-01T23:00:00Z", [T, T, F, F]),
    ("Last Visit", "less_than", "2024-05-02T00:00:00+00:00", [T, F, F, T]),
    ("Last Visit", "less_than", "2024-05-02T00:00:00", [T, F, F, T]),
    ("Last Visit", "greater_than", "2024-05-01T20:00:00-04:00", [F, T, F, F]),
    ("Last Visit", "equals", "2024-05-02T00:30:00Z", [F, T, F, F]),
    ("Last Visit", "equals", "2024-05-01", [T, F, F, F]),
    ("Last Visit", "greater_than", "2024-05-01", [F, T, F, F]),
    ("Last Visit", "less_than", "2024-05-01", [F, F, F, T]),
    ("Last Visit", "not_equals", "2024-05-01", [F, T, T, T]),
    ("Last Visit", "is_not_empty", None, [T, T, F, T]),
    # Boolean: true / false, as YAML booleans or text.
    ("VIP", "equals", True, [T, F, F, T]),
    ("VIP", "equals", "false", [F, T, F, F]),
    ("VIP", "not_equals", True, [F, T, T, F]),
    ("VIP", "in", [False], [F, T, F, F]),
    ("VIP", "is_empty", None, [F, F, T, F]),
    # Built-in columns by their own names.
    ("record_type", "equals", "lead", [T, F, F, F]),
    ("external_id", "is_empty", None, [F, F, T, F]),
    ("opted_out", "equals", True, [F, T, F, F]),
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES)
def test_condition(field: str, op: str, value: Any, expected: list[bool]) -> None:
    assert _check({"field": field, "op": op, "value": value}) == expected


def test_all_requires_every_branch() -> None:
    rule = {
        "all": [
            {"field": "Job Title", "op": "contains", "value": "vp"},
            {"field": "Employees", "op": "greater_than", "value": 100},
        ]
    }
    assert _check(rule) == [T, F, F, F]


def test_any_of_nested_all() -> None:
    rule = {
        "any": [
            {"field": "Industry", "op": "equals", "value": "retail"},
            {
                "all": [
                    {"field": "VIP", "op": "equals", "value": True},
                    {"field": "Employees", "op": "equals", "value": 0},
                ]
            },
        ]
    }
    # b is retail; d is a VIP with 0 employees; a is a VIP with 250 employees.
    assert _check(rule) == [F, T, F, T]


def test_empty_groups() -> None:
    assert _check({"all": []}) == [T, T, T, T]
    assert _check({"any": []}) == [F, F, F, F]


def test_chunk_with_duplicate_index_matches_whole_frame() -> None:
    rule = {"field": "Interests", "op": "equals", "value": "tennis"}
    chunk = _contacts().iloc[[3, 1, 0]]
    chunk.index = [7, 7, 7]
    assert _check(rule, chunk) == [F, T, T]


def test_nullable_and_object_columns() -> None:
    contacts = _contacts()
    contacts["employees"] = pd.array([250, 10, None, 0], dtype="Int64")
    contacts["job_title"] = pd.Series(
        [" VP of Sales ", "engineer", None, "   "], dtype=object, index=contacts.index
    )
    assert _check({"field": "Employees", "op": "greater_than", "value": 5}, contacts) == [
        T,
        T,
        F,
        F,
    ]
    assert _check({"field": "Job Title", "op": "equals", "value": "engineer"}, contacts) == [
        F,
        T,
        F,
        F,
    ]


def test_tz_aware_date_column_keeps_its_calendar_day() -> None:
    contacts = _contacts()
    contacts["renewal_date"] = pd.to_datetime(
        ["2024-05-01", "2024-06-15", None, "2023-12-31"]
    ).tz_localize("US/Pacific")
    rule = {"field": "Renewal Date", "op": "equals", "value": "2024-05-01"}
    assert _check(rule, contacts) == [T, F, F, F]


def test_unknown_field_is_named() -> None:
    with pytest.raises(ValueError, match="'Shoe Size'"):
        _check({"field": "Shoe Size", "op": "equals", "value": 42})


def test_op_not_for_type() -> None:
    with pytest.raises(ValueError, match="greater_than"):
        _check({"field": "Job Title", "op": "greater_than", "value": "a"})
    with pytest.raises(ValueError, match="contains"):
        _check({"field": "Employees", "op": "contains", "value": 1})


def test_missing_column_is_named() -> None:
    contacts = _contacts().drop(columns=["industry"])
    with pytest.raises(ValueError, match="industry"):
        _check({"field": "Industry", "op": "equals", "value": "x"}, contacts)


def test_bad_value() -> None:
    with pytest.raises(ValueError, match="number"):
        _check({"field": "Employees", "op": "greater_than", "value": "many"})
    with pytest.raises(ValueError, match="boolean"):
        _check({"field": "VIP", "op": "equals", "value": "maybe"})
    with pytest.raises(ValueError, match="is_empty"):
        _check({"field": "Industry", "op": "equals", "value": None})


def test_resolve_field() -> None:
    assert resolve_field("Job Title", MAPPING) == ("job_title", DataType.TEXT)
    assert resolve_field("account_type", MAPPING) == ("account_type", DataType.TEXT)
    assert resolve_field("won_opportunity_count", MAPPING) == (
        "won_opportunity_count",
        DataType.NUMBER,
    )


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (
            {
                "any": [
                    {"field": "Job Title", "op": "contains", "value": "VP"},
                    {"field": "Industry", "op": "in", "value": ["Banking", "Retail"]},
                ]
            },
            "Job Title contains 'VP' or Industry in ['Banking', 'Retail']",
        ),
        (
            {
                "all": [
                    {
                        "any": [
                            {"field": "Job Title", "op": "starts_with", "value": "VP"},
                            {"field": "Employees", "op": "greater_than", "value": 100},
                        ]
                    },
                    {"field": "VIP", "op": "equals", "value": True},
                ]
            },
            "(Job Title starts with 'VP' or Employees > 100) and VIP = true",
        ),
        ({"field": "Email", "op": "is_empty"}, "Email is empty"),
        ({"field": "Email", "op": "is_not_empty"}, "Email is not empty"),
        (
            {"field": "Industry", "op": "not_in", "value": ["Banking"]},
            "Industry not in ['Banking']",
        ),
        ({"field": "Industry", "op": "not_equals", "value": "Retail"}, "Industry != 'Retail'"),
        ({"field": "Employees", "op": "less_than", "value": 10}, "Employees < 10"),
        (
            {"all": [{"field": "record_type", "op": "equals", "value": "Lead"}]},
            "record_type = 'Lead'",
        ),
    ],
)
def test_describe_rule(rule: dict[str, Any], text: str) -> None:
    assert describe_rule(RULE.validate_python(rule)) == text
