"""The mass-delete guard: a sync that would delete a large share of an object stops first.

A full sync removes the mirror rows whose record the CRM no longer returns, and with them the
Act-On contacts, scores and memberships. When the CRM returns far fewer records than it should
(a permission change in the org, the wrong integration user, an empty sandbox), that would wipe
the warehouse. So before deleting anything a sync compares what it would delete with what the
table holds, and above the line it fails without deleting, leaving the cursor where it was,
until someone confirms the deletions are real.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from acton_pipelines.errors import UserError

# More than this share of an object's rows is a mass deletion (ACTON_MAX_DELETE_FRACTION).
DEFAULT_MAX_DELETE_FRACTION = 0.2
# Deleting this many rows or fewer never counts as a mass deletion (a small org losing 3 of
# its 10 accounts is ordinary CRM housekeeping, not a permissions accident).
SMALL_DELETION_ROWS = 10
# A read that returns no record at all while the table holds more than this many rows is
# refused whatever the fraction says.
EMPTY_READ_ROWS = 100

HOW_TO_CONFIRM = (
    "If the CRM really lost these records, confirm with `acton sync full --allow-mass-delete` "
    "(or launch the run with the tag acton/allow_mass_delete=true); if not, check the CRM "
    "user's permissions and the CRM settings (ACTON_CRM_MODE, SALESFORCE_*)."
)


class MassDeleteRefused(UserError, RuntimeError):
    """A sync would delete more than the guard allows; nothing was deleted."""


def max_delete_fraction() -> float:
    """``ACTON_MAX_DELETE_FRACTION`` (0 < f <= 1), default 0.2."""
    raw = os.environ.get("ACTON_MAX_DELETE_FRACTION")
    if not raw:
        return DEFAULT_MAX_DELETE_FRACTION
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise ValueError(
            f"ACTON_MAX_DELETE_FRACTION={raw!r} is not a fraction between 0 and 1; "
            "set it like ACTON_MAX_DELETE_FRACTION=0.2 (refuse deleting more than 20%)"
        )
    return value


@dataclass(frozen=True)
class DeletionCheck:
    """What a sync of one object is about to do to its mirror table."""

    table: str
    object_name: str
    rows_held: int
    rows_read: int
    rows_to_delete: int


def mass_delete_problem(check: DeletionCheck, max_fraction: float) -> str | None:
    """Why ``check`` is a mass deletion the guard refuses, or ``None`` when it may go ahead."""
    held, doomed = check.rows_held, check.rows_to_delete
    if check.rows_read == 0 and held > EMPTY_READ_ROWS and doomed:
        return (
            f"{check.table}: the CRM returned 0 {check.object_name} records while the "
            f"warehouse holds {held:,}; this sync would delete all of them, so it stopped and "
            f"deleted nothing. {HOW_TO_CONFIRM}"
        )
    if doomed > SMALL_DELETION_ROWS and doomed > max_fraction * held:
        share = doomed / held if held else 1.0
        return (
            f"{check.table}: this sync would delete {doomed:,} of {held:,} {check.object_name} "
            f"rows ({share:.0%}), more than ACTON_MAX_DELETE_FRACTION={max_fraction:g} allows; "
            f"it stopped and deleted nothing. {HOW_TO_CONFIRM}"
        )
    return None
