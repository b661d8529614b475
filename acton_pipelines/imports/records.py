"""The rows of a valid import file, typed: what applying it needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from acton_pipelines.mapping.models import FieldMapping


@dataclass(frozen=True)
class ContactRow:
    """A form submission or list-import row: the fields it gives (empty cells are not given)."""

    line: int
    email: str
    values: dict[str, Any]
    fields: dict[str, FieldMapping]
    create_in_crm: bool = False
    submitted_at: datetime | None = None


@dataclass(frozen=True)
class OptRow:
    """An opt-out or opt-in of an address, at ``at`` (``None``: when the file is imported)."""

    line: int
    email: str
    at: datetime | None = None


@dataclass(frozen=True)
class EditRow:
    """A new value (``None``: cleared) of one field of the contacts with ``email``."""

    line: int
    email: str
    field: FieldMapping
    value: Any
    changed_at: datetime


@dataclass(frozen=True)
class ActivityRow:
    """An activity event of the contacts with ``email``."""

    line: int
    email: str
    activity: str
    occurred_at: datetime
    asset: str | None = None


ImportRecord = ContactRow | OptRow | EditRow | ActivityRow
