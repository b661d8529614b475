"""Every failed run, once: a ``run_failures`` row and, if configured, a webhook alert.

The sensor turns a failed run into one line (``acton_pipelines.runs.run_failures``), records it in
the warehouse table ``run_failures`` (upsert by run id, so re-evaluating a run is harmless) and,
when ``ACTON_ALERT_WEBHOOK_URL`` is set, POSTs a small JSON document to it. A webhook that
fails is recorded in ``run_failures.alert_error`` and logged; it never fails the sensor.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from dagster import (
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)
from sqlalchemy import Engine, select, update

from acton_pipelines.runs.partitions import RANGE_END_TAG, RANGE_START_TAG
from acton_pipelines.runs.run_failures import failure_causes, run_failed_at, run_failure_summary
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.schema import ensure_table
from acton_pipelines.warehouse.staged_load import dialect_insert
from acton_pipelines.warehouse.sync_runs import utc_now
from acton_pipelines.warehouse.tables import run_failures

# Read at every evaluation, never stored: the URL may embed a token (Slack, Teams, PagerDuty).
ALERT_WEBHOOK_ENV = "ACTON_ALERT_WEBHOOK_URL"
# The Dagster UI the alert links to (``<base>/runs/<run id>``).
DAGSTER_URL_ENV = "ACTON_DAGSTER_URL"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"

# The daemon evaluates up to 5 failed runs per tick and gives a tick 60 s: each alert gets at
# most WEBHOOK_BUDGET_SECONDS (attempts stop when another could overrun it), so a webhook that
# hangs cannot time the sensor out. Quick failures (refused connection, 5xx) are retried.
WEBHOOK_TIMEOUT = (3.05, 4.0)  # connect, read (seconds)
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_SECONDS = 0.5
WEBHOOK_BUDGET_SECONDS = 10.0

# Run tags worth keeping with a failure: the project's own labels (sync mode, why a full sync
# was requested) and which partitions the run covered.
_KEPT_TAG_PREFIXES = ("acton/", "dagster/partition", "dagster/asset_partition_range")
_PARTITION_TAG = "dagster/partition"


@dataclass(frozen=True)
class FailedRun:
    """What the sensor records and sends about one failed run."""

    run_id: str
    job_name: str
    failed_at: datetime
    cause: str
    step_keys: list[str]
    tags: dict[str, str]

    @property
    def partition_range(self) -> dict[str, str] | None:
        """The partitions the run covered (``{"start", "end"}``), or None if unpartitioned."""
        start, end = self.tags.get(RANGE_START_TAG), self.tags.get(RANGE_END_TAG)
        if start and end:
            return {"start": start, "end": end}
        single = self.tags.get(_PARTITION_TAG)
        return {"start": single, "end": single} if single else None


def kept_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The ``acton/*`` and partition tags of a run, sorted by name."""
    return {k: tags[k] for k in sorted(tags) if k.startswith(_KEPT_TAG_PREFIXES)}


def describe_failed_run(instance: DagsterInstance, run: DagsterRun) -> FailedRun:
    """The failed run ``run`` as the sensor records it: when, which steps, why (one line)."""
    causes = failure_causes(instance, run.run_id)
    failed_at = run_failed_at(instance, run.run_id)
    if failed_at is None:
        # A run marked failed without a RUN_FAILURE event (should not happen): when we saw it.
        failed_at = utc_now()
    steps = list(dict.fromkeys(c.step_key for c in causes if c.step_key))
    return FailedRun(
        run_id=run.run_id,
        job_name=run.job_name,
        failed_at=failed_at,
        cause=run_failure_summary(causes),
        step_keys=steps,
        tags=kept_tags(run.tags),
    )


def dagster_run_url(run_id: str, base: str | None = None) -> str:
    """The run's page in the Dagster UI (``ACTON_DAGSTER_URL``, default the local UI)."""
    base = base or os.environ.get(DAGSTER_URL_ENV) or DEFAULT_DAGSTER_URL
    return f"{base.rstrip('/')}/runs/{run_id}"


def alert_payload(failed: FailedRun, dagster_url: str | None = None) -> dict[str, Any]:
    """The JSON document the webhook receives."""
    return {
        "event": "run_failed",
        "run_id": failed.run_id,
        "job": failed.job_name,
        "cause": failed.cause,
        "failed_steps": failed.step_keys,
        "failed_at": failed.failed_at.isoformat(),
        "partition_range": failed.partition_range,
        "dagster_run_url": dagster_run_url(failed.run_id, dagster_url),
    }


def webhook_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: the only part of the webhook URL that may be logged
    or stored (its user, password, path and query string may hold a token)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme or '?'}://{host}" + (f":{port}" if port else "")


