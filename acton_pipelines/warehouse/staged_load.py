"""Loads that stage rows first and merge them in one short transaction.

Rows arrive in chunks (pages from the CRM, chunks of contacts) and go into a staging table in
one transaction per chunk, so a long extraction never holds the warehouse's write lock. A chunk
travels as columns, never as per-record Python dicts: it becomes an Arrow table typed from the
target's columns, sent by PostgreSQL ``COPY`` as CSV written by Arrow, or by SQLite
``executemany`` of tuples zipped from whole columns. The merge into
the target (upsert by key, optional reconciliation of rows the load did not bring, and the
``sync_runs`` record) is one transaction: it commits entirely or not at all, and a run killed
half-way leaves the target as it was.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv as pa_csv
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeEngine

from acton_pipelines.warehouse.schema import ensure_table


def dialect_insert(engine_or_conn: Engine | Connection, table: Table) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the backend in use."""
    name = engine_or_conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"warehouse backend '{name}' is not supported (use SQLite or PostgreSQL)"
    )


def frame_records(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python values for the DB driver: NA/NaN/NaT become ``None``.

    For the few rows SQLAlchemy statements take as dicts; bulk loads go through
    :class:`StagedLoad`, which never builds them."""
    names = list(columns)
    values = [frame[c].to_numpy(dtype=object, na_value=None) for c in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def upsert_records(
    conn: Connection,
    table: Table,
    records: list[dict[str, Any]],
    key: list[str],
    *,
    update: bool = True,
) -> None:
    """Insert rows by key; an existing key is updated, or kept as it is with ``update=False``."""
    if not records:
        return
    statement = dialect_insert(conn, table)
    updates = {c: statement.excluded[c] for c in records[0] if c not in key} if update else {}
    statement = (
        statement.on_conflict_do_update(index_elements=key, set_=updates)
        if updates
        else statement.on_conflict_do_nothing(index_elements=key)
    )
    conn.execute(statement, records)


@dataclass(frozen=True)
class MergeCounts:
    upserted: int
    deleted: int


STAGE_SEQUENCE = "_stage_seq"
STAGE_PREFIX = "_stage_"


def stage_owner(run_id: str | None) -> str:
    """The part of a staging table's name that says which run owns it."""
    return run_id.replace("-", "")[:8] if run_id else "norun"


def drop_abandoned_stages(engine: Engine, live_run_ids: Iterable[str]) -> list[str]:
    """Drop the staging tables whose run is not among ``live_run_ids`` (a run killed with
    ``kill -9`` never reaches the ``finally`` that drops its stages); returns their names."""
    live = {stage_owner(run_id) for run_id in live_run_ids}
    dropped = []
    for name in inspect(engine).get_table_names():
        if not name.startswith(STAGE_PREFIX):
            continue
        owner = name.removeprefix(STAGE_PREFIX).split("_", 1)[0]
        if owner in live:
            continue
        with engine.begin() as conn:
            Table(name, MetaData()).drop(conn, checkfirst=True)
        dropped.append(name)
    return dropped


def copy_rows(conn: Connection, table: Table, columns: list[str], rows: list[tuple]) -> None:
    """PostgreSQL ``COPY ... FROM STDIN`` of ``rows`` into ``table`` (psycopg 3), row by row:
    the way for chunks whose values Arrow cannot type (see :func:`arrow_chunk`)."""
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    driver_connection = conn.connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


# COPY data is handed to psycopg in blocks of this size: few calls, bounded extra memory.
COPY_BLOCK_BYTES = 4 * 1024 * 1024


class NotColumnar(ValueError):
    """A chunk's column whose values do not fit the target column's Arrow type (text holding
    numbers, a type Arrow is not told about): the chunk takes the row-by-row way."""


def _arrow_type(column_type: TypeEngine) -> pa.DataType | None:
    """The Arrow type a warehouse column is sent as, or ``None`` (not sent columnar)."""
    if isinstance(column_type, Boolean):
        return pa.bool_()
    if isinstance(column_type, Integer):
        return pa.int64()
    if isinstance(column_type, Float):
        return pa.float64()
    if isinstance(column_type, DateTime):
        # Naive columns would need the session's time zone to match what the driver did.
        return pa.timestamp("us", tz="UTC") if column_type.timezone else None
    if isinstance(column_type, Date):
        return pa.date32()
    if isinstance(column_type, String):
        return pa.string()
    return None


def arrow_chunk(frame: pd.DataFrame, columns: Sequence[str], table: Table) -> pa.Table:
    """``frame``'s ``columns`` as an Arrow table typed from ``table``'s columns (NaN, NaT and
    ``None`` are null; timestamps to microseconds, as the drivers store them), or
    ``NotColumnar``."""
    arrays = []
    for name in columns:
        arrow_type = _arrow_type(table.c[name].type)
        if arrow_type is None:
            raise NotColumnar(f"column {name} ({table.c[name].type}) is not sent columnar")
        series = frame[name]
        try:
            if pd.api.types.is_datetime64_any_dtype(series.dtype):
                array = pa.array(series, from_pandas=True).cast(arrow_type, safe=False)
            else:
                array = pa.array(series, type=arrow_type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as error:
            raise NotColumnar(f"column {name}: {error}") from None
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(columns))


def copy_chunk(conn: Connection, table: Table, chunk: pa.Table) -> None:
    """PostgreSQL ``COPY ... FROM STDIN (FORMAT csv)`` of ``chunk`` into ``table``: Arrow writes
    the CSV, psycopg sends it in large blocks. Every value is quoted, so only an unquoted empty
    field is NULL and an empty string stays one; text needs no escaping beyond CSV's quotes."""
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table.name),
        sql.SQL(", ").join(sql.Identifier(c) for c in chunk.column_names),
    )
    buffer = io.BytesIO()
    pa_csv.write_csv(
        chunk,
        buffer,
        write_options=pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"),
    )
    data = buffer.getbuffer()
    driver_connection = conn.connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for start in range(0, len(data), COPY_BLOCK_BYTES):
            copy.write(data[start : start + COPY_BLOCK_BYTES])
    data.release()


