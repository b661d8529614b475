"""A run of ``acton_imports`` when new files appear in the imports folder."""

import hashlib
import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, sensor

from acton_pipelines import settings
from acton_pipelines.imports.files import import_files
from acton_pipelines.jobs import acton_imports_job


def requested_hashes(cursor: str | None) -> set[str]:
    """The sha256s of the files already requested (the cursor: a JSON list); an unreadable
    cursor (reset by hand, say) counts as none: the asset skips files it has imported."""
    try:
        hashes = json.loads(cursor or "[]")
    except ValueError:
        return set()
    return {h for h in hashes if isinstance(h, str)} if isinstance(hashes, list) else set()


def imports_run_key(hashes: set[str]) -> str:
    """One run per set of new files: the sha256 of their sorted sha256s."""
    return hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()


@sensor(
    job=acton_imports_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the imports folder (ACTON_IMPORTS_DIR, default ACTON_HOME/imports): when files "
        "appear whose contents (sha256) it has not seen, requests one run of acton_imports. "
        "The cursor lists the sha256s of the folder's files already requested."
    ),
)
def imports_sensor(context: SensorEvaluationContext) -> SensorResult:
    folder = settings.imports_dir()
    present = {file.sha256 for file in import_files(folder)}
    seen = requested_hashes(context.cursor)
    new = present - seen
    # Only the folder's files are remembered: the cursor stays as small as the folder.
    cursor = json.dumps(sorted(present))
    if not new:
        return SensorResult(skip_reason=f"No new files in {folder}.", cursor=cursor)
    context.log.info(f"{len(new)} new file(s) in {folder}: requesting acton_imports.")
    request = RunRequest(run_key=imports_run_key(new), tags={"acton/import_files": str(len(new))})
    return SensorResult(run_requests=[request], cursor=cursor)
