"""What a push records in the warehouse, inside the caller's transaction: ``crm_push_log`` rows
as they are sent and as they are answered, and each answer's effects (the values the CRM
accepted, settled edits, created Leads).

A batch's rows are committed as ``sent`` before its call, and its answer with its effects in
one transaction after: a push killed between the two leaves the rows ``sent`` and the mirror
as it was, so the next push plans those writes again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Date,
    DateTime,
    MetaData,
    Table,
    bindparam,
    func,
    insert,
    update,
)

from acton_pipelines.crm.mirror_values import RECORD_MIRRORS, comparable_text
from acton_pipelines.crm.objects import LEAD
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.push.collections import CreateOutcome, WriteOutcome
from acton_pipelines.push.plan import (
    CREATE,
    FAILED,
    OPT_OUT_FIELD,
    PUSHED,
    EditDecision,
    PlannedCreate,
    PlannedWrite,
)
from acton_pipelines.warehouse.tables import (
    acton_contacts_table,
    acton_field_edits,
    contact_id_changes,
    crm_column_name,
    crm_create_requests,
    crm_push_log,
)

CREATE_FIELD = "(create)"
SENT = "sent"
SUCCESS = "success"
FAILED_OUTCOME = "failed"
SUPERSEDED_OUTCOME = "superseded"


def _log_row(write: PlannedWrite, run_id: str, now: datetime) -> dict[str, Any]:
    return {
        "object": write.object,
        "record_id": write.record_id,
        "contact_id": write.contact_id,
        "field": write.field,
        "old_value": comparable_text(write.old_value),
        "new_value": comparable_text(write.new_value),
        "reason": write.reason,
        "detail": write.detail,
        "sync_run_id": run_id,
        "attempted_at": now,
    }


def _insert_log(conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
    if not rows:
        return []
    statement = insert(crm_push_log).returning(crm_push_log.c.id, sort_by_parameter_order=True)
    return list(conn.execute(statement, rows).scalars())


def log_sent(
    conn: Connection, writes: Sequence[PlannedWrite], run_id: str, now: datetime
) -> list[int]:
    """Log ``writes`` as ``sent`` (before the call); their log ids, in order."""
    return _insert_log(conn, [_log_row(w, run_id, now) | {"outcome": SENT} for w in writes])


def log_bulk_job(conn: Connection, log_ids: Sequence[int], job_id: str) -> None:
    """Name the Bulk job that carries a batch on its ``sent`` rows, before its data goes up:
    a push killed while the job runs leaves rows that say where their answers are."""
    if not log_ids:
        return
    conn.execute(
        update(crm_push_log)
        .where(crm_push_log.c.id == bindparam("b_id"))
        .values(detail=func.coalesce(crm_push_log.c.detail, "") + f" [Bulk job {job_id}]"),
        [{"b_id": log_id} for log_id in log_ids],
    )


def settle_decisions(
    conn: Connection, decisions: Sequence[EditDecision], run_id: str, now: datetime
) -> None:
    """Settle the edits that are not sent (skipped, superseded, already in the CRM), and log
    each one the CRM's own change superseded (outcome ``superseded``: nothing was sent)."""
    unsent = [d.unsent for d in decisions if d.unsent is not None]
    _insert_log(
        conn,
        [
            _log_row(w, run_id, now) | {"outcome": SUPERSEDED_OUTCOME, "answered_at": now}
            for w in unsent
        ],
    )
    if decisions:
        conn.execute(
            update(acton_field_edits)
            .where(acton_field_edits.c.id == bindparam("b_id"))
            .values(
                push_status=bindparam("b_status"),
                status_reason=bindparam("b_reason"),
                pushed_at=bindparam("b_pushed_at"),
            ),
            [
                {
                    "b_id": d.edit_id,
                    "b_status": d.status,
                    "b_reason": d.status_reason,
                    "b_pushed_at": now if d.status == PUSHED else None,
                }
                for d in decisions
            ],
        )


def _answer_log(
    conn: Connection, answers: Sequence[tuple[int, bool, str | None]], now: datetime
) -> None:
    """Set each ``(log id, success, error)`` answer on its ``sent`` row."""
    if not answers:
        return
    conn.execute(
        update(crm_push_log)
        .where(crm_push_log.c.id == bindparam("b_id"))
        .values(
            outcome=bindparam("b_outcome"),
            error=bindparam("b_error"),
            answered_at=bindparam("b_at"),
        ),
        [
            {
                "b_id": log_id,
                "b_outcome": SUCCESS if success else FAILED_OUTCOME,
                "b_error": error,
                "b_at": now,
            }
            for log_id, success, error in answers
        ],
    )


