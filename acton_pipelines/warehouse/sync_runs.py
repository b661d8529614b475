"""The ``sync_runs`` record: one row per object per run, written with the data it describes.

Each row takes the next value of ``sync_sequence`` in the transaction that commits it. On
PostgreSQL the counter row stays locked until that commit, and SQLite has one writer at a time,
so ``seq`` is commit order: a reader that has seen row N has seen every committed row below N.
That makes ``seq`` a safe high-water mark for the tables built from other tables: a build
records the newest upstream ``seq`` it took in (``consumed_through``) and the next build
catches up on everything above it, even when the run in between failed half-way.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, inspect, select, update

from acton_pipelines.errors import one_line as text_one_line
from acton_pipelines.warehouse.staged_load import insert_row, upsert_records
from acton_pipelines.warehouse.tables import sync_runs, sync_sequence

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` with its zone: SQLite hands timestamps back naive, and they were written in
    UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def one_line(error: BaseException) -> str:
    """``error`` as one line for ``sync_runs.error`` and run pages (first line, URL passwords
    masked, cut to a few hundred characters); its type when it has no message."""
    return text_one_line(str(error)) or type(error).__name__


def next_seq(conn: Connection) -> int:
    """The next value of the ``sync_runs`` sequence, inside the caller's transaction."""
    upsert_records(
        conn, sync_sequence, [{"name": sync_runs.name, "value": 0}], ["name"], update=False
    )
    statement = (
        update(sync_sequence)
        .where(sync_sequence.c.name == sync_runs.name)
        .values(value=sync_sequence.c.value + 1)
        .returning(sync_sequence.c.value)
    )
    return int(conn.execute(statement).scalar_one())


@dataclass
class SyncRun:
    """What one run did to one object (a CRM table or a derived table)."""

    run_id: str
    object: str
    mode: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows_read: int = 0
    rows_upserted: int = 0
    rows_deleted: int = 0
    rows_rejected: int = 0
    api_calls: int = 0
    # "N/M" from the CRM's Sforce-Limit-Info, as last seen by the step (None: no CRM answer).
    api_usage: str | None = None
    status: str = "running"
    message: str | None = None
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None
    error: str | None = None
    high_water_mark: datetime | None = None
    seq: int | None = None
    consumed_through: int | None = None
    fields_read: str | None = None
    rows_unchanged: int | None = None

    def record(self, conn: Connection, status: str = "success") -> None:
        """Write the row inside the caller's transaction (with the data it describes)."""
        self.status = status
        self.finished_at = utc_now()
        # Normally created with every other table before the run's first step
        # (prepare_warehouse); kept here so a lone build or test on an empty warehouse works.
        for table in (sync_runs, sync_sequence):
            table.create(conn, checkfirst=True)
        self.seq = next_seq(conn)
        insert_row(conn, sync_runs, asdict(self))

    def record_failure(self, engine: Engine, error: BaseException) -> None:
        """Best-effort record of a failed run, in its own transaction: a failure to record it
        (the warehouse itself being down, say) must not hide the error that stopped the run."""
        self.error = one_line(error)
        try:
            with engine.begin() as conn:
                self.record(conn, status="failed")
        except Exception:  # noqa: BLE001
            logger.exception("could not record the failed run in sync_runs")


def last_high_water_mark(engine: Engine, table: str) -> datetime | None:
    """The newest ``SystemModstamp`` the last successful sync of ``table`` (any mode) read,
    carried forward by syncs that read nothing; ``None`` when there is none."""
    if sync_runs.name not in inspect(engine).get_table_names():
        return None
    statement = (
        select(sync_runs.c.high_water_mark)
        .where(
            sync_runs.c.object == table,
            sync_runs.c.status == "success",
            sync_runs.c.high_water_mark.is_not(None),
        )
        .order_by(sync_runs.c.seq.desc().nulls_last(), sync_runs.c.started_at.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        mark = conn.execute(statement).scalar_one_or_none()
    return as_utc(mark)


def last_fields_read(engine: Engine, table: str) -> tuple[str, list[str] | None] | None:
    """The run id of the last successful sync of ``table`` (any mode, by ``seq``) and the CRM
    fields it read (``None`` when it did not record them, as before ``fields_read`` existed);
    ``None`` when there is no successful sync. What a mapping change is compared with."""
    if sync_runs.name not in inspect(engine).get_table_names():
        return None
    statement = (
        select(sync_runs.c.run_id, sync_runs.c.fields_read)
        .where(sync_runs.c.object == table, sync_runs.c.status == "success")
        .order_by(sync_runs.c.seq.desc().nulls_last(), sync_runs.c.started_at.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(statement).first()
    if row is None:
        return None
    if row.fields_read is None:
        return row.run_id, None
    return row.run_id, [f.strip() for f in row.fields_read.split(",") if f.strip()]
