"""Loads that stage rows first and merge them in one short transaction.

Rows arrive in chunks (pages from the CRM, chunks of contacts) and go into a staging table in
small transactions, so a long extraction never holds the warehouse's write lock. The merge into
the target (upsert by key, optional reconciliation of rows the load did not bring, and the
``sync_runs`` record) is one transaction: it commits entirely or not at all, and a run killed
half-way leaves the target as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
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
    """DataFrame rows as plain Python values for the DB driver: NA/NaN/NaT become ``None``."""
    subset = frame[list(columns)].astype(object)
    subset = subset.where(subset.notna(), None)
    return subset.to_dict("records")


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
    """PostgreSQL ``COPY ... FROM STDIN`` of ``rows`` into ``table`` (psycopg 3)."""
    from psycopg import sql

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table.name), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    driver_connection = conn.connection.driver_connection
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)


class StagedLoad:
    """Stage rows for ``target`` and merge them by ``key``.

    Rows are appended to a staging table with ``COPY`` on PostgreSQL and a plain multi-row
    ``INSERT`` on SQLite. A key staged twice (overlapping pages or windows) merges its last
    version. Use as a context manager: the staging table is dropped on exit, whatever happened.
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
        records = frame_records(frame, columns)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                copy_rows(conn, self.stage, columns, [tuple(r.values()) for r in records])
            else:
                conn.execute(insert(self.stage), records)
        self.staged_rows += len(frame)

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
