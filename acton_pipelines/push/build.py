"""The push: plan the CRM writes from the warehouse, send them batch by batch, log every one
as sent and as answered."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, overload

from simple_salesforce.exceptions import SalesforceError
from sqlalchemy import Engine

from acton_pipelines.crm.client import CrmClient, CrmUnavailable
from acton_pipelines.crm.objects import CONTACT, LEAD, split_hop
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.push.collections import (
    BUDGET_SPENT,
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
    EditDecision,
    PlannedCreate,
    PlannedWrite,
    PushPlan,
    plan_chunks,
)
from acton_pipelines.push.record import (
    PushTables,
    log_bulk_job,
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
    acton_field_edits,
    contact_id_changes,
    crm_create_requests,
    crm_push_log,
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


def plan_push(engine: Engine, mapping: Mapping) -> PushPlan:
    """The whole plan, every chunk of it: what ``acton push --dry-run`` shows and a push sends
    (the push itself reads, sends and records it a chunk at a time). Reads only: a missing
    table plans nothing of its kind, and nothing is created."""
    whole = PushPlan(writes=[])
    for chunk in plan_chunks(engine, mapping):
        whole.writes += chunk.writes
        whole.creates += chunk.creates
        whole.not_pushed += chunk.not_pushed
    return whole


def planned_redirects(client: CrmClient, plan: PushPlan) -> dict[str, str]:
    """Of the Leads the plan writes to, those converted since the last pull, and the Contact
    each became (Lead Id -> Contact Id): where the push will send their writes instead."""
    return converted_contacts(client, [w.record_id for w in plan.writes if w.object == LEAD.name])


K = TypeVar("K", bound=Hashable)


class Tally(Sequence[K]):
    """Equal items counted, not kept: reads like the list of every item (in the order kinds
    first came), in memory of the distinct ones. What a push reports of its writes, whatever
    their number."""

    def __init__(self, items: Iterable[K] = ()) -> None:
        self._counts: dict[K, int] = {}
        self._total = 0
        for item in items:
            self.add(item)

    def add(self, item: K, count: int = 1) -> None:
        """Count ``item`` ``count`` more times."""
        self._counts[item] = self._counts.get(item, 0) + count
        self._total += count

    def counts(self) -> dict[K, int]:
        """Each distinct item and how many times it came."""
        return dict(self._counts)

    def __len__(self) -> int:
        return self._total

    def __iter__(self) -> Iterator[K]:
        for item, count in self._counts.items():
            yield from itertools.repeat(item, count)

    @overload
    def __getitem__(self, index: int) -> K: ...

    @overload
    def __getitem__(self, index: slice) -> list[K]: ...

    def __getitem__(self, index: int | slice) -> K | list[K]:
        if isinstance(index, slice):
            return list(self)[index]
        position = index + self._total if index < 0 else index
        if not 0 <= position < self._total:
            raise IndexError(index)
        for item, count in self._counts.items():
            if position < count:
                return item
            position -= count
        raise IndexError(index)


@dataclass(frozen=True)
class WriteKind:
    """A write without its record: the object and field it sets, and why."""

    object: str
    field: str
    reason: str

    @classmethod
    def of(cls, write: PlannedWrite) -> WriteKind:
        return cls(write.object, write.field, write.reason)


@dataclass(frozen=True)
class OutcomeKind:
    """A write's final answer without its record."""

    write: WriteKind
    success: bool
    error: str | None = None

    @classmethod
    def of(cls, outcome: WriteOutcome) -> OutcomeKind:
        return cls(WriteKind.of(outcome.write), outcome.success, outcome.error)


@dataclass(frozen=True)
class DecisionKind:
    """An edit not sent, without its edit: its status, why, and what it would have set."""

    status: str
    reason: str
    unsent: WriteKind | None = None

    @classmethod
    def of(cls, decision: EditDecision) -> DecisionKind:
        unsent = None if decision.unsent is None else WriteKind.of(decision.unsent)
        return cls(decision.status, decision.reason, unsent)


@dataclass
class PushSummary:
    """What a push planned, counted: the plan is read, sent and recorded a chunk at a time and
    never held whole (``crm_push_log`` has every write)."""

    writes: Tally[WriteKind] = field(default_factory=Tally)
    creates: int = 0
    not_pushed: Tally[DecisionKind] = field(default_factory=Tally)

    def add(self, chunk: PushPlan) -> None:
        """Count one chunk of the plan."""
        for write in chunk.writes:
            self.writes.add(WriteKind.of(write))
        self.creates += len(chunk.creates)
        for decision in chunk.not_pushed:
            self.not_pushed.add(DecisionKind.of(decision))

    @property
    def superseded_by_crm(self) -> Tally[DecisionKind]:
        """Edits the CRM's own change of the field made moot (the CRM wins)."""
        moot: Tally[DecisionKind] = Tally()
        for decision, count in self.not_pushed.counts().items():
            if decision.unsent is not None:
                moot.add(decision, count)
        return moot


