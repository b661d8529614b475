"""What a rule's conditions test, and whether each operator and value fits its field's type.

Score rules and segment rules share one condition language (``Condition`` / ``all`` / ``any``
in ``models.py``). This module walks it and checks each condition against the data type of the
field it tests, so a typo such as ``greater_than: "ten"`` is caught when the mapping loads
rather than silently matching nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from acton_pipelines.mapping.models import AllOf, AnyOf, Condition, DataType, Rule

ORDERED_TYPES = (DataType.NUMBER, DataType.SCORE, DataType.DATE, DataType.DATETIME)
TEXT_TYPES = (DataType.TEXT, DataType.EMAIL, DataType.MULTI_TEXT)

# Which operators each data type supports; listed in messages so the fix is one lookup away.
_SCALAR_OPS = ("equals", "not_equals", "in", "not_in", "is_empty", "is_not_empty")
ALLOWED_OPS: dict[DataType, tuple[str, ...]] = {
    DataType.TEXT: (*_SCALAR_OPS, "contains", "starts_with"),
    DataType.EMAIL: (*_SCALAR_OPS, "contains", "starts_with"),
    # For Multi-Text, equals/in/contains test the individual ';'-separated values.
    DataType.MULTI_TEXT: (*_SCALAR_OPS, "contains"),
    DataType.NUMBER: (*_SCALAR_OPS, "greater_than", "less_than"),
    DataType.SCORE: (*_SCALAR_OPS, "greater_than", "less_than"),
    DataType.DATE: (*_SCALAR_OPS, "greater_than", "less_than"),
    DataType.DATETIME: (*_SCALAR_OPS, "greater_than", "less_than"),
    DataType.BOOLEAN: ("equals", "not_equals", "is_empty", "is_not_empty"),
}

# How to write a value of each type in YAML, for the "value does not parse" messages.
VALUE_HINTS: dict[DataType, str] = {
    DataType.TEXT: "text, quoted if it looks like a number or date (e.g. '02134')",
    DataType.EMAIL: "text such as 'jane@example.com'",
    DataType.MULTI_TEXT: "one value as text, e.g. 'Automation'",
    DataType.NUMBER: "a number such as 1000000",
    DataType.SCORE: "a whole number such as 50",
    DataType.DATE: "a date as YYYY-MM-DD, e.g. 2026-12-31",
    DataType.DATETIME: "a date-time as YYYY-MM-DDTHH:MM:SSZ, e.g. 2026-12-31T09:00:00Z",
    DataType.BOOLEAN: "true or false, without quotes",
}


def walk_conditions(rule: Rule, path: str = "when") -> Iterator[tuple[str, Condition]]:
    """Every ``Condition`` inside ``rule`` with its path (``when.all[1].any[0]``)."""
    if isinstance(rule, Condition):
        yield path, rule
    elif isinstance(rule, AllOf):
        for i, part in enumerate(rule.all):
            yield from walk_conditions(part, f"{path}.all[{i}]")
    elif isinstance(rule, AnyOf):
        for i, part in enumerate(rule.any):
            yield from walk_conditions(part, f"{path}.any[{i}]")


def rule_fields(rule: Rule) -> set[str]:
    """Names of the fields (destinations or built-in columns) a rule reads."""
    return {condition.field for _, condition in walk_conditions(rule)}


def condition_problem(condition: Condition, data_type: DataType) -> str | None:
    """What is wrong with ``condition`` on a field of ``data_type``, with the fix; or None."""
    op, value, field = condition.op, condition.value, condition.field
    allowed = ALLOWED_OPS[data_type]
    if op not in allowed:
        return (
            f"operator '{op}' does not work on '{field}' ({data_type} field); "
            f"use one of {', '.join(allowed)}"
        )
    if op in ("is_empty", "is_not_empty"):
        if value is not None:
            return f"operator '{op}' takes no value; remove 'value: {value!r}'"
        return None
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            return f"operator '{op}' needs a list of values, e.g. value: [A, B]; got {value!r}"
        bad = [v for v in value if not _parses(v, data_type)]
        if bad:
            return (
                f"value {bad[0]!r} in the list does not fit '{field}' ({data_type} field); "
                f"write {VALUE_HINTS[data_type]}"
            )
        return None
    if op in ("contains", "starts_with"):
        if not isinstance(value, str) or not value:
            return f"operator '{op}' needs a non-empty text value; got {value!r}"
        return None
    if not _parses(value, data_type):
        return (
            f"value {value!r} does not fit '{field}' ({data_type} field); "
            f"write {VALUE_HINTS[data_type]}"
        )
    return None


def _parses(value: Any, data_type: DataType) -> bool:
    """Whether ``value`` (as YAML loaded it) is a valid value of ``data_type``."""
    if data_type in TEXT_TYPES:
        return isinstance(value, str)
    if data_type is DataType.BOOLEAN:
        return isinstance(value, bool)
    if data_type in (DataType.NUMBER, DataType.SCORE):
        if isinstance(value, bool):  # bool is an int in Python, never a number in a rule
            return False
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                return False
        if not isinstance(value, int | float):
            return False
        # Scores are whole numbers: comparing one with 10.5 is almost surely a typo.
        return data_type is DataType.NUMBER or float(value).is_integer()
    if data_type is DataType.DATE:
        if isinstance(value, datetime):
            return False
        if isinstance(value, date):
            return True
        return isinstance(value, str) and _is_iso(value, date.fromisoformat)
    if data_type is DataType.DATETIME:
        if isinstance(value, date):  # datetime is a date too; a bare date means midnight UTC
            return True
        return isinstance(value, str) and _is_iso(value, datetime.fromisoformat)
    return False


def _is_iso(value: str, parse: Any) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True
