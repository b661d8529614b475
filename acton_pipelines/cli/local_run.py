"""Running jobs in-process on the Dagster instance under ``ACTON_HOME`` (the ``acton`` CLI).

A run started here is recorded on the same instance as the daemon's, and obeys the same rule:
one warehouse-writing run at a time. It waits for a run in progress to finish; a run left
"in progress" by an ``acton`` process that no longer exists (killed with ``kill -9``) is marked
failed first, so it blocks nobody, and the next run catches up on what it left undone.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, RunsFilter
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from acton_pipelines import settings
from acton_pipelines.runs.run_failures import StepCause, failure_causes

# The instance config local runs start from: SQLite storage under DAGSTER_HOME, telemetry off,
# one warehouse-writing run at a time. Kept as a file in deploy/ (next to the production one)
# rather than inline, so both are read and reviewed side by side.
LOCAL_DAGSTER_YAML = settings.REPO_ROOT / "deploy" / "local" / "dagster.yaml"

# Tags on runs started by the command line: which process runs them, on which machine.
LAUNCHED_BY_TAG = "acton/launched_by"
PID_TAG = "acton/pid"
HOST_TAG = "acton/host"

# How long the command line waits for another run before giving up (ACTON_RUN_WAIT_MINUTES).
DEFAULT_WAIT_MINUTES = 120.0
POLL_SECONDS = 2.0


def local_dagster_home() -> Path:
    """``DAGSTER_HOME`` for local runs, prepared by ``prepare_dagster_home``, and exported."""
    home = prepare_dagster_home(settings.dagster_home())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def prepare_dagster_home(home: Path) -> Path:
    """``home`` with ``deploy/local/dagster.yaml`` copied in on first use and its storage created.

    An existing ``dagster.yaml`` is left alone: it may have been edited, or be a production one.
    The storage is created here, in one process, because ``dagster dev`` starts the webserver,
    the daemon and a code server at once on a fresh home, and their concurrent first opens of
    the SQLite schedule storage can stamp two Alembic heads, after which every later open fails
    with "Version table 'alembic_version' has more than one head present".
    """
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(LOCAL_DAGSTER_YAML, config)
    with DagsterInstance.from_config(str(home)):
        pass
    return home


@dataclass
class RunOutcome:
    """How a run ended: its id, success, and why it failed (one line per failed step)."""

    run_id: str
    success: bool
    causes: list[StepCause]

    @property
    def failures(self) -> list[str]:
        """One line per distinct cause, naming the steps it stopped."""
        steps_by_cause: dict[str, list[str]] = {}
        for cause in self.causes:
            steps = steps_by_cause.setdefault(cause.cause, [])
            if cause.step_key:
                steps.append(cause.step_key)
        return [
            f"{', '.join(steps)}: {cause}" if steps else cause
            for cause, steps in steps_by_cause.items()
        ]


def _process_gone(run: DagsterRun) -> bool:
    """Whether ``run`` was started by an ``acton`` process on this machine that has exited."""
    tags = run.tags
    if tags.get(LAUNCHED_BY_TAG) != "cli" or tags.get(HOST_TAG) != socket.gethostname():
        return False
    try:
        os.kill(int(tags.get(PID_TAG, "0")), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def runs_in_progress(
    instance: DagsterInstance, say: Callable[[str], object] = print
) -> list[DagsterRun]:
    """The instance's runs in progress (every run of this project writes the warehouse), after
    marking failed those whose command-line process is gone."""
    running = instance.get_runs(RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)))
    alive = []
    for run in running:
        if not _process_gone(run):
            alive.append(run)
            continue
        message = (
            f"The acton process running this run (pid {run.tags.get(PID_TAG)}) is gone "
            "(killed?); marked failed so later runs can go. The next sync catches up."
        )
        instance.report_run_failed(run, message=message)
        say(f"Run {run.run_id} ({run.job_name}): {message}")
    return alive


def wait_for_other_runs(
    instance: DagsterInstance,
    say: Callable[[str], object],
    poll_seconds: float = POLL_SECONDS,
) -> None:
    """Wait until no other run is in progress on ``instance`` (``say`` tells the user once);
    ``TimeoutError`` after ``ACTON_RUN_WAIT_MINUTES`` (default 120)."""
    limit = float(os.environ.get("ACTON_RUN_WAIT_MINUTES") or DEFAULT_WAIT_MINUTES) * 60
    started = time.monotonic()
    told: set[str] = set()
    while running := runs_in_progress(instance, say):
        for run in running:
            if run.run_id not in told:
                say(
                    f"Waiting for run {run.run_id} ({run.job_name}) to finish: one "
                    "warehouse-writing run at a time."
                )
                told.add(run.run_id)
        if time.monotonic() - started > limit:
            ids = ", ".join(r.run_id for r in running)
            raise TimeoutError(
                f"run(s) {ids} still in progress after {limit / 60:g} minutes. If none is "
                "really running, mark it failed in the Dagster UI (Runs, then Terminate) and "
                "try again; ACTON_RUN_WAIT_MINUTES sets how long to wait."
            )
        time.sleep(poll_seconds)


def cli_run_tags() -> dict[str, str]:
    """The tags that let a later command tell whether this process still runs the run."""
    return {LAUNCHED_BY_TAG: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def run_job(
    job_name: str,
    tags: dict[str, str] | None = None,
    *,
    verbose: bool = False,
    say: Callable[[str], object] = print,
) -> RunOutcome:
    """Run a job of the project's ``Definitions`` in this process, once no other run is in
    progress; ``tags`` select the partitions (see ``acton_pipelines.runs.partitions``).

    Progress goes to stderr a line at a time; ``verbose`` prints Dagster's own event log
    instead (with stack traces). Failures come back as one line per failed step.
    """
    local_dagster_home()
    from acton_pipelines.definitions import defs

    job = defs.resolve_job_def(job_name)
    logging = {"console": {"config": {"log_level": "INFO"}}} if verbose else {"acton_cli": {}}
    with DagsterInstance.get() as instance:
        wait_for_other_runs(instance, say)
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": logging},
            raise_on_error=False,
            tags={**cli_run_tags(), **(tags or {})},
        )
        causes = [] if result.success else failure_causes(instance, result.run_id)
    return RunOutcome(run_id=result.run_id, success=result.success, causes=causes)
