"""Field values from import files, converted and checked by the mapping's data types.

The conversion is :func:`acton_pipelines.contacts.values.conform_contacts`, the one the CRM sync
uses, run on a frame with one row per file line: a value the sync would quarantine is a
problem on its line here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from acton_pipelines.contacts.values import KEY_COLUMNS, conform_contacts
from acton_pipelines.imports.problems import ImportProblem
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping


@dataclass(frozen=True)
class ValueCell:
    """A value of ``field`` on ``line``; ``label`` is the header name it came under."""

    line: int
    label: str
    field: FieldMapping
    text: str


@dataclass(frozen=True)
class ConformedValues:
    """Converted values by ``(line, column)`` (``None`` for an empty cell) and the problems of
    the cells that did not convert (those are not in ``values``)."""

    values: dict[tuple[int, str], Any]
    problems: list[ImportProblem]


def conform_cells(cells: Sequence[ValueCell], mapping: Mapping) -> ConformedValues:
    """Convert every cell to its field's data type, as a sync would (text trimmed, emails lower
    case, Multi-Text values de-duplicated...); a cell that does not fit is a problem with the
    reason the sync would give. At most one cell per line and field column."""
    if not cells:
        return ConformedValues({}, [])
    lines = sorted({cell.line for cell in cells})
    position = {line: i for i, line in enumerate(lines)}
    empty = [None] * len(lines)
    frame = pd.DataFrame(
        {
            **{column: empty for column in KEY_COLUMNS},
            **{field.column: empty for field in mapping.fields},
        },
        dtype=object,
    )
    # The line is the row's identity: rejects name it back.
    frame["contact_id"] = [str(line) for line in lines]
    by_cell = {(cell.line, cell.field.column): cell for cell in cells}
    for cell in cells:
        frame.at[position[cell.line], cell.field.column] = cell.text
    conformed = conform_contacts(frame, mapping)

    problems: list[ImportProblem] = []
    for reject in conformed.rejects.itertuples(index=False):
        cell = by_cell[(int(str(reject.contact_id)), str(reject.column))]
        problems.append(ImportProblem(cell.line, cell.label, cell.text, str(reject.reason)))
    failed = {(p.line, p.column) for p in problems}
    values = {
        (line, column): db_value(conformed.contacts.at[position[line], column], cell.field.type)
        for (line, column), cell in by_cell.items()
        if (line, cell.label) not in failed
    }
    return ConformedValues(values, problems)


def db_value(value: Any, data_type: DataType) -> Any:
    """A conformed pandas value as the plain Python value the warehouse column takes."""
    if value is None or value is pd.NA or (not isinstance(value, str) and pd.isna(value)):
        return None
    if data_type is DataType.DATE:
        return pd.Timestamp(value).date()
    if data_type is DataType.DATETIME:
        return pd.Timestamp(value).to_pydatetime()
    if data_type is DataType.BOOLEAN:
        return bool(value)
    if data_type is DataType.SCORE:
        return int(value)
    if data_type is DataType.NUMBER:
        return float(value)
    return str(value)


def value_text(value: Any) -> str | None:
    """A warehouse value as the text ``acton_field_edits.value`` keeps (ISO dates, ``true``/
    ``false``, numbers as Python writes them); ``None`` stays ``None`` (the field was cleared)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
