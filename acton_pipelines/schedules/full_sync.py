"""The full sync every two weeks (Act-On: "a full sync every two weeks")."""

import os
from datetime import date

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from acton_pipelines.jobs import full_sync_job

# The Monday that starts an "on" week; set ACTON_FULL_SYNC_ANCHOR (YYYY-MM-DD) to move it.
DEFAULT_ANCHOR = date(2026, 1, 5)


def full_sync_anchor() -> date:
    value = os.environ.get("ACTON_FULL_SYNC_ANCHOR")
    return date.fromisoformat(value) if value else DEFAULT_ANCHOR


def is_full_sync_week(day: date, anchor: date) -> bool:
    """Whether ``day`` falls in an even week counted from ``anchor``.

    Cron cannot say "every two weeks", and ISO-week parity breaks in years with a week 53, so
    the weeks are counted from a fixed anchor date instead.
    """
    return ((day - anchor).days // 7) % 2 == 0


@schedule(
    job=full_sync_job,
    cron_schedule="0 2 * * 1",
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Full sync every other Monday at 02:00 UTC, counted from ACTON_FULL_SYNC_ANCHOR "
        "(default 2026-01-05). Off weeks are skipped with a reason."
    ),
)
def full_sync_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    day = context.scheduled_execution_time.date()
    anchor = full_sync_anchor()
    if not is_full_sync_week(day, anchor):
        return SkipReason(f"{day} is in an off week of the biweekly full sync (anchor {anchor}).")
    return RunRequest(run_key=f"full_sync_{day.isoformat()}", tags={"acton/sync_mode": "full"})
