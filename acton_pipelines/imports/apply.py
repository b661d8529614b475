"""Applying a valid import file's records to the warehouse, inside one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from acton_pipelines.imports.contact_directory import LOOKUP_BATCH, ContactDirectory
from acton_pipelines.imports.context import ApplyContext
from acton_pipelines.imports.field_edits import FieldEdit, apply_field_edits
from acton_pipelines.imports.kinds import ImportKind
from acton_pipelines.imports.records import (
    ActivityRow,
    ContactRow,
    EditRow,
    ImportRecord,
    OptRow,
)
from acton_pipelines.imports.timestamps import as_utc
from acton_pipelines.warehouse.staged_load import upsert_records
from acton_pipelines.warehouse.tables import acton_activity, crm_create_requests, opt_outs

ACTON_SOURCE = "acton"
ACTON_ID_PREFIX = "acton:"


@dataclass
class AppliedFile:
    """What applying one file did. ``touched`` holds the ``acton_contacts`` rows it wrote,
    whose ``sync_run_id`` is now the run's (so scores and segments follow them)."""

    touched: set[str] = field(default_factory=set)
    contacts_created: int = 0
    edits_applied: int = 0
    edits_superseded: int = 0
    create_requests: int = 0
    opt_out_changes: int = 0
    activity_rows: int = 0

    def summary(self) -> str:
        """One line for ``acton_import_files.message``."""
        parts = {
            "contacts created": self.contacts_created,
            "field edits applied": self.edits_applied,
            "field edits superseded": self.edits_superseded,
            "CRM creations requested": self.create_requests,
            "opt-out changes": self.opt_out_changes,
            "activity rows": self.activity_rows,
            "contacts updated": len(self.touched) - self.contacts_created,
        }
        return ", ".join(f"{n} {what}" for what, n in parts.items() if n) or "no changes"


def acton_contact_id(email: str) -> str:
    """The ``contact_id`` of an Act-On-only contact: its (lower-case) address."""
    return ACTON_ID_PREFIX + email


def apply_records(
    conn: Connection,
    kind: ImportKind,
    records: list[ImportRecord],
    directory: ContactDirectory,
    context: ApplyContext,
) -> AppliedFile:
    """Apply a valid file's ``records`` (of ``kind``) inside ``conn``'s transaction;
    ``directory`` holds the existing contacts their addresses name."""
    return _APPLIERS[kind](conn, records, directory, context)


def _contacts(
    conn: Connection, records: list[Any], directory: ContactDirectory, context: ApplyContext
) -> AppliedFile:
    rows: list[ContactRow] = records
    outcome = AppliedFile()
    edits: list[FieldEdit] = []
    new: dict[str, list[ContactRow]] = {}
    requests: dict[str, str] = {}
    for row in rows:
        matched = directory[row.email]
        if not matched:
            new.setdefault(row.email, []).append(row)
            if row.create_in_crm:
                requests[acton_contact_id(row.email)] = row.email
            continue
        changed_at = row.submitted_at or context.now
        for contact in matched:
            edits.extend(
                FieldEdit(contact, row.fields[column], value, changed_at, row.line)
                for column, value in row.values.items()
            )
            # Validation let create_in_crm through only for contacts with no CRM record.
            if row.create_in_crm:
                requests[contact.contact_id] = contact.email
    edited = apply_field_edits(conn, edits, context)
    outcome.edits_applied, outcome.edits_superseded = edited.applied, edited.superseded
    outcome.touched |= edited.touched

    created = _create_contacts(conn, new, context)
    outcome.contacts_created = len(created)
    outcome.touched |= created

    request_rows = [
        {
            "contact_id": contact_id,
            "email": email,
            "requested_at": context.now,
            "source_file": context.sha256,
            "status": "pending",
        }
        for contact_id, email in requests.items()
    ]
    # A request already made (or fulfilled) stays as it is.
    upsert_records(conn, crm_create_requests, request_rows, ["contact_id"], update=False)
    outcome.create_requests = len(request_rows)
    return outcome


def _create_contacts(
    conn: Connection, new: dict[str, list[ContactRow]], context: ApplyContext
) -> set[str]:
    """Insert an Act-On-only contact per new address, its rows merged in time order (a later
    submission's values win)."""
    if not new:
        return set()
    opted_out = _opt_out_states(conn, new)
    email_column = context.mapping.email_field.column
    records = []
    for email, rows in new.items():
        record: dict[str, Any] = {column.name: None for column in context.contacts.columns}
        for row in sorted(rows, key=lambda r: (r.submitted_at or context.now, r.line)):
            record.update(row.values)
        record.update(
            {
                "contact_id": acton_contact_id(email),
                email_column: email,
                "source": ACTON_SOURCE,
                # Whatever the address's history on the opt-out list, the contact follows it.
                "opted_out": opted_out.get(email, False),
                "updated_at": context.now,
                "synced_at": context.now,
                "sync_run_id": context.run_id,
            }
        )
        records.append(record)
    upsert_records(conn, context.contacts, records, ["contact_id"])
    return {r["contact_id"] for r in records}


def _edits(
    conn: Connection, records: list[Any], directory: ContactDirectory, context: ApplyContext
) -> AppliedFile:
    rows: list[EditRow] = records
    edits = [
        FieldEdit(contact, row.field, row.value, row.changed_at, row.line)
        for row in rows
        for contact in directory[row.email]
    ]
    edited = apply_field_edits(conn, edits, context)
    return AppliedFile(
        touched=edited.touched, edits_applied=edited.applied, edits_superseded=edited.superseded
    )