def post_alert(
    url: str,
    payload: Mapping[str, Any],
    *,
    attempts: int = WEBHOOK_ATTEMPTS,
    budget_seconds: float = WEBHOOK_BUDGET_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """POST ``payload`` as JSON to ``url``; None when a 2xx answered, else what went wrong.

    Connection errors, timeouts, 429 and 5xx answers are retried with backoff within
    ``budget_seconds``; other answers (a 404, a 401 for a wrong token) are not: retrying cannot
    fix them. The error never contains the URL beyond its scheme and host.
    """
    origin = webhook_origin(url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{ALERT_WEBHOOK_ENV} is not an http(s) URL; no alert sent"
    started = time.monotonic()
    attempt_seconds = sum(WEBHOOK_TIMEOUT)
    problem = "no attempt made"
    for attempt in range(1, attempts + 1):
        try:
            # No redirects: a redirected POST turns into a GET and the alert would be lost.
            response = requests.post(
                url, json=dict(payload), timeout=WEBHOOK_TIMEOUT, allow_redirects=False
            )
        except (requests.ConnectionError, requests.Timeout) as error:
            # The exception's text quotes the full URL: only its class is kept.
            problem = f"could not reach the webhook at {origin} ({type(error).__name__})"
        except requests.RequestException as error:
            return f"the webhook at {origin} could not be called ({type(error).__name__})"
        else:
            if 200 <= response.status_code < 300:
                return None
            problem = f"the webhook at {origin} answered HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                return problem
        backoff = WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1)
        elapsed = time.monotonic() - started
        if attempt == attempts or elapsed + backoff + attempt_seconds > budget_seconds:
            return f"{problem}; gave up after {attempt} attempt{'s' if attempt > 1 else ''}"
        sleep(backoff)
    return problem


def record_run_failure(engine: Engine, failed: FailedRun) -> bool:
    """Upsert ``failed`` into ``run_failures`` (creating the table if missing); returns whether
    an alert for this run was already delivered (a re-evaluation must not send it twice)."""
    ensure_table(engine, run_failures)
    row = {
        "run_id": failed.run_id,
        "job_name": failed.job_name,
        "failed_at": failed.failed_at,
        "cause": failed.cause,
        "step_keys": ",".join(failed.step_keys),
        "tags": json.dumps(failed.tags, sort_keys=True),
    }
    with engine.begin() as conn:
        alerted = conn.execute(
            select(run_failures.c.alerted).where(run_failures.c.run_id == failed.run_id)
        ).scalar_one_or_none()
        statement = dialect_insert(conn, run_failures).values(**row, alerted=False)
        # alerted and alert_error are the webhook's to set: a re-evaluation keeps them.
        statement = statement.on_conflict_do_update(
            index_elements=["run_id"],
            set_={name: statement.excluded[name] for name in row if name != "run_id"},
        )
        conn.execute(statement)
    return bool(alerted)


def record_alert(engine: Engine, run_id: str, error: str | None) -> None:
    """Record the webhook's outcome for ``run_id``: delivered, or the error (never the URL)."""
    with engine.begin() as conn:
        conn.execute(
            update(run_failures)
            .where(run_failures.c.run_id == run_id)
            .values(alerted=error is None, alert_error=error)
        )


class RunFailureNotRecorded(Exception):
    """The failed run could not be written to ``run_failures`` (the warehouse is down?)."""


@run_failure_sensor(
    name="run_failure_alerts",
    # Every run of the instance: runs started by `acton sync ...` execute in that process and
    # carry no code-location origin, so "this code location's jobs" would miss them. The
    # instance holds this project's runs only.
    monitor_all_code_locations=True,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "For every failed run (daemon, UI or command line): records one line saying what "
        "failed and why in the warehouse table run_failures (run_id, job_name, failed_at, cause, "
        "step_keys, tags, alerted, alert_error) and, when ACTON_ALERT_WEBHOOK_URL is set, "
        "POSTs it as JSON (event run_failed, with a link to the run via ACTON_DAGSTER_URL). "
        "A webhook that fails is recorded in alert_error and does not fail the sensor."
    ),
)
def run_failure_alerts(context: RunFailureSensorContext, warehouse: WarehouseResource) -> None:
    """Record the failed run, then alert (once) if a webhook is configured.

    Returns None so the daemon goes on to the next failed run in the same tick (a return value
    would end the tick after this run).
    """
    failed = describe_failed_run(context.instance, context.dagster_run)
    context.log.info(f"Run {failed.run_id} of {failed.job_name} failed: {failed.cause}")
    not_recorded: Exception | None = None
    already_alerted = False
    try:
        already_alerted = record_run_failure(warehouse.engine, failed)
    except Exception as error:  # noqa: BLE001 - any reason: the alert must still go out
        # A warehouse that is down (or a SQLite folder that cannot be created) is often why
        # the run failed in the first place: alert anyway, then fail the tick.
        not_recorded = error
        context.log.error(
            f"Could not record run {failed.run_id} in run_failures on {warehouse.display_url} "
            f"({type(error).__name__})."
        )

    webhook = os.environ.get(ALERT_WEBHOOK_ENV, "").strip()
    if webhook and not already_alerted:
        problem = post_alert(webhook, alert_payload(failed))
        if problem:
            context.log.warning(f"Alert for run {failed.run_id} not delivered: {problem}.")
        else:
            context.log.info(f"Alert for run {failed.run_id} sent to {webhook_origin(webhook)}.")
        if not_recorded is None:
            record_alert(warehouse.engine, failed.run_id, problem)

    if not_recorded is not None:
        # Fail the tick, so the UI shows the sensor could not record the failure.
        raise RunFailureNotRecorded(
            f"run {failed.run_id} of {failed.job_name} failed ({failed.cause}) but could not "
            f"be recorded in run_failures on {warehouse.display_url}"
        ) from not_recorded