def _sqlite_column(column: pa.ChunkedArray) -> Any:
    """One column as the values SQLAlchemy's SQLite types would bind (``None`` for null):
    datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC), dates as ``YYYY-MM-DD``, booleans 1/0."""
    if pa.types.is_timestamp(column.type):
        # %S of a microsecond timestamp carries its six decimals.
        column = pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
    elif pa.types.is_date(column.type):
        column = pc.strftime(column, format="%Y-%m-%d")
    elif pa.types.is_boolean(column.type):
        column = column.cast(pa.int64())
    values = column.to_pandas(integer_object_nulls=True)
    return values.to_numpy(dtype=object, na_value=None)


def insert_chunk(conn: Connection, table: Table, chunk: pa.Table) -> None:
    """SQLite ``executemany`` of ``chunk``'s rows, as tuples zipped from whole columns, in
    ``conn``'s transaction."""
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(c) for c in chunk.column_names)
    marks = ", ".join("?" for _ in chunk.column_names)
    statement = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({marks})"
    columns = [_sqlite_column(column) for column in chunk.columns]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement, zip(*columns, strict=True))
    finally:
        cursor.close()


class StagedLoad:
    """Stage rows for ``target`` and merge them by ``key``.

    Rows are appended to a staging table with ``COPY`` on PostgreSQL and ``executemany`` on
    SQLite, a chunk at a time as columns (see the module docstring). A key staged twice
    (overlapping pages or windows) merges its last version. Use as a context manager: the
    staging table is dropped on exit, whatever happened.
    """

    def __init__(
        self, engine: Engine, target: Table, key: list[str], run_id: str | None = None
    ) -> None:
        self.engine = engine
        self.target = target
        self.key = key
        self.staged_rows = 0
        postgres = engine.dialect.name == "postgresql"
        sequence_type = BigInteger().with_variant(Integer(), "sqlite")
        # The owning run's id prefix in the name lets a later run drop the stages of a run that
        # was killed before its `finally` could (drop_abandoned_stages).
        name = f"{STAGE_PREFIX}{stage_owner(run_id)}_{target.name}_{uuid.uuid4().hex[:8]}"
        self.stage = Table(
            name,
            MetaData(),
            Column(STAGE_SEQUENCE, sequence_type, primary_key=True, autoincrement=True),
            *[Column(c.name, c.type) for c in target.columns],
            # The merge and the reconciliation look rows up by key: without an index SQLite
            # would scan the stage once per target row.
            Index(f"ix{name}_key", *key),
            # A crash loses nothing a stage holds (the run fails and starts over), so skip WAL.
            prefixes=["UNLOGGED"] if postgres else [],
        )

    def __enter__(self) -> StagedLoad:
        ensure_table(self.engine, self.target)
        with self.engine.begin() as conn:
            self.stage.create(conn)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.engine.begin() as conn:
            self.stage.drop(conn, checkfirst=True)

    def append(self, frame: pd.DataFrame) -> None:
        """Stage a chunk (columns the target lacks are ignored; missing ones stay NULL)."""
        if frame.empty:
            return
        columns = [c for c in frame.columns if c in self.target.c]
        try:
            chunk: pa.Table | None = arrow_chunk(frame, columns, self.stage)
        except NotColumnar:
            # Values Arrow cannot type exactly go to the driver as they are, as they always did.
            chunk = None
        with self.engine.begin() as conn:
            postgres = conn.dialect.name == "postgresql"
            if chunk is not None and postgres and self._utf8(conn):
                copy_chunk(conn, self.stage, chunk)
            elif chunk is not None and not postgres:
                insert_chunk(conn, self.stage, chunk)
            elif postgres:
                rows = [tuple(r.values()) for r in frame_records(frame, columns)]
                copy_rows(conn, self.stage, columns, rows)
            else:
                conn.execute(insert(self.stage), frame_records(frame, columns))
        self.staged_rows += len(frame)

    @staticmethod
    def _utf8(conn: Connection) -> bool:
        """Whether the PostgreSQL session reads COPY data as UTF-8 (Arrow writes UTF-8)."""
        encoding = conn.connection.driver_connection.info.encoding  # type: ignore[union-attr]
        return str(encoding).replace("_", "-").lower() in ("utf-8", "utf8")

    def _latest_per_key(self) -> ColumnElement[bool]:
        # An alias, so the subquery stays uncorrelated inside an UPDATE of the stage itself.
        staged = self.stage.alias("staged")
        latest = select(func.max(staged.c[STAGE_SEQUENCE])).group_by(
            *[staged.c[k] for k in self.key]
        )
        return self.stage.c[STAGE_SEQUENCE].in_(latest)

    def keep_unchanged(self, conn: Connection, compared: Sequence[str], kept: Sequence[str]) -> int:
        """Give each staged row (the latest per key) whose ``compared`` columns all equal its
        target row's (NULL equal to NULL) the target's ``kept`` columns; returns how many.

        Run before :meth:`merge`, inside its transaction: such a row is still merged (the
        columns left out of ``compared`` are updated) but keeps the ``kept`` values it had, so
        whatever selects rows by them (which run wrote a row) does not see it as changed.
        """
        target, stage = self.target, self.stage
        same_key = and_(*[target.c[k] == stage.c[k] for k in self.key])
        same_values = [target.c[c].is_not_distinct_from(stage.c[c]) for c in compared]
        unchanged = exists(select(target.c[self.key[0]]).where(same_key, *same_values))
        statement = (
            update(stage)
            .where(self._latest_per_key(), unchanged)
            .values({c: select(target.c[c]).where(same_key).scalar_subquery() for c in kept})
        )
        return conn.execute(statement).rowcount or 0

    def missing(self, where: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
        """Condition on the target: rows (matching ``where``) whose key the load did not bring."""
        brought = select(self.stage.c[STAGE_SEQUENCE]).where(
            *[self.stage.c[k] == self.target.c[k] for k in self.key]
        )
        condition = ~exists(brought)
        return condition if where is None else condition & where

    def merge(
        self,
        conn: Connection,
        *,
        reconcile: bool = False,
        reconcile_where: ColumnElement[bool] | None = None,
    ) -> MergeCounts:
        """Upsert the staged rows into the target inside ``conn``'s transaction.

        ``reconcile`` deletes target rows (matching ``reconcile_where``) whose key the load did
        not bring: a full sync's way of removing records that are gone from the CRM.
        """
        names = [c.name for c in self.target.columns]
        latest = self._latest_per_key()
        upserted = conn.execute(
            select(func.count()).select_from(self.stage).where(latest)
        ).scalar_one()
        if upserted:
            rows = select(*[self.stage.c[n] for n in names]).where(latest)
            statement = dialect_insert(conn, self.target).from_select(names, rows)
            statement = statement.on_conflict_do_update(
                index_elements=self.key,
                set_={n: statement.excluded[n] for n in names if n not in self.key},
            )
            conn.execute(statement)
        deleted = 0
        if reconcile:
            statement = delete(self.target).where(self.missing(reconcile_where))
            deleted = conn.execute(statement).rowcount or 0
        return MergeCounts(upserted=upserted, deleted=deleted)


def insert_row(conn: Connection, table: Table, row: Mapping[str, Any]) -> None:
    """Insert or replace one row by the table's primary key."""
    key = [c.name for c in table.primary_key.columns]
    upsert_records(conn, table, [dict(row)], key)
