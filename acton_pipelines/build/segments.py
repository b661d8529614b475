"""Building ``segments`` and ``segment_members``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from acton_pipelines.build.contact_frames import contact_chunks
from acton_pipelines.crm.window import SyncWindow
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.segmentation import segment_definitions, segment_members
from acton_pipelines.warehouse.staged_load import StagedLoad
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
    """Evaluate the default and custom segments over every Act-On contact.

    Each membership records the rule that matched. Memberships that no longer hold, and
    segments removed from the mapping, are deleted in the same transaction. Returns the run
    record and the size of each segment.
    """
    run = SyncRun(run_id=run_id, object="segment_members", mode=window.mode)
    sizes: Counter[str] = Counter()
    try:
        with (
            StagedLoad(engine, members_table, ["segment", "contact_id"]) as members,
            StagedLoad(engine, segments_table, ["segment"]) as definitions,
        ):
            for contacts in contact_chunks(engine, mapping, chunk_size):
                chunk = segment_members(contacts, mapping)
                chunk["sync_run_id"] = run_id
                members.append(chunk)
                sizes.update(chunk["segment"].value_counts().to_dict())
                run.rows_read += len(contacts)
                progress(f"segments: placed {run.rows_read:,} contacts")
            frame = segment_definitions(mapping)
            frame["member_count"] = [sizes.get(name, 0) for name in frame["segment"]]
            frame["updated_at"] = utc_now()
            frame["sync_run_id"] = run_id
            definitions.append(frame)
            with engine.begin() as conn:
                definitions.merge(conn, reconcile=True)
                counts = members.merge(conn, reconcile=True)
                run.rows_upserted, run.rows_deleted = counts.upserted, counts.deleted
                run.record(conn)
    except Exception as error:
        run.record_failure(engine, error)
        raise
    return run, {name: sizes.get(name, 0) for name in segment_definitions(mapping)["segment"]}
