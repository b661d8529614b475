"""The push: plan the CRM writes from the warehouse, send them batch by batch, log every one
as sent and as answered."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from simple_salesforce.exceptions import SalesforceError
from sqlalchemy import Connection, Engine, inspect, literal, select

from acton_pipelines.crm.client import CrmClient, CrmUnavailable
from acton_pipelines.crm.mirror_values import mirror_field_values
from acton_pipelines.crm.objects import CONTACT, LEAD, split_hop
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.push.collections import (
    COLLECTION_SIZE,
    CreateOutcome,
    UpdateBatch,
    WriteOutcome,
    check_external_id_field,
    chunks,
    converted_contacts,
    send_batch,
    update_batches,
    upsert_leads,
)
from acton_pipelines.push.plan import (
    OPT_OUT_FIELD,
    WAITING,
    EditDecision,
    PlannedCreate,
    PlannedWrite,
    edit_refs,
    edit_writes,
    lead_fields,
    opt_out_refs,
    opt_out_writes,
    score_refs,
    score_writes,
)
from acton_pipelines.push.record import (
    log_creates_sent,
    log_sent,
    record_create_answers,
    record_update_answers,
    redirect_log_rows,
    settle_decisions,
)
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import (
    acton_contacts_table,
    acton_field_edits,
    contact_id_changes,
    contact_scores,
    crm_create_requests,
    crm_push_log,
    opt_outs,
)

# The tables a push writes (created with every table at run start; a lone push needs them too).
PUSH_TABLES = (crm_push_log, acton_field_edits, crm_create_requests, contact_id_changes)
CONTACT_ID_FIELD_ENV = "ACTON_CRM_CONTACT_ID_FIELD"
DEFAULT_CONTACT_ID_FIELD = "ActOn_Contact_Id__c"
CREATE_ATTEMPTS_ENV = "ACTON_CREATE_ATTEMPTS"
DEFAULT_CREATE_ATTEMPTS = 5


def contact_id_field() -> str:
    """The Lead's external-ID field that holds the Act-On contact_id of the Leads a push creates
    (``ACTON_CRM_CONTACT_ID_FIELD``): what makes a repeated create find its Lead."""
    return check_external_id_field(os.environ.get(CONTACT_ID_FIELD_ENV) or DEFAULT_CONTACT_ID_FIELD)


def create_attempts() -> int:
    """How many pushes try a create the CRM refuses before it is left failed
    (``ACTON_CREATE_ATTEMPTS``)."""
    raw = os.environ.get(CREATE_ATTEMPTS_ENV) or str(DEFAULT_CREATE_ATTEMPTS)
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError(f"{CREATE_ATTEMPTS_ENV} must be a whole number of at least 1, not {raw!r}")
    return int(raw)


@dataclass
class PushPlan:
    """Everything a push does, computed without writing anything."""

    writes: list[PlannedWrite]
    creates: list[PlannedCreate] = field(default_factory=list)
    # Waiting edits that are not sent, and why (settled by the push).
    not_pushed: list[EditDecision] = field(default_factory=list)

    @property
    def superseded_by_crm(self) -> list[EditDecision]:
        """Edits the CRM's own change of the field made moot (the CRM wins)."""
        return [d for d in self.not_pushed if d.unsent is not None]


def _frame(conn: Connection, statement: Any, columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in conn.execute(statement)], columns=columns)


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=columns)


def plan_push(engine: Engine, mapping: Mapping) -> PushPlan:
    """Read the warehouse and plan the writes. Reads only: a missing table plans nothing of
    its kind, and nothing is created (``acton push --dry-run`` writes nothing, anywhere)."""
    present = set(inspect(engine).get_table_names())
    contacts_table = acton_contacts_table(mapping)
    if contacts_table.name not in present:
        return PushPlan(writes=[])
    columns = ["contact_id", "external_id", "record_type", "email"]
    edit_columns = ["id", "contact_id", "field", "value", "changed_at", "crm_value_at_edit"]
    with engine.connect() as conn:
        contacts = _frame(conn, select(*[contacts_table.c[c] for c in columns]), columns)
        scores = _empty(["contact_id", "score_sheet", "score"])
        if contact_scores.name in present:
            scores = _frame(
                conn,
                select(
                    contact_scores.c.contact_id,
                    contact_scores.c.score_sheet,
                    contact_scores.c.score,
                ),
                list(scores.columns),
            )
        listed: dict[str, bool] = {}
        if opt_outs.name in present:
            listed = {
                str(email): bool(opted_out)
                for email, opted_out in conn.execute(select(opt_outs.c.email, opt_outs.c.opted_out))
            }
        edits = _waiting_edits(conn, present, edit_columns)
        creates = _planned_creates(conn, mapping, present)
        crm = mirror_field_values(
            conn,
            score_refs(contacts, mapping)
            | opt_out_refs(contacts, listed)
            | edit_refs(edits, contacts, mapping),
        )
    updates, not_pushed = edit_writes(edits, contacts, mapping, crm)
    return PushPlan(
        writes=score_writes(contacts, scores, mapping, crm)
        + opt_out_writes(contacts, listed, crm)
        + updates,
        creates=creates,
        not_pushed=not_pushed,
    )


