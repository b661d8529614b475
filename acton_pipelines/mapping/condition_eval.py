"""Evaluate score and segment rules (``Condition`` / ``all`` / ``any``) on Act-On contacts.

Rules come from the mapping (``mapping_config/``); a rule's ``field`` is a destination name
(``"Job Title"``) or a built-in column (``record_type``). Evaluation is vectorised over a
DataFrame of contacts (any chunk of rows) and returns a plain boolean Series on the same index.

Semantics, per data type:

* Text / Email: case-insensitive, whitespace-trimmed string comparison.
* Multi-Text: the value is split on ``;``; ``equals`` / ``in`` / ``contains`` / ``starts_with``
  hold when *any* individual value does.
* Number / Score: numeric comparison.
* Date: compared as calendar dates against an ISO date (``"2024-05-01"``).
* Datetime: compared in UTC against an ISO datetime (a naive one is taken as UTC); against a
  date-only value (``"2024-05-01"``) the UTC calendar day is compared, so ``equals`` means
  "on that day" and ``greater_than`` means "on a later day".
* Boolean: ``equals`` / ``in`` against ``true`` / ``false``.

A missing value (NA, NaT, blank text, a Multi-Text with no values) fails every op except
``is_empty``, ``not_equals`` and ``not_in``, which are the negations of ops that fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
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

_TEXT_OPS = frozenset({"equals", "not_equals", "in", "not_in", "contains", "starts_with"})
_ORDERED_OPS = frozenset({"equals", "not_equals", "in", "not_in", "greater_than", "less_than"})
_EMPTY_OPS = frozenset({"is_empty", "is_not_empty"})

# Which ops the evaluator can apply to which data type. The mapping validator
# (``mapping/conditions.py``) decides what a mapping may use, and allows a subset of these; this
# table only guards against a rule that reached evaluation unvalidated.
_SUPPORTED_OPS: dict[DataType, frozenset[str]] = {
    DataType.TEXT: _TEXT_OPS | _EMPTY_OPS,
    DataType.EMAIL: _TEXT_OPS | _EMPTY_OPS,
    DataType.MULTI_TEXT: _TEXT_OPS | _EMPTY_OPS,
    DataType.NUMBER: _ORDERED_OPS | _EMPTY_OPS,
    DataType.SCORE: _ORDERED_OPS | _EMPTY_OPS,
    DataType.DATE: _ORDERED_OPS | _EMPTY_OPS,
    DataType.DATETIME: _ORDERED_OPS | _EMPTY_OPS,
    DataType.BOOLEAN: frozenset({"equals", "not_equals", "in", "not_in"}) | _EMPTY_OPS,
}

# Ops that are the negation of another op: a missing value fails the positive op, so it passes
# the negated one.
_NEGATIONS = {"not_equals": "equals", "not_in": "in"}

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")

_OP_TEXT = {
    "equals": "=",
    "not_equals": "!=",
    "in": "in",
    "not_in": "not in",
    "contains": "contains",
    "starts_with": "starts with",
    "greater_than": ">",
    "less_than": "<",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
}


def resolve_field(field: str, mapping: Mapping) -> tuple[str, DataType]:
    """The DataFrame column and data type a rule's ``field`` refers to.

    A destination name of the mapping wins over a built-in column name; an unknown name raises
    ``ValueError`` naming the field.
    """
    mapped = mapping.field(field)
    if mapped is not None:
        return mapped.column, mapped.type
    if field in BUILTIN_COLUMNS:
        return field, BUILTIN_COLUMNS[field]
    raise ValueError(
        f"Rule field {field!r} is neither a mapped destination field nor a built-in column "
        f"({', '.join(BUILTIN_COLUMNS)}); map it or fix the rule."
    )


def evaluate(rule: Rule, contacts: pd.DataFrame, mapping: Mapping) -> pd.Series:
    """Whether each contact matches ``rule``: a boolean Series on ``contacts.index``, never NA.

    An empty ``all`` matches every contact; an empty ``any`` matches none.
    """
    return pd.Series(_evaluate(rule, contacts, mapping), index=contacts.index, dtype=bool)


def describe_rule(rule: Rule) -> str:
    """A short human text for ``rule``, e.g. ``Job Title contains 'VP' or Industry in
    ['Banking', 'Retail']``."""
    return _describe(rule, nested=False)


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
    column, dtype = resolve_field(cond.field, mapping)
    if cond.op not in _SUPPORTED_OPS[dtype]:
        supported = ", ".join(sorted(_SUPPORTED_OPS[dtype]))
        raise ValueError(
            f"Rule on {cond.field!r}: op {cond.op!r} does not apply to a {dtype} field "
            f"(use one of: {supported})."
        )
    if column not in contacts.columns:
        raise ValueError(
            f"Rule on {cond.field!r}: column {column!r} is missing from the contacts data."
        )
    # Positional index: the caller's index may have duplicates, and results are arrays anyway.
    series = contacts[column].reset_index(drop=True)
    operand = _OPERANDS[dtype](series, cond.field)

    if cond.op == "is_empty":
        return operand.missing
    if cond.op == "is_not_empty":
        return ~operand.missing
    if cond.op in _NEGATIONS:
        return ~_positive(operand, _NEGATIONS[cond.op], cond)
    return _positive(operand, cond.op, cond)


def _positive(operand: _Operand, op: str, cond: Condition) -> np.ndarray:
    """A positive op (missing values fail it)."""
    value = cond.value
    if op == "in":
        values = list(value) if isinstance(value, list | tuple | set | frozenset) else [value]
        if any(v is None for v in values):
            raise ValueError(f"Rule on {cond.field!r}: 'in' values must not be null.")
        result = operand.test_in(values)
    else:
        if value is None or isinstance(value, list | tuple | set | frozenset | dict):
            hint = " (use is_empty for a missing value)" if value is None else " (use 'in')"
            raise ValueError(f"Rule on {cond.field!r}: {op!r} needs a single value{hint}.")
        result = operand.test(op, value)
    return result & ~operand.missing


class _Operand:
    """A column prepared for comparisons of one data type."""

    def __init__(self, series: pd.Series, field: str) -> None:
        self.field = field
        self.missing: np.ndarray = np.zeros(len(series), dtype=bool)

    def test(self, op: str, value: Any) -> np.ndarray:
        raise NotImplementedError

    def test_in(self, values: list[Any]) -> np.ndarray:
        result = np.zeros(len(self.missing), dtype=bool)
        for value in values:
            result |= self.test("equals", value)
        return result

    def _bad_value(self, value: Any, kind: str) -> ValueError:
        return ValueError(f"Rule on {self.field!r}: {value!r} is not a valid {kind}.")


def _norm_text(value: Any) -> str:
    return str(value).strip().casefold()


def _bools(result: pd.Series) -> np.ndarray:
    return result.fillna(False).to_numpy(dtype=bool)


class _TextOperand(_Operand):
    def __init__(self, series: pd.Series, field: str) -> None:
        super().__init__(series, field)
        self.values = series.astype("string").str.strip().str.casefold()
        self.missing = _bools(self.values.isna() | (self.values == ""))

    def test(self, op: str, value: Any) -> np.ndarray:
        text = _norm_text(value)
        if op == "equals":
            return _bools(self.values == text)
        if op == "contains":
            return _bools(self.values.str.contains(text, regex=False))
        return _bools(self.values.str.startswith(text))

    def test_in(self, values: list[Any]) -> np.ndarray:
        return _bools(self.values.isin([_norm_text(v) for v in values]))


class _MultiTextOperand(_Operand):
    def __init__(self, series: pd.Series, field: str) -> None:
        super().__init__(series, field)
        self.size = len(series)
        # One row per individual value, indexed by the contact's position.
        tokens = series.astype("string").str.split(";").explode().astype("string")
        tokens = tokens.str.strip().str.casefold()
        self.tokens = tokens[tokens.notna() & (tokens != "")]
        self.missing = ~self._any(pd.Series(True, index=self.tokens.index, dtype=bool))

    def _any(self, token_result: pd.Series) -> np.ndarray:
        matched = token_result.fillna(False).astype(bool)
        hits = np.zeros(self.size, dtype=bool)
        hits[matched.index[matched.to_numpy()].to_numpy(dtype=int)] = True
        return hits

    def test(self, op: str, value: Any) -> np.ndarray:
        text = _norm_text(value)
        if op == "equals":
            return self._any(self.tokens == text)
        if op == "contains":
            return self._any(self.tokens.str.contains(text, regex=False))
        return self._any(self.tokens.str.startswith(text))

    def test_in(self, values: list[Any]) -> np.ndarray:
        return self._any(self.tokens.isin([_norm_text(v) for v in values]))


class _NumberOperand(_Operand):
    def __init__(self, series: pd.Series, field: str) -> None:
        super().__init__(series, field)
        numbers = pd.to_numeric(series, errors="coerce")
        self.values = numbers.to_numpy(dtype=float, na_value=np.nan)
        self.missing = np.isnan(self.values)

    def _number(self, value: Any) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise self._bad_value(value, "number") from None

    def test(self, op: str, value: Any) -> np.ndarray:
        number = self._number(value)
        # NaN compares False, which is what a missing value needs.
        with np.errstate(invalid="ignore"):
            if op == "equals":
                return self.values == number
            if op == "greater_than":
                return self.values > number
            return self.values < number

    def test_in(self, values: list[Any]) -> np.ndarray:
        return np.isin(self.values, [self._number(v) for v in values])


def _compare(left: pd.Series, op: str, right: pd.Timestamp) -> np.ndarray:
    if op == "equals":
        return _bools(left == right)
    if op == "greater_than":
        return _bools(left > right)
    return _bools(left < right)


class _DateOperand(_Operand):
    def __init__(self, series: pd.Series, field: str) -> None:
        super().__init__(series, field)
        dates = pd.to_datetime(series, errors="coerce")
        if dates.dt.tz is not None:
            # A Date is a calendar date: keep the wall-clock day it was given with.
            dates = dates.dt.tz_localize(None)
        self.values = dates.dt.normalize()
        self.missing = self.values.isna().to_numpy(dtype=bool)

    def test(self, op: str, value: Any) -> np.ndarray:
        try:
            day = pd.Timestamp(value)
        except (TypeError, ValueError):
            raise self._bad_value(value, "date") from None
        if pd.isna(day):
            raise self._bad_value(value, "date")
        if day.tzinfo is not None:
            day = day.tz_localize(None)
        return _compare(self.values, op, day.normalize())


class _DatetimeOperand(_Operand):
    def __init__(self, series: pd.Series, field: str) -> None:
        super().__init__(series, field)
        self.values = pd.to_datetime(series, errors="coerce", utc=True)
        self.missing = self.values.isna().to_numpy(dtype=bool)
        self._days: pd.Series | None = None

    @property
    def days(self) -> pd.Series:
        if self._days is None:
            self._days = self.values.dt.normalize()
        return self._days

    def test(self, op: str, value: Any) -> np.ndarray:
        date_only = (isinstance(value, date) and not isinstance(value, datetime)) or (
            isinstance(value, str) and _DATE_ONLY.fullmatch(value.strip()) is not None
        )
        try:
            moment = pd.Timestamp(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise self._bad_value(value, "date or datetime") from None
        if pd.isna(moment):
            raise self._bad_value(value, "date or datetime")
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
        if date_only:
            return _compare(self.days, op, moment)
        return _compare(self.values, op, moment)


_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


class _BooleanOperand(_Operand):
    def __init__(self, series: pd.Series, field: str) -> None:
        super().__init__(series, field)
        self.values = series.astype("boolean")
        self.missing = self.values.isna().to_numpy(dtype=bool)

    def _bool(self, value: Any) -> bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        text = _norm_text(value)
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise self._bad_value(value, "boolean (true/false)")

    def test(self, op: str, value: Any) -> np.ndarray:
        return _bools(self.values == self._bool(value))


_OPERANDS: dict[DataType, Callable[[pd.Series, str], _Operand]] = {
    DataType.TEXT: _TextOperand,
    DataType.EMAIL: _TextOperand,
    DataType.MULTI_TEXT: _MultiTextOperand,
    DataType.NUMBER: _NumberOperand,
    DataType.SCORE: _NumberOperand,
    DataType.DATE: _DateOperand,
    DataType.DATETIME: _DatetimeOperand,
    DataType.BOOLEAN: _BooleanOperand,
}


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
        text = f"{rule.field} {_OP_TEXT[rule.op]}"
        if rule.op in _EMPTY_OPS:
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
