"""A full sync requested by a sensor, tagged with why it was requested."""

from dagster import RunRequest

from acton_pipelines.jobs import full_sync_job
from acton_pipelines.runs.partitions import full_sync_tags

# A short label on the run (Runs page filter): which rule asked for the full sync. The sentence
# explaining it goes to the sensor's log, since run tags are meant to be short labels.
FULL_SYNC_REASON_TAG = "acton/full_sync_reason"


def full_sync_request(run_key: str, reason: str) -> RunRequest:
    """A run of the ``full_sync`` job over the whole partition range, labelled ``reason``.

    ``run_key`` makes the request idempotent: Dagster launches a key at most once per sensor.
    """
    return RunRequest(
        job_name=full_sync_job.name,
        run_key=run_key,
        tags={**full_sync_tags(), FULL_SYNC_REASON_TAG: reason},
    )
