"""The sync window of a Dagster run: full, or the partitions' days plus a lookback."""

from __future__ import annotations

import os
from datetime import timedelta

from dagster import AssetExecutionContext

from acton_pipelines.crm.window import FULL_SYNC, SyncWindow
from acton_pipelines.partitions import SYNC_MODE_TAG, sync_partitions

# Records whose SystemModstamp equals a window edge, or that commit late, are read again by
# the next window: the overlap is harmless because every load upserts by Id.
DEFAULT_LOOKBACK = timedelta(minutes=10)


def lookback() -> timedelta:
    minutes = os.environ.get("ACTON_SYNC_LOOKBACK_MINUTES")
    return timedelta(minutes=float(minutes)) if minutes else DEFAULT_LOOKBACK


def run_window(context: AssetExecutionContext) -> SyncWindow:
    """Full when the run says so (tag ``acton/sync_mode=full``), when it covers every
    partition, or when it is not partitioned; otherwise the partitions' time window, widened
    by the lookback at its start."""
    mode = context.run.tags.get(SYNC_MODE_TAG)
    if mode == "full" or not context.has_partition_key_range:
        return FULL_SYNC
    keys = context.partition_key_range
    every = sync_partitions.get_partition_keys()
    if mode is None and (keys.start, keys.end) == (every[0], every[-1]):
        return FULL_SYNC
    window = context.partition_time_window
    return SyncWindow("incremental", window.start - lookback(), window.end)
