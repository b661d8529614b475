"""Freshness checks: ``acton_contacts`` and ``contact_scores`` turn red when no sync has
brought them up to date for longer than ``ACTON_FRESHNESS_HOURS`` (default 26).

Why last-update checks, on partitioned assets: both assets are daily-partitioned, but a
partition here is "the CRM changes of one UTC day", not "the data of one day". The hourly
incremental sync re-materializes today's partition all day long, and a full sync records
today's partition too (it reads everything, but runs on the latest partition only). What we
want to know is "has a sync succeeded lately?", i.e. how old the asset's newest
materialization is, whatever its partition (a full sync launched by hand over an old range
counts as well).

- ``build_last_update_freshness_checks`` looks up the newest materialization (or observation)
  of the asset with no partition filter (``retrieve_last_update_record(..., partition_key=
  None)`` in Dagster 1.13): the latest event of any partition. Passing when that is younger
  than the window is exactly "a sync succeeded within the window". Chosen.
- ``build_time_partition_freshness_checks`` instead asks whether the last *completed*
  partition (yesterday) has been materialized at all: one run shortly after midnight satisfies
  it for the whole day even if every later sync fails, and an hourly sync of today's partition
  counts for nothing. Wrong semantics for us.
- ``FreshnessPolicy`` (Dagster's newer mechanism) is attached to the asset definitions and
  evaluated by the daemon as asset health, not as checks; the checks below show in the assets'
  Checks tab and in the asset health like the project's other checks.

A materialization is recorded only when the asset's step succeeded, so a failed sync does not
make the asset look fresh. The checks are ERROR severity (red in the UI) and non-blocking: they
report, they never stop a run. They also run in every sync job (whose selection includes every
check on its assets), so a successful sync turns them green at once; between syncs the
``freshness_checks_sensor`` re-runs a passing check when its ``fresh_until`` time has passed.
"""

from __future__ import annotations

import math
import os
import warnings
from datetime import timedelta

from dagster import (
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    DefaultSensorStatus,
    SensorDefinition,
    SupersessionWarning,
    build_last_update_freshness_checks,
    build_sensor_for_freshness_checks,
)

FRESHNESS_HOURS_ENV = "ACTON_FRESHNESS_HOURS"
# A day of hourly incremental syncs plus two hours of margin: one missed or slow sync is not
# an incident, a day without a successful one is.
DEFAULT_FRESHNESS_HOURS = 26.0

# The assets whose staleness people notice: the Act-On contacts and their scores.
FRESHNESS_ASSETS = [AssetKey("acton_contacts"), AssetKey("contact_scores")]

FRESHNESS_SENSOR_NAME = "freshness_checks_sensor"
# Between syncs nothing changes but the clock: a look every five minutes is plenty.
FRESHNESS_SENSOR_INTERVAL_SECONDS = 300


def freshness_window(value: str | None = None) -> timedelta:
    """The freshness window: ``value``, else ``ACTON_FRESHNESS_HOURS``, else 26 hours.

    Raises ValueError naming the variable when it is not a positive number of hours.
    """
    raw = value if value is not None else os.environ.get(FRESHNESS_HOURS_ENV)
    if raw is None or not raw.strip():
        return timedelta(hours=DEFAULT_FRESHNESS_HOURS)
    try:
        hours = float(raw)
    except ValueError:
        hours = math.nan
    if not math.isfinite(hours) or hours <= 0:
        raise ValueError(
            f"{FRESHNESS_HOURS_ENV} must be a positive number of hours, e.g. "
            f"{FRESHNESS_HOURS_ENV}=26 (got {raw!r}); unset, it defaults to "
            f"{DEFAULT_FRESHNESS_HOURS:g}."
        )
    return timedelta(hours=hours)


def build_freshness_checks(window: timedelta) -> list[AssetChecksDefinition]:
    """Last-update freshness checks on ``FRESHNESS_ASSETS``: red (ERROR) when the newest
    materialization of any partition is older than ``window``."""
    # Dagster marks these factories "superseded" by FreshnessPolicy (see the module docstring
    # for why we keep them); the warning would be printed by every command that loads the code.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return list(
            build_last_update_freshness_checks(
                assets=FRESHNESS_ASSETS,
                lower_bound_delta=window,
                severity=AssetCheckSeverity.ERROR,
                blocking=False,
            )
        )


def build_freshness_sensor(checks: list[AssetChecksDefinition]) -> SensorDefinition:
    """The sensor that launches ``checks`` when a passing one may have gone stale (Dagster's
    ``build_sensor_for_freshness_checks``), running by default."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return build_sensor_for_freshness_checks(
            freshness_checks=checks,
            name=FRESHNESS_SENSOR_NAME,
            minimum_interval_seconds=FRESHNESS_SENSOR_INTERVAL_SECONDS,
            default_status=DefaultSensorStatus.RUNNING,
        )


freshness_checks = build_freshness_checks(freshness_window())
freshness_checks_sensor = build_freshness_sensor(freshness_checks)
