"""The push: plan the CRM writes from the warehouse, send them, log every one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, MetaData, Table, inspect, select, update

from acton_pipelines.crm.client import CrmClient
from acton_pipelines.crm.objects import CONTACT, LEAD
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.push.collections import WriteOutcome, send_updates
from acton_pipelines.push.plan import OPT_OUT_FIELD, PlannedWrite, opt_out_writes, score_writes
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import upsert_records
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import (
    acton_contacts_table,
    contact_scores,
    crm_column_name,
    crm_push_log,
    opt_outs,
)

MIRRORS = {LEAD.name: LEAD.table, CONTACT.name: CONTACT.table}


@dataclass
class PushPlan:
    """The writes a push makes, and the opt-out addresses the CRM pull added."""

    writes: list[PlannedWrite]
    new_opt_outs: list[str] = field(default_factory=list)


def plan_push(engine: Engine, mapping: Mapping) -> PushPlan:
    """Read the warehouse and plan the writes; changes nothing."""
    contacts_table = acton_contacts_table(mapping)
    for table in (opt_outs, crm_push_log):
        ensure_table(engine, table)
    if contacts_table.name not in inspect(engine).get_table_names():
        return PushPlan(writes=[])
    score_columns = [f.column for f in mapping.score_fields]
    columns = ["contact_id", "external_id", "record_type", "email", "opted_out", *score_columns]
    with engine.connect() as conn:
        contacts = pd.DataFrame(
            conn.execute(select(*[contacts_table.c[c] for c in columns])).all(), columns=columns
        )
        scores = pd.DataFrame(
            conn.execute(
                select(
                    contact_scores.c.contact_id,
                    contact_scores.c.score_sheet,
                    contact_scores.c.score,
                )
            ).all(),
            columns=["contact_id", "score_sheet", "score"],
        )
        listed = set(conn.execute(select(opt_outs.c.email)).scalars())
    # Pulling adds every CRM opt-out to the list; nothing here ever removes one.
    pulled = contacts.loc[contacts["opted_out"].fillna(False).astype(bool), "email"].dropna()
    new = sorted({str(e).lower() for e in pulled} - listed)
    writes = score_writes(contacts, scores, mapping) + opt_out_writes(contacts, listed | set(new))
    return PushPlan(writes=writes, new_opt_outs=new)


@dataclass
class PushResult:
    plan: PushPlan
    outcomes: list[WriteOutcome]
    run: SyncRun


def _log_rows(outcomes: list[WriteOutcome], run_id: str) -> list[dict[str, Any]]:
    now = utc_now()
    return [
        {
            "object": o.write.object,
            "record_id": o.write.record_id,
            "contact_id": o.write.contact_id,
            "field": o.write.field,
            "old_value": None if o.write.old_value is None else str(o.write.old_value),
            "new_value": None if o.write.new_value is None else str(o.write.new_value),
            "reason": o.write.reason,
            "outcome": "success" if o.success else "failed",
            "error": o.error,
            "sync_run_id": run_id,
            "attempted_at": now,
        }
        for o in outcomes
    ]


def push_to_crm(
    *,
    engine: Engine,
    client: CrmClient,
    mapping: Mapping,
    run_id: str,
    progress: Callable[[str], Any] = print,
) -> PushResult:
    """Send the planned writes, then in one transaction: log every write in ``crm_push_log``,
    add the pulled opt-outs to ``opt_outs``, and record in the warehouse the values the CRM
    accepted (so the next plan does not repeat them before the next pull). A failed write
    stays planned and is retried by the next push."""
    plan = plan_push(engine, mapping)
    progress(f"crm_push: {len(plan.writes):,} writes planned")
    run = SyncRun(run_id=run_id, object="crm_push", mode="push")
    calls_before = client.api_calls
    outcomes = send_updates(client, plan.writes) if plan.writes else []
    run.api_calls = client.api_calls - calls_before
    accepted = [o.write for o in outcomes if o.success]
    now = utc_now()
    with engine.begin() as conn:
        if outcomes:
            conn.execute(crm_push_log.insert(), _log_rows(outcomes, run_id))
        added = [
            {"email": email, "source": "crm", "added_at": now, "sync_run_id": run_id}
            for email in plan.new_opt_outs
        ]
        upsert_records(conn, opt_outs, added, ["email"], update=False)
        _record_accepted(conn, mapping, accepted)
        run.rows_read = len(plan.writes)
        run.rows_upserted = len(accepted)
        run.rows_rejected = len(outcomes) - len(accepted)
        run.record(conn)
    return PushResult(plan=plan, outcomes=outcomes, run=run)


def _record_accepted(conn: Connection, mapping: Mapping, accepted: list[PlannedWrite]) -> None:
    """Set the values the CRM accepted in ``acton_contacts`` and the CRM mirror, so both show
    what the CRM now holds until the next pull reads it back."""
    contacts_table = acton_contacts_table(mapping)
    column_of = {f.source(t): f.column for f in mapping.score_fields for t in ("Lead", "Contact")}
    column_of[OPT_OUT_FIELD] = "opted_out"
    metadata = MetaData()
    mirrors = {name: Table(table, metadata, autoload_with=conn) for name, table in MIRRORS.items()}
    for write in accepted:
        conn.execute(
            update(contacts_table)
            .where(contacts_table.c.contact_id == write.contact_id)
            .values({column_of[write.field]: write.new_value})
        )
        mirror = mirrors[write.object]
        column = crm_column_name(write.field)
        if column in mirror.c:
            conn.execute(
                update(mirror)
                .where(mirror.c.id == write.record_id)
                .values({column: write.new_value})
            )
