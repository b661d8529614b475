"""The deletion-log sensor: a full sync when the last sync is older than the CRM's deletion
log, or when there has never been one; at most one a day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from dagster import RunRequest, SkipReason, build_sensor_context

from acton_pipelines.runs.partitions import (
    PARTITION_TAG,
    RANGE_START_TAG,
    SYNC_MODE_TAG,
    sync_partitions,
)
from acton_pipelines.schedules import deletion_log_sensor as module
from acton_pipelines.schedules.deletion_log_sensor import (
    deletion_log_evaluation,
    deletion_log_sensor,
)
from acton_pipelines.schedules.full_sync_request import FULL_SYNC_REASON_TAG
from acton_pipelines.schedules.sync_history import CRM_TABLES, DELETION_LOG_TABLES
from acton_pipelines.warehouse.resource import WarehouseResource

RecordSync = Callable[..., None]

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def evaluate(warehouse: WarehouseResource, now: datetime = NOW) -> RunRequest | SkipReason:
    result, _message = deletion_log_evaluation(warehouse.engine, now)
    return result


def test_a_fresh_warehouse_is_skipped_with_the_days_left(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, NOW - timedelta(days=3))
    result = evaluate(warehouse)
    assert isinstance(result, SkipReason)
    assert "11.0 of 14 days remain" in (result.skip_message or "")


def test_the_oldest_object_with_deletions_decides(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync([t for t in CRM_TABLES if t != "crm_contacts"], NOW - timedelta(days=1))
    record_sync(["crm_contacts"], NOW - timedelta(days=15))
    # Leads are fresh, but the Contacts' last successful sync is older than the log.
    result = evaluate(warehouse)
    assert isinstance(result, RunRequest)


def test_a_stale_warehouse_requests_a_full_sync(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(CRM_TABLES, NOW - timedelta(days=15))
    record_sync(CRM_TABLES, NOW - timedelta(days=2), status="failed")  # failures do not count
    result = evaluate(warehouse)
    assert isinstance(result, RunRequest)
    assert result.run_key == "deletion-log-2026-11-20"
    assert result.job_name == "full_sync"
    assert result.tags[SYNC_MODE_TAG] == "full"
    # Today's partition only: one materialization per asset, not one per day of the range.
    assert result.partition_key == sync_partitions.get_last_partition_key()
    assert result.tags[PARTITION_TAG] == result.partition_key
    assert RANGE_START_TAG not in result.tags
    assert result.tags[FULL_SYNC_REASON_TAG] == "deletion-log-expired"
    _, message = deletion_log_evaluation(warehouse.engine, NOW)
    assert "older than the CRM's deletion log" in message


def test_a_never_synced_warehouse_requests_a_full_sync(warehouse: WarehouseResource) -> None:
    result = evaluate(warehouse)
    assert isinstance(result, RunRequest)
    assert result.tags[FULL_SYNC_REASON_TAG] == "never-synced"


def test_users_have_no_deletions_and_do_not_count(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    assert "crm_users" not in DELETION_LOG_TABLES
    record_sync(DELETION_LOG_TABLES, NOW - timedelta(days=1))
    assert isinstance(evaluate(warehouse), SkipReason)


def test_one_object_never_synced_is_a_never_synced_warehouse(
    warehouse: WarehouseResource, record_sync: RecordSync
) -> None:
    record_sync(["crm_leads"], NOW - timedelta(hours=1))
    result = evaluate(warehouse)
    assert isinstance(result, RunRequest)
    assert result.tags[FULL_SYNC_REASON_TAG] == "never-synced"
    _, message = deletion_log_evaluation(warehouse.engine, NOW)
    assert "crm_contacts" in message and "crm_leads" not in message


def test_at_most_one_request_a_day(warehouse: WarehouseResource) -> None:
    morning = evaluate(warehouse, datetime(2026, 11, 20, 0, 10, tzinfo=UTC))
    evening = evaluate(warehouse, datetime(2026, 11, 20, 23, 50, tzinfo=UTC))
    next_day = evaluate(warehouse, datetime(2026, 11, 21, 0, 10, tzinfo=UTC))
    assert isinstance(morning, RunRequest) and isinstance(evening, RunRequest)
    assert isinstance(next_day, RunRequest)
    assert morning.run_key == evening.run_key == "deletion-log-2026-11-20"
    assert next_day.run_key == "deletion-log-2026-11-21"


def test_the_sensor_reads_its_warehouse_resource(
    warehouse: WarehouseResource, record_sync: RecordSync, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "utc_now", lambda: NOW)
    context = build_sensor_context(resources={"warehouse": warehouse})
    stale = deletion_log_sensor(context)
    assert isinstance(stale, RunRequest) and stale.run_key == "deletion-log-2026-11-20"
    record_sync(CRM_TABLES, NOW - timedelta(hours=1))
    assert isinstance(deletion_log_sensor(context), SkipReason)
