"""The condition language of score and segment rules: one operator table, checked and evaluated.

Score rules and segment rules share one condition language (``Condition`` / ``all`` / ``any``
in ``models.py``). ``OPERATORS`` says, for every operator, which data types it works on, the
value it needs, how it reads in text and how it tests a column. The mapping validator
(``condition_problem``, called by ``rules.py`` when the mapping loads) and the evaluator
(``evaluate``, used by scores and segments) both read it, and the evaluator refuses exactly
what the validator rejects, with the same message: a rule either loads and evaluates, or is
reported with its fix. So a typo such as ``greater_than: "ten"`` is caught at load time rather
than silently matching nobody.

Semantics, per data type:

* Text / Email: case-insensitive, whitespace-trimmed string comparison.
* Multi-Text: the value is split on ``;``; ``equals`` / ``in`` / ``contains`` /
  ``starts_with`` hold when *any* individual value does.
* Number / Score: numeric comparison.
* Date: compared as calendar dates against an ISO date (``2024-05-01``).
* Datetime: compared in UTC against an ISO datetime (a naive one is taken as UTC); against a
  date-only value (``2024-05-01``) the UTC calendar day is compared, so ``equals`` means
  "on that day" and ``greater_than`` means "on a later day".
* Boolean: against YAML ``true`` / ``false``.

A missing value (NA, NaT, blank text, a Multi-Text with no values) fails every operator except
``is_empty``, ``not_equals`` and ``not_in``, which are the negations of operators that fail.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from acton_pipelines.mapping.models import (
    BUILTIN_COLUMNS,
    AllOf,
    AnyOf,
    Condition,
    DataType,
    Mapping,
    Rule,
)

TEXT_TYPES = frozenset({DataType.TEXT, DataType.EMAIL, DataType.MULTI_TEXT})
ORDERED_TYPES = frozenset({DataType.NUMBER, DataType.SCORE, DataType.DATE, DataType.DATETIME})
ALL_TYPES = frozenset(DataType)


class ValueShape(StrEnum):
    """What an operator's ``value`` must be."""

    NONE = "none"  # no value at all
    ONE = "one"  # one value of the field's type
    LIST = "list"  # a non-empty list of values of the field's type


class ConditionError(ValueError):
    """A condition that cannot be evaluated: unknown field, missing column, or a condition the
    mapping validator rejects (the message is the validator's, with its fix)."""


