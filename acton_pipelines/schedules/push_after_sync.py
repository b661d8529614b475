"""Scores and opt-outs are pushed on the sync schedule: after every successful sync."""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    run_status_sensor,
)

from acton_pipelines.jobs import crm_push_job, full_sync_job, incremental_sync_job


@run_status_sensor(
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[full_sync_job, incremental_sync_job],
    request_job=crm_push_job,
    default_status=DefaultSensorStatus.RUNNING,
    description="After each successful full or incremental sync, push scores and opt-outs.",
)
def push_after_sync(context: RunStatusSensorContext) -> RunRequest:
    return RunRequest(run_key=f"push-after-{context.dagster_run.run_id}")
