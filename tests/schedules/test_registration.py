"""The schedules and sensors are registered, running by default, on the right jobs."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, DefaultSensorStatus

from acton_pipelines.definitions import defs


def test_schedules_and_sensors_are_registered_and_running_by_default() -> None:
    repository = defs.get_repository_def()
    schedules = {s.name: s for s in repository.schedule_defs}
    sensors = {s.name: s for s in repository.sensor_defs}
    assert set(schedules) == {"full_sync_schedule", "incremental_sync_schedule"}
    assert set(sensors) == {"mapping_change_sensor", "deletion_log_sensor"}
    assert schedules["incremental_sync_schedule"].job_name == "incremental_sync"
    assert all(s.default_status is DefaultScheduleStatus.RUNNING for s in schedules.values())
    for sensor in sensors.values():
        assert sensor.default_status is DefaultSensorStatus.RUNNING
        assert [job.name for job in sensor.jobs] == ["full_sync"]
    # Their resources come from the Definitions (the same warehouse and mapping as the runs).
    assert sensors["deletion_log_sensor"].required_resource_keys == {"warehouse"}
    assert sensors["mapping_change_sensor"].required_resource_keys == {"mapping"}
    assert schedules["incremental_sync_schedule"].required_resource_keys == {"warehouse"}
