"""Runs started by ``acton sync`` (in that process, with no code-location origin) are seen by
the run-status sensors, evaluated by one pass of the daemon's sensor loop: a successful sync
gets its push, a failed one its ``run_failures`` row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.test_utils import freeze_time
from sqlalchemy import select

from acton_pipelines.cli.local_run import local_dagster_home, run_job
from acton_pipelines.runs.partitions import full_sync_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import run_failures
from tests.conftest import ActonHome
from tests.launch import run_sensor_daemon_once


def test_cli_syncs_get_their_push_and_their_failure_record(
    acton_home: ActonHome, monkeypatch
) -> None:
    local_dagster_home()
    with DagsterInstance.get() as instance:
        # A run-status sensor starts watching from its first evaluation on.
        run_sensor_daemon_once(instance)

        synced = run_job("full_sync", full_sync_tags(), say=lambda _: None)
        assert synced.success
        monkeypatch.setenv("ACTON_MAPPING_DIR", str(Path(acton_home.path / "no-such-mapping")))
        failed = run_job("full_sync", full_sync_tags(), say=lambda _: None)
        assert not failed.success

        # A minute on, past every sensor's minimum interval.
        with freeze_time(datetime.now(UTC) + timedelta(minutes=1)):
            run_sensor_daemon_once(instance)
        pushes = instance.get_runs(RunsFilter(job_name="push_to_crm"))
        assert [run.tags.get("dagster/run_key") for run in pushes] == [
            f"push-after-{synced.run_id}"
        ]
        assert pushes[0].status == DagsterRunStatus.QUEUED

    with warehouse_engine(acton_home.warehouse_url).connect() as conn:
        recorded = conn.execute(
            select(run_failures.c.run_id, run_failures.c.job_name, run_failures.c.cause)
        ).all()
    assert [(r.run_id, r.job_name) for r in recorded] == [(failed.run_id, "full_sync")]
    assert "mapping folder does not exist" in recorded[0].cause
