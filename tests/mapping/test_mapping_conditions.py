"""Conditions: which operators and values fit each data type, and how rules evaluate.

The validator (``condition_problem``, run when the mapping loads) and the evaluator
(``evaluate``, run by scores and segments) read one operator table; the walk over every data
type and operator below keeps them from drifting apart again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, get_args

import pandas as pd
import pytest
from pydantic import TypeAdapter

from acton_pipelines.mapping import (
    AllOf,
    AnyOf,
    Condition,
    ConditionOp,
    DataType,
    FieldMapping,
    Mapping,
    MappingError,
    MappingProblem,
    Rule,
    ScoreSheet,
    load_mapping,
)
from acton_pipelines.mapping.conditions import (
    OPERATORS,
    ConditionError,
    ValueShape,
    condition_problem,
    describe_rule,
    evaluate,
    resolve_field,
    rule_fields,
    walk_conditions,
)

from .conftest import REPO_CONFIG, line_of

T = DataType
RULE = TypeAdapter(Rule)
SEGMENTS = "segments.yaml"

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


F_, T_ = False, True


# -- the table covers the language -----------------------------------------------------------


def test_table_has_exactly_the_operators_of_the_language() -> None:
    # The table's own order is the order messages suggest operators in.
    assert sorted(OPERATORS) == sorted(get_args(ConditionOp))


# -- every data type x every operator, through the validator and the evaluator ---------------


@dataclass(frozen=True)
class Sample:
    """A 3-row column of one data type (row 2 missing), valid values, and examples.

    ``examples`` gives, for each operator the table allows on the type, a value and the
    expected result; a pair that validates without an example fails the walk, so a widened
    table needs an example, and one that shows the operator on a matching and a non-matching
    row.
    """

    column: Any
    one: Any  # a valid single value
    bad: Any  # a single value that does not fit the type
    examples: dict[str, tuple[Any, list[bool]]]

    def example(self, op: str) -> tuple[Any, list[bool]] | None:
        return self.examples.get(op) or EMPTY_EXAMPLES.get(op)


# Blank and missing are the same for every type, and row 2 of every sample is missing.
EMPTY_EXAMPLES: dict[str, tuple[Any, list[bool]]] = {
    "is_empty": (None, [F_, F_, T_]),
    "is_not_empty": (None, [T_, T_, F_]),
}

SAMPLES: dict[DataType, Sample] = {
    T.TEXT: Sample(
        ["Alpha Beta", "gamma", None],
        "alpha",
        12,
        {
            "equals": (" ALPHA beta", [T_, F_, F_]),
            "not_equals": ("alpha beta", [F_, T_, T_]),
            "in": (["Gamma", "delta"], [F_, T_, F_]),
            "not_in": (["gamma"], [T_, F_, T_]),
            "contains": ("BETA", [T_, F_, F_]),
            "starts_with": ("gam", [F_, T_, F_]),
        },
    ),
    T.EMAIL: Sample(
        ["Ann@Example.com", "bob@test.org", None],
        "ann@example.com",
        12,
        {
            "equals": ("ann@example.com", [T_, F_, F_]),
            "not_equals": ("ann@example.com", [F_, T_, T_]),
            "in": (["BOB@test.org"], [F_, T_, F_]),
            "not_in": (["bob@test.org"], [T_, F_, T_]),
            "contains": ("@example", [T_, F_, F_]),
            "starts_with": ("bob@", [F_, T_, F_]),
        },
    ),
    T.MULTI_TEXT: Sample(
        ["Golf;Tennis", "Chess", None],
        "Golf",
        12,
        {
            "equals": ("tennis", [T_, F_, F_]),
            "not_equals": ("tennis", [F_, T_, T_]),
            "in": (["chess", "squash"], [F_, T_, F_]),
            "not_in": (["chess"], [T_, F_, T_]),
            "contains": ("enn", [T_, F_, F_]),
            "starts_with": ("Ch", [F_, T_, F_]),
        },
    ),
    T.NUMBER: Sample(
        [250.0, 10.0, None],
        10,
        "ten",
        {
            "equals": (10, [F_, T_, F_]),
            "not_equals": (10, [T_, F_, T_]),
            "in": ([250, 5], [T_, F_, F_]),
            "not_in": ([250], [F_, T_, T_]),
            "greater_than": (100, [T_, F_, F_]),
            "less_than": ("100", [F_, T_, F_]),
        },
    ),
    T.SCORE: Sample(
        pd.array([40, 0, None], dtype="Int64"),
        40,
        10.5,
        {
            "equals": (0, [F_, T_, F_]),
            "not_equals": (0, [T_, F_, T_]),
            "in": ([40, 50], [T_, F_, F_]),
            "not_in": ([40], [F_, T_, T_]),
            "greater_than": (39, [T_, F_, F_]),
            "less_than": (1, [F_, T_, F_]),
        },
    ),
    T.DATE: Sample(
        pd.to_datetime(["2024-05-01", "2024-06-15", None]),
        "2024-05-01",
        "31/12/2026",
        {
            "equals": ("2024-05-01", [T_, F_, F_]),
            "not_equals": (date(2024, 5, 1), [F_, T_, T_]),
            "in": ([date(2024, 6, 15), "2023-01-01"], [F_, T_, F_]),
            "not_in": (["2024-06-15"], [T_, F_, T_]),
            "greater_than": ("2024-05-15", [F_, T_, F_]),
            "less_than": (date(2024, 5, 15), [T_, F_, F_]),
        },
    ),
    T.DATETIME: Sample(
        pd.to_datetime(["2024-05-01T23:30:00Z", "2024-05-02T00:30:00Z", None], utc=True),
        "2024-05-01T23:30:00Z",
        "yesterday",
        {
            "equals": ("2024-05-02T00:30:00Z", [F_, T_, F_]),
            "not_equals": ("2024-05-01", [F_, T_, T_]),
            "in": (["2024-05-01", datetime(2030, 1, 1)], [T_, F_, F_]),
            "not_in": (["2024-05-02T00:30:00+00:00"], [T_, F_, T_]),
            "greater_than": ("2024-05-02T00:00:00Z", [F_, T_, F_]),
            "less_than": (datetime(2024, 5, 2), [T_, F_, F_]),
        },
    ),
    T.BOOLEAN: Sample(
        pd.array([True, False, None], dtype="boolean"),
        True,
        "true",
        {
            "equals": (True, [T_, F_, F_]),
            "not_equals": (True, [F_, T_, T_]),
            "in": ([False], [F_, T_, F_]),
            "not_in": ([False], [T_, F_, T_]),
        },
    ),
}


def _one_field(data_type: DataType) -> tuple[Mapping, pd.DataFrame]:
    """A mapping with one field 'F' of ``data_type`` and its 3-row sample as contacts."""
    mapping = Mapping(fields=[FieldMapping(destination="F", type=data_type)], score_sheets=[])
    return mapping, pd.DataFrame({"f": SAMPLES[data_type].column}, index=[7, 8, 9])


def _value_of_shape(op: str, sample: Sample) -> Any:
    shape = OPERATORS[op].shape
    return {ValueShape.NONE: None, ValueShape.ONE: sample.one, ValueShape.LIST: [sample.one]}[shape]


def _refused_alike(condition: Condition, data_type: DataType) -> str:
    """The validator's problem with ``condition``, after checking the evaluator refuses it
    with the same message."""
    problem = condition_problem(condition, data_type)
    assert problem is not None
    mapping, frame = _one_field(data_type)
    with pytest.raises(ConditionError) as caught:
        evaluate(condition, frame, mapping)
    assert problem in str(caught.value)
    return problem


@pytest.mark.parametrize("op", get_args(ConditionOp))
@pytest.mark.parametrize("data_type", list(DataType))
def test_every_type_and_operator_validates_exactly_when_it_evaluates(
    data_type: DataType, op: str
) -> None:
    sample = SAMPLES[data_type]
    example = sample.example(op)
    value = example[0] if example is not None else _value_of_shape(op, sample)
    condition = Condition(field="F", op=op, value=value)  # type: ignore[arg-type]
    problem = condition_problem(condition, data_type)
    if problem is None:
        assert example is not None, f"'{op}' validates on {data_type}: add an example"
        expected = example[1]
        assert True in expected and False in expected
        mapping, frame = _one_field(data_type)
        result = evaluate(condition, frame, mapping)
        assert result.dtype == bool
        assert list(result.index) == [7, 8, 9]
        assert result.tolist() == expected
    else:
        assert example is None, f"'{op}' on {data_type} was refused: {problem}"
        assert f"operator '{op}' does not work on 'F' ({data_type} field)" in problem
        _refused_alike(condition, data_type)


def _accepted_pairs() -> list[tuple[DataType, str]]:
    return [(t, op) for t in DataType for op, operator in OPERATORS.items() if t in operator.types]


@pytest.mark.parametrize(("data_type", "op"), _accepted_pairs())
def test_wrong_value_is_refused_alike(data_type: DataType, op: str) -> None:
    """A value of the wrong shape, or one that does not fit the type, is refused by both."""
    sample = SAMPLES[data_type]
    shape = OPERATORS[op].shape
    wrong_shape = {
        ValueShape.NONE: sample.one,
        ValueShape.ONE: [sample.one],
        ValueShape.LIST: sample.one,
    }[shape]
    _refused_alike(Condition(field="F", op=op, value=wrong_shape), data_type)  # type: ignore[arg-type]
    if shape is not ValueShape.NONE:
        bad = [sample.bad] if shape is ValueShape.LIST else sample.bad
        problem = _refused_alike(Condition(field="F", op=op, value=bad), data_type)  # type: ignore[arg-type]
        assert f"value {sample.bad!r}" in problem


# -- the validator's messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_type", "op", "value"),
    [
        (T.TEXT, "equals", "VP"),
        (T.TEXT, "in", ["a", "b"]),
        (T.TEXT, "starts_with", "Cust"),
        (T.EMAIL, "contains", "@example.com"),
        (T.MULTI_TEXT, "contains", "Automation"),
        (T.MULTI_TEXT, "in", ["Automation", "Email"]),
        (T.MULTI_TEXT, "starts_with", "Auto"),
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
        (T.BOOLEAN, "in", [True]),
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
        (T.MULTI_TEXT, "less_than", "A", "operator 'less_than' does not work on 'F' (Multi-Text"),
        (T.TEXT, "equals", 12, "value 12 does not fit 'F' (Text field); write text, quoted"),
        (T.NUMBER, "greater_than", True, "value True does not fit 'F' (Number field)"),
        (T.NUMBER, "equals", "ten", "write a number such as 1000000"),
        (T.NUMBER, "equals", math.nan, "value nan does not fit 'F' (Number field)"),
        (T.SCORE, "greater_than", 10.5, "value 10.5 does not fit 'F' (Score field)"),
        (T.DATE, "less_than", "31/12/2026", "write a date as YYYY-MM-DD"),
        (T.DATE, "less_than", datetime(2026, 1, 1), "(Date field)"),
        (T.DATETIME, "greater_than", "yesterday", "write a date-time as YYYY-MM-DDTHH:MM:SSZ"),
        (T.BOOLEAN, "equals", "true", "write true or false, without quotes"),
        (T.TEXT, "in", [], "operator 'in' needs a list of values"),
        (T.TEXT, "in", "a", "operator 'in' needs a list of values"),
        (T.NUMBER, "not_in", [1, "x"], "value 'x' in the list does not fit 'F' (Number field)"),
        (T.TEXT, "contains", "", "operator 'contains' needs a non-blank text value"),
        (T.TEXT, "equals", "  ", "operator 'equals' needs a non-blank text value"),
        (T.TEXT, "not_in", ["a", " "], "use is_empty or is_not_empty"),
        (T.MULTI_TEXT, "equals", "Golf; Tennis", "a value with ';' never matches"),
        (T.TEXT, "equals", None, "operator 'equals' needs a value; to match contacts without"),
        (T.TEXT, "equals", ["a", "b"], "takes one value, not ['a', 'b']; use 'in' for a list"),
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


# -- evaluating on hand-made contacts ----------------------------------------------------------

CASES = [
    # Text: trimmed, case-insensitive; a missing or blank value fails all but the negations.
    ("Job Title", "equals", "vp of sales", [T_, F_, F_, F_]),
    ("Job Title", "equals", "VP", [F_, F_, F_, F_]),
    ("Job Title", "not_equals", "ENGINEER", [T_, F_, T_, T_]),
    ("Industry", "in", ["BANKING", " Retail "], [T_, T_, F_, F_]),
    ("Industry", "not_in", ["banking"], [F_, T_, T_, T_]),
    ("Job Title", "contains", "vp", [T_, F_, F_, F_]),
    ("Job Title", "contains", "ENGIN", [F_, T_, F_, F_]),
    ("Job Title", "starts_with", "vp", [T_, F_, F_, F_]),
    ("Job Title", "starts_with", "sales", [F_, F_, F_, F_]),
    # A blank value is missing: d's "   " is empty.
    ("Job Title", "is_empty", None, [F_, F_, T_, T_]),
    ("Job Title", "is_not_empty", None, [T_, T_, F_, F_]),
    # Email behaves as text.
    ("Email", "equals", "ann@example.com", [T_, F_, F_, F_]),
    ("Email", "contains", "@EXAMPLE", [T_, T_, F_, T_]),
    # Multi-Text: each ';'-separated value is tested on its own.
    ("Interests", "equals", "tennis", [T_, T_, F_, F_]),
    ("Interests", "equals", "ten", [F_, F_, F_, F_]),
    ("Interests", "contains", "ches", [T_, F_, F_, F_]),
    ("Interests", "in", ["chess", "Squash"], [T_, F_, F_, F_]),
    ("Interests", "starts_with", "TEN", [T_, T_, F_, F_]),
    ("Interests", "not_equals", "golf", [F_, T_, T_, T_]),
    ("Interests", "not_in", ["tennis"], [F_, F_, T_, T_]),
    ("Interests", "is_empty", None, [F_, F_, T_, T_]),
    ("Interests", "is_not_empty", None, [T_, T_, F_, F_]),
    # Number / Score: numeric; NaN fails comparisons; 0 is a value, not empty.
    ("Employees", "equals", 10, [F_, T_, F_, F_]),
    ("Employees", "equals", "10", [F_, T_, F_, F_]),
    ("Employees", "greater_than", 10, [T_, F_, F_, F_]),
    ("Employees", "less_than", 10, [F_, F_, F_, T_]),
    ("Employees", "in", [0, 250], [T_, F_, F_, T_]),
    ("Employees", "not_in", [0], [T_, T_, T_, F_]),
    ("Employees", "not_equals", 250, [F_, T_, T_, T_]),
    ("Employees", "is_empty", None, [F_, F_, T_, F_]),
    ("Lead Score", "greater_than", 39, [T_, F_, F_, T_]),
    ("Lead Score", "less_than", 40, [F_, T_, F_, F_]),
    # Date: calendar dates, ISO strings or YAML dates.
    ("Renewal Date", "equals", "2024-05-01", [T_, F_, F_, F_]),
    ("Renewal Date", "equals", date(2024, 5, 1), [T_, F_, F_, F_]),
    ("Renewal Date", "greater_than", "2024-05-01", [F_, T_, F_, F_]),
    ("Renewal Date", "less_than", "2024-05-01", [F_, F_, F_, T_]),
    ("Renewal Date", "in", ["2024-06-15", "2023-12-31"], [F_, T_, F_, T_]),
    ("Renewal Date", "not_equals", "2024-05-01", [F_, T_, T_, T_]),
    ("Renewal Date", "is_empty", None, [F_, F_, T_, F_]),
    # Datetime: UTC instants; a naive value is UTC; a date-only value compares UTC days.
    ("Last Visit", "greater_than", "2024-05-01T23:00:00Z", [T_, T_, F_, F_]),
    ("Last Visit", "less_than", "2024-05-02T00:00:00+00:00", [T_, F_, F_, T_]),
    ("Last Visit", "less_than", "2024-05-02T00:00:00", [T_, F_, F_, T_]),
    ("Last Visit", "greater_than", "2024-05-01T20:00:00-04:00", [F_, T_, F_, F_]),
    ("Last Visit", "equals", "2024-05-02T00:30:00Z", [F_, T_, F_, F_]),
    ("Last Visit", "equals", "2024-05-01", [T_, F_, F_, F_]),
    ("Last Visit", "greater_than", "2024-05-01", [F_, T_, F_, F_]),
    ("Last Visit", "less_than", "2024-05-01", [F_, F_, F_, T_]),
    ("Last Visit", "not_equals", "2024-05-01", [F_, T_, T_, T_]),
    ("Last Visit", "is_not_empty", None, [T_, T_, F_, T_]),
    # Boolean: YAML true / false.
    ("VIP", "equals", True, [T_, F_, F_, T_]),
    ("VIP", "equals", False, [F_, T_, F_, F_]),
    ("VIP", "not_equals", True, [F_, T_, T_, F_]),
    ("VIP", "in", [False], [F_, T_, F_, F_]),
    ("VIP", "is_empty", None, [F_, F_, T_, F_]),
    # Built-in columns by their own names.
    ("record_type", "equals", "lead", [T_, F_, F_, F_]),
    ("external_id", "is_empty", None, [F_, F_, T_, F_]),
    ("opted_out", "equals", True, [F_, T_, F_, F_]),
]


@pytest.mark.parametrize(("field", "op", "value", "expected"), CASES)
def test_condition(field: str, op: str, value: Any, expected: list[bool]) -> None:
    condition = Condition(field=field, op=op, value=value)  # type: ignore[arg-type]
    # Every case is one a mapping may hold.
    assert condition_problem(condition, resolve_field(field, MAPPING)[1]) is None
    assert _check({"field": field, "op": op, "value": value}) == expected


def test_all_requires_every_branch() -> None:
    rule = {
        "all": [
            {"field": "Job Title", "op": "contains", "value": "vp"},
            {"field": "Employees", "op": "greater_than", "value": 100},
        ]
    }
    assert _check(rule) == [T_, F_, F_, F_]


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
    assert _check(rule) == [F_, T_, F_, T_]


def test_empty_groups() -> None:
    assert _check({"all": []}) == [T_, T_, T_, T_]
    assert _check({"any": []}) == [F_, F_, F_, F_]


def test_chunk_with_duplicate_index_matches_whole_frame() -> None:
    rule = {"field": "Interests", "op": "equals", "value": "tennis"}
    chunk = _contacts().iloc[[3, 1, 0]]
    chunk.index = [7, 7, 7]
    assert _check(rule, chunk) == [F_, T_, T_]


def test_nullable_and_object_columns() -> None:
    contacts = _contacts()
    contacts["employees"] = pd.array([250, 10, None, 0], dtype="Int64")
    contacts["job_title"] = pd.Series(
        [" VP of Sales ", "engineer", None, "   "], dtype=object, index=contacts.index
    )
    rule = {"field": "Employees", "op": "greater_than", "value": 5}
    assert _check(rule, contacts) == [T_, T_, F_, F_]
    rule = {"field": "Job Title", "op": "equals", "value": "engineer"}
    assert _check(rule, contacts) == [F_, T_, F_, F_]


def test_tz_aware_date_column_keeps_its_calendar_day() -> None:
    contacts = _contacts()
    contacts["renewal_date"] = pd.to_datetime(
        ["2024-05-01", "2024-06-15", None, "2023-12-31"]
    ).tz_localize("US/Pacific")
    rule = {"field": "Renewal Date", "op": "equals", "value": "2024-05-01"}
    assert _check(rule, contacts) == [T_, F_, F_, F_]


def test_unknown_field_is_named() -> None:
    with pytest.raises(ConditionError, match="'Shoe Size'"):
        _check({"field": "Shoe Size", "op": "equals", "value": 42})


def test_op_not_for_type() -> None:
    with pytest.raises(ConditionError, match="greater_than"):
        _check({"field": "Job Title", "op": "greater_than", "value": "a"})
    with pytest.raises(ConditionError, match="contains"):
        _check({"field": "Employees", "op": "contains", "value": 1})


def test_missing_column_is_named() -> None:
    contacts = _contacts().drop(columns=["industry"])
    with pytest.raises(ConditionError, match="industry"):
        _check({"field": "Industry", "op": "equals", "value": "x"}, contacts)


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("Employees", "greater_than", "many", "write a number"),
        ("VIP", "equals", "maybe", "write true or false"),
        # Text booleans are refused as the mapping refuses them.
        ("VIP", "equals", "false", "write true or false, without quotes"),
        ("Industry", "equals", None, "use is_empty"),
        # Would match every non-blank value, which is is_not_empty.
        ("Job Title", "contains", "", "needs a non-blank text value"),
        ("Job Title", "starts_with", "   ", "needs a non-blank text value"),
        # Multi-Text values are tested one at a time: a whole list never equals one of them.
        ("Interests", "equals", "Golf; Tennis", "never matches"),
    ],
)
def test_bad_value_is_refused(field: str, op: str, value: Any, expected: str) -> None:
    with pytest.raises(ConditionError, match=expected):
        _check({"field": field, "op": op, "value": value})


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
            {"field": "Renewal Date", "op": "less_than", "value": date(2027, 1, 1)},
            "Renewal Date < 2027-01-01",
        ),
        (
            {"all": [{"field": "record_type", "op": "equals", "value": "Lead"}]},
            "record_type = 'Lead'",
        ),
    ],
)
def test_describe_rule(rule: dict[str, Any], text: str) -> None:
    assert describe_rule(RULE.validate_python(rule)) == text


# -- the mapping-load path -----------------------------------------------------------------------

Edit = Callable[[str, str, str], int]
Problems = Callable[[], list[MappingProblem]]

# The default config's segment whose Boolean condition the tests below replace.
NEWSLETTER = "        - {field: Newsletter, op: equals, value: true}"
ENTRY = 'segments[1] "Engaged customers due for renewal"'


def _default_field_of_each_type() -> dict[DataType, str]:
    mapping = load_mapping(REPO_CONFIG)
    fields: dict[DataType, str] = {}
    for field in mapping.fields:
        fields.setdefault(field.type, field.destination)
    assert set(fields) == set(DataType), "the default config should map every data type"
    return fields


def _rejected_pairs() -> list[tuple[DataType, str]]:
    return [
        (t, op) for t in DataType for op, operator in OPERATORS.items() if t not in operator.types
    ]


@pytest.mark.parametrize(("data_type", "op"), _rejected_pairs())
def test_mapping_with_a_rejected_pair_does_not_load(
    data_type: DataType, op: str, edit: Edit, config_dir: Path
) -> None:
    field = _default_field_of_each_type()[data_type]
    edit(SEGMENTS, NEWSLETTER, f"        - {{field: {field}, op: {op}, value: 'x'}}")
    with pytest.raises(MappingError) as caught:
        load_mapping(config_dir)
    [problem] = caught.value.problems
    line = line_of(config_dir / SEGMENTS, "- name: Engaged customers")
    assert problem.file == SEGMENTS
    assert problem.entry == ENTRY
    assert problem.line == line
    assert problem.message.startswith(
        f"when.all[1]: operator '{op}' does not work on '{field}' ({data_type} field); use one of"
    )
    assert f"{SEGMENTS}, line {line}: {ENTRY}: when.all[1]: operator '{op}'" in str(caught.value)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (
            "{field: Interests, op: starts_with, value: Auto}",
            Condition(field="Interests", op="starts_with", value="Auto"),
        ),
        (
            "{field: Newsletter, op: in, value: [true]}",
            Condition(field="Newsletter", op="in", value=[True]),
        ),
        (
            "{field: Newsletter, op: not_in, value: [false]}",
            Condition(field="Newsletter", op="not_in", value=[False]),
        ),
    ],
)
def test_mapping_with_pairs_the_evaluator_always_ran_loads(
    written: str, expected: Condition, edit: Edit, config_dir: Path
) -> None:
    """Multi-Text starts_with and Boolean in / not_in used to evaluate but not load."""
    edit(SEGMENTS, NEWSLETTER, f"        - {written}")
    when = load_mapping(config_dir).segments[1].when
    assert isinstance(when, AllOf)
    assert when.all[1] == expected


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            "prospect_account_types: [Prospect]",
            "prospect_account_types: [Prospect, ' ']",
            "prospect_account_types[1]",
        ),
        (
            "customer_account_type_prefixes: [Customer]",
            "customer_account_type_prefixes: ['']",
            "customer_account_type_prefixes[0]",
        ),
    ],
)
def test_blank_affiliation_value_does_not_load(
    old: str, new: str, key: str, edit: Edit, problems: Problems
) -> None:
    """The default segments turn these values into account_type conditions, which refuse
    blank text; the mapping reports it instead of the segment build failing later."""
    edit(SEGMENTS, old, new)
    [problem] = problems()
    assert (problem.file, problem.entry) == (SEGMENTS, "affiliation")
    assert problem.message.startswith(f"{key} is blank; write an account type such as")
