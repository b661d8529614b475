"""Building ``acton_contacts`` (and its quarantine, ``acton_contact_rejects``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    delete,
    exists,
    or_,
    select,
    union,
)

from acton_pipelines.build.act_on_values import keep_act_on_values
from acton_pipelines.build.contact_candidates import (
    contact_candidates,
    lead_candidates,
    mirror_tables,
    read_chunks,
    touched_by_runs,
)
from acton_pipelines.contact_values import conform_contacts
from acton_pipelines.crm.objects import CONTACT, CRM_TABLES, LEAD
from acton_pipelines.crm.window import SyncWindow
from acton_pipelines.mapping.models import DataType, Mapping
from acton_pipelines.warehouse.catch_up import pending_upstream
from acton_pipelines.warehouse.staged_load import StagedLoad
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import (
    acton_contact_rejects,
    acton_contacts_table,
    sync_deletions,
)

CHUNK_SIZE = 5_000
ACTON_CONTACTS = "acton_contacts"


@dataclass
class ContactBuild:
    """What one build of ``acton_contacts`` did."""

    run: SyncRun
    rejects_by_reason: dict[str, int]
    removed_as_duplicates: int


def _dates_as_python(frame: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    # Date columns travel as datetime64 in pandas; the DB's DATE column wants dates.
    for field in mapping.fields:
        if field.type is DataType.DATE and field.column in frame:
            frame[field.column] = [d.date() if pd.notna(d) else None for d in frame[field.column]]
    return frame


def _drop_duplicates_by_policy(conn: Connection, stage: Table, policy: str) -> int:
    """Apply ``duplicate_email_policy`` to the staged contacts; returns rows removed.

    ``keep_both`` removes nothing; ``prefer_contact`` drops a Lead whose email a Contact has;
    ``most_recent`` keeps the most recently modified record per email (ties go to the Contact).
    """
    if policy == "keep_both":
        return 0
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
    statement = delete(stage).where(exists(select(other.c.contact_id).where(same_email, beaten)))
    return conn.execute(statement).rowcount or 0


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
    (the contact still loads). The merge, the removals and the ``sync_runs`` row (with the
    upstream mark it reached) commit together.
    """
    tables = mirror_tables(engine)
    target = acton_contacts_table(mapping)
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
                lead_candidates(tables, mapping, scope.get(LEAD.table)),
                contact_candidates(tables, mapping, scope.get(CONTACT.table)),
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
                removed = _drop_duplicates_by_policy(
                    conn, contacts.stage, mapping.duplicate_email_policy
                )
                keep_act_on_values(conn, contacts.stage, target, mapping)
                from_crm = target.c.source == "crm"
                if everything:
                    stale = contacts.missing(from_crm)
                else:
                    changed = _changed_records(tables, upstream.runs(), contacts.stage)
                    stale = contacts.missing(from_crm & target.c.external_id.in_(changed))
                run.rows_deleted = conn.execute(delete(target).where(stale)).rowcount or 0
                run.rows_upserted = contacts.merge(conn).upserted
                mapped = acton_contact_rejects.c.contact_id.in_(select(contacts.stage.c.contact_id))
                gone = acton_contact_rejects.c.contact_id.not_in(select(target.c.contact_id))
                run.rows_rejected = rejects.merge(
                    conn, reconcile=True, reconcile_where=None if everything else mapped
                ).upserted
                conn.execute(delete(acton_contact_rejects).where(gone))
                run.record(conn)
    except Exception as error:
        run.record_failure(engine, error)
        raise
    return ContactBuild(run=run, rejects_by_reason=reasons, removed_as_duplicates=removed)
