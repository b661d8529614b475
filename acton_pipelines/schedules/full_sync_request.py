"""A full sync requested by a sensor, tagged with why it was requested."""

from dagster import RunRequest

from acton_pipelines.jobs import full_sync_job
from acton_pipelines.runs.partitions import PARTITION_TAG, full_sync_tags

# A short label on the run (Runs page filter): which rule asked for the full sync. The sentence
# explaining it goes to the sensor's log, since run tags are meant to be short labels.
FULL_SYNC_REASON_TAG = "acton/full_sync_reason"


def full_sync_request(run_key: str, reason: str) -> RunRequest:
    """A run of the ``full_sync`` job on the latest partition (today's, UTC), labelled
    ``reason``: one materialization per asset, however far back ``ACTON_SYNC_START_DATE`` is.

    ``run_key`` makes the request idempotent: Dagster launches a key at most once per sensor.
    """
    tags = full_sync_tags()
    return RunRequest(
        job_name=full_sync_job.name,
        run_key=run_key,
        partition_key=tags[PARTITION_TAG],
        tags={**tags, FULL_SYNC_REASON_TAG: reason},
    )
