"""The run-failure sensor: a failed run becomes one line in ``run_failures`` and one webhook
alert, on a real Dagster instance and a real HTTP server on loopback."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    ExecuteInProcessResult,
    Failure,
    build_run_status_sensor_context,
    build_sensor_context,
    job,
    op,
)
from sqlalchemy import select

from acton_pipelines.runs.partitions import PARTITION_TAG, full_sync_tags
from acton_pipelines.runs.run_failures import (
    StepCause,
    failure_causes,
    run_failure_summary,
    step_failure_cause,
)
from acton_pipelines.schedules.run_failure_sensor import (
    ALERT_WEBHOOK_ENV,
    DAGSTER_URL_ENV,
    RunFailureNotRecorded,
    run_failure_alerts,
    webhook_origin,
)
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.tables import run_failures
from tests.conftest import ActonHome, run_sync

SECRET = "s3cr3t-t0ken"


# --- a real webhook on loopback ---------------------------------------------------------------


@dataclass
class Webhook:
    """A local HTTP server answering every POST with ``status``; what it received."""

    url: str
    status: int
    received: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def webhook_server(status: int = 200) -> Iterator[Webhook]:
    """An HTTP server on 127.0.0.1 (ephemeral port) in a thread, for one test."""
    webhook = Webhook(url="", status=status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            webhook.received.append(
                {
                    "path": self.path,
                    "content_type": self.headers.get("Content-Type"),
                    "json": json.loads(body),
                }
            )
            self.send_response(webhook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # keep the test output clean

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    host, port = server.server_address[:2]
    webhook.url = f"http://{host}:{port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield webhook
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> int:
    """A loopback port nothing listens on (a connection to it is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- failing runs ------------------------------------------------------------------------------

CRM_DOWN = "CRM unavailable since 10:02 UTC after 7 attempts: HTTP 503"


@op
def pull_leads() -> None:
    raise Failure(description=f"{CRM_DOWN}\nThe CRM answered 503 to every request.")


@job(name="crm_stand_in", tags={"acton/sync_mode": "incremental"})
def crm_stand_in() -> None:
    pull_leads()


@op
def chained() -> None:
    try:
        raise ConnectionError("HTTP 503 from the CRM\nRetry-After: 60")
    except ConnectionError as error:
        raise RuntimeError("could not read Leads") from error


@job(name="chained_stand_in")
def chained_stand_in() -> None:
    chained()


def failed_run(
    result: ExecuteInProcessResult,
    instance: DagsterInstance,
    warehouse: WarehouseResource,
) -> Any:
    """The sensor's context for ``result``'s failed run, as the daemon builds it."""
    assert not result.success
    return build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"warehouse": warehouse},
    ).for_run_failure()


def rows(warehouse: WarehouseResource) -> list[Any]:
    with warehouse.engine.connect() as conn:
        return list(conn.execute(select(run_failures)))


def failure_time(instance: DagsterInstance, run_id: str) -> datetime:
    (record,) = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_FAILURE).records
    return datetime.fromtimestamp(record.timestamp, tz=UTC)


def as_utc(value: datetime) -> datetime:
    # SQLite hands DateTime(timezone=True) back without its zone; the value is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- the sensor --------------------------------------------------------------------------------


