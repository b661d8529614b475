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
from acton_pipelines.schedules.full_sync_request import full_sync_request

# The Monday that starts an "on" week; set ACTON_FULL_SYNC_ANCHOR (YYYY-MM-DD) to move it.
DEFAULT_ANCHOR = date(2026, 1, 5)
# Mondays at 02:00 UTC; the schedule skips every other week itself (cron cannot count weeks).
DEFAULT_FULL_SYNC_CRON = "0 2 * * 1"


def full_sync_anchor() -> date:
    value = os.environ.get("ACTON_FULL_SYNC_ANCHOR")
    return date.fromisoformat(value) if value else DEFAULT_ANCHOR


def full_sync_cron() -> str:
    """The schedule's cron (``ACTON_FULL_SYNC_CRON``, default Mondays 02:00 UTC)."""
    return os.environ.get("ACTON_FULL_SYNC_CRON") or DEFAULT_FULL_SYNC_CRON


def is_full_sync_week(day: date, anchor: date) -> bool:
    """Whether ``day`` falls in an even week counted from ``anchor``.

    Cron cannot say "every two weeks", and ISO-week parity breaks in years with a week 53, so
    the weeks are counted from a fixed anchor date instead.
    """
    return ((day - anchor).days // 7) % 2 == 0


@schedule(
    job=full_sync_job,
    cron_schedule=full_sync_cron(),
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Full sync every other week: ticks on ACTON_FULL_SYNC_CRON (default Mondays 02:00 UTC) "
        "in the weeks counted from ACTON_FULL_SYNC_ANCHOR (default 2026-01-05); ticks in off "
        "weeks are skipped with a reason. Each request is one run on the latest partition "
        "(today's; a full sync reads everything whatever its partition), tagged "
        "acton/full_sync_reason=biweekly."
    ),
)
def full_sync_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    moment = context.scheduled_execution_time
    day = moment.date()
    anchor = full_sync_anchor()
    if not is_full_sync_week(day, anchor):
        return SkipReason(f"{day} is in an off week of the biweekly full sync (anchor {anchor}).")
    return full_sync_request(f"full-sync-{moment.isoformat()}", reason="biweekly")
