"""Act-On-side field changes: recorded in ``acton_field_edits``, applied when most recent.

Conflicts are three-way and per field (DESIGN §4): each edit keeps the CRM's value of that field
as the warehouse holds it when the edit is recorded (``crm_value_at_edit``). The edit stands
while the CRM still holds that value; once the CRM changes that field, the CRM wins (the pull
shows the CRM's value, the push marks the edit ``superseded``). Changes to other fields of the
record never matter. Between Act-On edits of the same contact and field the most recent wins:
one older than an edit already recorded is kept as ``superseded`` and not applied, and an
applied one marks the older ones still waiting for the push (``pending``, ``failed``) as
``superseded``: only the newest value is pushed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, or_, select, update

from acton_pipelines.crm.mirror_values import FieldRef, mirror_field_values
from acton_pipelines.crm.objects import split_hop
from acton_pipelines.imports.contact_directory import LOOKUP_BATCH, ContactRef
from acton_pipelines.imports.context import ApplyContext
from acton_pipelines.imports.timestamps import as_utc
from acton_pipelines.imports.values import value_text
from acton_pipelines.mapping.models import FieldMapping
from acton_pipelines.warehouse.tables import acton_field_edits

PENDING = "pending"
SUPERSEDED = "superseded"
# Edits still waiting for the push, which a newer edit of the same field replaces.
_WAITING = (PENDING, "failed")


@dataclass(frozen=True)
class FieldEdit:
    """A new value (``None``: cleared) of ``field`` for ``contact``, from line ``line``."""

    contact: ContactRef
    field: FieldMapping
    value: Any
    changed_at: datetime
    line: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.contact.contact_id, self.field.column)

    @property
    def crm_field(self) -> FieldRef | None:
        """The CRM field this edit changes on the contact's record (None: an Act-On-only
        contact, no CRM source for its record type, or a field read through a relationship)."""
        contact = self.contact
        if not contact.in_crm or contact.record_type is None:
            return None
        source = self.field.source(contact.record_type)  # type: ignore[arg-type]
        if source is None or split_hop(source)[0] is not None:
            return None
        assert contact.external_id is not None  # in_crm
        return (contact.record_type, contact.external_id, source)


@dataclass
class EditOutcome:
    """Edits applied and superseded, and the contacts whose row changed."""

    applied: int = 0
    superseded: int = 0
    touched: set[str] = field(default_factory=set)


def apply_field_edits(
    conn: Connection, edits: Iterable[FieldEdit], context: ApplyContext
) -> EditOutcome:
    """Record every edit in ``acton_field_edits`` and write the winning values to
    ``acton_contacts``, inside ``conn``'s transaction."""
    ordered = sorted(edits, key=lambda e: (e.changed_at, e.line, e.contact.contact_id))
    latest = _latest_recorded(conn, {e.contact.contact_id for e in ordered})
    winners: dict[tuple[str, str], FieldEdit] = {}
    for edit in ordered:
        newer_recorded = latest.get(edit.key)
        if newer_recorded is not None and edit.changed_at < newer_recorded:
            continue
        # Sorted by time: a later winner of the same key replaces this one.
        latest[edit.key] = edit.changed_at
        winners[edit.key] = edit

    outcome = EditOutcome()
    if winners:
        older = (
            update(acton_field_edits)
            .where(
                acton_field_edits.c.contact_id == bindparam("b_contact_id"),
                acton_field_edits.c.column == bindparam("b_column"),
                # Not IN (...): an expanding parameter cannot be part of an executemany.
                or_(*[acton_field_edits.c.push_status == status for status in _WAITING]),
            )
            .values(push_status=SUPERSEDED)
        )
        conn.execute(older, [{"b_contact_id": c, "b_column": col} for c, col in winners])
    refs = {edit.crm_field for edit in ordered} - {None}
    crm_values = mirror_field_values(conn, refs)  # type: ignore[arg-type]
    rows = []
    for edit in ordered:
        won = winners.get(edit.key) is edit
        outcome.applied += won
        outcome.superseded += not won
        rows.append(
            {
                "contact_id": edit.contact.contact_id,
                "email": edit.contact.email,
                "field": edit.field.destination,
                "column": edit.field.column,
                "value": value_text(edit.value),
                "changed_at": edit.changed_at,
                "source_file": context.sha256,
                "line": edit.line,
                "push_status": PENDING if won else SUPERSEDED,
                "status_reason": None if won else "a later Act-On edit of the field",
                "crm_value_at_edit": crm_values.get(edit.crm_field) if edit.crm_field else None,
            }
        )
    if rows:
        conn.execute(insert(acton_field_edits), rows)
    outcome.touched = _write_values(conn, winners.values(), context)
    return outcome


def _latest_recorded(conn: Connection, contact_ids: set[str]) -> dict[tuple[str, str], datetime]:
    """The newest Act-On-side change already recorded per (contact, column), superseded ones
    aside. Compared in Python: SQLite keeps timestamps as text without their zone."""
    table = acton_field_edits
    latest: dict[tuple[str, str], datetime] = {}
    wanted = sorted(contact_ids)
    for start in range(0, len(wanted), LOOKUP_BATCH):
        statement = select(table.c.contact_id, table.c.column, table.c.changed_at).where(
            table.c.contact_id.in_(wanted[start : start + LOOKUP_BATCH]),
            table.c.push_status != SUPERSEDED,
        )
        for contact_id, column, changed_at in conn.execute(statement):
            moment = as_utc(changed_at)
            key = (contact_id, column)
            if key not in latest or moment > latest[key]:
                latest[key] = moment
    return latest


def _write_values(
    conn: Connection, winners: Iterable[FieldEdit], context: ApplyContext
) -> set[str]:
    values: dict[str, dict[str, Any]] = {}
    for edit in winners:
        values.setdefault(edit.contact.contact_id, {})[edit.field.column] = edit.value
    table = context.contacts
    for contact_id, columns in values.items():
        conn.execute(
            update(table)
            .where(table.c.contact_id == contact_id)
            .values({**columns, "updated_at": context.now, "sync_run_id": context.run_id})
        )
    return set(values)
