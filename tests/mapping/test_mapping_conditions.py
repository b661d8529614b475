"""Conditions: which operators and values fit each data type."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from acton_pipelines.mapping import AllOf, AnyOf, Condition, DataType
from acton_pipelines.mapping.conditions import condition_problem, rule_fields, walk_conditions

T = DataType


@pytest.mark.parametrize(
    ("data_type", "op", "value"),
    [
        (T.TEXT, "equals", "VP"),
        (T.TEXT, "in", ["a", "b"]),
        (T.TEXT, "starts_with", "Cust"),
        (T.EMAIL, "contains", "@example.com"),
        (T.MULTI_TEXT, "contains", "Automation"),
        (T.MULTI_TEXT, "in", ["Automation", "Email"]),
        (T.NUMBER, "greater_than", 10),
        (T.NUMBER, "less_than", 10.5),
        (T.NUMBER, "equals", "42"),
        (T.SCORE, "greater_than", 50),
        (T.DATE, "less_than", date(2027, 1, 1)),
        (T.DATE, "greater_than", "2026-01-01"),
        (T.DATETIME, "greater_than", datetime(2026, 1, 1, 9)),
        (T.DATETIME, "less_than", "2026-01-01T09:00:00Z"),
        (T.DATETIME, "less_than", date(2026, 1, 1)),
        (T.BOOLEAN, "equals", True),
        (T.BOOLEAN, "is_empty", None),
    ],
)
def test_fitting_conditions(data_type: DataType, op: str, value: object) -> None:
    condition = Condition(field="F", op=op, value=value)  # type: ignore[arg-type]
    assert condition_problem(condition, data_type) is None


@pytest.mark.parametrize(
    ("data_type", "op", "value", "expected"),
    [
        (T.TEXT, "greater_than", "M", "operator 'greater_than' does not work on 'F' (Text"),
        (T.BOOLEAN, "contains", "x", "operator 'contains' does not work on 'F' (Boolean"),
        (T.MULTI_TEXT, "starts_with", "A", "operator 'starts_with' does not work"),
        (T.TEXT, "equals", 12, "value 12 does not fit 'F' (Text field); write text, quoted"),
        (T.NUMBER, "greater_than", True, "value True does not fit 'F' (Number field)"),
        (T.NUMBER, "equals", "ten", "write a number such as 1000000"),
        (T.SCORE, "greater_than", 10.5, "value 10.5 does not fit 'F' (Score field)"),
        (T.DATE, "less_than", "31/12/2026", "write a date as YYYY-MM-DD"),
        (T.DATE, "less_than", datetime(2026, 1, 1), "(Date field)"),
        (T.DATETIME, "greater_than", "yesterday", "write a date-time as YYYY-MM-DDTHH:MM:SSZ"),
        (T.BOOLEAN, "equals", "true", "write true or false, without quotes"),
        (T.TEXT, "in", [], "operator 'in' needs a list of values"),
        (T.NUMBER, "not_in", [1, "x"], "value 'x' in the list does not fit 'F' (Number field)"),
        (T.TEXT, "contains", "", "operator 'contains' needs a non-empty text value"),
        (T.TEXT, "is_empty", "x", "operator 'is_empty' takes no value; remove"),
    ],
)
def test_unfitting_conditions(data_type: DataType, op: str, value: object, expected: str) -> None:
    condition = Condition(field="F", op=op, value=value)  # type: ignore[arg-type]
    message = condition_problem(condition, data_type)
    assert message is not None and expected in message


def test_walk_reports_paths_and_fields() -> None:
    rule = AllOf(
        all=[
            Condition(field="A", op="is_empty"),
            AnyOf(any=[Condition(field="B", op="is_empty"), Condition(field="A", op="is_empty")]),
        ]
    )
    assert [path for path, _ in walk_conditions(rule)] == [
        "when.all[0]",
        "when.all[1].any[0]",
        "when.all[1].any[1]",
    ]
    assert rule_fields(rule) == {"A", "B"}
