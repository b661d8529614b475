"""One launch, one meaning: a run's mode and window follow from what it was launched with.

Every path a run can take is launched for real (in process, on a real instance and warehouse),
and the window each CRM object read is read back from ``sync_runs``:

- the UI, one partition of ``incremental_sync`` (the run carries only ``dagster/partition``);
- the UI or a backfill, a range of partitions (single-run backfill: range tags);
- ``full_sync`` launched over one partition or a range (by hand in the UI), and on the latest
  partition only, as the schedule, the sensors and ``acton sync full`` launch it;
- assets materialized from the asset graph (no mode tag);
- the hourly schedule and ``acton sync incremental``: from each object's high-water mark;
- ``acton sync incremental --partition DAY``: that whole day.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, time, timedelta

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance
from sqlalchemy import select, text

from acton_pipelines.cli.main import cli
from acton_pipelines.runs.partitions import (
    PARTITION_TAG,
    RANGE_END_TAG,
    RANGE_START_TAG,
    SINCE_LAST_SYNC,
    WINDOW_TAG,
    full_sync_tags,
    incremental_tags,
    sync_partitions,
)
from acton_pipelines.runs.run_window import DEFAULT_LOOKBACK
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import sync_runs
from crm_sandbox import churn_sandbox
from crm_sandbox.store import to_storage_datetime
from tests.conftest import ActonHome, home_definitions, run_sync


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def lead_syncs(home: ActonHome) -> list[dict]:
    """The successful crm_leads rows of sync_runs, oldest first."""
    columns = ("run_id", "mode", "window_start", "window_end", "rows_read", "message")
    statement = (
        select(*[sync_runs.c[c] for c in (*columns, "high_water_mark")])
        .where(sync_runs.c.object == "crm_leads", sync_runs.c.status == "success")
        .order_by(sync_runs.c.seq)
    )
    with warehouse_engine(home.warehouse_url).connect() as conn:
        rows = conn.execute(statement).mappings().all()
    return [
        {**row, **{k: utc(row[k]) for k in ("window_start", "window_end", "high_water_mark")}}
        for row in rows
    ]


def mode_of(home: ActonHome, run_id: str, table: str) -> str:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return conn.execute(
            text("SELECT mode FROM sync_runs WHERE run_id = :r AND object = :o"),
            {"r": run_id, "o": table},
        ).scalar_one()


def day_start(day: str) -> datetime:
    return datetime.combine(datetime.fromisoformat(day).date(), time(), tzinfo=UTC)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def test_one_partition_from_the_ui_is_an_incremental_sync_of_that_day(
    synced_home: ActonHome,
) -> None:
    job = home_definitions(synced_home).resolve_job_def("incremental_sync")
    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(), partition_key=today(), raise_on_error=False
    )
    assert result.success
    (last,) = [r for r in lead_syncs(synced_home) if r["run_id"] == result.run_id]
    assert last["mode"] == "incremental"
    assert last["window_start"] == day_start(today()) - DEFAULT_LOOKBACK
    assert last["window_end"] == day_start(today()) + timedelta(days=1)
    assert last["message"] == f"incremental over {today()}"
    # Downstream tables take in that sync, not a rebuild of everything.
    assert mode_of(synced_home, result.run_id, "acton_contacts") == "incremental"


@pytest.mark.parametrize("backfill", [False, True])
def test_a_range_from_the_ui_or_a_backfill_reads_those_days(
    synced_home: ActonHome, backfill: bool
) -> None:
    tags = {RANGE_START_TAG: yesterday(), RANGE_END_TAG: today()}
    if backfill:
        tags["dagster/backfill"] = "abcdefgh"
    result = run_sync(synced_home, "incremental_sync", tags)
    assert result.success
    (last,) = [r for r in lead_syncs(synced_home) if r["run_id"] == result.run_id]
    assert last["mode"] == "incremental"
    assert last["window_start"] == day_start(yesterday()) - DEFAULT_LOOKBACK
    assert last["window_end"] == day_start(today()) + timedelta(days=1)


@pytest.mark.parametrize("span", ["one partition", "a range"])
def test_full_sync_over_any_partitions_is_still_a_full_sync(
    synced_home: ActonHome, span: str
) -> None:
    # Automated full syncs run on today's partition only; one launched by hand in the UI over
    # an older day, or a range as a single run, must read everything all the same.
    job = home_definitions(synced_home).resolve_job_def("full_sync")
    if span == "one partition":
        launch = {"partition_key": yesterday()}
    else:
        launch = {"tags": {RANGE_START_TAG: yesterday(), RANGE_END_TAG: today()}}
    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(), raise_on_error=False, **launch
    )
    assert result.success
    (last,) = [r for r in lead_syncs(synced_home) if r["run_id"] == result.run_id]
    assert (last["mode"], last["window_start"], last["window_end"]) == ("full", None, None)
    assert mode_of(synced_home, result.run_id, "acton_contacts") == "full"


@pytest.mark.parametrize("every_partition", [True, False])
def test_the_asset_graph_is_full_over_every_partition_and_incremental_over_some(
    synced_home: ActonHome, every_partition: bool
) -> None:
    job = home_definitions(synced_home).resolve_implicit_global_asset_job_def()
    keys = sync_partitions.get_partition_keys()
    first = keys[0] if every_partition else today()
    result = job.execute_in_process(
        instance=DagsterInstance.ephemeral(),
        tags={RANGE_START_TAG: first, RANGE_END_TAG: keys[-1]},
        asset_selection=[
            k
            for k in job.asset_layer.asset_graph.materializable_asset_keys
            if k.path[0] not in ("crm_push", "acton_imports")
        ],
        raise_on_error=False,
    )
    assert result.success
    (last,) = [r for r in lead_syncs(synced_home) if r["run_id"] == result.run_id]
    assert last["mode"] == ("full" if every_partition else "incremental")


def leads_changed_ids(home: ActonHome, start: datetime, end: datetime) -> set[str]:
    """Ids of the sandbox's Leads (deleted ones too) whose SystemModstamp is in [start, end)."""
    with sqlite3.connect(home.sandbox_db) as conn:
        rows = conn.execute(
            'SELECT "Id" FROM "Lead" WHERE "SystemModstamp" >= ? AND "SystemModstamp" < ?',
            (to_storage_datetime(start), to_storage_datetime(end)),
        )
        return {r[0] for r in rows}