class _Column:
    """A DataFrame column prepared for the comparisons of one data type.

    Each test returns one bool per row and may be True on missing rows: the operator table
    decides what a missing value means. A type only implements the tests of the operators the
    table allows on it; the other tests are never reached (tests/mapping check every pair).
    """

    def __init__(self, series: pd.Series) -> None:
        self.size = len(series)
        self.missing: np.ndarray = np.zeros(self.size, dtype=bool)

    def equals(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def isin(self, values: list[Any]) -> np.ndarray:
        result = np.zeros(self.size, dtype=bool)
        for value in values:
            result |= self.equals(value)
        return result

    def contains(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def starts_with(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def greater_than(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def less_than(self, value: Any) -> np.ndarray:
        raise NotImplementedError


Test = Callable[[_Column, Any], np.ndarray]


def _present(test: Test) -> Test:
    """A positive test: a missing value fails it."""
    return lambda column, value: test(column, value) & ~column.missing


def _negated(test: Test) -> Test:
    """The negation of a positive test: a missing value fails that, so it passes this."""
    positive = _present(test)
    return lambda column, value: ~positive(column, value)


@dataclass(frozen=True)
class Operator:
    """One operator of the condition language."""

    types: frozenset[DataType]  # the field data types it works on
    shape: ValueShape  # the value it needs
    text: str  # how it reads in describe_rule: "Job Title starts with 'VP'"
    test: Test  # the prepared column and parsed value -> one bool per row, never NA


# The one table. Its order is the order operators are suggested in messages.
OPERATORS: dict[str, Operator] = {
    "equals": Operator(ALL_TYPES, ValueShape.ONE, "=", _present(lambda c, v: c.equals(v))),
    "not_equals": Operator(ALL_TYPES, ValueShape.ONE, "!=", _negated(lambda c, v: c.equals(v))),
    # in / not_in are "equals one of": they work wherever equals does, Boolean included.
    "in": Operator(ALL_TYPES, ValueShape.LIST, "in", _present(lambda c, v: c.isin(v))),
    "not_in": Operator(ALL_TYPES, ValueShape.LIST, "not in", _negated(lambda c, v: c.isin(v))),
    "is_empty": Operator(ALL_TYPES, ValueShape.NONE, "is empty", lambda c, _: c.missing.copy()),
    "is_not_empty": Operator(ALL_TYPES, ValueShape.NONE, "is not empty", lambda c, _: ~c.missing),
    # On Multi-Text both test each ';'-separated value, like equals and in.
    "contains": Operator(
        TEXT_TYPES, ValueShape.ONE, "contains", _present(lambda c, v: c.contains(v))
    ),
    "starts_with": Operator(
        TEXT_TYPES, ValueShape.ONE, "starts with", _present(lambda c, v: c.starts_with(v))
    ),
    "greater_than": Operator(
        ORDERED_TYPES, ValueShape.ONE, ">", _present(lambda c, v: c.greater_than(v))
    ),
    "less_than": Operator(
        ORDERED_TYPES, ValueShape.ONE, "<", _present(lambda c, v: c.less_than(v))
    ),
}

# The list form of a one-value operator, suggested when a list is given.
_LIST_FORMS = {"equals": "in", "not_equals": "not_in"}

# How to write a value of each type in YAML, for the "value does not fit" messages.
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


def allowed_ops(data_type: DataType) -> list[str]:
    """The operators that work on a field of ``data_type``, in table order."""
    return [name for name, operator in OPERATORS.items() if data_type in operator.types]


# -- walking rules -------------------------------------------------------------------------------


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


# -- checking a condition against its field's type -------------------------------------------


class _Unfit(Exception):
    """A condition that does not fit its field; the message says why and how to fix it."""


class _BadValue(Exception):
    """A value that does not parse as the field's type; a non-empty message replaces the
    generic "does not fit" one."""


def condition_problem(condition: Condition, data_type: DataType) -> str | None:
    """What is wrong with ``condition`` on a field of ``data_type``, with the fix; or None."""
    try:
        _parsed_value(condition, data_type)
    except _Unfit as unfit:
        return str(unfit)
    return None


def _parsed_value(condition: Condition, data_type: DataType) -> Any:
    """The condition's value as the column compares it (a list of them for a list operator);
    raises ``_Unfit`` when the operator or the value does not fit ``data_type``."""
    op, value, field = condition.op, condition.value, condition.field
    operator = OPERATORS[op]
    if data_type not in operator.types:
        raise _Unfit(
            f"operator '{op}' does not work on '{field}' ({data_type} field); "
            f"use one of {', '.join(allowed_ops(data_type))}"
        )
    if operator.shape is ValueShape.NONE:
        if value is not None:
            raise _Unfit(f"operator '{op}' takes no value; remove 'value: {value!r}'")
        return None
    if operator.shape is ValueShape.LIST:
        if not isinstance(value, list) or not value:
            raise _Unfit(
                f"operator '{op}' needs a list of values, e.g. value: [A, B]; got {value!r}"
            )
        return [_parse(item, data_type, op, field, in_list=True) for item in value]
    if value is None:
        raise _Unfit(f"operator '{op}' needs a value; to match contacts without one, use is_empty")
    if isinstance(value, list | tuple | set | frozenset | dict):
        instead = f"; use '{_LIST_FORMS[op]}' for a list" if op in _LIST_FORMS else ""
        raise _Unfit(f"operator '{op}' takes one value, not {value!r}{instead}")
    return _parse(value, data_type, op, field, in_list=False)


def _parse(value: Any, data_type: DataType, op: str, field: str, *, in_list: bool) -> Any:
    try:
        return _PARSERS[data_type](value)
    except _BadValue as bad:
        if str(bad):
            raise _Unfit(f"operator '{op}' {bad}; got {value!r}") from None
        where = " in the list" if in_list else ""
        raise _Unfit(
            f"value {value!r}{where} does not fit '{field}' ({data_type} field); "
            f"write {VALUE_HINTS[data_type]}"
        ) from None


def _norm_text(value: str) -> str:
    return value.strip().casefold()


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _BadValue
    text = _norm_text(value)
    if not text:
        # A blank value counts as missing, so it would never match (or always, negated).
        raise _BadValue(
            "needs a non-blank text value (a blank value counts as missing: use is_empty or "
            "is_not_empty)"
        )
    return text


def _multi_text(value: Any) -> str:
    text = _text(value)
    if ";" in text:
        raise _BadValue(
            "tests the ';'-separated values one at a time, so a value with ';' never matches; "
            "write one value and combine conditions with all or any"
        )
    return text


def _number(value: Any) -> float:
    # bool is an int in Python, never a number in a rule.
    if isinstance(value, bool | np.bool_):
        raise _BadValue
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _BadValue from None
    if not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _BadValue
    return float(value)


def _score(value: Any) -> float:
    number = _number(value)
    # Scores are whole numbers: comparing one with 10.5 is almost surely a typo.
    if not number.is_integer():
        raise _BadValue
    return number


def _date(value: Any) -> pd.Timestamp:
    if isinstance(value, datetime):  # a time on a Date field is a mistake, not a day
        raise _BadValue
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise _BadValue from None
    if not isinstance(value, date):
        raise _BadValue
    return pd.Timestamp(value)


@dataclass(frozen=True)
class _Moment:
    """A Datetime rule value: an instant in UTC, or a whole UTC day (from a date-only value)."""

    at: pd.Timestamp
    whole_day: bool


def _moment(value: Any) -> _Moment:
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text)
        except ValueError:
            try:
                value = datetime.fromisoformat(text)
            except ValueError:
                raise _BadValue from None
    if not isinstance(value, date):
        raise _BadValue
    whole_day = not isinstance(value, datetime)
    at = pd.Timestamp(value)
    at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
    return _Moment(at, whole_day)


def _boolean(value: Any) -> bool:
    # Only YAML booleans: 'yes' or "true" in quotes are text, and the hint says so.
    if not isinstance(value, bool | np.bool_):
        raise _BadValue
    return bool(value)


_PARSERS: dict[DataType, Callable[[Any], Any]] = {
    DataType.TEXT: _text,
    DataType.EMAIL: _text,
    DataType.MULTI_TEXT: _multi_text,
    DataType.NUMBER: _number,
    DataType.SCORE: _score,
    DataType.DATE: _date,
    DataType.DATETIME: _moment,
    DataType.BOOLEAN: _boolean,
}


# -- evaluating --------------------------------------------------------------------------------


def resolve_field(field: str, mapping: Mapping) -> tuple[str, DataType]:
    """The DataFrame column and data type a rule's ``field`` refers to.

    A destination name of the mapping wins over a built-in column name; an unknown name raises
    ``ConditionError`` naming the field.
    """
    mapped = mapping.field(field)
    if mapped is not None:
        return mapped.column, mapped.type
    if field in BUILTIN_COLUMNS:
        return field, BUILTIN_COLUMNS[field]
    raise ConditionError(
        f"Rule field {field!r} is neither a mapped destination field nor a built-in column "
        f"({', '.join(BUILTIN_COLUMNS)}); map it or fix the rule."
    )


def evaluate(rule: Rule, contacts: pd.DataFrame, mapping: Mapping) -> pd.Series:
    """Whether each contact matches ``rule``: a boolean Series on ``contacts.index``, never NA.

    An empty ``all`` matches every contact; an empty ``any`` matches none. A condition the
    mapping validator would reject raises ``ConditionError`` with the validator's message.
    """
    return pd.Series(_evaluate(rule, contacts, mapping), index=contacts.index, dtype=bool)


def _evaluate(rule: Rule, contacts: pd.DataFrame, mapping: Mapping) -> np.ndarray:
    if isinstance(rule, AllOf):
        result = np.ones(len(contacts), dtype=bool)
        for sub in rule.all:
            result &= _evaluate(sub, contacts, mapping)
        return result
    if isinstance(rule, AnyOf):
        result = np.zeros(len(contacts), dtype=bool)
        for sub in rule.any:
            result |= _evaluate(sub, contacts, mapping)
        return result
    return _evaluate_condition(rule, contacts, mapping)


def _evaluate_condition(cond: Condition, contacts: pd.DataFrame, mapping: Mapping) -> np.ndarray:
    column, data_type = resolve_field(cond.field, mapping)
    try:
        value = _parsed_value(cond, data_type)
    except _Unfit as unfit:
        raise ConditionError(
            f"Cannot evaluate rule {_describe(cond, nested=False)}: {unfit}"
        ) from None
    if column not in contacts.columns:
        raise ConditionError(
            f"Rule on {cond.field!r}: column {column!r} is missing from the contacts data."
        )
    # Positional index: the caller's index may have duplicates, and results are arrays anyway.
    prepared = _COLUMNS[data_type](contacts[column].reset_index(drop=True))
    return OPERATORS[cond.op].test(prepared, value)


def _bools(result: pd.Series) -> np.ndarray:
    return result.fillna(False).to_numpy(dtype=bool)


class _TextColumn(_Column):
    def __init__(self, series: pd.Series) -> None:
        super().__init__(series)
        self.values = series.astype("string").str.strip().str.casefold()
        self.missing = _bools(self.values.isna() | (self.values == ""))

    def equals(self, value: str) -> np.ndarray:
        return _bools(self.values == value)

    def isin(self, values: list[str]) -> np.ndarray:
        return _bools(self.values.isin(values))

    def contains(self, value: str) -> np.ndarray:
        return _bools(self.values.str.contains(value, regex=False))

    def starts_with(self, value: str) -> np.ndarray:
        return _bools(self.values.str.startswith(value))


class _MultiTextColumn(_Column):
    def __init__(self, series: pd.Series) -> None:
        super().__init__(series)
        # One row per individual value, indexed by the contact's position.
        tokens = series.astype("string").str.split(";").explode().astype("string")
        tokens = tokens.str.strip().str.casefold()
        self.tokens = tokens[tokens.notna() & (tokens != "")]
        self.missing = ~self._any(pd.Series(True, index=self.tokens.index, dtype=bool))

    def _any(self, token_result: pd.Series) -> np.ndarray:
        """Per contact, whether any of its values passed."""
        matched = token_result.fillna(False).astype(bool)
        hits = np.zeros(self.size, dtype=bool)
        hits[matched.index[matched.to_numpy()].to_numpy(dtype=int)] = True
        return hits

    def equals(self, value: str) -> np.ndarray:
        return self._any(self.tokens == value)

    def isin(self, values: list[str]) -> np.ndarray:
        return self._any(self.tokens.isin(values))

    def contains(self, value: str) -> np.ndarray:
        return self._any(self.tokens.str.contains(value, regex=False))

    def starts_with(self, value: str) -> np.ndarray:
        return self._any(self.tokens.str.startswith(value))


class _NumberColumn(_Column):
    def __init__(self, series: pd.Series) -> None:
        super().__init__(series)
        parsed = pd.to_numeric(series, errors="coerce")
        self.values = parsed.to_numpy(dtype=float, na_value=np.nan)
        self.missing = np.isnan(self.values)

    # NaN compares False, which is what a missing value needs.
    def equals(self, value: float) -> np.ndarray:
        return self.values == value

    def isin(self, values: list[float]) -> np.ndarray:
        return np.isin(self.values, values)

    def greater_than(self, value: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return self.values > value

    def less_than(self, value: float) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return self.values < value


class _DateColumn(_Column):
    def __init__(self, series: pd.Series) -> None:
        super().__init__(series)
        dates = pd.to_datetime(series, errors="coerce")
        if dates.dt.tz is not None:
            # A Date is a calendar date: keep the wall-clock day it was given with.
            dates = dates.dt.tz_localize(None)
        self.values = dates.dt.normalize()
        self.missing = self.values.isna().to_numpy(dtype=bool)

    def equals(self, value: pd.Timestamp) -> np.ndarray:
        return _bools(self.values == value)

    def greater_than(self, value: pd.Timestamp) -> np.ndarray:
        return _bools(self.values > value)

    def less_than(self, value: pd.Timestamp) -> np.ndarray:
        return _bools(self.values < value)


class _DatetimeColumn(_Column):
    def __init__(self, series: pd.Series) -> None:
        super().__init__(series)
        self.values = pd.to_datetime(series, errors="coerce", utc=True)
        self.missing = self.values.isna().to_numpy(dtype=bool)
        self._days: pd.Series | None = None

    def _side(self, value: _Moment) -> pd.Series:
        """The instants, or their UTC days when the rule gave a whole day."""
        if not value.whole_day:
            return self.values
        if self._days is None:
            self._days = self.values.dt.normalize()
        return self._days

    def equals(self, value: _Moment) -> np.ndarray:
        return _bools(self._side(value) == value.at)

    def greater_than(self, value: _Moment) -> np.ndarray:
        return _bools(self._side(value) > value.at)

    def less_than(self, value: _Moment) -> np.ndarray:
        return _bools(self._side(value) < value.at)


class _BooleanColumn(_Column):
    def __init__(self, series: pd.Series) -> None:
        super().__init__(series)
        self.values = series.astype("boolean")
        self.missing = self.values.isna().to_numpy(dtype=bool)

    def equals(self, value: bool) -> np.ndarray:
        return _bools(self.values == value)


_COLUMNS: dict[DataType, Callable[[pd.Series], _Column]] = {
    DataType.TEXT: _TextColumn,
    DataType.EMAIL: _TextColumn,
    DataType.MULTI_TEXT: _MultiTextColumn,
    DataType.NUMBER: _NumberColumn,
    DataType.SCORE: _NumberColumn,
    DataType.DATE: _DateColumn,
    DataType.DATETIME: _DatetimeColumn,
    DataType.BOOLEAN: _BooleanColumn,
}


# -- describing ----------------------------------------------------------------------------------


def describe_rule(rule: Rule) -> str:
    """A short human text for ``rule``, e.g. ``Job Title contains 'VP' or Industry in
    ['Banking', 'Retail']``."""
    return _describe(rule, nested=False)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _describe(rule: Rule, nested: bool) -> str:
    if isinstance(rule, Condition):
        operator = OPERATORS[rule.op]
        text = f"{rule.field} {operator.text}"
        if operator.shape is ValueShape.NONE:
            return text
        return f"{text} {_format_value(rule.value)}"
    parts, joiner, empty = (
        (rule.all, " and ", "always") if isinstance(rule, AllOf) else (rule.any, " or ", "never")
    )
    if not parts:
        return empty
    if len(parts) == 1:
        return _describe(parts[0], nested)
    text = joiner.join(_describe(part, nested=True) for part in parts)
    # Parentheses only where precedence would otherwise be ambiguous.
    return f"({text})" if nested else text
