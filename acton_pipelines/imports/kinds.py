"""The kinds of import file, told apart by the start of the file name."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import get_args

from acton_pipelines.mapping.models import ActivityType


class ImportKind(StrEnum):
    """What a file holds; its value is also the file-name prefix (``opt_outs-2026-11.csv``)."""

    CONTACTS = "contacts"
    OPT_OUTS = "opt_outs"
    OPT_INS = "opt_ins"
    EDITS = "edits"
    ACTIVITY = "activity"


@dataclass(frozen=True)
class KindColumns:
    """The header a kind's files have: required and optional column names (lower case).

    ``contacts`` files also take any mapped field as a column (see :mod:`.validation`).
    """

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def known(self) -> tuple[str, ...]:
        return (*self.required, *self.optional)


KIND_COLUMNS: dict[ImportKind, KindColumns] = {
    ImportKind.CONTACTS: KindColumns(("email",), ("create_in_crm", "submitted_at")),
    ImportKind.OPT_OUTS: KindColumns(("email",), ("opted_out_at",)),
    ImportKind.OPT_INS: KindColumns(("email",), ("opted_in_at",)),
    ImportKind.EDITS: KindColumns(("email", "field", "value", "changed_at")),
    ImportKind.ACTIVITY: KindColumns(("email", "activity", "occurred_at"), ("asset",)),
}

# The activity types score sheets' behaviour rules count.
ACTIVITY_TYPES: tuple[str, ...] = get_args(ActivityType)

CSV_SUFFIX = ".csv"


def kind_of(file_name: str) -> ImportKind | None:
    """The kind a file name announces (``<kind>*.csv``, case-insensitive), or ``None``."""
    name = file_name.lower()
    if not name.endswith(CSV_SUFFIX):
        return None
    # Longest prefix first, should one kind's name ever start with another's.
    for kind in sorted(ImportKind, key=lambda k: len(k.value), reverse=True):
        if name.startswith(kind.value):
            return kind
    return None


def expected_names() -> str:
    """The accepted file-name patterns, for messages."""
    return ", ".join(f"{kind.value}*.csv" for kind in ImportKind)