def redirect_log_rows(
    conn: Connection, log_ids: Sequence[int], writes: Sequence[PlannedWrite]
) -> None:
    """Point ``sent`` rows at the records their writes go to now (a Lead's Contact)."""
    if not log_ids:
        return
    conn.execute(
        update(crm_push_log)
        .where(crm_push_log.c.id == bindparam("b_id"))
        .values(
            object=bindparam("b_object"),
            record_id=bindparam("b_record_id"),
            field=bindparam("b_field"),
            detail=bindparam("b_detail"),
        ),
        [
            {
                "b_id": log_id,
                "b_object": w.object,
                "b_record_id": w.record_id,
                "b_field": w.field,
                "b_detail": w.detail,
            }
            for log_id, w in zip(log_ids, writes, strict=True)
        ],
    )


class PushTables:
    """``acton_contacts`` and the CRM mirrors as a push records answers in them, built and
    reflected once per push: a statement on a new ``Table`` object is a new entry in
    SQLAlchemy's compiled cache, which keeps that table alive (made per batch, they grew a
    push's memory with every batch, up to the cache's 500 entries)."""

    def __init__(self, mapping: Mapping) -> None:
        self.contacts = acton_contacts_table(mapping)
        # The CRM fields whose accepted value acton_contacts holds too: scores, the opt-out flag.
        self.contact_column = {OPT_OUT_FIELD: "opted_out"}
        for field in mapping.score_fields:
            for record_type in ("Lead", "Contact"):
                source = field.source(record_type)
                if source:
                    self.contact_column[source] = field.column
        self._metadata = MetaData()
        self._mirrors: dict[str, Table] = {}

    def mirror(self, conn: Connection, obj: str) -> Table:
        """The mirror table of ``obj`` (``crm_leads``...), reflected on first use."""
        if obj not in self._mirrors:
            self._mirrors[obj] = Table(RECORD_MIRRORS[obj], self._metadata, autoload_with=conn)
        return self._mirrors[obj]


def record_update_answers(
    conn: Connection,
    tables: PushTables,
    log_ids: Sequence[int],
    outcomes: Sequence[WriteOutcome],
    now: datetime,
) -> None:
    """A batch's answer: its log rows' outcomes, the accepted values in ``acton_contacts`` and
    the mirror (so the next plan does not repeat them before the next pull), its edits settled
    (pushed, or failed and tried again by the next push)."""
    _answer_log(
        conn,
        [(i, o.success, o.error) for i, o in zip(log_ids, outcomes, strict=True)],
        now,
    )
    record_accepted(conn, tables, [o.write for o in outcomes if o.success])
    edits = [
        {
            "b_id": o.write.edit_id,
            "b_status": PUSHED if o.success else FAILED,
            "b_reason": None if o.success else f"the CRM refused the write: {o.error}",
            "b_pushed_at": now if o.success else None,
        }
        for o in outcomes
        if o.write.edit_id is not None
    ]
    if edits:
        conn.execute(
            update(acton_field_edits)
            .where(acton_field_edits.c.id == bindparam("b_id"))
            .values(
                push_status=bindparam("b_status"),
                status_reason=bindparam("b_reason"),
                pushed_at=bindparam("b_pushed_at"),
            ),
            edits,
        )


def _stored(column: Column, value: Any) -> Any:
    """A value sent to the CRM as its mirror column stores it (dates and datetimes go out as
    text, the warehouse keeps them typed)."""
    if isinstance(value, str) and isinstance(column.type, DateTime):
        return pd.Timestamp(value).to_pydatetime()
    if isinstance(value, str) and isinstance(column.type, Date):
        return date.fromisoformat(value)
    return value


def record_accepted(conn: Connection, tables: PushTables, accepted: Sequence[PlannedWrite]) -> None:
    """Set the values the CRM accepted in the CRM mirror and, for scores and opt-out flags, in
    ``acton_contacts`` (edits are there already), so both show what the CRM now holds."""
    contacts = tables.contacts
    by_column: dict[tuple[Table, str], list[dict[str, Any]]] = {}
    for write in accepted:
        if write.edit_id is None and write.field in tables.contact_column:
            key = (contacts, tables.contact_column[write.field])
            by_column.setdefault(key, []).append(
                {"b_key": write.contact_id, "b_value": write.new_value}
            )
        mirror = tables.mirror(conn, write.object)
        column = crm_column_name(write.field)
        if column in mirror.c:
            value = _stored(mirror.c[column], write.new_value)
            by_column.setdefault((mirror, column), []).append(
                {"b_key": write.record_id, "b_value": value}
            )
    for (table, column), rows in by_column.items():
        key = table.c.contact_id if table is contacts else table.c.id
        conn.execute(
            update(table).where(key == bindparam("b_key")).values({column: bindparam("b_value")}),
            rows,
        )


