"""The sync window of a Dagster run, decided by what the run was launched with.

- A run of ``full_sync`` (tag ``acton/sync_mode=full``): a full sync, whatever partitions it
  covers. The CLI, the schedule and the sensors launch it on the latest partition only (one
  materialization per asset, see ``partitions``); launched by hand in the UI over any partition
  or range, it is still a full sync.
- ``incremental_sync`` launched by its schedule or ``acton sync incremental`` (tag
  ``acton/window=since_last_sync``): its days, each object reading from its high-water mark.
- ``incremental_sync`` over chosen days (one partition or a range in the UI, a backfill,
  ``acton sync incremental --partition``): those days, re-read whole.
- Assets materialized from the asset graph (no mode tag): a full sync when every partition is
  selected, else the chosen days.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from dagster import AssetExecutionContext

from acton_pipelines.runs.partitions import (
    ALLOW_MASS_DELETE_TAG,
    SINCE_LAST_SYNC,
    SYNC_MODE_TAG,
    WINDOW_TAG,
    sync_partitions,
)
from acton_pipelines.runs.window import SyncWindow

# Records whose SystemModstamp equals a window edge, or that commit late, are read again by
# the next window: the overlap is harmless because every load upserts by Id.
DEFAULT_LOOKBACK = timedelta(minutes=10)


def lookback() -> timedelta:
    minutes = os.environ.get("ACTON_SYNC_LOOKBACK_MINUTES")
    return timedelta(minutes=float(minutes)) if minutes else DEFAULT_LOOKBACK


def run_window(context: AssetExecutionContext) -> SyncWindow:
    """The window this run syncs, with the reason (see the module's table)."""
    tags = context.run.tags
    mode = tags.get(SYNC_MODE_TAG)
    partitioned = context.has_partition_key or context.has_partition_key_range
    if mode == "full":
        return SyncWindow("full", reason="a full sync run (acton/sync_mode=full)")
    if not partitioned:
        return SyncWindow("full", reason="the run covers no partition: everything is synced")
    keys = context.partition_key_range
    every = (sync_partitions.get_first_partition_key(), sync_partitions.get_last_partition_key())
    if mode is None and (keys.start, keys.end) == every:
        return SyncWindow("full", reason="the run covers every partition")
    days = context.partition_time_window
    since_last_sync = tags.get(WINDOW_TAG) == SINCE_LAST_SYNC
    span = keys.start if keys.start == keys.end else f"{keys.start}..{keys.end}"
    reason = (
        f"incremental over {span}, each object from its last sync's high-water mark"
        if since_last_sync
        else f"incremental over {span}"
    )
    return SyncWindow(
        "incremental",
        days.start - lookback(),
        days.end,
        since_last_sync=since_last_sync,
        reason=reason,
    )


def allows_mass_delete(tags: Mapping[str, str]) -> bool:
    """Whether the run confirmed mass deletions (tag ``acton/allow_mass_delete=true``)."""
    return tags.get(ALLOW_MASS_DELETE_TAG, "").strip().lower() in ("true", "yes", "1")
