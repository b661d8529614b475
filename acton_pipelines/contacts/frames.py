"""Reading ``acton_contacts`` back as typed DataFrames, chunk by chunk."""

from __future__ import annotations

from collections.abc import Collection, Iterator

import pandas as pd
from sqlalchemy import Connection, Engine, Select, delete, exists, inspect, select

from acton_pipelines.contacts.candidates import read_chunks
from acton_pipelines.contacts.values import KEY_COLUMNS, restore_types
from acton_pipelines.mapping.conditions import resolve_field
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.warehouse.catch_up import (
    Upstream,
    mapping_changed_since_last_build,
    pending_upstream,
)
from acton_pipelines.warehouse.staged_load import MergeCounts, StagedLoad
from acton_pipelines.warehouse.tables import acton_contacts_table


def contacts_to_rebuild(
    engine: Engine, mapping: Mapping, table: str, run_id: str, full: bool
) -> tuple[Upstream, Select | None]:
    """What a per-contact table (scores, memberships) rebuilds: the ``acton_contacts`` builds
    committed since its own last successful build, and the ``SELECT run_id`` of those builds
    whose contacts to take, or ``None`` for every contact (a full run, a full contacts build
    among them, or a mapping version other than the last build's: sheets or rules may have
    changed)."""
    upstream = pending_upstream(engine, table, ("acton_contacts",))
    everything = (
        full or upstream.includes_full or mapping_changed_since_last_build(engine, table, run_id)
    )
    return upstream, None if everything else upstream.runs()


def contact_chunks(
    engine: Engine,
    mapping: Mapping,
    chunk_size: int,
    only_runs: Select | None = None,
    fields: Collection[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """``acton_contacts`` in chunks, every mapped column typed by its data type; with
    ``only_runs`` (a ``SELECT run_id``), just the contacts those runs wrote last; with
    ``fields`` (destination names or built-in columns, as rules name them), only those columns
    besides ``contact_id``, ``external_id`` and ``record_type``."""
    if "acton_contacts" not in inspect(engine).get_table_names():
        raise RuntimeError(
            "the warehouse has no acton_contacts yet: materialize acton_contacts first "
            "(`acton sync full`)."
        )
    table = acton_contacts_table(mapping)
    typed = mapping.fields
    columns = list(table.c)
    if fields is not None:
        # Reading back is most of what scores and segments cost: read only what their rules use.
        wanted = {*KEY_COLUMNS, *(resolve_field(name, mapping)[0] for name in fields)}
        columns = [column for column in columns if column.name in wanted]
        typed = [field for field in mapping.fields if field.column in wanted]
    statement = select(*columns).order_by(table.c.contact_id)
    if only_runs is not None:
        statement = statement.where(table.c.sync_run_id.in_(only_runs))
    for chunk in read_chunks(engine, statement, chunk_size):
        yield restore_types(chunk, typed)


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
    contacts = acton_contacts_table(mapping)
    # NOT EXISTS, not NOT IN (see contacts/build.py): an anti-join at any size.
    gone = ~exists().where(contacts.c.contact_id == table.c.contact_id)
    removed = conn.execute(delete(table).where(gone)).rowcount
    return MergeCounts(upserted=counts.upserted, deleted=counts.deleted + (removed or 0))