def _waiting_edits(conn: Connection, present: set[str], columns: list[str]) -> pd.DataFrame:
    """The edits waiting for the push (pending, or failed and tried again)."""
    if acton_field_edits.name not in present:
        return _empty(columns)
    # A warehouse from before crm_value_at_edit existed (not yet migrated by a run): NULL.
    stored = {c["name"] for c in inspect(conn).get_columns(acton_field_edits.name)}
    selected = [acton_field_edits.c[c] if c in stored else literal(None).label(c) for c in columns]
    statement = select(*selected).where(acton_field_edits.c.push_status.in_(WAITING))
    return _frame(conn, statement, columns)


def _planned_creates(conn: Connection, mapping: Mapping, present: set[str]) -> list[PlannedCreate]:
    """The pending "create in CRM" requests of contacts not in the CRM yet, with their fields."""
    if crm_create_requests.name not in present:
        return []
    contacts_table = acton_contacts_table(mapping)
    statement = (
        select(contacts_table)
        .join(crm_create_requests, crm_create_requests.c.contact_id == contacts_table.c.contact_id)
        .where(crm_create_requests.c.status == "pending", contacts_table.c.external_id.is_(None))
        .order_by(contacts_table.c.contact_id)
    )
    rows = _frame(conn, statement, [c.name for c in contacts_table.columns])
    return [
        PlannedCreate(row.contact_id, row.email, lead_fields(row, mapping))
        for _, row in rows.iterrows()
    ]


def planned_redirects(client: CrmClient, plan: PushPlan) -> dict[str, str]:
    """Of the Leads the plan writes to, those converted since the last pull, and the Contact
    each became (Lead Id -> Contact Id): where the push will send their writes instead."""
    return converted_contacts(client, [w.record_id for w in plan.writes if w.object == LEAD.name])


@dataclass
class PushResult:
    """What a push did: its plan, every update's final answer, every create's answer, its run."""

    plan: PushPlan
    outcomes: list[WriteOutcome]
    created: dict[str, CreateOutcome]
    run: SyncRun

    def writes_by_reason(self) -> dict[str, dict[str, int]]:
        """Per reason (score, opt-out, opt-in, edit): writes accepted and failed."""
        counts: dict[str, dict[str, int]] = {}
        for outcome in self.outcomes:
            tally = counts.setdefault(outcome.write.reason, {"accepted": 0, "failed": 0})
            tally["accepted" if outcome.success else "failed"] += 1
        return counts


