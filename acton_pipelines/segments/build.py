"""Building ``segments`` and ``segment_members``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, delete, func, select

from acton_pipelines.contacts.frames import (
    contact_chunks,
    contacts_to_rebuild,
    merge_contact_rows,
)
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.runs.window import SyncWindow
from acton_pipelines.segments.rules import fields_read, segment_definitions, segment_members
from acton_pipelines.warehouse.staged_load import StagedLoad, frame_records, upsert_records
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import segment_members as members_table
from acton_pipelines.warehouse.tables import segments as segments_table

CHUNK_SIZE = 10_000


def build_segments(
    *,
    engine: Engine,
    mapping: Mapping,
    run_id: str,
    window: SyncWindow,
    progress: Callable[[str], Any] = print,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[SyncRun, dict[str, int]]:
    """Evaluate the default and custom segments over the Act-On contacts.

    A full build places every contact; an incremental one the contacts that the
    ``acton_contacts`` builds since its own last build wrote (``contacts_to_rebuild``).
    Each membership records the rule that matched. Memberships that no longer hold, those of
    contacts that are gone, and segments removed from the mapping are deleted, and segment
    sizes recounted, in one transaction. Returns the run record and each segment's size.
    """
    upstream, only_runs = contacts_to_rebuild(
        engine, mapping, "segment_members", run_id, window.is_full
    )
    everything = only_runs is None
    progress(upstream.describe())
    run = SyncRun(
        run_id=run_id,
        object="segment_members",
        mode="full" if everything else "incremental",
        consumed_through=upstream.through,
    )
    try:
        with StagedLoad(engine, members_table, ["segment", "contact_id"], run_id) as members:
            for contacts in contact_chunks(
                engine, mapping, chunk_size, only_runs, fields=fields_read(mapping)
            ):
                chunk = segment_members(contacts, mapping)
                chunk["sync_run_id"] = run_id
                members.append(chunk)
                run.rows_read += len(contacts)
                progress(f"segments: placed {run.rows_read:,} contacts")
            with engine.begin() as conn:
                counts = merge_contact_rows(conn, members, mapping, everything)
                sizes = _segment_sizes(conn, mapping, run_id)
                run.rows_upserted, run.rows_deleted = counts.upserted, counts.deleted
                run.record(conn)
    except Exception as error:
        run.record_failure(engine, error)
        raise
    return run, sizes


def _segment_sizes(conn: Any, mapping: Mapping, run_id: str) -> dict[str, int]:
    """Recount every segment from its members and store the ``segments`` rows."""
    counted = select(members_table.c.segment, func.count()).group_by(members_table.c.segment)
    counts = dict(conn.execute(counted).all())
    frame = segment_definitions(mapping)
    frame["member_count"] = [int(counts.get(name, 0)) for name in frame["segment"]]
    frame["updated_at"] = utc_now()
    frame["sync_run_id"] = run_id
    segments_table.create(conn, checkfirst=True)
    upsert_records(conn, segments_table, frame_records(frame, frame.columns), ["segment"])
    conn.execute(
        delete(segments_table).where(segments_table.c.segment.not_in(list(frame["segment"])))
    )
    return dict(zip(frame["segment"], frame["member_count"], strict=True))