@dataclass
class PushResult:
    """What a push did, counted (its memory does not grow with the push): what it planned,
    every update's final answer, every create's answer, its run."""

    plan: PushSummary
    outcomes: Tally[OutcomeKind]
    # Per contact_id: creates are requested contact by contact, not one per CRM record.
    created: dict[str, CreateOutcome]
    run: SyncRun

    def writes_by_reason(self) -> dict[str, dict[str, int]]:
        """Per reason (score, opt-out, opt-in, edit): writes accepted and failed."""
        counts: dict[str, dict[str, int]] = {}
        for outcome, count in self.outcomes.counts().items():
            tally = counts.setdefault(outcome.write.reason, {"accepted": 0, "failed": 0})
            tally["accepted" if outcome.success else "failed"] += count
        return counts


@dataclass
class _Push:
    """One push run in progress: where it writes, what it has heard back."""

    engine: Engine
    client: CrmClient
    mapping: Mapping
    run_id: str
    progress: Callable[[str], Any]
    outcomes: Tally[OutcomeKind] = field(default_factory=Tally)
    created: dict[str, CreateOutcome] = field(default_factory=dict)
    tables: PushTables = field(init=False)

    def __post_init__(self) -> None:
        self.tables = PushTables(self.mapping)

    def send_updates(self, batch: UpdateBatch) -> None:
        """Log the batch as sent (unless it was, before a redirect), send it, then commit its
        answer with its effects; writes refused because their Lead converted are sent on to
        the Contact the Lead became, as batches of their own. A Bulk job's Id is committed on
        the batch's rows before its data goes up."""
        log_ids = batch.log_ids
        if log_ids is None:
            with self.engine.begin() as conn:
                log_ids = log_sent(conn, batch.writes, self.run_id, utc_now())
        kind = "Bulk job" if batch.bulk else "call"
        self.progress(
            f"crm_push: sending {len(batch.writes):,} writes on {batch.records:,} records "
            f"(one {kind})"
        )

        def on_job(job_id: str) -> None:
            with self.engine.begin() as conn:
                log_bulk_job(conn, log_ids, job_id)

        outcomes = send_batch(self.client, batch, on_job)
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
                conn, self.tables, [i for i, _ in answered], [o for _, o in answered], utc_now()
            )
            redirect_log_rows(conn, redirected_ids, redirected)
        for _, outcome in answered:
            self.outcomes.add(OutcomeKind.of(outcome))
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
        except BUDGET_SPENT:
            raise
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
                self.tables,
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
    """Plan the updates and creates a chunk at a time (:func:`plan_chunks`) and send each
    chunk, one batch at a time, before reading the next: memory holds one chunk whatever the
    org's size.

    In each chunk, first the edits that are not sent are settled (skipped by policy,
    superseded, already in the CRM). Then each batch (a Collections call of up to 200
    records, a Bulk job, a chunk of creates) commits its ``crm_push_log`` rows as ``sent``
    before its call, and after the answer, in one transaction, the outcomes with their
    effects: accepted values in ``acton_contacts`` and the mirror, edits pushed or failed,
    Leads created. A push killed between batches keeps all it heard back; the next push plans
    the rest again from the mirror. A failed write is planned again by the next push; a
    create the CRM keeps refusing is left ``failed`` after ``ACTON_CREATE_ATTEMPTS`` attempts.
    """
    for table in PUSH_TABLES:
        ensure_table(engine, table)
    id_field, attempts = contact_id_field(), create_attempts()
    run = SyncRun(run_id=run_id, object="crm_push", mode="push")
    calls_before = client.api_calls
    push = _Push(engine, client, mapping, run_id, progress)
    plan = PushSummary()
    for chunk in plan_chunks(engine, mapping):
        plan.add(chunk)
        progress(
            f"crm_push: {len(chunk.writes):,} updates and {len(chunk.creates):,} creates planned "
            f"in this chunk, {len(chunk.not_pushed):,} edits not sent"
        )
        with engine.begin() as conn:
            settle_decisions(conn, chunk.not_pushed, run_id, utc_now())
        for batch in update_batches(chunk.writes):
            push.send_updates(batch)
        for creates in chunks(chunk.creates, COLLECTION_SIZE):
            push.send_creates(creates, id_field, attempts)
    progress(
        f"crm_push: {len(plan.writes):,} updates and {plan.creates:,} creates planned in all, "
        f"{len(plan.not_pushed):,} edits not sent"
    )
    run.api_calls = client.api_calls - calls_before
    run.api_usage = client.api_usage
    run.rows_read = len(plan.writes) + plan.creates
    run.rows_upserted = sum(n for o, n in push.outcomes.counts().items() if o.success) + sum(
        o.record_id is not None for o in push.created.values()
    )
    run.rows_rejected = run.rows_read - run.rows_upserted
    with engine.begin() as conn:
        run.record(conn)
    return PushResult(plan=plan, outcomes=push.outcomes, created=push.created, run=run)
