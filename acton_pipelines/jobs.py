"""Jobs: what a data engineer (or a schedule or sensor) launches.

Every job writes the warehouse, so every run carries the tag ``acton/warehouse=write``: the
Dagster instance's run queue lets one such run go at a time (``tag_concurrency_limits`` in
``deploy/*/dagster.yaml``), and the command line waits for a running one (``local_run``).

The jobs run in one process by default (``ACTON_EXECUTOR=in_process``): their graph is a
chain (the CRM mirrors, then contacts, then scores and segments), and Dagster's multiprocess
executor would start a process per step, each importing everything again, for about four
times the CPU. ``ACTON_EXECUTOR=multiprocess`` brings it back.
"""

import os

from dagster import (
    AssetSelection,
    ExecutorDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from acton_pipelines.runs.partitions import SYNC_MODE_TAG

WAREHOUSE_TAG = "acton/warehouse"
WAREHOUSE_WRITE = {WAREHOUSE_TAG: "write"}
EXECUTORS: dict[str, ExecutorDefinition] = {
    "in_process": in_process_executor,
    "multiprocess": multiprocess_executor,
}


def job_executor() -> ExecutorDefinition:
    """The executor ``ACTON_EXECUTOR`` names (default ``in_process``)."""
    name = os.environ.get("ACTON_EXECUTOR") or "in_process"
    if name not in EXECUTORS:
        raise ValueError(
            f"ACTON_EXECUTOR={name!r} is not an executor; use one of {', '.join(EXECUTORS)} "
            "(e.g. ACTON_EXECUTOR=in_process)"
        )
    return EXECUTORS[name]


# The syncs read the CRM; only the push job writes to it. Imports run on their own, when files
# arrive (imports_sensor), not with every sync.
SYNC_ASSETS = AssetSelection.all() - AssetSelection.assets("crm_push", "acton_imports")

full_sync_job = define_asset_job(
    name="full_sync",
    selection=SYNC_ASSETS,
    tags={SYNC_MODE_TAG: "full", **WAREHOUSE_WRITE},
    executor_def=job_executor(),
    description=(
        "Full sync (Act-On's 'Sync Now'): one run that reads every CRM record, removes what "
        "the CRM no longer has (listed in sync_deletions), then rebuilds Act-On Contacts, "
        "scores and segments. A run of this job is a full sync whatever partitions it is "
        "launched with; launch it on the latest partition (today's, as the schedule, the "
        "sensors and `acton sync full` do): a range would only add a materialization per asset "
        "per day to record, not data."
    ),
)

incremental_sync_job = define_asset_job(
    name="incremental_sync",
    selection=SYNC_ASSETS,
    tags={SYNC_MODE_TAG: "incremental", **WAREHOUSE_WRITE},
    executor_def=job_executor(),
    description=(
        "Incremental sync: reads the CRM records changed (or deleted) in the selected days "
        "(SystemModstamp, with a lookback overlap), or, when launched by its schedule, since "
        "each object's last successful sync; then updates the Act-On contacts, scores and "
        "segments those changes (and any earlier sync not yet taken in) touch. Falls back to "
        "a full read of an object when the CRM's deletion log no longer reaches back to its "
        "last successful sync."
    ),
)

crm_push_job = define_asset_job(
    name="push_to_crm",
    selection=AssetSelection.assets("crm_push"),
    tags=WAREHOUSE_WRITE,
    executor_def=job_executor(),
    description=(
        "Push scores and opt-outs to the CRM (after every successful sync, by the "
        "push_after_sync sensor). Every write is logged in crm_push_log."
    ),
)

acton_imports_job = define_asset_job(
    name="import_files",
    selection=AssetSelection.assets("acton_imports"),
    tags=WAREHOUSE_WRITE,
    executor_def=job_executor(),
    description=(
        "Import the new CSV files of the imports folder (ACTON_IMPORTS_DIR): Act-On-side "
        "contacts, opt-outs, opt-ins, field edits and activity; launched by imports_sensor."
    ),
)
