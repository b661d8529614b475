"""Scores and opt-outs are pushed on the sync schedule: after every successful sync."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SkipReason,
    run_status_sensor,
)

from acton_pipelines.jobs import crm_push_job, full_sync_job, incremental_sync_job

SYNC_JOBS = frozenset({full_sync_job.name, incremental_sync_job.name})


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    # Every run of the instance, then only the syncs: a sync started by `acton sync ...` runs
    # in that process, with no code-location origin, and would otherwise be missed.
    monitor_all_code_locations=True,
    request_job=crm_push_job,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "After each successful full or incremental sync (launched by the daemon, the UI or "
        "`acton sync`), push scores and opt-outs."
    ),
)
def push_after_sync(context: RunStatusSensorContext) -> RunRequest | SkipReason:
    run = context.dagster_run
    if run.job_name not in SYNC_JOBS:
        return SkipReason(f"{run.job_name} is not a sync; nothing to push after it.")
    return RunRequest(run_key=f"push-after-{run.run_id}")