def leads_changed_in(home: ActonHome, start: datetime, end: datetime) -> int:
    return len(leads_changed_ids(home, start, end))


def churn_at(home: ActonHome, moment: datetime, updates: int, seed: int) -> set[str]:
    """Update ``updates`` CRM records at ``moment``; returns the Lead Ids it changed."""
    summary = churn_sandbox(
        home.sandbox_db, updates=updates, creates=0, deletes=0, converts=0, seed=seed, now=moment
    )
    return set(summary.updated.get("Lead", []))


def test_the_schedule_reads_from_each_objects_high_water_mark_not_the_whole_day(
    synced_home: ActonHome,
) -> None:
    home = synced_home
    now = datetime.now(UTC).replace(microsecond=0)
    first = churn_at(home, now - timedelta(minutes=90), 40, seed=1)
    second = churn_at(home, now - timedelta(minutes=60), 40, seed=2)
    scheduled = incremental_tags(yesterday(), today(), since_last_sync=True)
    assert scheduled[WINDOW_TAG] == SINCE_LAST_SYNC

    run_one = run_sync(home, "incremental_sync", scheduled)
    assert run_one.success
    full, one = lead_syncs(home)[-2:]
    # The full sync's mark was the seed's newest SystemModstamp: this run reads from there.
    assert one["window_start"] == full["high_water_mark"] - DEFAULT_LOOKBACK
    assert one["high_water_mark"] == now - timedelta(minutes=60)
    # What it read: the churned Leads, and any seeded ones within the lookback of the mark.
    assert one["rows_read"] == leads_changed_in(home, one["window_start"], one["window_end"])
    assert first | second <= leads_changed_ids(home, one["window_start"], one["window_end"])

    third = churn_at(home, now - timedelta(minutes=5), 40, seed=3)
    run_two = run_sync(home, "incremental_sync", scheduled)
    assert run_two.success
    two = lead_syncs(home)[-1]
    assert two["window_start"] == now - timedelta(minutes=60) - DEFAULT_LOOKBACK
    # The second churn (at the mark) is read again, by the lookback; the first is not.
    assert two["rows_read"] == len(second | third)
    assert first - second - third, "the first churn should hold Leads the run must skip"
    assert "high-water mark" in (two["message"] or "")


def test_the_cli_reads_since_the_last_sync_or_the_day_it_is_given(
    synced_home: ActonHome,
) -> None:
    runner = CliRunner()
    since = runner.invoke(cli, ["sync", "incremental"])
    assert since.exit_code == 0, since.output
    full, last = lead_syncs(synced_home)[-2:]
    assert last["window_start"] == full["high_water_mark"] - DEFAULT_LOOKBACK

    day = runner.invoke(cli, ["sync", "incremental", "--partition", yesterday()])
    assert day.exit_code == 0, day.output
    last = lead_syncs(synced_home)[-1]
    assert last["window_start"] == day_start(yesterday()) - DEFAULT_LOOKBACK
    assert last["window_end"] == day_start(today())

    full_run = runner.invoke(cli, ["sync", "full"])
    assert full_run.exit_code == 0, full_run.output
    last = lead_syncs(synced_home)[-1]
    assert last["mode"] == "full"
    # On today's partition only (one materialization per asset), not over the whole range.
    with DagsterInstance.get() as instance:
        run = instance.get_run_by_id(last["run_id"])
    assert run is not None and run.tags[PARTITION_TAG] == today()
    assert RANGE_START_TAG not in run.tags and RANGE_END_TAG not in run.tags
    assert full_sync_tags()[PARTITION_TAG] == today()