def test_a_failed_run_is_recorded_and_alerted_once(
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # On SQLite and on PostgreSQL: the upsert is written per dialect.
    warehouse = WarehouseResource(url=warehouse_url)
    instance = DagsterInstance.ephemeral()
    result = crm_stand_in.execute_in_process(
        instance=instance, raise_on_error=False, tags={"team": "data"}
    )
    with webhook_server() as webhook:
        monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"{webhook.url}/hook?token={SECRET}")
        monkeypatch.setenv(DAGSTER_URL_ENV, "https://dagster.example.com/")
        assert run_failure_alerts(failed_run(result, instance, warehouse)) is None
        # The daemon may evaluate a run again (it crashed before saving its cursor): the row
        # is upserted, and the alert, once delivered, is not sent twice.
        run_failure_alerts(failed_run(result, instance, warehouse))

    failed_at = failure_time(instance, result.run_id)
    cause = f"pull_leads: {CRM_DOWN} (+1 more line)"
    (row,) = rows(warehouse)
    assert row.run_id == result.run_id
    assert row.job_name == "crm_stand_in"
    assert as_utc(row.failed_at) == failed_at
    assert row.cause == cause
    assert row.step_keys == "pull_leads"
    # acton/* tags are kept, other labels are not.
    assert json.loads(row.tags) == {"acton/sync_mode": "incremental"}
    assert row.alerted is True
    assert row.alert_error is None

    (request,) = webhook.received
    assert request["path"] == f"/hook?token={SECRET}"
    assert request["content_type"] == "application/json"
    assert request["json"] == {
        "event": "run_failed",
        "run_id": result.run_id,
        "job": "crm_stand_in",
        "cause": cause,
        "failed_steps": ["pull_leads"],
        "failed_at": failed_at.isoformat(),
        "partition_range": None,
        "dagster_run_url": f"https://dagster.example.com/runs/{result.run_id}",
    }
    # The webhook's token is in no log line (and the warehouse row has no URL at all).
    logs = capfd.readouterr()
    assert SECRET not in logs.out + logs.err
    assert f"sent to {webhook.url}." in logs.err


