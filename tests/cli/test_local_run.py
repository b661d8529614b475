"""The command line runs one warehouse-writing run at a time, like the daemon's run queue: it
waits for a run in progress, and does not wait for one whose ``acton`` process is gone."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from acton_pipelines.cli.local_run import cli_run_tags, runs_in_progress, wait_for_other_runs


def started_run(instance: DagsterInstance, tags: dict[str, str]) -> DagsterRun:
    run = DagsterRun(
        job_name="full_sync", run_id=str(uuid.uuid4()), status=DagsterRunStatus.STARTED, tags=tags
    )
    return instance.add_run(run)


def test_the_cli_waits_for_a_run_in_progress(tmp_path: Path) -> None:
    said: list[str] = []
    # On disk: the run ends from another thread, which an in-memory instance cannot share.
    with DagsterInstance.local_temp(tempdir=str(tmp_path)) as instance:
        sleeper = subprocess.Popen(["sleep", "60"])
        try:
            tags = {**cli_run_tags(), "acton/pid": str(sleeper.pid)}
            other = started_run(instance, tags)
            finish = threading.Timer(1.0, lambda: instance.report_run_failed(other))
            finish.start()
            begun = time.monotonic()
            wait_for_other_runs(instance, said.append, poll_seconds=0.05)
            waited = time.monotonic() - begun
        finally:
            sleeper.kill()
    assert said == [
        f"Waiting for run {other.run_id} (full_sync) to finish: one warehouse-writing run at a "
        "time."
    ]
    # It returned because the other run ended, not before (a fact, not a speed).
    assert waited > 0 and not runs_in_progress(instance)


def test_a_run_whose_acton_process_is_gone_is_marked_failed_not_waited_for() -> None:
    said: list[str] = []
    gone = subprocess.Popen(["true"])
    gone.wait()
    with DagsterInstance.ephemeral() as instance:
        orphan = started_run(instance, {**cli_run_tags(), "acton/pid": str(gone.pid)})
        wait_for_other_runs(instance, said.append, poll_seconds=0.05)
        after = instance.get_run_by_id(orphan.run_id)
    assert after is not None and after.status == DagsterRunStatus.FAILURE
    assert len(said) == 1 and "is gone" in said[0]


def test_a_daemon_run_is_waited_for_until_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_RUN_WAIT_MINUTES", "0.005")
    with DagsterInstance.ephemeral() as instance:
        launched = started_run(instance, {"dagster/schedule_name": "full_sync_schedule"})
        with pytest.raises(TimeoutError, match=launched.run_id):
            wait_for_other_runs(instance, lambda _: None, poll_seconds=0.05)
        still = instance.get_run_by_id(launched.run_id)
    assert still is not None and still.status == DagsterRunStatus.STARTED