def _opt_changes(opted_out: bool) -> Callable[..., AppliedFile]:
    def apply(
        conn: Connection, records: list[Any], directory: ContactDirectory, context: ApplyContext
    ) -> AppliedFile:
        rows: list[OptRow] = records
        changed = _set_opt_outs(conn, rows, opted_out, context)
        table = context.contacts
        touched = {c.contact_id for email in changed for c in directory[email]}
        if touched:
            statement = (
                update(table)
                .where(table.c.contact_id == bindparam("b_contact_id"))
                .values(opted_out=opted_out, updated_at=context.now, sync_run_id=context.run_id)
            )
            conn.execute(statement, [{"b_contact_id": c} for c in sorted(touched)])
        return AppliedFile(touched=touched, opt_out_changes=len(changed))

    return apply


def _set_opt_outs(
    conn: Connection, rows: list[OptRow], opted_out: bool, context: ApplyContext
) -> set[str]:
    """Put each address's opt-out state in ``opt_outs``; returns the addresses changed.

    The most recent change wins: a row dated before the address's last change is ignored.
    An existing address keeps ``source`` and ``added_at`` (where and when it was first seen).
    """
    latest: dict[str, datetime] = {}
    for row in rows:
        at = row.at or context.now
        if row.email not in latest or at >= latest[row.email]:
            latest[row.email] = at
    known = _opt_out_rows(conn, latest)
    inserts, updates = [], []
    for email, at in sorted(latest.items()):
        if email not in known:
            inserts.append(
                {
                    "email": email,
                    "opted_out": opted_out,
                    "source": context.file_name,
                    "added_at": at,
                    "changed_at": at,
                    "sync_run_id": context.run_id,
                }
            )
            continue
        last = known[email]
        if last is None or at >= last:
            updates.append({"b_email": email, "changed_at": at})
    if inserts:
        conn.execute(insert(opt_outs), inserts)
    if updates:
        statement = (
            update(opt_outs)
            .where(opt_outs.c.email == bindparam("b_email"))
            .values(opted_out=opted_out, sync_run_id=context.run_id)
        )
        conn.execute(statement, updates)
    return {r["email"] for r in inserts} | {u["b_email"] for u in updates}


def _opt_out_rows(conn: Connection, emails: Iterable[str]) -> dict[str, datetime | None]:
    """When each listed address last changed (``None``: not recorded, e.g. a CRM pull)."""
    wanted = sorted(emails)
    found: dict[str, datetime | None] = {}
    for start in range(0, len(wanted), LOOKUP_BATCH):
        statement = select(opt_outs.c.email, opt_outs.c.changed_at).where(
            opt_outs.c.email.in_(wanted[start : start + LOOKUP_BATCH])
        )
        for email, changed_at in conn.execute(statement):
            found[email] = as_utc(changed_at) if changed_at is not None else None
    return found


def _opt_out_states(conn: Connection, emails: Iterable[str]) -> dict[str, bool]:
    """Whether each listed address is opted out (a row from before ``opted_out`` existed,
    with NULL there, counts as opted out: it was only ever added by opting out)."""
    wanted = sorted(emails)
    states: dict[str, bool] = {}
    for start in range(0, len(wanted), LOOKUP_BATCH):
        statement = select(opt_outs.c.email, opt_outs.c.opted_out).where(
            opt_outs.c.email.in_(wanted[start : start + LOOKUP_BATCH])
        )
        states.update({email: state is not False for email, state in conn.execute(statement)})
    return states


def _activity(
    conn: Connection, records: list[Any], directory: ContactDirectory, context: ApplyContext
) -> AppliedFile:
    rows: list[ActivityRow] = records
    activity = [
        {
            "contact_id": contact.contact_id,
            "email": row.email,
            "activity": row.activity,
            "occurred_at": row.occurred_at,
            "asset": row.asset,
            "source_file": context.sha256,
            "line": row.line,
        }
        for row in rows
        for contact in directory[row.email]
    ]
    if activity:
        conn.execute(insert(acton_activity), activity)
    # Behaviour rules score activity: the contacts are rescored after the import.
    touched = {r["contact_id"] for r in activity}
    _mark_touched(conn, context, touched)
    return AppliedFile(touched=touched, activity_rows=len(activity))


def _mark_touched(conn: Connection, context: ApplyContext, contact_ids: set[str]) -> None:
    """Stamp the run on rows it changed, or whose scores it changed: the score and segment
    builds of an incremental run take exactly those contacts."""
    if not contact_ids:
        return
    table: Table = context.contacts
    statement = (
        update(table)
        .where(table.c.contact_id == bindparam("b_contact_id"))
        .values(sync_run_id=context.run_id)
    )
    conn.execute(statement, [{"b_contact_id": c} for c in sorted(contact_ids)])


_APPLIERS: dict[
    ImportKind,
    Callable[[Connection, list[Any], ContactDirectory, ApplyContext], AppliedFile],
] = {
    ImportKind.CONTACTS: _contacts,
    ImportKind.EDITS: _edits,
    ImportKind.OPT_OUTS: _opt_changes(opted_out=True),
    ImportKind.OPT_INS: _opt_changes(opted_out=False),
    ImportKind.ACTIVITY: _activity,
}