def test_a_failed_project_sync_is_recorded_with_its_partition_range(
    acton_home: ActonHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The project's full sync, on a mapping folder that does not exist: every CRM step fails.
    missing = tmp_path / "no_such_mapping"
    instance = DagsterInstance.ephemeral()
    result = run_sync(acton_home, "full_sync", full_sync_tags(), missing, instance)
    warehouse = WarehouseResource(url=acton_home.warehouse_url)
    monkeypatch.delenv(DAGSTER_URL_ENV, raising=False)
    with webhook_server() as webhook:
        monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"{webhook.url}/alerts")
        run_failure_alerts(failed_run(result, instance, warehouse))

    causes = failure_causes(instance, result.run_id)
    failed_steps = sorted(c.step_key for c in causes if c.step_key)
    assert {"crm_leads", "crm_contacts", "crm_accounts", "crm_users"} <= set(failed_steps)
    # The same mapping problem in every CRM step: one cause naming the steps, one line.
    assert len({c.cause for c in causes}) == 1
    mapping_problem = causes[0].cause
    # The Failure's heading ("The mapping in ... has 1 problem:") and the problem itself.
    assert mapping_problem.startswith(f"The mapping in {missing} has 1 problem: ")
    assert f"{missing}: the mapping folder does not exist" in mapping_problem
    assert "(+" not in mapping_problem and "\n" not in mapping_problem

    (row,) = rows(warehouse)
    assert row.job_name == "full_sync"
    assert sorted(row.step_keys.split(",")) == failed_steps
    assert row.cause == f"{', '.join(c.step_key for c in causes)}: {mapping_problem}"
    # The run's acton/* and partition tags are kept (other tags, e.g. Dagster's
    # dagster/failure_reason, are not).
    tags = full_sync_tags()
    kept = json.loads(row.tags)
    assert kept.items() >= tags.items()
    assert "dagster/failure_reason" in result.dagster_run.tags
    assert all(k.startswith(("acton/", "dagster/partition")) for k in kept)
    assert row.alerted is True

    (request,) = webhook.received
    body = request["json"]
    assert body["job"] == "full_sync"
    assert body["cause"] == row.cause
    # A full sync runs on one partition (today's): its range is that one day.
    assert body["partition_range"] == {"start": tags[PARTITION_TAG], "end": tags[PARTITION_TAG]}
    assert body["dagster_run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"


@pytest.mark.parametrize("answer", ["http_500", "refused"])
def test_a_failing_webhook_is_recorded_and_the_sensor_carries_on(
    answer: str,
    warehouse: WarehouseResource,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    instance = DagsterInstance.ephemeral()
    result = crm_stand_in.execute_in_process(instance=instance, raise_on_error=False)
    with contextlib.ExitStack() as stack:
        if answer == "http_500":
            webhook = stack.enter_context(webhook_server(status=500))
            base = webhook.url
        else:
            base = f"http://127.0.0.1:{closed_port()}"
        monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"{base}/hook?token={SECRET}")
        # No exception: a webhook that fails does not fail the sensor.
        assert run_failure_alerts(failed_run(result, instance, warehouse)) is None

    (row,) = rows(warehouse)
    assert row.cause == f"pull_leads: {CRM_DOWN} (+1 more line)"
    assert row.alerted is False
    if answer == "http_500":
        # Retried (a 5xx may pass), then given up.
        assert len(webhook.received) == 3
        assert row.alert_error == (
            f"the webhook at {base} answered HTTP 500; gave up after 3 attempts"
        )
    else:
        assert row.alert_error.startswith(f"could not reach the webhook at {base} (")
    logs = capfd.readouterr()
    assert f"Alert for run {result.run_id} not delivered: {row.alert_error}." in logs.err
    assert SECRET not in logs.out + logs.err + row.alert_error


def test_an_unreachable_warehouse_still_alerts_then_fails_the_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A SQLite file whose folder cannot be created (its parent is a file).
    (tmp_path / "not_a_folder").write_text("")
    broken = WarehouseResource(url=f"sqlite:///{tmp_path / 'not_a_folder' / 'w.sqlite'}")
    instance = DagsterInstance.ephemeral()
    result = crm_stand_in.execute_in_process(instance=instance, raise_on_error=False)
    with webhook_server() as webhook:
        monkeypatch.setenv(ALERT_WEBHOOK_ENV, f"{webhook.url}/hook")
        with pytest.raises(RunFailureNotRecorded, match="could not be recorded in run_failures"):
            run_failure_alerts(failed_run(result, instance, broken))
    (request,) = webhook.received
    assert request["json"]["run_id"] == result.run_id


def test_the_daemon_path_reacts_to_a_job_it_was_never_told_about(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evaluated as the daemon does (cursor over the instance's run-failure events): a failed
    run of a job the sensor does not list (``chained_stand_in``) is recorded."""
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    instance = DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> Any:
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"warehouse": warehouse}
        )
        return run_failure_alerts.evaluate_tick(context)

    first = tick(None)  # the first tick only sets the cursor
    result = chained_stand_in.execute_in_process(instance=instance, raise_on_error=False)
    second = tick(first.cursor)

    (reaction,) = second.dagster_run_reactions
    assert reaction.dagster_run.run_id == result.run_id
    assert reaction.error is None
    (row,) = rows(warehouse)
    assert row.job_name == "chained_stand_in"
    assert row.cause == "chained: ConnectionError: HTTP 503 from the CRM (+1 more line)"
    assert row.alerted is False and row.alert_error is None
    # The cursor moved past the run: the next tick does not record it again.
    third = tick(second.cursor)
    assert not third.dagster_run_reactions


def test_a_run_that_failed_before_any_step_is_recorded_from_its_run_failure(
    warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALERT_WEBHOOK_ENV, raising=False)
    instance = DagsterInstance.ephemeral()
    run: DagsterRun = instance.create_run_for_job(job_def=crm_stand_in)
    # What run monitoring reports when a run worker dies before starting a step.
    event = instance.report_run_failed(run, message="Run worker exited unexpectedly\nexit 137")
    assert failure_causes(instance, run.run_id) == [
        StepCause(None, "Run worker exited unexpectedly (+1 more line)")
    ]
    context = build_run_status_sensor_context(
        sensor_name="run_failure_alerts",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        dagster_event=event,
        resources={"warehouse": warehouse},
    ).for_run_failure()
    run_failure_alerts(context)
    (row,) = rows(warehouse)
    assert row.cause == "Run worker exited unexpectedly (+1 more line)"
    assert row.step_keys == ""


# --- one-line causes ---------------------------------------------------------------------------


def test_failure_causes_follow_the_cause_chain_to_the_innermost_error() -> None:
    instance = DagsterInstance.ephemeral()
    result = chained_stand_in.execute_in_process(instance=instance, raise_on_error=False)
    assert failure_causes(instance, result.run_id) == [
        StepCause("chained", "ConnectionError: HTTP 503 from the CRM (+1 more line)")
    ]
    (event,) = [e for e in result.all_events if e.is_step_failure]
    assert step_failure_cause(event.step_failure_data) == (
        "ConnectionError: HTTP 503 from the CRM (+1 more line)"
    )


def test_a_failure_naming_its_step_does_not_name_it_twice() -> None:
    # The project's assets describe their failures as "<step>: <cause>" (one_line_failure).
    @op
    def crm_leads() -> None:
        raise Failure(description=f"crm_leads: {CRM_DOWN}")

    @op
    def crm_contacts() -> None:
        raise Failure(description=f"crm_contacts: {CRM_DOWN}")

    @job
    def both_down() -> None:
        crm_leads()
        crm_contacts()

    instance = DagsterInstance.ephemeral()
    result = both_down.execute_in_process(instance=instance, raise_on_error=False)
    causes = failure_causes(instance, result.run_id)
    assert sorted(causes, key=str) == [
        StepCause("crm_contacts", CRM_DOWN),
        StepCause("crm_leads", CRM_DOWN),
    ]
    # The same cause once, naming both steps (in the order they failed).
    steps = ", ".join(c.step_key or "" for c in causes)
    assert run_failure_summary(causes) == f"{steps}: {CRM_DOWN}"
    (event, _) = [e for e in result.all_events if e.is_step_failure]
    # Without the step key (as printed on its own), the description is kept whole.
    assert step_failure_cause(event.step_failure_data).endswith(f": {CRM_DOWN}")


def test_a_failure_without_description_falls_back_to_its_error() -> None:
    @op
    def silent() -> None:
        raise Failure()

    @op
    def typed() -> None:
        raise ValueError("a date that is not a date: 2026-13-45")

    @job
    def two_failures() -> None:
        silent()
        typed()

    instance = DagsterInstance.ephemeral()
    result = two_failures.execute_in_process(instance=instance, raise_on_error=False)
    causes = {c.step_key: c.cause for c in failure_causes(instance, result.run_id)}
    assert causes == {
        "silent": "Failure (no message)",
        "typed": "ValueError: a date that is not a date: 2026-13-45",
    }
    # A run that did not fail has no causes.
    ok = DagsterInstance.ephemeral()
    assert failure_causes(ok, "no-such-run") == []


def test_the_run_summary_groups_steps_by_cause() -> None:
    causes = [
        StepCause("crm_leads", CRM_DOWN),
        StepCause("crm_contacts", CRM_DOWN),
        StepCause("acton_contacts", "Failure (no message)"),
    ]
    assert run_failure_summary(causes) == (
        f"crm_leads, crm_contacts: {CRM_DOWN}; acton_contacts: Failure (no message)"
    )
    many = [StepCause(f"step_{i}", f"problem {i}") for i in range(5)]
    assert run_failure_summary(many) == (
        "step_0: problem 0; step_1: problem 1; step_2: problem 2; (+2 more)"
    )
    assert run_failure_summary([StepCause(None, "worker died")]) == "worker died"
    assert run_failure_summary([]) == "failed (no failure recorded)"


def test_only_the_webhook_scheme_and_host_are_ever_shown() -> None:
    assert webhook_origin(f"https://user:{SECRET}@hooks.example.com/T0/B1?token={SECRET}") == (
        "https://hooks.example.com"
    )
    assert webhook_origin("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"
