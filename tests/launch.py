"""Evaluating a schedule or sensor and running what it requests, the way dagster-daemon does.

The daemon evaluates a tick (``evaluate_tick``), then creates a run of the request's job (or the
instigator's own job) with the job's tags merged with the request's tags, the request's
partition key and asset selection, and launches it. These helpers do the same on a real
``DagsterInstance``, in this process, so a test proves the request itself works, not a
hand-made stand-in for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    build_schedule_context,
    build_sensor_context,
)

from acton_pipelines.settings import REPO_ROOT


@dataclass
class Tick:
    """What one evaluation asked for: run requests, or a skip reason; and the new cursor."""

    run_requests: list[RunRequest]
    skip_message: str | None
    cursor: str | None


def schedule_tick(
    definitions: Definitions,
    name: str,
    at: datetime,
    instance: DagsterInstance,
) -> Tick:
    """Evaluate schedule ``name`` of ``definitions`` for a tick at ``at`` with its resources."""
    schedule = definitions.get_schedule_def(name)
    context = build_schedule_context(
        instance=instance,
        scheduled_execution_time=at,
        resources=_resources(definitions, schedule.required_resource_keys),
    )
    data = schedule.evaluate_tick(context)
    return Tick(list(data.run_requests or []), data.skip_message, None)


def sensor_tick(
    definitions: Definitions,
    name: str,
    instance: DagsterInstance,
    cursor: str | None = None,
) -> Tick:
    """Evaluate sensor ``name`` of ``definitions`` once, from ``cursor``, with its resources."""
    sensor = definitions.get_sensor_def(name)
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=_resources(definitions, sensor.required_resource_keys),
        definitions=definitions,
    )
    data = sensor.evaluate_tick(context)
    return Tick(list(data.run_requests or []), data.skip_message, data.cursor)


def execute_request(
    definitions: Definitions,
    request: RunRequest,
    instance: DagsterInstance,
    default_job: str | None = None,
) -> ExecuteInProcessResult:
    """Run ``request`` exactly as given: its job (or ``default_job``, the instigator's), its
    tags merged over the job's, its partition key and its asset selection."""
    job_name = request.job_name or default_job
    assert job_name, "the request names no job and the instigator has none"
    job = definitions.resolve_job_def(job_name)
    return job.execute_in_process(
        instance=instance,
        tags=dict(request.tags),
        partition_key=request.partition_key,
        asset_selection=list(request.asset_selection) if request.asset_selection else None,
        raise_on_error=False,
    )


def instigator_job(definitions: Definitions, name: str) -> str:
    """The job a schedule or sensor named ``name`` targets (for requests without a job)."""
    try:
        return definitions.get_schedule_def(name).job_name
    except Exception:  # noqa: BLE001 - not a schedule: a sensor
        sensor = definitions.get_sensor_def(name)
        jobs: Sequence[Any] = sensor.jobs
        assert len(jobs) == 1, f"{name} targets {len(jobs)} jobs; name the job"
        return jobs[0].name


def _resources(definitions: Definitions, keys: set[str]) -> Mapping[str, Any]:
    every = definitions.resources or {}
    return {key: every[key] for key in keys if key in every}


def run_sensor_daemon_once(instance: DagsterInstance) -> None:
    """One iteration of the daemon's sensor loop over the project's code location (loaded in
    this process from ``workspace.yaml``): every running sensor is evaluated, its tick stored
    and its run requests submitted, exactly as ``dagster-daemon`` does."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load import location_origins_from_yaml_paths
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.sensor import execute_sensor_iteration

    (origin,) = location_origins_from_yaml_paths([str(REPO_ROOT / "workspace.yaml")])
    target = InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(
            origin.loadable_target_origin, location_name=origin.location_name
        )
    )
    with WorkspaceProcessContext(instance, target) as context:
        list(execute_sensor_iteration(context, logging.getLogger("sensor-daemon"), None, None))
