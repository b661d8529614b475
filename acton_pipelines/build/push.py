"""The push: plan the CRM writes from the warehouse, send them, log every one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, select, update

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.objects import CONTACT, LEAD, split_hop
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.push.collections import WriteOutcome, send_creates, send_updates
from acton_pipelines.push.plan import (
    OPT_OUT_FIELD,
    EditDecision,
    PlannedWrite,
    crm_value,
    edit_writes,
    opt_out_writes,
    score_writes,
)
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import upsert_records
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import (
    acton_activity,
    acton_contacts_table,
    acton_field_edits,
    contact_scores,
    crm_column_name,
    crm_create_requests,
    crm_push_log,
    opt_outs,
    segment_members,
)

MIRRORS = {LEAD.name: LEAD.table, CONTACT.name: CONTACT.table}
PUSH_TABLES = (opt_outs, crm_push_log, acton_field_edits, crm_create_requests, acton_activity)


@dataclass(frozen=True)
class PlannedCreate:
    """A CRM Lead to create for an Act-On contact designated "create in CRM"."""

    contact_id: str
    email: str
    fields: dict[str, Any]


@dataclass
class PushPlan:
    """Everything a push does, computed without writing anything."""

    writes: list[PlannedWrite]
    creates: list[PlannedCreate] = field(default_factory=list)
    not_pushed: list[EditDecision] = field(default_factory=list)
    new_opt_outs: list[str] = field(default_factory=list)
    # Addresses that opted back in on the Act-On side, then were opted out in the CRM later.
    opted_out_again: list[str] = field(default_factory=list)


def _frame(conn: Connection, statement: Any, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in conn.execute(statement)], columns=columns)


def _lead_fields(row: pd.Series, mapping: Mapping) -> dict[str, Any]:
    """Every mapped field of a new Lead (allow_push does not apply to records we create)."""
    values = {}
    for mapped in mapping.fields:
        source = mapped.lead
        if not source or split_hop(source)[0] is not None or mapped.column not in row.index:
            continue
        value = row[mapped.column]
        if not pd.isna(value):
            values[source] = crm_value(value, mapped.type)
    return values


def plan_push(engine: Engine, mapping: Mapping) -> PushPlan:
    """Read the warehouse and plan the writes; changes nothing but creating empty tables."""
    for table in PUSH_TABLES:
        ensure_table(engine, table)
    contacts_table = acton_contacts_table(mapping)
    if contacts_table.name not in inspect(engine).get_table_names():
        return PushPlan(writes=[])
    score_columns = [f.column for f in mapping.score_fields]
    columns = [
        "contact_id",
        "external_id",
        "record_type",
        "email",
        "opted_out",
        "crm_modified_at",
        *score_columns,
    ]
    with engine.connect() as conn:
        contacts = _frame(conn, select(*[contacts_table.c[c] for c in columns]), columns)
        # acton_contacts.opted_out is Act-On's view (the opt-out list wins); what the CRM holds
        # is in the mirror.
        crm_flags: dict[str, Any] = {}
        for table in MIRRORS.values():
            mirror = Table(table, MetaData(), autoload_with=conn)
            crm_flags |= dict(conn.execute(select(mirror.c.id, mirror.c.hasoptedoutofemail)).all())
        contacts["opted_out"] = contacts["external_id"].map(crm_flags)
        scores = _frame(
            conn,
            select(
                contact_scores.c.contact_id, contact_scores.c.score_sheet, contact_scores.c.score
            ),
            ["contact_id", "score_sheet", "score"],
        )
        listed_rows = conn.execute(
            select(opt_outs.c.email, opt_outs.c.opted_out, opt_outs.c.changed_at)
        ).all()
        listed = {email: opted_out for email, opted_out, _ in listed_rows}
        opted_in_at = {email: at for email, opted_out, at in listed_rows if not opted_out}
        edit_columns = ["id", "contact_id", "field", "value", "changed_at"]
        edits = _frame(
            conn,
            select(*[acton_field_edits.c[c] for c in edit_columns]).where(
                acton_field_edits.c.push_status == "pending"
            ),
            edit_columns,
        )
        requested = set(
            conn.execute(
                select(crm_create_requests.c.contact_id).where(
                    crm_create_requests.c.status == "pending"
                )
            ).scalars()
        )
        to_create = _frame(
            conn,
            select(contacts_table).where(contacts_table.c.contact_id.in_(requested)),
            [c.name for c in contacts_table.columns],
        )
    # Pulling adds every CRM opt-out to the list; it never removes one, nor re-opts anyone
    # who opted back in on the Act-On side.
    flagged = contacts[contacts["opted_out"].fillna(False).astype(bool) & contacts["email"].notna()]
    new = sorted({str(e).lower() for e in flagged["email"]} - set(listed))
    # An address that opted back in on the Act-On side is opted out again when the CRM flagged
    # it after that (the most recent change wins); an older CRM flag is what the push corrects.
    again = sorted(
        {
            str(row.email).lower()
            for row in flagged.itertuples(index=False)
            if str(row.email).lower() in opted_in_at
            and _later(row.crm_modified_at, opted_in_at[str(row.email).lower()])
        }
    )
    opt_out_list = {e: bool(v) for e, v in listed.items()} | {e: True for e in [*new, *again]}
    updates, not_pushed = edit_writes(edits, contacts, mapping)
    creates = [
        PlannedCreate(row.contact_id, row.email, _lead_fields(row, mapping))
        for _, row in to_create.iterrows()
        if pd.isna(row["external_id"])
    ]
    return PushPlan(
        writes=score_writes(contacts, scores, mapping)
        + opt_out_writes(contacts, opt_out_list)
        + updates,
        creates=creates,
        not_pushed=not_pushed,
        new_opt_outs=new,
        opted_out_again=again,
    )


def _later(crm_changed: Any, act_on_changed: Any) -> bool:
    """Whether the CRM change is at least as recent as the Act-On one (ties go to the CRM)."""
    if pd.isna(crm_changed) or act_on_changed is None:
        return False
    crm_at, act_on_at = pd.Timestamp(crm_changed), pd.Timestamp(act_on_changed)
    crm_at = crm_at.tz_localize("UTC") if crm_at.tzinfo is None else crm_at
    act_on_at = act_on_at.tz_localize("UTC") if act_on_at.tzinfo is None else act_on_at
    return crm_at >= act_on_at


@dataclass
class PushResult:
    plan: PushPlan
    outcomes: list[WriteOutcome]
    created: dict[str, tuple[str | None, str | None]]
    run: SyncRun


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _update_log_rows(outcomes: list[WriteOutcome]) -> list[dict[str, Any]]:
    """``crm_push_log`` rows of the updates (run and time added by the caller)."""
    return [
        {
            "object": o.write.object,
            "record_id": o.write.record_id,
            "contact_id": o.write.contact_id,
            "field": o.write.field,
            "old_value": _text(o.write.old_value),
            "new_value": _text(o.write.new_value),
            "reason": o.write.reason,
            "outcome": "success" if o.success else "failed",
            "error": o.error,
        }
        for o in outcomes
    ]


def _create_log_rows(
    creates: list[PlannedCreate], created: dict[str, tuple[str | None, str | None]]
) -> list[dict[str, Any]]:
    """``crm_push_log`` rows of the Lead creations: the fields sent, the new Id or the error."""
    rows = []
    for create in creates:
        crm_id, error = created[create.contact_id]
        rows.append(
            {
                "object": LEAD.name,
                "record_id": crm_id or "",
                "contact_id": create.contact_id,
                "field": "(create)",
                "old_value": None,
                "new_value": ", ".join(sorted(create.fields)),
                "reason": "create in CRM",
                "outcome": "success" if crm_id else "failed",
                "error": error,
            }
        )
    return rows


def push_to_crm(
    *,
    engine: Engine,
    client: CrmClient,
    mapping: Mapping,
    run_id: str,
    progress: Callable[[str], Any] = print,
) -> PushResult:
    """Send the planned updates and creates, then in one transaction: log every write in
    ``crm_push_log``, add the pulled opt-outs to ``opt_outs``, settle the edits (pushed,
    skipped by policy, superseded), mark created contacts as the CRM Leads they now are, and
    record the values the CRM accepted (so the next plan does not repeat them before the next
    pull). A failed write stays planned and is retried by the next push."""
    plan = plan_push(engine, mapping)
    progress(f"crm_push: {len(plan.writes):,} updates and {len(plan.creates):,} creates planned")
    run = SyncRun(run_id=run_id, object="crm_push", mode="push")
    calls_before = client.api_calls
    outcomes = send_updates(client, plan.writes) if plan.writes else []
    created = send_creates(client, [(c.contact_id, c.fields) for c in plan.creates])
    run.api_calls = client.api_calls - calls_before
    now = utc_now()
    log = [
        row | {"sync_run_id": run_id, "attempted_at": now}
        for row in _update_log_rows(outcomes) + _create_log_rows(plan.creates, created)
    ]
    with engine.begin() as conn:
        if log:
            conn.execute(crm_push_log.insert(), log)
        added = [
            {"email": e, "opted_out": True, "source": "crm", "added_at": now, "sync_run_id": run_id}
            for e in plan.new_opt_outs
        ]
        upsert_records(conn, opt_outs, added, ["email"], update=False)
        if plan.opted_out_again:
            conn.execute(
                update(opt_outs)
                .where(opt_outs.c.email.in_(plan.opted_out_again))
                .values(opted_out=True, changed_at=now, sync_run_id=run_id)
            )
        accepted = [o.write for o in outcomes if o.success]
        _record_accepted(conn, mapping, accepted)
        _settle_edits(conn, accepted, plan.not_pushed, now)
        _record_creates(conn, mapping, plan.creates, created, now)
        run.rows_read = len(plan.writes) + len(plan.creates)
        run.rows_upserted = len(accepted) + sum(1 for i, _ in created.values() if i)
        run.rows_rejected = run.rows_read - run.rows_upserted
        run.record(conn)
    return PushResult(plan=plan, outcomes=outcomes, created=created, run=run)


def _settle_edits(
    conn: Connection, pushed: list[PlannedWrite], not_pushed: list[EditDecision], now: Any
) -> None:
    """Pushed edits are done; edits the policy or a later change stops are settled with why.
    Failed ones stay pending: the next push retries them."""
    for write in pushed:
        if write.edit_id is not None:
            conn.execute(
                update(acton_field_edits)
                .where(acton_field_edits.c.id == write.edit_id)
                .values(push_status="pushed", pushed_at=now)
            )
    for decision in not_pushed:
        conn.execute(
            update(acton_field_edits)
            .where(acton_field_edits.c.id == decision.edit_id)
            .values(push_status=decision.status)
        )


def _record_accepted(conn: Connection, mapping: Mapping, accepted: list[PlannedWrite]) -> None:
    """Set the values the CRM accepted in ``acton_contacts`` and the CRM mirror, so both show
    what the CRM now holds until the next pull reads it back."""
    contacts_table = acton_contacts_table(mapping)
    column_of = {OPT_OUT_FIELD: "opted_out"}
    for mapped in mapping.fields:
        for record_type in ("Lead", "Contact"):
            source = mapped.source(record_type)
            if source and "." not in source:
                column_of.setdefault(source, mapped.column)
    metadata = MetaData()
    mirrors = {name: Table(table, metadata, autoload_with=conn) for name, table in MIRRORS.items()}
    for write in accepted:
        if write.edit_id is None and write.field in column_of:
            # Edits are in acton_contacts already; scores and opt-outs are set here.
            conn.execute(
                update(contacts_table)
                .where(contacts_table.c.contact_id == write.contact_id)
                .values({column_of[write.field]: write.new_value})
            )
        mirror = mirrors[write.object]
        column = crm_column_name(write.field)
        if column in mirror.c and column not in ("systemmodstamp",):
            row = mirror.c.id == write.record_id
            conn.execute(update(mirror).where(row).values({column: write.new_value}))


def _record_creates(
    conn: Connection,
    mapping: Mapping,
    creates: list[PlannedCreate],
    created: dict[str, tuple[str | None, str | None]],
    now: Any,
) -> None:
    """A created Lead is the contact's CRM record from now on: the Act-On contact takes the
    Lead's Id (as the next pull will), with its scores, memberships, activity and edits."""
    contacts_table = acton_contacts_table(mapping)
    for create in creates:
        crm_id, error = created[create.contact_id]
        request = crm_create_requests.c.contact_id == create.contact_id
        if crm_id is None:
            conn.execute(update(crm_create_requests).where(request).values(error=error))
            continue
        conn.execute(
            update(crm_create_requests)
            .where(request)
            .values(status="created", crm_object=LEAD.name, crm_id=crm_id, error=None)
        )
        conn.execute(
            update(contacts_table)
            .where(contacts_table.c.contact_id == create.contact_id)
            .values(contact_id=crm_id, external_id=crm_id, record_type=LEAD.name, source="crm")
        )
        for table in (contact_scores, segment_members, acton_activity, acton_field_edits):
            if table.name in inspect(conn).get_table_names():
                conn.execute(
                    update(table)
                    .where(table.c.contact_id == create.contact_id)
                    .values(contact_id=crm_id)
                )
