"""Building ``contact_scores``: one score per contact per score sheet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from sqlalchemy import Engine, inspect, select

from acton_pipelines.contacts.frames import (
    contact_chunks,
    contacts_to_rebuild,
    merge_contact_rows,
)
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.runs.window import SyncWindow
from acton_pipelines.scores.rules import compute_scores, fields_read
from acton_pipelines.warehouse.staged_load import StagedLoad
from acton_pipelines.warehouse.sync_runs import SyncRun, utc_now
from acton_pipelines.warehouse.tables import acton_activity, contact_scores

CHUNK_SIZE = 10_000


def _activity_of(engine: Engine, contacts: pd.DataFrame) -> pd.DataFrame | None:
    """The imported activity of a chunk's contacts, for the sheets' behaviour rules."""
    if acton_activity.name not in inspect(engine).get_table_names():
        return None
    ids = list(contacts["contact_id"])
    columns = [acton_activity.c[c] for c in ("contact_id", "activity", "occurred_at", "asset")]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).where(acton_activity.c.contact_id.in_(ids))).all()
    return pd.DataFrame(rows, columns=["contact_id", "activity", "occurred_at", "asset"])


def build_contact_scores(
    *,
    engine: Engine,
    mapping: Mapping,
    run_id: str,
    window: SyncWindow,
    progress: Callable[[str], Any] = print,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[SyncRun, dict[str, dict[str, float]]]:
    """Score every Act-On contact with every score sheet; scores of contacts that no longer
    exist (or sheets no longer in the mapping) are removed in the same transaction.

    Only the contacts that the ``acton_contacts`` builds since its own last build wrote are
    rescored, unless everything must be (``contacts_to_rebuild``).

    Returns the run record and, per sheet, the count, mean and max of its scores.
    """
    upstream, only_runs = contacts_to_rebuild(
        engine, mapping, "contact_scores", run_id, window.is_full
    )
    everything = only_runs is None
    progress(upstream.describe())
    run = SyncRun(
        run_id=run_id,
        object="contact_scores",
        mode="full" if everything else "incremental",
        consumed_through=upstream.through,
    )
    totals: dict[str, dict[str, float]] = {}
    try:
        with StagedLoad(engine, contact_scores, ["contact_id", "score_sheet"], run_id) as load:
            computed_at = utc_now()
            for contacts in contact_chunks(
                engine, mapping, chunk_size, only_runs, fields=fields_read(mapping)
            ):
                scores = compute_scores(
                    contacts, mapping, computed_at, activity=_activity_of(engine, contacts)
                )
                scores["sync_run_id"] = run_id
                load.append(scores)
                for sheet, values in scores.groupby("score_sheet")["score"]:
                    stats = totals.setdefault(str(sheet), {"count": 0, "sum": 0.0, "max": 0.0})
                    stats["count"] += len(values)
                    stats["sum"] += float(values.sum())
                    stats["max"] = max(stats["max"], float(values.max()))
                run.rows_read += len(contacts)
                progress(f"contact_scores: scored {run.rows_read:,} contacts")
            with engine.begin() as conn:
                counts = merge_contact_rows(conn, load, mapping, everything)
                run.rows_upserted, run.rows_deleted = counts.upserted, counts.deleted
                run.record(conn)
    except Exception as error:
        run.record_failure(engine, error)
        raise
    summary = {
        sheet: {
            "contacts": stats["count"],
            "mean": round(stats["sum"] / stats["count"], 1) if stats["count"] else 0.0,
            "max": stats["max"],
        }
        for sheet, stats in totals.items()
    }
    return run, summary
