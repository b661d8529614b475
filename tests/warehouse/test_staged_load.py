"""Staged loads: upsert by key, reconciliation, composite keys, and a killed load."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Table,
    Text,
    insert,
    inspect,
    select,
)

from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import (
    NotColumnar,
    StagedLoad,
    arrow_chunk,
    frame_records,
)


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


def typed_table(name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("note", Text),
        Column("flag", Boolean),
        Column("count", BigInteger),
        Column("amount", Float),
        Column("at", DateTime(timezone=True)),
        Column("on", Date),
    )


# Every kind of value a CRM page or a build hands the load, with the values that break naive
# CSV or text COPY: NULL next to the empty string, separators, quotes, backslashes, COPY's
# end-of-data marker, line breaks, non-ASCII text, microseconds, an offset that is not UTC.
TRICKY_TEXT = [
    "",
    "tab\there",
    "line\nbreak\r\nand CR\r",
    'quote " and "" twice',
    "back\\slash \\N \\.",
    "\\.",
    "comma, semicolon; pipe|",
    "naïve café ☕ 日本語 \U0001f600",
    "  spaces kept  ",
    "NULL",
]


def tricky_frame() -> pd.DataFrame:
    count = len(TRICKY_TEXT) + 1
    at = [datetime(2026, 11, 26, 10, 0, i, 123456 * (i % 2), tzinfo=UTC) for i in range(count)]
    at[3] = datetime(2026, 11, 26, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    at[4] = None
    frame = pd.DataFrame(
        {
            "id": [f"r{i:02d}" for i in range(count)],
            "note": pd.Series([*TRICKY_TEXT, None], dtype=object),
            "flag": pd.Series(
                [True, False, None] * (count // 3) + [True] * (count % 3), dtype=object
            ),
            "count": pd.Series([0, -1, 2**62, None] + list(range(count - 4)), dtype=object),
            "amount": pd.Series(
                [0.1, 1 / 3, 1e300, -2.5e-300, None, float("nan"), 12.0]
                + [float(i) for i in range(count - 7)],
                dtype=object,
            ),
            "on": pd.Series(
                [date(1980, 2, 29), None, date(4000, 12, 31)] + [date(2026, 1, 1)] * (count - 3),
                dtype=object,
            ),
        }
    )
    # A datetime64 column as page_frame gives one, with a row that is NaT.
    frame["at"] = pd.to_datetime(pd.Series(at, dtype=object), utc=True)
    return frame


def stored(engine: Engine, table: Table) -> list[tuple]:
    """Every row as SQLAlchemy reads it back, timestamps compared as instants."""
    with engine.connect() as conn:
        rows = conn.execute(select(table).order_by(table.c.id)).all()
    return [
        tuple(v.replace(tzinfo=v.tzinfo or UTC) if isinstance(v, datetime) else v for v in row)
        for row in rows
    ]


def raw(engine: Engine, table: Table) -> list[tuple]:
    """Every row as the database holds it (SQLite: the stored text of dates and datetimes)."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f'SELECT * FROM "{table.name}" ORDER BY id')]


def test_the_columnar_load_stores_exactly_what_the_driver_would(engine: Engine) -> None:
    frame = tricky_frame()
    columnar, reference = typed_table("columnar"), typed_table("reference")
    # The frame really takes the columnar way (Arrow types every column).
    assert arrow_chunk(frame, list(frame.columns), columnar).num_rows == len(frame)
    load(engine, columnar, frame, False)
    ensure_table(engine, reference)
    with engine.begin() as conn:
        conn.execute(insert(reference), frame_records(frame, frame.columns))

    assert raw(engine, columnar) == raw(engine, reference)
    rows = {row[0]: row for row in stored(engine, columnar)}
    assert [rows[f"r{i:02d}"][1] for i in range(len(TRICKY_TEXT) + 1)] == [*TRICKY_TEXT, None]
    first, fourth, fifth, sixth = rows["r00"], rows["r03"], rows["r04"], rows["r05"]
    assert first[2:] == (
        True,
        0,
        0.1,
        datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),
        date(1980, 2, 29),
    )
    assert rows["r01"][2:5] == (False, -1, 1 / 3)
    assert rows["r02"][2:4] == (None, 2**62) and rows["r02"][4] == 1e300
    assert rows["r01"][5] == datetime(2026, 11, 26, 10, 0, 1, 123456, tzinfo=UTC)
    assert fourth[3] is None and fourth[5] == datetime(2026, 11, 26, 10, 30, tzinfo=UTC)
    assert fifth[4] is None and fifth[5] is None
    assert sixth[4] is None  # NaN is NULL


def test_values_arrow_cannot_type_still_load_as_the_driver_takes_them(engine: Engine) -> None:
    table = people_table()
    frame = pd.DataFrame({"id": ["a", "b"], "name": pd.Series(["Ann", 5], dtype=object)})
    with pytest.raises(NotColumnar):
        arrow_chunk(frame, ["id", "name"], table)
    load(engine, table, frame, False)
    assert rows(engine, table) == {"a": "Ann", "b": "5"}
