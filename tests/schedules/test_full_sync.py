"""The biweekly full sync: on weeks, off weeks with a reason, parity across a year boundary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from dagster import RunRequest, SkipReason, build_schedule_context

from acton_pipelines.schedules.full_sync import full_sync_schedule, is_full_sync_week

ANCHOR = date(2026, 1, 5)


def evaluate(day: date) -> RunRequest | SkipReason:
    moment = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
    result = full_sync_schedule(build_schedule_context(scheduled_execution_time=moment))
    return result  # type: ignore[return-value]


def test_the_anchor_week_runs_and_the_next_is_skipped_with_a_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTON_FULL_SYNC_ANCHOR", ANCHOR.isoformat())
    on = evaluate(ANCHOR)
    off = evaluate(ANCHOR + timedelta(days=7))
    assert isinstance(on, RunRequest) and on.run_key == "full-sync-2026-01-05T02:00:00+00:00"
    assert isinstance(off, SkipReason) and "off week" in (off.skip_message or "")


def test_every_other_monday_across_a_year_with_53_iso_weeks() -> None:
    # 2026 has an ISO week 53: ISO-week parity would run on 2026-12-28 and again on 2027-01-04.
    mondays = [ANCHOR + timedelta(weeks=n) for n in range(0, 60)]
    on = [d for d in mondays if is_full_sync_week(d, ANCHOR)]
    assert all((b - a).days == 14 for a, b in zip(on, on[1:], strict=False))
    assert date(2026, 12, 21) in on and date(2027, 1, 4) in on
    assert date(2026, 12, 28) not in on


def test_the_anchor_can_be_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_FULL_SYNC_ANCHOR", "2026-01-12")
    assert isinstance(evaluate(date(2026, 1, 5)), SkipReason)
    assert isinstance(evaluate(date(2026, 1, 12)), RunRequest)
