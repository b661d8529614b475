"""Running jobs in-process on the Dagster instance under ``ACTON_HOME`` (the ``acton`` CLI)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance
from dagster._core.execution.plan.objects import StepFailureData

from acton_pipelines import settings

# The instance config local runs start from: SQLite storage under DAGSTER_HOME, telemetry off.
# Kept as a file in deploy/ (next to the production one) rather than inline, so both are read
# and reviewed side by side.
LOCAL_DAGSTER_YAML = settings.REPO_ROOT / "deploy" / "local" / "dagster.yaml"


def local_dagster_home() -> Path:
    """``DAGSTER_HOME`` for local runs, with ``deploy/local/dagster.yaml`` copied in on first use.

    An existing ``dagster.yaml`` is left alone: it may have been edited, or be a production one.
    """
    home = settings.dagster_home()
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(LOCAL_DAGSTER_YAML, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@dataclass
class RunOutcome:
    """How a run ended: its id, success, and the failures a user can act on."""

    run_id: str
    success: bool
    failures: list[str]


def _failure_message(data: StepFailureData) -> str:
    """What went wrong, without Dagster's wrapping: a ``Failure``'s description, or the
    innermost error's first lines."""
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error is not None and error.cause is not None:
        error = error.cause
    return error.message.strip() if error else "failed"


def run_job(job_name: str, tags: dict[str, str] | None = None) -> RunOutcome:
    """Run a job of the project's ``Definitions`` in this process, logging progress at INFO;
    ``tags`` select the partitions (see ``acton_pipelines.partitions``)."""
    local_dagster_home()
    from acton_pipelines.definitions import defs

    job = defs.resolve_job_def(job_name)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
            tags=tags,
        )
    failures = []
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data:
            failures.append(f"{event.step_key}: {_failure_message(event.step_failure_data)}")
    return RunOutcome(run_id=result.run_id, success=result.success, failures=failures)
