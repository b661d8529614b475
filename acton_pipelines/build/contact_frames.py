"""Reading ``acton_contacts`` back as typed DataFrames, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from sqlalchemy import Engine, inspect, select

from acton_pipelines.build.contact_candidates import read_chunks
from acton_pipelines.contact_values import conform_contacts
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.warehouse.tables import acton_contacts_table


def contact_chunks(engine: Engine, mapping: Mapping, chunk_size: int) -> Iterator[pd.DataFrame]:
    """``acton_contacts`` in chunks, every mapped column typed by its data type."""
    if "acton_contacts" not in inspect(engine).get_table_names():
        raise RuntimeError(
            "the warehouse has no acton_contacts yet: materialize acton_contacts first "
            "(`acton sync full`)."
        )
    table = acton_contacts_table(mapping)
    statement = select(table).order_by(table.c.contact_id)
    for chunk in read_chunks(engine, statement, chunk_size):
        # Values were conformed on the way in; this only restores their pandas types.
        yield conform_contacts(chunk, mapping).contacts
