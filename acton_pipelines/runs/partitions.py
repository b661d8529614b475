"""The daily sync partitions shared by every sync asset.

A partition is one UTC day of CRM changes: the records whose ``SystemModstamp`` falls in that
day. An incremental sync materializes one or two partitions; a full sync is one run over the
whole range (``BackfillPolicy.single_run``) that reads every record and reconciles deletions.
"""

from __future__ import annotations

import os
import warnings

from dagster import BackfillPolicy, BetaWarning, DailyPartitionsDefinition

# A full sync must be ONE run over the whole range (it reconciles deletions against every
# record), which is what the single-run backfill policy gives; its "beta" label is noise in
# every command's output.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

# The first day of the range a full sync covers (set ACTON_SYNC_START_DATE to your go-live
# date): a full sync records one materialization per asset per day of the range.
DEFAULT_SYNC_START_DATE = "2026-11-01"

sync_partitions = DailyPartitionsDefinition(
    start_date=os.environ.get("ACTON_SYNC_START_DATE", DEFAULT_SYNC_START_DATE),
    timezone="UTC",
    # Today's partition exists while the day is under way, so hourly syncs can cover it.
    end_offset=1,
)

sync_backfill_policy = BackfillPolicy.single_run()

# Run tags: the mode a run asks for, and Dagster's partition range tags.
SYNC_MODE_TAG = "acton/sync_mode"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# "since_last_sync": an incremental run reads from each object's high-water mark (the newest
# SystemModstamp its last successful sync read) instead of the whole of its days. Set by the
# hourly schedule and by `acton sync incremental`; a run launched over chosen partitions (UI,
# backfill, `--partition`) re-reads those days.
WINDOW_TAG = "acton/window"
SINCE_LAST_SYNC = "since_last_sync"
# "true" lets a sync delete more than the mass-delete guard allows (ACTON_MAX_DELETE_FRACTION).
ALLOW_MASS_DELETE_TAG = "acton/allow_mass_delete"


def full_sync_tags() -> dict[str, str]:
    """Tags of a full sync run: the whole partition range, mode full."""
    keys = sync_partitions.get_partition_keys()
    return {SYNC_MODE_TAG: "full", RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def incremental_tags(
    first_key: str, last_key: str | None = None, *, since_last_sync: bool = False
) -> dict[str, str]:
    """Tags of an incremental run over ``first_key``..``last_key`` (one or more days); with
    ``since_last_sync``, each object reads from its high-water mark rather than the days'
    start."""
    tags = {
        SYNC_MODE_TAG: "incremental",
        RANGE_START_TAG: first_key,
        RANGE_END_TAG: last_key or first_key,
    }
    if since_last_sync:
        tags[WINDOW_TAG] = SINCE_LAST_SYNC
    return tags
