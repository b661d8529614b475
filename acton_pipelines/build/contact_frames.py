"""Reading ``acton_contacts`` back as typed DataFrames, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from sqlalchemy import Connection, Engine, delete, inspect, select

from acton_pipelines.build.contact_candidates import read_chunks
from acton_pipelines.contact_values import conform_contacts
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.warehouse.staged_load import MergeCounts, StagedLoad
from acton_pipelines.warehouse.tables import acton_contacts_table, sync_runs


def contacts_rebuilt_in_run(engine: Engine, run_id: str) -> str | None:
    """How this run rebuilt ``acton_contacts`` (``"full"``/``"incremental"``), or ``None``."""
    statement = select(sync_runs.c.mode).where(
        sync_runs.c.run_id == run_id, sync_runs.c.object == "acton_contacts"
    )
    with engine.connect() as conn:
        return conn.execute(statement).scalar_one_or_none()


def contact_chunks(
    engine: Engine, mapping: Mapping, chunk_size: int, only_run: str | None = None
) -> Iterator[pd.DataFrame]:
    """``acton_contacts`` in chunks, every mapped column typed by its data type; with
    ``only_run``, just the contacts that run wrote."""
    if "acton_contacts" not in inspect(engine).get_table_names():
        raise RuntimeError(
            "the warehouse has no acton_contacts yet: materialize acton_contacts first "
            "(`acton sync full`)."
        )
    table = acton_contacts_table(mapping)
    statement = select(table).order_by(table.c.contact_id)
    if only_run is not None:
        statement = statement.where(table.c.sync_run_id == only_run)
    for chunk in read_chunks(engine, statement, chunk_size):
        # Values were conformed on the way in; this only restores their pandas types.
        yield conform_contacts(chunk, mapping).contacts


def merge_contact_rows(
    conn: Connection, load: StagedLoad, mapping: Mapping, everything: bool
) -> MergeCounts:
    """Merge the staged rows of a per-contact table (scores, memberships).

    A full build replaces every row; an incremental one the rows of the contacts it staged.
    Rows of contacts no longer in ``acton_contacts`` are removed either way.
    """
    table = load.target
    staged = table.c.contact_id.in_(select(load.stage.c.contact_id))
    counts = load.merge(conn, reconcile=True, reconcile_where=None if everything else staged)
    contact_ids = select(acton_contacts_table(mapping).c.contact_id)
    removed = conn.execute(delete(table).where(table.c.contact_id.not_in(contact_ids))).rowcount
    return MergeCounts(upserted=counts.upserted, deleted=counts.deleted + (removed or 0))
