"""Building ``acton_contacts`` (and its quarantine, ``acton_contact_rejects``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Table, and_, delete, exists, or_, select

from acton_pipelines.build.contact_candidates import (
    contact_candidates,
    lead_candidates,
    mirror_tables,
    read_chunks,
)
from acton_pipelines.contact_values import conform_contacts
from acton_pipelines.crm.window import SyncWindow
from acton_pipelines.mapping.models import DataType, Mapping
from acton_pipelines.warehouse.staged_load import StagedLoad
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import acton_contact_rejects, acton_contacts_table

CHUNK_SIZE = 5_000


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


def build_acton_contacts(
    *,
    engine: Engine,
    mapping: Mapping,
    run_id: str,
    window: SyncWindow,
    progress: Callable[[str], Any] = print,
    chunk_size: int = CHUNK_SIZE,
) -> ContactBuild:
    """Map every unconverted Lead and every Contact of the CRM mirror onto an Act-On contact.

    Values are conformed to the mapping's data types chunk by chunk; a bad value becomes NULL
    and is quarantined in ``acton_contact_rejects`` (the contact still loads). The merge, the
    removal of contacts whose CRM record is gone (full sync) and the ``sync_runs`` row commit
    together.
    """
    tables = mirror_tables(engine)
    target = acton_contacts_table(mapping)
    run = SyncRun(run_id=run_id, object="acton_contacts", mode=window.mode)
    reasons: dict[str, int] = {}
    try:
        with (
            StagedLoad(engine, target, ["contact_id"]) as contacts,
            StagedLoad(engine, acton_contact_rejects, ["contact_id", "column"]) as rejects,
        ):
            now = utc_now()
            for statement in (
                lead_candidates(tables, mapping),
                contact_candidates(tables, mapping),
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
                counts = contacts.merge(
                    conn, reconcile=window.is_full, reconcile_where=target.c.source == "crm"
                )
                rejected = rejects.merge(conn, reconcile=window.is_full)
                run.rows_upserted, run.rows_deleted = counts.upserted, counts.deleted
                run.rows_rejected = rejected.upserted
                run.record(conn)
    except Exception as error:
        run.record_failure(engine, error)
        raise
    return ContactBuild(run=run, rejects_by_reason=reasons, removed_as_duplicates=removed)
