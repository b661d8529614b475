"""Conforming raw CRM values to the mapping's data types, with value-level quarantine.

A raw chunk holds one row per Act-On contact candidate: the builtin columns (``contact_id``,
``external_id``, ``record_type``, ...) and one column per mapped field, named by
:attr:`FieldMapping.column`, with values as the warehouse's CRM mirror hands them over (strings,
numbers, bools, datetimes, ``None``). :func:`conform_contacts` converts every mapped column to the
pandas dtype of its data type, then validates the result with the pandera schema generated from
the mapping (:func:`contact_schema`).

A value that cannot be converted or fails a check becomes NA and is reported as one reject row;
the contact itself is always kept (product decision: a bad value never drops a contact, and never
disappears silently). A failure that does not belong to one value of a mapped field (a missing
column, a wrong dtype, a duplicate ``contact_id``) means the chunk itself is broken: it raises
:class:`SchemaBreak` instead of being quarantined.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype
from pandera.errors import SchemaErrors

from acton_pipelines.mapping.models import MAX_SCORE, DataType, FieldMapping, Mapping

__all__ = [
    "REJECT_COLUMNS",
    "ConformedContacts",
    "SchemaBreak",
    "conform_contacts",
    "contact_schema",
    "pandas_dtype",
    "restore_types",
]

# The builtin columns every chunk must carry: rejects are keyed on them.
KEY_COLUMNS: tuple[str, ...] = ("contact_id", "external_id", "record_type")
REJECT_COLUMNS: tuple[str, ...] = (*KEY_COLUMNS, "field", "column", "value", "reason")
RECORD_TYPES: tuple[str, ...] = ("Lead", "Contact")

# Act-On stores each Multi-Text value in a 255-character slot.
MAX_MULTI_TEXT_VALUE_LENGTH = 255

# One @, a local part without spaces, a dotted domain whose labels are not empty, and no ".."
# anywhere. Deliberately "sane", not RFC 5322: quoted local parts are not worth the false passes.
EMAIL_PATTERN = r"^(?!.*\.\.)[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+$"

# Dates and datetimes must start like ISO 8601. Without this guard pandas would read 2026 as a
# year and other numbers as epochs, turning garbage into plausible dates.
_ISO_DATE_PREFIX = r"\d{4}-\d{2}-\d{2}"

# "1.0"/"0.0" are how 1/0 render once a nullable integer column has passed through float.
_BOOLEAN_WORDS: dict[str, bool] = {
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "1": True,
    "0": False,
    "1.0": True,
    "0.0": False,
}

# Microsecond resolution, not pandas' historical nanoseconds: Salesforce dates reach 4000-12-31
# and "never" is often written 9999-12-31, both beyond the datetime64[ns] range (year 2262).
_PANDAS_DTYPES: dict[DataType, str] = {
    DataType.TEXT: "string",
    DataType.EMAIL: "string",
    DataType.MULTI_TEXT: "string",
    DataType.NUMBER: "float64",
    DataType.SCORE: "Int64",
    DataType.DATE: "datetime64[us]",
    DataType.DATETIME: "datetime64[us, UTC]",
    DataType.BOOLEAN: "boolean",
}

# Reasons for values lost in conversion (before pandera sees them).
_CONVERSION_REASONS: dict[DataType, str] = {
    DataType.NUMBER: "not a number",
    DataType.SCORE: "not a number",
    DataType.DATE: "not a date (expected YYYY-MM-DD)",
    DataType.DATETIME: "not a datetime (expected ISO 8601, e.g. 2026-11-26T10:00:00Z)",
    DataType.BOOLEAN: "not a boolean (expected true/false, yes/no or 1/0)",
}


class SchemaBreak(ValueError):
    """The chunk does not have the shape the mapping promises; no value-level quarantine applies.

    ``columns`` names the columns at fault.
    """

    def __init__(self, message: str, columns: list[str]) -> None:
        super().__init__(message)
        self.columns = columns


@dataclass(frozen=True)
class ConformedContacts:
    """Result of :func:`conform_contacts`.

    ``contacts`` has the raw chunk's rows, index and columns with every mapped column typed;
    ``rejects`` has one row per quarantined value, with the columns :data:`REJECT_COLUMNS`.
    """

    contacts: pd.DataFrame
    rejects: pd.DataFrame


def pandas_dtype(data_type: DataType) -> str:
    """The pandas dtype a conformed column of ``data_type`` has (e.g. ``"Int64"`` for Score)."""
    return _PANDAS_DTYPES[data_type]


def contact_schema(mapping: Mapping) -> pa.DataFrameSchema:
    """The pandera schema of conformed Act-On contacts for ``mapping``.

    One nullable column per mapped field, typed by :func:`pandas_dtype`, with the value checks
    of its data type (email pattern, score range and integrality, finite numbers, Multi-Text
    value length); plus ``contact_id`` unique and not null, ``external_id`` present, and
    ``record_type`` 'Lead', 'Contact' or null. Other columns are allowed (``strict=False``).
    """
    return _build_schema(mapping, score_dtype=pandas_dtype(DataType.SCORE))


def conform_contacts(raw: pd.DataFrame, mapping: Mapping) -> ConformedContacts:
    """Convert every mapped column of ``raw`` to its data type and quarantine bad values.

    Values that cannot be converted, or fail a check of :func:`contact_schema`, become NA in
    ``contacts`` and each get one row in ``rejects``; no contact is dropped. Builtin columns pass
    through untouched. Raises :class:`SchemaBreak` when a column is missing or the builtin
    columns break their rules (duplicate or null ``contact_id``, unknown ``record_type``).
    """
    _require_columns(raw, mapping)
    # Work on positions: the caller's index may repeat, and positions make reject rows cheap.
    frame = raw.reset_index(drop=True)
    lost: list[pd.DataFrame] = []
    for field in mapping.fields:
        converted, bad = _CONVERTERS[field.type](frame[field.column])
        frame[field.column] = converted
        if bad.any():
            lost.append(_failures(np.flatnonzero(bad), field, _CONVERSION_REASONS[field.type]))

    # Scores are still float64 here so the integrality check can see 2.5; they become Int64 once
    # the bad ones are NA.
    failed = _value_failures(_build_schema(mapping, score_dtype="float64"), frame, mapping)
    failures = pd.concat([*lost, failed], ignore_index=True)
    # One reject per value: conversion failures come first, then checks in schema order.
    failures = failures.drop_duplicates(["position", "column"])

    for column, rows in failures.groupby("column", sort=False)["position"]:
        frame.loc[rows.to_numpy(), column] = pd.NA
    for field in mapping.score_fields:
        frame[field.column] = frame[field.column].astype(pandas_dtype(DataType.SCORE))

    frame.index = raw.index
    return ConformedContacts(contacts=frame, rejects=_reject_rows(raw, failures, mapping))


def restore_types(stored: pd.DataFrame, fields: Iterable[FieldMapping]) -> pd.DataFrame:
    """Rows read back from ``acton_contacts``, with the columns of ``fields`` in their dtypes.

    The values were conformed and checked on their way in (:func:`conform_contacts`), so only
    their pandas types are restored here: nothing is checked and nothing rejected, which is
    what makes reading the table back cheap.
    """
    frame = stored.copy(deep=False)
    for field in fields:
        converted, _ = _CONVERTERS[field.type](frame[field.column])
        frame[field.column] = converted.astype(pandas_dtype(field.type))
    return frame


def _build_schema(mapping: Mapping, *, score_dtype: str) -> pa.DataFrameSchema:
    columns: dict[str, pa.Column] = {
        "contact_id": pa.Column(nullable=False, unique=True),
        "external_id": pa.Column(nullable=True),
        "record_type": pa.Column(
            nullable=True,
            checks=pa.Check.isin(RECORD_TYPES, error=f"record_type not in {RECORD_TYPES}"),
        ),
    }
    for field in mapping.fields:
        dtype = score_dtype if field.type is DataType.SCORE else pandas_dtype(field.type)
        columns[field.column] = pa.Column(
            dtype, checks=_CHECKS.get(field.type, []), nullable=True, title=field.destination
        )
    return pa.DataFrameSchema(columns, strict=False, name="acton_contacts")


def _is_whole(values: pd.Series) -> pd.Series:
    return (values % 1 == 0) | values.isna()


def _is_finite(values: pd.Series) -> pd.Series:
    return pd.Series(np.isfinite(values.to_numpy(dtype="float64", na_value=np.nan)), values.index)


def _values_fit(values: pd.Series) -> pd.Series:
    # A run of more than the limit without a ';' is a value that is too long: no splitting needed.
    too_long = values.str.contains(f"[^;]{{{MAX_MULTI_TEXT_VALUE_LENGTH + 1}}}", regex=True)
    return ~too_long.fillna(False).astype(bool)


_CHECKS: dict[DataType, list[pa.Check]] = {
    DataType.EMAIL: [pa.Check.str_matches(EMAIL_PATTERN, error="not a valid email address")],
    DataType.NUMBER: [pa.Check(_is_finite, error="not a finite number")],
    DataType.SCORE: [
        pa.Check.in_range(0, MAX_SCORE, error=f"score out of range 0..{MAX_SCORE}"),
        pa.Check(_is_whole, error="score is not a whole number"),
    ],
    DataType.MULTI_TEXT: [
        pa.Check(
            _values_fit,
            error=f"a value is longer than {MAX_MULTI_TEXT_VALUE_LENGTH} characters",
        )
    ],
}


# Converters: raw column -> (converted column, mask of non-empty values lost in conversion).
Converted = tuple[pd.Series, np.ndarray]


def _text(values: pd.Series) -> pd.Series:
    text = values.astype(pandas_dtype(DataType.TEXT)).str.strip()
    return text.mask(text.str.len() == 0)


def _nothing_lost(values: pd.Series) -> np.ndarray:
    return np.zeros(len(values), dtype=bool)


def _lost(before: pd.Series, after: pd.Series) -> np.ndarray:
    return (before.notna() & after.isna()).to_numpy(dtype=bool)


def _to_text(values: pd.Series) -> Converted:
    return _text(values), _nothing_lost(values)


def _to_email(values: pd.Series) -> Converted:
    # The pattern is checked by the schema, so the reject says why the address is wrong.
    return _text(values).str.lower(), _nothing_lost(values)


def _to_multi_text(values: pd.Series) -> Converted:
    text = _text(values)
    parts = text.str.split(";").explode().str.strip()
    parts = parts[parts.str.len() > 0]
    # Duplicates are per contact: (row, value) pairs, keeping the first occurrence.
    parts = parts[~pd.MultiIndex.from_arrays([parts.index, parts.to_numpy()]).duplicated()]
    # A grouped sum of "value;" strings runs in pandas' own loop, unlike agg(";".join).
    joined = (parts.astype(pandas_dtype(DataType.MULTI_TEXT)) + ";").groupby(level=0).sum()
    multi_text = joined.str[:-1].reindex(text.index).astype(pandas_dtype(DataType.MULTI_TEXT))
    return multi_text, _nothing_lost(values)


def _to_float(values: pd.Series) -> Converted:
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        return values.astype("float64"), _nothing_lost(values)
    # Through text so that a bool (True) is "not a number" rather than silently 1.0.
    text = _text(values)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    return numbers, _lost(text, numbers)


def _to_utc(values: pd.Series) -> Converted:
    if is_datetime64_any_dtype(values):
        aware = (
            values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        )
        return aware.astype(pandas_dtype(DataType.DATETIME)), _nothing_lost(values)
    # datetime, date and Timestamp objects render as ISO text, so one parser serves every shape;
    # naive values are taken as UTC, like the CRM's own timestamps.
    text = _text(values)
    iso = text.where(text.str.match(_ISO_DATE_PREFIX).fillna(False).astype(bool))
    parsed = pd.to_datetime(iso, errors="coerce", utc=True, format="ISO8601")
    parsed = parsed.astype(pandas_dtype(DataType.DATETIME))
    return parsed, _lost(text, parsed)


def _to_date(values: pd.Series) -> Converted:
    moments, lost = _to_utc(values)
    days = moments.dt.tz_localize(None).dt.normalize().astype(pandas_dtype(DataType.DATE))
    return days, lost


def _to_boolean(values: pd.Series) -> Converted:
    if is_bool_dtype(values):
        return values.astype(pandas_dtype(DataType.BOOLEAN)), _nothing_lost(values)
    text = _text(values).str.lower()
    flags = text.map(_BOOLEAN_WORDS).astype(pandas_dtype(DataType.BOOLEAN))
    return flags, _lost(text, flags)


_CONVERTERS: dict[DataType, Callable[[pd.Series], Converted]] = {
    DataType.TEXT: _to_text,
    DataType.EMAIL: _to_email,
    DataType.MULTI_TEXT: _to_multi_text,
    DataType.NUMBER: _to_float,
    DataType.SCORE: _to_float,
    DataType.DATE: _to_date,
    DataType.DATETIME: _to_utc,
    DataType.BOOLEAN: _to_boolean,
}


def _require_columns(raw: pd.DataFrame, mapping: Mapping) -> None:
    expected = [*KEY_COLUMNS, *(f.column for f in mapping.fields)]
    missing = [c for c in expected if c not in raw.columns]
    if missing:
        raise SchemaBreak(
            f"contact chunk is missing column(s) {', '.join(repr(c) for c in missing)}. "
            "The extract must produce contact_id, external_id, record_type and one column per "
            "mapped field, named like the destination in snake_case (Job Title -> job_title). "
            "Fix: re-run the extract with the current mapping (a newly mapped field needs a "
            "full sync), or remove the field from the mapping.",
            missing,
        )
    duplicated = sorted({str(c) for c in raw.columns[raw.columns.duplicated()]})
    if duplicated:
        raise SchemaBreak(
            f"contact chunk has duplicate column(s) {', '.join(repr(c) for c in duplicated)}. "
            "Fix: give each mapped field a destination whose column name is unique.",
            duplicated,
        )


def _failures(positions: np.ndarray, field: FieldMapping, reason: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "position": positions.astype("int64"),
            "column": field.column,
            "field": field.destination,
            "reason": reason,
        },
        columns=_FAILURE_COLUMNS,
    )


_FAILURE_COLUMNS = ["position", "column", "field", "reason"]


def _value_failures(
    schema: pa.DataFrameSchema, frame: pd.DataFrame, mapping: Mapping
) -> pd.DataFrame:
    """Validate ``frame``; return its value failures, raise :class:`SchemaBreak` on the rest."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return pd.DataFrame({"position": np.array([], dtype="int64")}, columns=_FAILURE_COLUMNS)

    fields = {f.column: f for f in mapping.fields}
    is_value = cases["index"].notna() & cases["column"].isin(list(fields))
    if not is_value.all():
        _raise_break(cases[~is_value])
    # Checks in schema order, so a value failing two checks is rejected for the first one.
    cases = cases.assign(position=cases["index"].astype("int64")).sort_values(
        ["position", "column", "check_number"], kind="stable"
    )
    return pd.DataFrame(
        {
            "position": cases["position"].to_numpy(),
            "column": cases["column"].to_numpy(dtype=object),
            "field": cases["column"].map(lambda c: fields[c].destination).to_numpy(dtype=object),
            "reason": cases["check"].to_numpy(dtype=object),
        }
    )


