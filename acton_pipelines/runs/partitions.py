"""The daily sync partitions shared by every sync asset.

A partition is one UTC day of CRM changes: the records whose ``SystemModstamp`` falls in that
day. An incremental sync materializes one or two partitions (today's, and yesterday's until a
sync has read past midnight). A full sync reads every record and reconciles deletions whatever
partition it runs on (its mode tag says "full"); it runs on ONE partition, the latest (today's),
so it records one materialization per asset. Run over the whole range, as it once was, Dagster
would record a planned and a materialization event per asset per day since
``ACTON_SYNC_START_DATE``: minutes of bookkeeping on every full sync, growing every day
(benchmarks/bookkeeping.py measures both). A range of days, in the UI or a backfill, is still
one run (``BackfillPolicy.single_run``).
"""

from __future__ import annotations

import os
import warnings

from dagster import BackfillPolicy, BetaWarning, DailyPartitionsDefinition

# A range of partitions (UI, backfill) must be ONE run, not a run per day, which is what the
# single-run backfill policy gives; its "beta" label is noise in every command's output.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

# The first day of the partitions (set ACTON_SYNC_START_DATE to your go-live date): the days an
# incremental run can be launched over. It costs a full sync nothing (see the docstring).
DEFAULT_SYNC_START_DATE = "2026-11-01"

sync_partitions = DailyPartitionsDefinition(
    start_date=os.environ.get("ACTON_SYNC_START_DATE", DEFAULT_SYNC_START_DATE),
    timezone="UTC",
    # Today's partition exists while the day is under way, so hourly syncs can cover it.
    end_offset=1,
)

sync_backfill_policy = BackfillPolicy.single_run()

# Run tags: the mode a run asks for, and Dagster's partition and partition range tags.
SYNC_MODE_TAG = "acton/sync_mode"
PARTITION_TAG = "dagster/partition"
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


def full_sync_partition_key() -> str:
    """The partition a full sync runs on: the latest, today's (UTC).

    A full sync covers every day; one partition is enough to carry it, and the latest is the
    one its data is as fresh as. Raises ValueError when ``ACTON_SYNC_START_DATE`` is in the
    future (no partition exists yet).
    """
    key = sync_partitions.get_last_partition_key()
    if key is None:
        first = f"{sync_partitions.start:%Y-%m-%d}"
        raise ValueError(
            f"no sync partition exists yet: ACTON_SYNC_START_DATE ({first}) is in the future; "
            "set it to your go-live date, e.g. ACTON_SYNC_START_DATE=2026-11-01"
        )
    return key


def full_sync_tags() -> dict[str, str]:
    """Tags of a full sync run: mode full, on the latest partition only (see the docstring)."""
    return {SYNC_MODE_TAG: "full", PARTITION_TAG: full_sync_partition_key()}


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
