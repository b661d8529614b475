"""The ``sync_runs`` record: one row per object per run, written with the data it describes."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from acton_pipelines.warehouse.staged_load import insert_row
from acton_pipelines.warehouse.tables import sync_runs

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


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
    status: str = "running"
    message: str | None = None
    started_at: datetime = field(default_factory=utc_now)
    finished_at: datetime | None = None

    def record(self, conn: Connection, status: str = "success") -> None:
        """Write the row inside the caller's transaction (with the data it describes)."""
        self.status = status
        self.finished_at = utc_now()
        sync_runs.create(conn, checkfirst=True)
        insert_row(conn, sync_runs, asdict(self))

    def record_failure(self, engine: Engine, error: BaseException) -> None:
        """Best-effort record of a failed run, in its own transaction: a failure to record it
        (the warehouse itself being down, say) must not hide the error that stopped the run."""
        self.message = f"{type(error).__name__}: {error}"[:2000]
        try:
            with engine.begin() as conn:
                self.record(conn, status="failed")
        except Exception:  # noqa: BLE001
            logger.exception("could not record the failed run in sync_runs")
