"""Step failures a user can act on: one line on the run page, the trace kept in the run log.

Every asset body runs inside ``one_line_failure``: whatever stops it becomes a Dagster
``Failure`` whose description is one line saying what went wrong (the CRM unreachable, the
login refused, a table missing, a mass deletion refused, ...). The original exception stays
attached as the cause, so the full trace is still in the run's log for whoever debugs it. The
same line goes to the step's ``sync_runs`` row (``status`` failed, ``error``), also when the
step failed before its build began (a login, the mapping, a missing table).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from dagster import Failure
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import DBAPIError

from acton_pipelines.errors import UserError
from acton_pipelines.errors import one_line as text_one_line
from acton_pipelines.warehouse.sync_runs import SyncRun, one_line
from acton_pipelines.warehouse.tables import sync_runs

logger = logging.getLogger(__name__)

# Errors whose message already says what is wrong and how to fix it.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError)


def failure_cause(error: BaseException) -> str:
    """One line saying why a step failed."""
    if isinstance(error, USER_ERRORS):
        return one_line(error)
    if isinstance(error, DBAPIError):
        return f"warehouse error ({type(error.orig).__name__}): {one_line(error.orig)}"
    return f"{type(error).__name__}: {one_line(error)}"


@dataclass(frozen=True)
class StepRecord:
    """Where a failed step is recorded: its ``sync_runs`` row (``run_id``, ``object``)."""

    engine: Engine
    run_id: str
    object: str
    mode: str


def _record_if_missing(record: StepRecord, cause: str) -> None:
    """A failed ``sync_runs`` row for the step, unless its build already wrote one (with its
    counts); best effort: the warehouse may be what failed."""
    try:
        if sync_runs.name in inspect(record.engine).get_table_names():
            with record.engine.connect() as conn:
                written = conn.execute(
                    select(sync_runs.c.status).where(
                        sync_runs.c.run_id == record.run_id, sync_runs.c.object == record.object
                    )
                ).first()
            if written is not None:
                return
        run = SyncRun(run_id=record.run_id, object=record.object, mode=record.mode, error=cause)
        with record.engine.begin() as conn:
            run.record(conn, status="failed")
    except Exception:  # noqa: BLE001
        logger.exception("could not record the failed step in sync_runs")


@contextlib.contextmanager
def one_line_failure(record: StepRecord | None = None) -> Iterator[None]:
    """Turn any error raised inside into a ``Failure`` described in one line (the run page
    and ``run_failures`` already name the step), recorded in ``sync_runs`` when ``record``."""
    try:
        yield
    except Failure as failure:
        if record is not None:
            _record_if_missing(record, text_one_line(failure.description or "failed"))
        raise
    except Exception as error:
        cause = failure_cause(error)
        if record is not None:
            _record_if_missing(record, cause)
        raise Failure(description=cause) from error