@dataclass
class _Push:
    """One push run in progress: where it writes, what it has heard back."""

    engine: Engine
    client: CrmClient
    mapping: Mapping
    run_id: str
    progress: Callable[[str], Any]
    outcomes: list[WriteOutcome] = field(default_factory=list)
    created: dict[str, CreateOutcome] = field(default_factory=dict)

    def send_updates(self, batch: UpdateBatch) -> None:
        """Log the batch as sent (unless it was, before a redirect), send it, then commit its
        answer with its effects; writes refused because their Lead converted are sent on to
        the Contact the Lead became, as batches of their own."""
        log_ids = batch.log_ids
        if log_ids is None:
            with self.engine.begin() as conn:
                log_ids = log_sent(conn, batch.writes, self.run_id, utc_now())
        kind = "Bulk job" if batch.bulk else "call"
        self.progress(
            f"crm_push: sending {len(batch.writes):,} writes on {batch.records:,} records "
            f"(one {kind})"
        )
        outcomes = send_batch(self.client, batch)
        contact_of = self._converted([o.write for o in outcomes if o.converted_lead])
        answered, redirected, redirected_ids = [], [], []
        for log_id, outcome in zip(log_ids, outcomes, strict=True):
            onward = self._onward(outcome, contact_of)
            if onward is None:
                answered.append((log_id, outcome))
            else:
                redirected.append(onward)
                redirected_ids.append(log_id)
        with self.engine.begin() as conn:
            record_update_answers(
                conn, self.mapping, [i for i, _ in answered], [o for _, o in answered], utc_now()
            )
            redirect_log_rows(conn, redirected_ids, redirected)
        self.outcomes += [o for _, o in answered]
        for onward_batch in update_batches(redirected, redirected_ids):
            self.send_updates(onward_batch)

    def _converted(self, refused: list[PlannedWrite]) -> dict[str, str]:
        """The Contacts the refused writes' Leads became; none when the CRM cannot say (the
        writes then stay failed, with the CRM's reason, and the next pull sees the
        conversions)."""
        if not refused:
            return {}
        try:
            return converted_contacts(self.client, [w.record_id for w in refused])
        except (SalesforceError, CrmUnavailable) as error:
            self.progress(f"crm_push: could not look up converted Leads: {error}")
            return {}

    def _onward(self, outcome: WriteOutcome, contact_of: dict[str, str]) -> PlannedWrite | None:
        """The write to send to the Contact a converted Lead became, or None when the outcome
        stands (the Contact has no field for it: it stays failed, with the CRM's reason)."""
        write = outcome.write
        if not outcome.converted_lead or write.record_id not in contact_of:
            return None
        contact_field = _contact_field(self.mapping, write.field)
        if contact_field is None:
            return None
        return replace(
            write,
            object=CONTACT.name,
            record_id=contact_of[write.record_id],
            field=contact_field,
            detail=f"{write.detail} (Lead {write.record_id} converted since the last pull)",
        )

    def send_creates(self, creates: list[PlannedCreate], id_field: str, attempts: int) -> None:
        """Log a chunk of creates as sent (an attempt each), upsert them, commit the answer."""
        with self.engine.begin() as conn:
            log_ids = log_creates_sent(conn, creates, id_field, self.run_id, utc_now())
        self.progress(f"crm_push: creating {len(creates):,} Leads")
        outcomes = upsert_leads(self.client, [(c.contact_id, c.fields) for c in creates], id_field)
        with self.engine.begin() as conn:
            record_create_answers(
                conn,
                self.mapping,
                creates,
                log_ids,
                outcomes,
                now=utc_now(),
                run_id=self.run_id,
                max_attempts=attempts,
            )
        self.created |= {c.contact_id: o for c, o in zip(creates, outcomes, strict=True)}


def _contact_field(mapping: Mapping, lead_field: str) -> str | None:
    """The Contact field that holds what ``lead_field`` holds on a Lead (same mapped field)."""
    if lead_field == OPT_OUT_FIELD:
        return lead_field
    for mapped in mapping.fields:
        if mapped.lead == lead_field:
            source = mapped.contact
            return source if source and split_hop(source)[0] is None else None
    return None


def push_to_crm(
    *,
    engine: Engine,
    client: CrmClient,
    mapping: Mapping,
    run_id: str,
    progress: Callable[[str], Any] = print,
) -> PushResult:
    """Send the planned updates and creates, one batch at a time.

    First the edits that are not sent are settled (skipped by policy, superseded, already in
    the CRM). Then each batch (a Collections call of up to 200 records, a Bulk job, a chunk
    of creates) commits its ``crm_push_log`` rows as ``sent`` before its call, and after the
    answer, in one transaction, the outcomes with their effects: accepted values in
    ``acton_contacts`` and the mirror, edits pushed or failed, Leads created. A push killed
    between batches keeps all it heard back; the next push plans the rest again from the
    mirror. A failed write is planned again by the next push; a create the CRM keeps refusing
    is left ``failed`` after ``ACTON_CREATE_ATTEMPTS`` attempts.
    """
    for table in PUSH_TABLES:
        ensure_table(engine, table)
    id_field, attempts = contact_id_field(), create_attempts()
    plan = plan_push(engine, mapping)
    progress(
        f"crm_push: {len(plan.writes):,} updates and {len(plan.creates):,} creates planned, "
        f"{len(plan.not_pushed):,} edits not sent"
    )
    run = SyncRun(run_id=run_id, object="crm_push", mode="push")
    calls_before = client.api_calls
    with engine.begin() as conn:
        settle_decisions(conn, plan.not_pushed, run_id, utc_now())
    push = _Push(engine, client, mapping, run_id, progress)
    for batch in update_batches(plan.writes):
        push.send_updates(batch)
    for chunk in chunks(plan.creates, COLLECTION_SIZE):
        push.send_creates(chunk, id_field, attempts)
    run.api_calls = client.api_calls - calls_before
    run.rows_read = len(plan.writes) + len(plan.creates)
    run.rows_upserted = sum(o.success for o in push.outcomes) + sum(
        o.record_id is not None for o in push.created.values()
    )
    run.rows_rejected = run.rows_read - run.rows_upserted
    with engine.begin() as conn:
        run.record(conn)
    return PushResult(plan=plan, outcomes=push.outcomes, created=push.created, run=run)
