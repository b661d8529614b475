"""The schedules and sensors are registered, running by default, on the right jobs."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, DefaultSensorStatus

from acton_pipelines.definitions import defs


def test_schedules_and_sensors_are_registered_and_running_by_default() -> None:
    repository = defs.get_repository_def()
    schedules = {s.name: s for s in repository.schedule_defs}
    sensors = {s.name: s for s in repository.sensor_defs}
    assert set(schedules) == {"full_sync_schedule", "incremental_sync_schedule"}
    assert set(sensors) == {
        "mapping_change_sensor",
        "deletion_log_sensor",
        "push_after_sync",
        "imports_sensor",
        "edits_push_sensor",
        "run_failure_alerts",
        "freshness_checks_sensor",
    }
    assert schedules["incremental_sync_schedule"].job_name == "incremental_sync"
    assert all(s.default_status is DefaultScheduleStatus.RUNNING for s in schedules.values())
    for sensor in sensors.values():
        assert sensor.default_status is DefaultSensorStatus.RUNNING
    for name in ("mapping_change_sensor", "deletion_log_sensor"):
        assert [job.name for job in sensors[name].jobs] == ["full_sync"]
    assert [job.name for job in sensors["push_after_sync"].jobs] == ["push_to_crm"]
    assert [job.name for job in sensors["imports_sensor"].jobs] == ["import_files"]
    assert sensors["imports_sensor"].minimum_interval_seconds == 30
    # Their resources come from the Definitions (the same warehouse and mapping as the runs).
    assert sensors["deletion_log_sensor"].required_resource_keys == {"warehouse"}
    assert sensors["mapping_change_sensor"].required_resource_keys == {"mapping"}
    assert schedules["incremental_sync_schedule"].required_resource_keys == {"warehouse"}
    # Failed runs are recorded in the warehouse the runs write to.
    assert sensors["run_failure_alerts"].required_resource_keys == {"warehouse"}
    assert sensors["freshness_checks_sensor"].minimum_interval_seconds == 300


def test_run_failure_alerts_react_to_runs_and_launch_nothing() -> None:
    from dagster import RunStatusSensorDefinition

    sensor = defs.get_repository_def().get_sensor_def("run_failure_alerts")
    assert isinstance(sensor, RunStatusSensorDefinition)
    assert sensor.description and "run_failures" in sensor.description
    # It targets no job: it launches nothing. That it reacts to a job it was never told about
    # is tested by evaluating it on one (tests/schedules/test_run_failure_sensor.py).
    assert not sensor.targets


def test_the_push_follows_every_successful_sync() -> None:
    from dagster import DagsterInstance, build_run_status_sensor_context, job, op

    from acton_pipelines.schedules.push_after_sync import push_after_sync

    @op
    def noop() -> None: ...

    @job(name="full_sync")
    def sync_stand_in() -> None:
        noop()

    instance = DagsterInstance.ephemeral()
    result = sync_stand_in.execute_in_process(instance=instance)
    context = build_run_status_sensor_context(
        sensor_name="push_after_sync",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )
    request = push_after_sync(context)
    assert request.run_key == f"push-after-{result.run_id}"
