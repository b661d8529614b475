"""The real ``dagster-daemon`` runs the schedules' requests from the instance's run queue.

The daemon is started on a temporary ``DAGSTER_HOME`` holding a copy of
``deploy/local/dagster.yaml`` (queued run coordinator: one warehouse-writing run at a time; run
monitoring) and the repository's ``workspace.yaml``, with both schedules' crons set to every
minute. At the next minute boundary both schedules fire; the test reads the instance's run
storage until the first ``full_sync`` of ``full_sync_schedule`` and the first
``incremental_sync`` of ``incremental_sync_schedule`` have succeeded, went through the queue,
wrote the warehouse, and did not run at the same time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunRecord, RunsFilter
from sqlalchemy import text

from acton_pipelines.cli.local_run import prepare_dagster_home
from acton_pipelines.runs.partitions import SINCE_LAST_SYNC, WINDOW_TAG
from acton_pipelines.runs.run_failures import failure_causes
from acton_pipelines.schedules.sync_history import CRM_TABLES
from acton_pipelines.settings import REPO_ROOT
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SeedSummary
from tests.conftest import ActonHome, make_home, run_full_sync

DAEMON = Path(sys.executable).parent / "dagster-daemon"
WORKSPACE = REPO_ROOT / "workspace.yaml"
SCHEDULE_TAG = "dagster/schedule_name"
# Both schedules fire at the next minute boundary; the runs then wait in the queue. A timeout
# is a failure (something never ran), not a timing assertion.
TIMEOUT_SECONDS = 170.0
POLL_SECONDS = 2.0
# Each schedule's job: the first run of each must succeed.
EXPECTED = {"full_sync_schedule": "full_sync", "incremental_sync_schedule": "incremental_sync"}
FAILED = {DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED, DagsterRunStatus.CANCELING}
SYNCED_OBJECTS = (*CRM_TABLES, "acton_contacts", "contact_scores", "segment_members")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Daemon:
    """A running ``dagster-daemon`` process (the leader of its own process group) and its log."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no output)"
        content = ANSI_ESCAPE.sub("", self.log.read_text(encoding="utf-8", errors="replace"))
        return "\n".join(content.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM to the daemon and everything it started (code server, run workers), then
        SIGKILL to whatever is left after a few seconds."""
        group = self.process.pid
        _signal_group(group, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _group_alive(group):
            _signal_group(group, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)


def _signal_group(group: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def this_monday() -> str:
    today = datetime.now(UTC).date()
    return (today - timedelta(days=today.weekday())).isoformat()


@pytest.fixture
def home(tmp_path: Path, small_crm: SeedSummary, monkeypatch: pytest.MonkeyPatch) -> ActonHome:
    """A private home with the small sandbox, after an in-process full sync: the incremental
    schedule then has no full sync due and requests its run."""
    acton_home = make_home(tmp_path / "acton_home", small_crm, monkeypatch)
    synced = run_full_sync(acton_home)
    assert synced.success
    return acton_home


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A temporary DAGSTER_HOME with the local instance config."""
    # Prepared the way `acton ui` prepares it: storage created before the daemon and its code
    # server open it concurrently.
    return prepare_dagster_home(tmp_path / "dagster_home")


@pytest.fixture
def daemon(home: ActonHome, dagster_home: Path, tmp_path: Path) -> Iterator[Daemon]:
    """``dagster-daemon run`` on the workspace, both crons every minute; stopped afterwards."""
    env = {
        **os.environ,
        "ACTON_HOME": str(home.path),
        "DAGSTER_HOME": str(dagster_home),
        "ACTON_FULL_SYNC_CRON": "* * * * *",
        "ACTON_INCREMENTAL_CRON": "* * * * *",
        "ACTON_FULL_SYNC_ANCHOR": this_monday(),
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("ACTON_SANDBOX_URL", "ACTON_WAREHOUSE_URL", "ACTON_CRM_MODE"):
        env.pop(name, None)
    log = tmp_path / "daemon.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(DAEMON), "run", "-w", str(WORKSPACE)],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            # Its own process group: stopping it reaches the code server and run workers too.
            start_new_session=True,
        )
    started = Daemon(process, log)
    try:
        yield started
    finally:
        started.stop()


def first_run(instance: DagsterInstance, schedule: str) -> RunRecord | None:
    """The earliest run the schedule launched (crons every minute launch more later)."""
    records = instance.get_run_records(
        filters=RunsFilter(job_name=EXPECTED[schedule], tags={SCHEDULE_TAG: schedule}),
        order_by="create_timestamp",
        ascending=True,
        limit=1,
    )
    return records[0] if records else None


def every_run(instance: DagsterInstance) -> str:
    lines = [
        f"  {r.dagster_run.job_name} {r.dagster_run.run_id[:8]} {r.dagster_run.status.value} "
        f"{r.dagster_run.tags.get(SCHEDULE_TAG, '')}"
        for r in instance.get_run_records(order_by="create_timestamp", ascending=True)
    ]
    return "\n".join(lines) or "  (no runs)"


def wait_for_schedule_runs(instance: DagsterInstance, daemon: Daemon) -> dict[str, RunRecord]:
    """The first run of each schedule, once all have succeeded; fails on a failed run, on the
    daemon exiting, or after ``TIMEOUT_SECONDS``."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        found = {schedule: first_run(instance, schedule) for schedule in EXPECTED}
        for schedule, record in found.items():
            if record is not None and record.dagster_run.status in FAILED:
                run_id = record.dagster_run.run_id
                causes = [f"{c.step_key}: {c.cause}" for c in failure_causes(instance, run_id)]
                pytest.fail(
                    f"run {run_id} of {schedule} ended {record.dagster_run.status.value}: "
                    f"{causes or 'no cause recorded'}\n--- daemon log ---\n{daemon.tail()}"
                )
        if all(
            record is not None and record.dagster_run.status == DagsterRunStatus.SUCCESS
            for record in found.values()
        ):
            return {schedule: record for schedule, record in found.items() if record}
        if daemon.process.poll() is not None:
            pytest.fail(
                f"dagster-daemon exited with {daemon.process.returncode}\n"
                f"--- daemon log ---\n{daemon.tail()}"
            )
        if time.monotonic() > deadline:
            pytest.fail(
                f"the schedules' runs did not all succeed within {TIMEOUT_SECONDS:.0f} s; runs:\n"
                f"{every_run(instance)}\n--- daemon log ---\n{daemon.tail()}"
            )
        time.sleep(POLL_SECONDS)


@contextmanager
def daemon_log_on_failure(daemon: Daemon) -> Iterator[None]:
    """A failed assertion's message gets the daemon's log tail (runs' logs included)."""
    try:
        yield
    except AssertionError as error:
        pytest.fail(f"{error}\n--- dagster-daemon log (tail) ---\n{daemon.tail()}")


def test_the_daemon_runs_both_schedules_from_the_queue_one_at_a_time(
    home: ActonHome, dagster_home: Path, daemon: Daemon
) -> None:
    with DagsterInstance.from_config(str(dagster_home)) as instance, daemon_log_on_failure(daemon):
        runs = wait_for_schedule_runs(instance, daemon)
        full = runs["full_sync_schedule"]
        incremental = runs["incremental_sync_schedule"]
        assert incremental.dagster_run.tags.get(WINDOW_TAG) == SINCE_LAST_SYNC

        # Queued when the schedule fired, then launched by the daemon's queued run coordinator
        # (it reports RUN_STARTING as it takes a run off the queue).
        for record in (full, incremental):
            run_id = record.dagster_run.run_id
            events = [
                r.event_log_entry.dagster_event_type
                for r in instance.get_records_for_run(run_id).records
            ]
            assert DagsterEventType.RUN_ENQUEUED in events, (run_id, events)
            assert DagsterEventType.RUN_STARTING in events, (run_id, events)
            assert events.index(DagsterEventType.RUN_ENQUEUED) < events.index(
                DagsterEventType.RUN_STARTING
            ), (run_id, events)

        # One warehouse-writing run at a time: the two runs did not overlap.
        spans = {
            name: (record.start_time, record.end_time)
            for name, record in (("full", full), ("incremental", incremental))
        }
        for name, (start, end) in spans.items():
            assert start is not None and end is not None, f"{name} run has no start or end"
        (full_start, full_end), (inc_start, inc_end) = spans["full"], spans["incremental"]
        assert full_end <= inc_start or inc_end <= full_start, f"the runs overlapped: {spans}"

        # Both runs wrote the warehouse: a sync_runs row per object, in their own mode.
        with warehouse_engine(home.warehouse_url).connect() as conn:
            recorded = {
                (run_id, name): (mode, status)
                for run_id, name, mode, status in conn.execute(
                    text("SELECT run_id, object, mode, status FROM sync_runs")
                )
            }
        for record, mode in ((full, "full"), (incremental, "incremental")):
            run_id = record.dagster_run.run_id
            assert {name: recorded.get((run_id, name)) for name in SYNCED_OBJECTS} == {
                name: (mode, "success") for name in SYNCED_OBJECTS
            }, run_id
