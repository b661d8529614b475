"""Reading acton_contacts back: types restored without re-checking, only the columns asked for."""

from __future__ import annotations

import pandas as pd
from pandas.testing import assert_frame_equal

from acton_pipelines.contacts.frames import contact_chunks
from acton_pipelines.contacts.values import conform_contacts
from acton_pipelines.mapping.loader import load_mapping
from acton_pipelines.mapping.models import FieldMapping, Mapping
from acton_pipelines.scores.rules import fields_read as score_fields_read
from acton_pipelines.segments.rules import fields_read as segment_fields_read
from acton_pipelines.warehouse.engine import warehouse_engine
from tests.conftest import REPO_CONFIG, ActonHome


def test_restored_types_equal_a_full_conform_of_the_same_rows(
    synced_home_each_backend: ActonHome,
) -> None:
    # The stored values were conformed on their way in: conforming them again (checks and all)
    # must give exactly what restoring their types gives, and reject nothing.
    mapping = load_mapping(REPO_CONFIG)
    engine = warehouse_engine(synced_home_each_backend.warehouse_url)

    chunks = list(contact_chunks(engine, mapping, chunk_size=500))

    assert len(chunks) > 1
    for chunk in chunks:
        stored = chunk.astype(object).where(chunk.notna(), None)
        again = conform_contacts(stored, mapping)
        assert again.rejects.empty
        assert_frame_equal(chunk, again.contacts)
        for field in mapping.fields:
            assert str(chunk[field.column].dtype) != "object", field.column


def test_only_the_fields_a_rule_reads_are_read(synced_home_each_backend: ActonHome) -> None:
    mapping = load_mapping(REPO_CONFIG)
    engine = warehouse_engine(synced_home_each_backend.warehouse_url)
    everything = pd.concat(contact_chunks(engine, mapping, chunk_size=1_000), ignore_index=True)

    for fields in (score_fields_read(mapping), segment_fields_read(mapping)):
        assert fields
        some = pd.concat(
            contact_chunks(engine, mapping, chunk_size=1_000, fields=fields), ignore_index=True
        )
        expected = ["contact_id", "external_id", "record_type"] + [
            column
            for column in everything.columns
            if column in fields or any(f.column == column for f in _mapped(mapping, fields))
        ]
        assert sorted(some.columns) == sorted(dict.fromkeys(expected))
        assert len(some.columns) < len(everything.columns)
        assert_frame_equal(some, everything[list(some.columns)])


def _mapped(mapping: Mapping, fields: set[str]) -> list[FieldMapping]:
    return [field for field in mapping.fields if field.destination in fields]
