"""The hourly incremental sync: today, plus yesterday until a sync has read past midnight."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from dagster import RunRequest, SkipReason, build_schedule_context

from acton_pipelines.runs.partitions import RANGE_END_TAG, RANGE_START_TAG, SYNC_MODE_TAG
from acton_pipelines.schedules.incremental_sync import (
    DEFAULT_INCREMENTAL_CRON,
    incremental_cron,
    incremental_sync_schedule,
)
from acton_pipelines.schedules.sync_history import CRM_TABLES
from acton_pipelines.warehouse.resource import WarehouseResource

RecordSync = Callable[..., None]

LATE_YESTERDAY = datetime(2026, 11, 19, 22, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
AFTER_MIDNIGHT = datetime(2026, 11, 20, 0, 5, tzinfo=UTC)


def tick(warehouse: WarehouseResource, at: datetime) -> RunRequest | SkipReason:
    context = build_schedule_context(
        scheduled_execution_time=at, resources={"warehouse": warehouse}
    )
    return incremental_sync_schedule(context)  # type: ignore[return-value]


def days(result: RunRequest | SkipReason) -> tuple[str, str]:
    assert isinstance(result, RunRequest), result
    return result.tags[RANGE_START_TAG], result.tags[RANGE_END_TAG]


def test_the_midnight_tick_covers_yesterday_and_today(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, LATE_YESTERDAY)
    result = tick(warehouse, MIDNIGHT)
    assert isinstance(result, RunRequest)
    assert result.run_key == "incremental-2026-11-20T00:00:00+00:00"
    assert result.tags[SYNC_MODE_TAG] == "incremental"
    assert days(result) == ("2026-11-19", "2026-11-20")


def test_yesterday_stays_until_a_sync_started_after_midnight_succeeds(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, LATE_YESTERDAY)
    one_am = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
    # The midnight run failed: its window is not known to have been read.
    record_sync(CRM_TABLES, AFTER_MIDNIGHT, status="failed")
    assert days(tick(warehouse, one_am)) == ("2026-11-19", "2026-11-20")

    record_sync(CRM_TABLES, datetime(2026, 11, 20, 1, 0, 30, tzinfo=UTC))
    two_am = tick(warehouse, datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    assert days(two_am) == ("2026-11-20", "2026-11-20")
    assert (
        isinstance(two_am, RunRequest) and two_am.run_key == "incremental-2026-11-20T02:00:00+00:00"
    )


def test_every_crm_object_must_have_read_past_midnight(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, LATE_YESTERDAY)
    # Leads synced after midnight, Contacts did not: their late changes of yesterday are unread.
    record_sync(["crm_leads"], AFTER_MIDNIGHT)
    result = tick(warehouse, datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    assert days(result) == ("2026-11-19", "2026-11-20")


def test_a_full_sync_after_midnight_also_counts(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, AFTER_MIDNIGHT, mode="full")
    assert days(tick(warehouse, datetime(2026, 11, 20, 1, 0, tzinfo=UTC))) == (
        "2026-11-20",
        "2026-11-20",
    )


def test_a_never_synced_warehouse_is_skipped_for_the_deletion_log_sensor(
    warehouse: WarehouseResource,
) -> None:
    result = tick(warehouse, MIDNIGHT)
    assert isinstance(result, SkipReason)
    assert "never synced" in (result.skip_message or "")
    assert "deletion_log_sensor" in (result.skip_message or "")


def test_a_sync_older_than_the_deletion_log_is_skipped_too(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, datetime(2026, 11, 5, 0, 0, tzinfo=UTC))
    result = tick(warehouse, datetime(2026, 11, 20, 1, 0, tzinfo=UTC))
    assert isinstance(result, SkipReason)
    assert "deletion log" in (result.skip_message or "")


def test_days_before_the_first_partition_are_left_out(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, datetime(2026, 10, 31, 20, 0, tzinfo=UTC))
    assert days(tick(warehouse, datetime(2026, 11, 1, 0, 0, tzinfo=UTC))) == (
        "2026-11-01",
        "2026-11-01",
    )


def test_the_cron_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTON_INCREMENTAL_CRON", raising=False)
    assert incremental_cron() == DEFAULT_INCREMENTAL_CRON == "0 * * * *"
    monkeypatch.setenv("ACTON_INCREMENTAL_CRON", "*/15 * * * *")
    assert incremental_cron() == "*/15 * * * *"
    assert incremental_sync_schedule.execution_timezone == "UTC"
    assert incremental_sync_schedule.job_name == "incremental_sync"