def _raise_break(cases: pd.DataFrame) -> None:
    problems: list[str] = []
    for (column, check), group in cases.groupby(
        [cases["column"].fillna("(chunk)"), "check"], sort=False
    ):
        examples = ", ".join(str(v) for v in group["failure_case"].dropna().unique()[:3])
        problems.append(f"{column}: {check}" + (f" (e.g. {examples})" if examples else ""))
    missing = cases.loc[cases["check"] == "column_in_dataframe", "failure_case"]
    columns = sorted({str(c) for c in cases["column"].dropna()} | {str(c) for c in missing})
    raise SchemaBreak(
        f"contact chunk breaks the Act-On contact schema: {'; '.join(problems)}. These columns "
        "are produced by the extract, not typed by CRM users, so this is a bug upstream: fix the "
        "extract (contact_id unique and set, record_type 'Lead', 'Contact' or empty, every "
        "mapped field present with its data type's dtype), then re-run the sync.",
        columns,
    )


def _reject_rows(raw: pd.DataFrame, failures: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    order = {f.column: i for i, f in enumerate(mapping.fields)}
    failures = failures.assign(field_order=failures["column"].map(order)).sort_values(
        ["position", "field_order"], kind="stable"
    )
    positions = failures["position"].to_numpy(dtype="int64")
    keys = raw[list(KEY_COLUMNS)].iloc[positions].reset_index(drop=True)
    originals = np.empty(len(failures), dtype=object)
    for column, at in failures.groupby("column", sort=False).indices.items():
        # Only the failures are rendered one by one; str() shows what the CRM actually sent.
        originals[at] = [str(v) for v in raw[column].to_numpy(dtype=object)[positions[at]]]
    text = pandas_dtype(DataType.TEXT)
    return keys.assign(
        field=pd.array(failures["field"].to_numpy(dtype=object), dtype=text),
        column=pd.array(failures["column"].to_numpy(dtype=object), dtype=text),
        value=pd.array(originals, dtype=text),
        reason=pd.array(failures["reason"].to_numpy(dtype=object), dtype=text),
    )