def log_creates_sent(
    conn: Connection,
    creates: Sequence[PlannedCreate],
    id_field: str,
    run_id: str,
    now: datetime,
) -> list[int]:
    """Log a chunk of Lead creates as ``sent`` and count the attempt on each request."""
    rows = [
        {
            "object": LEAD.name,
            "record_id": "",
            "contact_id": c.contact_id,
            "field": CREATE_FIELD,
            "old_value": None,
            "new_value": ", ".join(sorted(c.fields)),
            "reason": CREATE,
            "detail": f"new Lead for {c.email}, upserted on {id_field} = {c.contact_id}",
            "outcome": SENT,
            "sync_run_id": run_id,
            "attempted_at": now,
        }
        for c in creates
    ]
    conn.execute(
        update(crm_create_requests)
        .where(crm_create_requests.c.contact_id.in_([c.contact_id for c in creates]))
        .values(attempts=func.coalesce(crm_create_requests.c.attempts, 0) + 1, last_attempt_at=now)
    )
    return _insert_log(conn, rows)


def record_create_answers(
    conn: Connection,
    tables: PushTables,
    creates: Sequence[PlannedCreate],
    log_ids: Sequence[int],
    outcomes: Sequence[CreateOutcome],
    *,
    now: datetime,
    run_id: str,
    max_attempts: int,
) -> None:
    """A create chunk's answer: log outcomes; a created Lead becomes the contact's CRM record
    (the contact keeps its ``contact_id``; ``contact_id_changes`` records the new record); a
    failed create keeps its error, and one the CRM refused is ``failed`` (no longer planned)
    once ``max_attempts`` attempts are spent. A CRM that could not be reached, or whose answer
    was lost, refused nothing: the Lead may exist, and the next push's upsert finds it."""
    _answer_log(
        conn,
        [(i, o.record_id is not None, o.error) for i, o in zip(log_ids, outcomes, strict=True)],
        now,
    )
    made = [(c, o) for c, o in zip(creates, outcomes, strict=True) if o.record_id is not None]
    refused = [(c, o) for c, o in zip(creates, outcomes, strict=True) if o.record_id is None]
    if made:
        conn.execute(
            update(crm_push_log)
            .where(crm_push_log.c.id == bindparam("b_id"))
            .values(record_id=bindparam("b_record_id")),
            [
                {"b_id": i, "b_record_id": o.record_id}
                for i, o in zip(log_ids, outcomes, strict=True)
                if o.record_id is not None
            ],
        )
        _record_made(conn, tables, made, now, run_id)
    for create, outcome in refused:
        request = crm_create_requests.c.contact_id == create.contact_id
        conn.execute(update(crm_create_requests).where(request).values(error=outcome.error))
        if outcome.refused:
            spent = func.coalesce(crm_create_requests.c.attempts, 0) >= max_attempts
            conn.execute(update(crm_create_requests).where(request, spent).values(status="failed"))


def _record_made(
    conn: Connection,
    tables: PushTables,
    made: Sequence[tuple[PlannedCreate, CreateOutcome]],
    now: datetime,
    run_id: str,
) -> None:
    contacts = tables.contacts
    for create, outcome in made:
        conn.execute(
            update(crm_create_requests)
            .where(crm_create_requests.c.contact_id == create.contact_id)
            .values(status="created", crm_object=LEAD.name, crm_id=outcome.record_id, error=None)
        )
        conn.execute(
            update(contacts)
            .where(contacts.c.contact_id == create.contact_id)
            .values(external_id=outcome.record_id, record_type=LEAD.name, source="crm")
        )
    conn.execute(
        insert(contact_id_changes),
        [
            {
                "old_contact_id": create.contact_id,
                "new_contact_id": create.contact_id,
                "old_object": None,
                "old_record_id": None,
                "new_object": LEAD.name,
                "new_record_id": outcome.record_id,
                "reason": "created_in_crm",
                "changed_at": now,
                "sync_run_id": run_id,
            }
            for create, outcome in made
        ],
    )
