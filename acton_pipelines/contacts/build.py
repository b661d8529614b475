"""Building ``acton_contacts`` (and its quarantine, ``acton_contact_rejects``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from acton_pipelines.contacts.act_on_values import (
    CrmOptOuts,
    keep_act_on_values,
    opt_out_listed_contacts,
    record_crm_opt_outs,
)
from acton_pipelines.contacts.candidates import (
    contact_candidates,
    lead_candidates,
    mirror_tables,
    read_chunks,
    touched_by_runs,
)
from acton_pipelines.contacts.values import conform_contacts
from acton_pipelines.crm.objects import CONTACT, CRM_TABLES, LEAD
from acton_pipelines.mapping.models import DataType, Mapping
from acton_pipelines.runs.window import SyncWindow
from acton_pipelines.warehouse.catch_up import Upstream, pending_upstream
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import StagedLoad, upsert_records
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import (
    acton_activity,
    acton_contact_rejects,
    acton_contacts_table,
    acton_field_edits,
    contact_id_changes,
    crm_create_requests,
    duplicate_emails,
    opt_outs,
    sync_deletions,
)

CHUNK_SIZE = 5_000
ACTON_CONTACTS = "acton_contacts"


@dataclass(frozen=True)
class DuplicateReport:
    """What ``duplicate_emails`` holds after a build: shared addresses, and the contacts of
    those addresses kept and not kept."""

    emails: int = 0
    kept: int = 0
    not_kept: int = 0


@dataclass(frozen=True)
class _Merged:
    """What the merge transaction did besides the ``sync_runs`` counts."""

    duplicates: DuplicateReport
    crm_opt_outs: CrmOptOuts
    contact_id_changes: int


@dataclass
class ContactBuild:
    """What one build of ``acton_contacts`` did."""

    run: SyncRun
    rejects_by_reason: dict[str, int]
    removed_as_duplicates: int
    duplicates: DuplicateReport = dataclass_field(default_factory=DuplicateReport)
    crm_opt_outs: CrmOptOuts = dataclass_field(default_factory=CrmOptOuts)
    contact_id_changes: int = 0


def _dates_as_python(frame: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    # Date columns travel as datetime64 in pandas; the DB's DATE column wants dates.
    for field in mapping.fields:
        if field.type is DataType.DATE and field.column in frame:
            frame[field.column] = [d.date() if pd.notna(d) else None for d in frame[field.column]]
    return frame


@dataclass(frozen=True)
class DroppedDuplicate:
    """A staged CRM record the duplicate email policy dropped, and the contact kept instead."""

    email: str
    contact_id: str
    record_type: str
    external_id: str
    kept_contact_id: str
    reason: str


def _beaten(stage: Table, policy: str) -> tuple[Any, ColumnElement[bool]]:
    """``other`` (an alias of the stage) and the condition "``other`` beats the staged row":
    under ``prefer_contact`` a Contact beats a Lead with its address; under ``most_recent``
    the record modified later wins (ties go to the Contact, then to the higher contact id)."""
    other = stage.alias("other")
    same_email = and_(
        other.c.email == stage.c.email,
        other.c.contact_id != stage.c.contact_id,
        stage.c.email.is_not(None),
    )
    if policy == "prefer_contact":
        beaten = and_(other.c.record_type == "Contact", stage.c.record_type == "Lead")
    else:
        newer = other.c.crm_modified_at > stage.c.crm_modified_at
        tie = other.c.crm_modified_at == stage.c.crm_modified_at
        beaten = or_(
            newer,
            and_(tie, other.c.record_type == "Contact", stage.c.record_type == "Lead"),
            and_(
                tie,
                other.c.record_type == stage.c.record_type,
                other.c.contact_id > stage.c.contact_id,
            ),
        )
    return other, and_(same_email, beaten)


def _why_dropped(policy: str, pair: Row) -> str:
    """Why the staged record of ``pair`` gave way to its winner (the ``w_`` columns)."""
    if policy == "prefer_contact":
        return f"prefer_contact: Contact {pair.w_external_id} has this address"
    who = f"{pair.w_record_type} {pair.w_external_id}"
    if pair.w_modified_at != pair.crm_modified_at:
        return f"most_recent: {who} was modified later"
    if pair.w_record_type != pair.record_type:
        return f"most_recent: {who} was modified at the same time (ties go to the Contact)"
    return f"most_recent: {who} was modified at the same time (ties go to the higher id)"


def _drop_duplicates_by_policy(
    conn: Connection, stage: Table, policy: str
) -> list[DroppedDuplicate]:
    """Apply ``duplicate_email_policy`` to the staged contacts; returns the records dropped.

    ``keep_both`` drops nothing; ``prefer_contact`` drops a Lead whose email a Contact has;
    ``most_recent`` keeps the most recently modified record per email (ties go to the Contact).
    Each dropped record is reported with the contact kept for its address (the one no other
    record beats; the lowest contact id when several Contacts share it).
    """
    if policy == "keep_both":
        return []
    other, beaten = _beaten(stage, policy)
    pairs = conn.execute(
        select(
            stage.c.email,
            stage.c.contact_id,
            stage.c.record_type,
            stage.c.external_id,
            stage.c.crm_modified_at,
            other.c.contact_id.label("w_contact_id"),
            other.c.record_type.label("w_record_type"),
            other.c.external_id.label("w_external_id"),
            other.c.crm_modified_at.label("w_modified_at"),
        )
        .where(beaten)
        .order_by(stage.c.contact_id, other.c.contact_id)
    ).all()
    losers = {pair.contact_id for pair in pairs}
    kept_for: dict[str, Row] = {}
    for pair in pairs:  # ordered: the first unbeaten winner of each loser is the lowest id
        if pair.w_contact_id not in losers:
            kept_for.setdefault(pair.contact_id, pair)
    for pair in pairs:  # not reached with timestamps set; keeps every loser reported
        kept_for.setdefault(pair.contact_id, pair)
    conn.execute(delete(stage).where(exists(select(other.c.contact_id).where(beaten))))
    return [
        DroppedDuplicate(
            email=row.email,
            contact_id=row.contact_id,
            record_type=row.record_type,
            external_id=row.external_id,
            kept_contact_id=row.w_contact_id,
            reason=_why_dropped(policy, row),
        )
        for row in kept_for.values()
    ]


def _why_kept(policy: str, contact: Row, winners: set[str]) -> str:
    """Why a contact that shares its address was kept, in words."""
    if contact.contact_id in winners and policy == "prefer_contact":
        return "prefer_contact: the Contact is kept; Leads with this address are not"
    if contact.contact_id in winners:
        return "most_recent: modified last of the records with this address"
    if contact.external_id is None and policy != "keep_both":
        return f"{policy}: an Act-On-only contact, kept as a separate contact"
    return f"{policy}: kept as a separate contact"


def _report_duplicates(
    conn: Connection,
    target: Table,
    dropped: list[DroppedDuplicate],
    policy: str,
    run_id: str,
    now: datetime,
) -> DuplicateReport:
    """Rewrite ``duplicate_emails``: the records the policy dropped, then every contact of
    ``acton_contacts`` (Act-On-only ones too) whose address another contact or a dropped
    record shares. Read after the merge, so an incremental build reports every contact, not
    only the ones it staged."""
    conn.execute(delete(duplicate_emails))
    common = {"policy": policy, "sync_run_id": run_id, "recorded_at": now}
    dropped_rows = [
        {
            "email": d.email,
            "contact_id": d.contact_id,
            "object": d.record_type,
            "record_id": d.external_id,
            "kept": False,
            "kept_contact_id": d.kept_contact_id,
            "reason": d.reason,
        }
        | common
        for d in dropped
    ]
    upsert_records(conn, duplicate_emails, dropped_rows, ["email", "contact_id"], update=False)
    # One pass over the email index (GROUP BY) rather than a lookup per contact: at a million
    # contacts the per-row EXISTS cost every incremental sync about 5 s.
    shared_emails = (
        select(target.c.email)
        .where(target.c.email.is_not(None))
        .group_by(target.c.email)
        .having(func.count() > 1)
    )
    shared = target.c.email.in_(shared_emails)
    lost_to = exists(
        select(duplicate_emails.c.email).where(duplicate_emails.c.email == target.c.email)
    )
    kept = conn.execute(
        select(target.c.contact_id, target.c.email, target.c.record_type, target.c.external_id)
        .where(target.c.email.is_not(None), or_(shared, lost_to))
        .order_by(target.c.email, target.c.contact_id)
    ).all()
    winners = {d.kept_contact_id for d in dropped}
    kept_rows = [
        {
            "email": c.email,
            "contact_id": c.contact_id,
            "object": c.record_type if c.external_id is not None else None,
            "record_id": c.external_id,
            "kept": True,
            "kept_contact_id": c.contact_id,
            "reason": _why_kept(policy, c, winners),
        }
        | common
        for c in kept
    ]
    upsert_records(conn, duplicate_emails, kept_rows, ["email", "contact_id"], update=False)
    emails = {r["email"] for r in dropped_rows} | {r["email"] for r in kept_rows}
    return DuplicateReport(emails=len(emails), kept=len(kept_rows), not_kept=len(dropped_rows))


def _identity_change_reason(old_type: str | None, old_id: str | None, new_type: str) -> str:
    if old_id is None:
        return "created_in_crm"
    if old_type == LEAD.name and new_type == CONTACT.name:
        return "lead_converted"
    return "crm_record_changed"


def _continued_contacts(conn: Connection, stage: Table, target: Table) -> list[dict[str, Any]]:
    """``contact_id_changes`` rows of staged contacts whose CRM record is another than the one
    ``acton_contacts`` holds for them (a Lead converted into a new Contact, mostly)."""
    changed = conn.execute(
        select(
            target.c.contact_id,
            target.c.record_type.label("old_object"),
            target.c.external_id.label("old_record_id"),
            stage.c.record_type.label("new_object"),
            stage.c.external_id.label("new_record_id"),
        )
        .join(stage, stage.c.contact_id == target.c.contact_id)
        .where(
            or_(
                target.c.external_id.is_distinct_from(stage.c.external_id),
                target.c.record_type.is_distinct_from(stage.c.record_type),
            )
        )
        .order_by(target.c.contact_id)
    ).all()
    return [
        {
            "old_contact_id": row.contact_id,
            "new_contact_id": row.contact_id,
            "old_object": row.old_object,
            "old_record_id": row.old_record_id,
            "new_object": row.new_object,
            "new_record_id": row.new_record_id,
            "reason": _identity_change_reason(row.old_object, row.old_record_id, row.new_object),
        }
        for row in changed
    ]


def _absorbed_contacts(
    conn: Connection, stage: Table, target: Table, leads: Table, stale: ColumnElement[bool]
) -> list[dict[str, Any]]:
    """``contact_id_changes`` rows of the Lead contacts this build removes because their Lead
    was converted into a Contact that is another contact (one the warehouse already knew)."""
    into = leads.c.convertedcontactid
    survivor_staged = (
        select(func.min(stage.c.contact_id)).where(stage.c.external_id == into).scalar_subquery()
    )
    known = target.alias("known")
    survivor_known = (
        select(func.min(known.c.contact_id)).where(known.c.external_id == into).scalar_subquery()
    )
    absorbed = conn.execute(
        select(
            target.c.contact_id,
            target.c.external_id,
            into.label("contact_record_id"),
            func.coalesce(survivor_staged, survivor_known).label("survivor"),
        )
        .join(leads, leads.c.id == target.c.external_id)
        .where(
            stale,
            target.c.record_type == LEAD.name,
            leads.c.isconverted == literal(True),
            into.is_not(None),
        )
        .order_by(target.c.contact_id)
    ).all()
    return [
        {
            "old_contact_id": row.contact_id,
            "new_contact_id": row.survivor,
            "old_object": LEAD.name,
            "old_record_id": row.external_id,
            "new_object": CONTACT.name,
            "new_record_id": row.contact_record_id,
            "reason": "converted_into_existing_contact",
        }
        for row in absorbed
        if row.survivor is not None and row.survivor != row.contact_id
    ]


def _move_contact_rows(conn: Connection, moves: list[tuple[str, str]]) -> None:
    """Give the surviving contact the activity, edits and create requests of the contacts it
    absorbed (their scores and memberships go with the contact; its own are rebuilt)."""
    if not moves:
        return
    present = set(inspect(conn).get_table_names())
    old, new = bindparam("b_old"), bindparam("b_new")
    params = [{"b_old": o, "b_new": n} for o, n in moves]
    for table in (acton_activity, acton_field_edits):
        if table.name in present:
            statement = update(table).where(table.c.contact_id == old).values(contact_id=new)
            conn.execute(statement, params)
    if crm_create_requests.name in present:
        requests = crm_create_requests
        taken = requests.alias("taken")
        # One request per contact: the survivor's own request, if any, stays the one.
        statement = (
            update(requests)
            .where(
                requests.c.contact_id == old,
                ~exists(select(taken.c.contact_id).where(taken.c.contact_id == new)),
            )
            .values(contact_id=new)
        )
        conn.execute(statement, params)


def _record_contact_id_changes(
    conn: Connection,
    stage: Table,
    target: Table,
    leads: Table,
    stale: ColumnElement[bool],
    run: SyncRun,
    now: datetime,
) -> tuple[int, list[str]]:
    """Record in ``contact_id_changes`` every contact whose CRM record changes with this build,
    and move the rows of contacts absorbed by another; returns the changes recorded and the
    contact ids that absorbed another."""
    continued = _continued_contacts(conn, stage, target)
    absorbed = _absorbed_contacts(conn, stage, target, leads, stale)
    changes = [row | {"changed_at": now, "sync_run_id": run.run_id} for row in continued + absorbed]
    if changes:
        conn.execute(insert(contact_id_changes), changes)
    _move_contact_rows(conn, [(r["old_contact_id"], r["new_contact_id"]) for r in absorbed])
    return len(changes), sorted({r["new_contact_id"] for r in absorbed})


def _changed_records(tables: dict[str, Table], runs: Select, stage: Table) -> CompoundSelect:
    """CRM Ids whose Act-On contact the CRM changes of ``runs`` may have changed or removed."""
    lead, contact = tables[LEAD.table], tables[CONTACT.table]
    return union(
        select(stage.c.external_id),
        select(lead.c.id).where(lead.c.sync_run_id.in_(runs)),
        select(contact.c.id).where(contact.c.sync_run_id.in_(runs)),
        select(sync_deletions.c.record_id).where(
            sync_deletions.c.sync_run_id.in_(runs),
            sync_deletions.c.object.in_([LEAD.name, CONTACT.name]),
        ),
    )


def build_acton_contacts(
    *,
    engine: Engine,
    mapping: Mapping,
    run_id: str,
    window: SyncWindow,
    progress: Callable[[str], Any] = print,
    chunk_size: int = CHUNK_SIZE,
) -> ContactBuild:
    """Map unconverted Leads and Contacts of the CRM mirror onto Act-On contacts.

    The build catches up on every CRM sync committed since its own last successful build
    (``pending_upstream``), not only this run's: a run that failed half-way is healed by the
    next. A full rebuild (a full sync run, a full read among those syncs, or a duplicate email
    policy that compares each contact with all the others) maps every record and removes
    contacts whose CRM record is gone; otherwise only the records those syncs touched (directly,
    or through their account, its opportunities or their owner) are mapped, and the contacts
    of deleted and converted records removed. Values are conformed to the mapping's data types
    chunk by chunk; a bad value becomes NULL and is quarantined in ``acton_contact_rejects``
    (the contact still loads). A contact keeps its ``contact_id`` for life (see
    ``contact_candidates``). In one transaction with the merge, the removals and the
    ``sync_runs`` row (with the upstream mark it reached): the staged CRM opt-outs join
    ``opt_outs``, identity changes go to ``contact_id_changes`` (a contact absorbed by another
    hands over its activity and edits), and ``duplicate_emails`` is rewritten.
    """
    tables = mirror_tables(engine)
    target = acton_contacts_table(mapping)
    # Created with every table at run start (prepare_warehouse); a lone build needs them too.
    for table in (opt_outs, duplicate_emails, contact_id_changes):
        ensure_table(engine, table)
    upstream = pending_upstream(engine, ACTON_CONTACTS, CRM_TABLES)
    progress(upstream.describe())
    everything = (
        window.is_full or upstream.includes_full or mapping.duplicate_email_policy != "keep_both"
    )
    scope = {} if everything else touched_by_runs(tables, upstream.runs())
    run = SyncRun(
        run_id=run_id,
        object=ACTON_CONTACTS,
        mode="full" if everything else "incremental",
        consumed_through=upstream.through,
    )
    reasons: dict[str, int] = {}
    try:
        with (
            StagedLoad(engine, target, ["contact_id"], run_id) as contacts,
            StagedLoad(engine, acton_contact_rejects, ["contact_id", "column"], run_id) as rejects,
        ):
            now = utc_now()
            for statement in (
                lead_candidates(tables, mapping, scope.get(LEAD.table), known=target),
                contact_candidates(tables, mapping, scope.get(CONTACT.table), known=target),
            ):
                for chunk in read_chunks(engine, statement, chunk_size):
                    conformed = conform_contacts(chunk, mapping)
                    frame = _dates_as_python(conformed.contacts.copy(), mapping)
                    frame["updated_at"] = now
                    frame["sync_run_id"] = run_id
                    frame["synced_at"] = now
                    contacts.append(frame)
                    bad = conformed.rejects.assign(sync_run_id=run_id, rejected_at=now)
                    rejects.append(bad)
                    for reason, count in bad["reason"].value_counts().items():
                        reasons[str(reason)] = reasons.get(str(reason), 0) + int(count)
                    run.rows_read += len(chunk)
                    progress(f"acton_contacts: mapped {run.rows_read:,} CRM records")
            with engine.begin() as conn:
                merged = _merge_contacts(
                    conn, contacts, rejects, tables, upstream, mapping, run, everything
                )
    except Exception as error:
        run.record_failure(engine, error)
        raise
    return ContactBuild(
        run=run,
        rejects_by_reason=reasons,
        removed_as_duplicates=merged.duplicates.not_kept,
        duplicates=merged.duplicates,
        crm_opt_outs=merged.crm_opt_outs,
        contact_id_changes=merged.contact_id_changes,
    )


def _follow_crm_stamps(conn: Connection, target: Table, tables: dict[str, Table]) -> None:
    """``crm_modified_at`` takes the mirror's ``SystemModstamp`` where a sync read a record
    again with nothing mirrored changed (our own push's echo): the contact is not rebuilt,
    rescored or re-segmented (its ``sync_run_id`` stays), but shows when the CRM last touched
    it, as a full sync would."""
    for crm_object in (LEAD, CONTACT):
        mirror = tables[crm_object.table]
        same_record = mirror.c.id == target.c.external_id
        stamp = select(mirror.c.systemmodstamp).where(same_record).scalar_subquery()
        moved = exists(
            select(mirror.c.id).where(
                same_record, mirror.c.systemmodstamp.is_distinct_from(target.c.crm_modified_at)
            )
        )
        conn.execute(
            update(target)
            .where(target.c.record_type == crm_object.name, target.c.source == "crm", moved)
            .values(crm_modified_at=stamp)
        )


def _merge_contacts(
    conn: Connection,
    contacts: StagedLoad,
    rejects: StagedLoad,
    tables: dict[str, Table],
    upstream: Upstream,
    mapping: Mapping,
    run: SyncRun,
    everything: bool,
) -> _Merged:
    """The build's one transaction, in order: the CRM's opt-outs join the list (every staged
    flag counts), duplicates are dropped by policy, identity changes are recorded, Act-On's
    own values are kept, then removals, the merge, rejects, the duplicate report and the
    ``sync_runs`` row."""
    stage, target = contacts.stage, contacts.target
    now = utc_now()
    opted_out = record_crm_opt_outs(conn, stage, run.run_id, now)
    policy = mapping.duplicate_email_policy
    dropped = _drop_duplicates_by_policy(conn, stage, policy)
    from_crm = target.c.source == "crm"
    if everything:
        stale = contacts.missing(from_crm)
    else:
        changed = _changed_records(tables, upstream.runs(), stage)
        stale = contacts.missing(from_crm & target.c.external_id.in_(changed))
    changes, survivors = _record_contact_id_changes(
        conn, stage, target, tables[LEAD.table], stale, run, now
    )
    keep_act_on_values(conn, stage, target, mapping)
    run.rows_deleted = conn.execute(delete(target).where(stale)).rowcount or 0
    run.rows_upserted = contacts.merge(conn).upserted
    if not everything:
        _follow_crm_stamps(conn, target, tables)
    mapped = acton_contact_rejects.c.contact_id.in_(select(stage.c.contact_id))
    # NOT EXISTS, not NOT IN: PostgreSQL cannot hash a million-row NOT IN list in work_mem
    # and falls back to scanning acton_contacts once per reject.
    gone = ~exists().where(target.c.contact_id == acton_contact_rejects.c.contact_id)
    run.rows_rejected = rejects.merge(
        conn, reconcile=True, reconcile_where=None if everything else mapped
    ).upserted
    conn.execute(delete(acton_contact_rejects).where(gone))
    opt_out_listed_contacts(conn, target, run.run_id, now)
    if survivors:
        # A contact that absorbed another is rebuilt by the score and segment builds.
        touched = target.c.contact_id.in_(survivors)
        conn.execute(update(target).where(touched).values(sync_run_id=run.run_id))
    duplicates = _report_duplicates(conn, target, dropped, policy, run.run_id, now)
    run.record(conn)
    return _Merged(duplicates=duplicates, crm_opt_outs=opted_out, contact_id_changes=changes)
