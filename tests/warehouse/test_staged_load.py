"""Staged loads: upsert by key, reconciliation, composite keys, and a killed load."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, Table, Text, inspect, select

from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import StagedLoad


@pytest.fixture
def engine(warehouse_url: str) -> Engine:
    """An empty warehouse on each backend (SQLite, PostgreSQL)."""
    return warehouse_engine(warehouse_url)


def people_table(*extra: Column) -> Table:
    return Table(
        "people", MetaData(), Column("id", Text, primary_key=True), Column("name", Text), *extra
    )


def rows(engine: Engine, table: Table) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(table.c.id, table.c.name)).all())


def load(engine: Engine, table: Table, frame: pd.DataFrame, reconcile: bool) -> tuple[int, int]:
    with StagedLoad(engine, table, ["id"]) as staged:
        staged.append(frame)
        with engine.begin() as conn:
            counts = staged.merge(conn, reconcile=reconcile)
    return counts.upserted, counts.deleted


def test_merge_inserts_then_updates_by_key(engine: Engine) -> None:
    table = people_table()
    load(engine, table, pd.DataFrame({"id": ["a", "b"], "name": ["Ann", "Bob"]}), False)
    upserted, deleted = load(engine, table, pd.DataFrame({"id": ["b"], "name": ["Bobby"]}), False)
    assert (upserted, deleted) == (1, 0)
    assert rows(engine, table) == {"a": "Ann", "b": "Bobby"}


def test_reconcile_deletes_rows_the_load_did_not_bring(engine: Engine) -> None:
    table = people_table()
    load(engine, table, pd.DataFrame({"id": ["a", "b", "c"], "name": ["A", "B", "C"]}), False)
    upserted, deleted = load(engine, table, pd.DataFrame({"id": ["b"], "name": ["B2"]}), True)
    assert (upserted, deleted) == (1, 2)
    assert rows(engine, table) == {"b": "B2"}


def test_repeated_key_within_a_load_keeps_the_last_value(engine: Engine) -> None:
    table = people_table()
    with StagedLoad(engine, table, ["id"]) as staged:
        staged.append(pd.DataFrame({"id": ["a"], "name": ["first"]}))
        staged.append(pd.DataFrame({"id": ["a"], "name": ["second"]}))
        with engine.begin() as conn:
            staged.merge(conn)
    assert rows(engine, table) == {"a": "second"}


def test_composite_key_reconciliation(engine: Engine) -> None:
    table = Table(
        "scores",
        MetaData(),
        Column("contact_id", Text, primary_key=True),
        Column("sheet", Text, primary_key=True),
        Column("score", Integer),
    )
    first = pd.DataFrame(
        {"contact_id": ["a", "a", "b"], "sheet": ["x", "y", "x"], "score": [1, 2, 3]}
    )
    with StagedLoad(engine, table, ["contact_id", "sheet"]) as staged:
        staged.append(first)
        with engine.begin() as conn:
            staged.merge(conn)
    with StagedLoad(engine, table, ["contact_id", "sheet"]) as staged:
        staged.append(pd.DataFrame({"contact_id": ["a"], "sheet": ["y"], "score": [5]}))
        with engine.begin() as conn:
            counts = staged.merge(conn, reconcile=True)
    with engine.connect() as conn:
        left = conn.execute(select(table)).all()
    assert counts.deleted == 2
    assert left == [("a", "y", 5)]


def test_a_load_that_fails_before_its_merge_leaves_the_table_and_no_stage(engine: Engine) -> None:
    table = people_table()
    load(engine, table, pd.DataFrame({"id": ["a"], "name": ["Ann"]}), False)
    with pytest.raises(RuntimeError), StagedLoad(engine, table, ["id"]) as staged:
        staged.append(pd.DataFrame({"id": ["a", "z"], "name": ["changed", "Zed"]}))
        raise RuntimeError("killed half-way")
    assert rows(engine, table) == {"a": "Ann"}
    assert [t for t in inspect(engine).get_table_names() if t.startswith("_stage")] == []


def test_a_merge_that_fails_rolls_back_with_everything_in_its_transaction(engine: Engine) -> None:
    table = people_table()
    load(engine, table, pd.DataFrame({"id": ["a", "b"], "name": ["Ann", "Bob"]}), False)
    with pytest.raises(RuntimeError), StagedLoad(engine, table, ["id"]) as staged:
        staged.append(pd.DataFrame({"id": ["a"], "name": ["changed"]}))
        with engine.begin() as conn:
            staged.merge(conn, reconcile=True)
            raise RuntimeError("the sync_runs write failed")
    assert rows(engine, table) == {"a": "Ann", "b": "Bob"}


def test_nulls_and_nan_are_stored_as_null(engine: Engine) -> None:
    table = people_table(Column("age", Integer))
    frame = pd.DataFrame({"id": ["a", "b"], "name": [None, "B"], "age": [float("nan"), 3.0]})
    frame["age"] = frame["age"].astype("Int64")
    load(engine, table, frame, False)
    with engine.connect() as conn:
        stored = sorted(conn.execute(select(table)).all())
    assert stored == [("a", None, None), ("b", "B", 3)]


def test_ensure_table_adds_a_new_mapped_column_and_keeps_the_data(engine: Engine) -> None:
    load(engine, people_table(), pd.DataFrame({"id": ["a"], "name": ["Ann"]}), False)
    wider = people_table(Column("renewal_date", Text))
    added = ensure_table(engine, wider)
    assert added == ["renewal_date"]
    assert rows(engine, wider) == {"a": "Ann"}
    assert ensure_table(engine, wider) == []
