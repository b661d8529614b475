"""Freshness checks on acton_contacts and contact_scores: red when no sync succeeded within
``ACTON_FRESHNESS_HOURS``, evaluated on a real instance at controlled times.

Dagster's freshness checks and sensor read "now" from ``dagster._time``; ``freeze_time``
(Dagster's own test helper for exactly this) moves it, and the events recorded meanwhile carry
the frozen time, so a sync "at 10:00" and a check "27 hours later" need no waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    RunRequest,
    build_sensor_context,
)
from dagster._core.test_utils import freeze_time

from acton_pipelines.definitions import defs as project_defs
from acton_pipelines.schedules.freshness import (
    DEFAULT_FRESHNESS_HOURS,
    FRESHNESS_HOURS_ENV,
    build_freshness_checks,
    build_freshness_sensor,
    freshness_checks,
    freshness_checks_sensor,
    freshness_window,
)
from tests.conftest import ActonHome, run_full_sync

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
WINDOW = timedelta(hours=DEFAULT_FRESHNESS_HOURS)
CONTACTS = AssetKey("acton_contacts")
SCORES = AssetKey("contact_scores")


def record_sync(instance: DagsterInstance, at: datetime, partition: str = "2026-11-20") -> None:
    """A successful sync of both assets at ``at``: one materialization each, of ``partition``."""
    with freeze_time(at):
        for key in (CONTACTS, SCORES):
            instance.report_runless_asset_event(AssetMaterialization(key, partition=partition))


def evaluate(
    instance: DagsterInstance,
    at: datetime,
    definitions: Definitions = project_defs,
    keys: Sequence[AssetCheckKey] | None = None,
) -> dict[AssetKey, AssetCheckEvaluation]:
    """Run the freshness checks at ``at`` (all of them, or ``keys``) the way the freshness
    sensor's run does: the implicit asset job, subset to the checks alone."""
    checks = [key for c in definitions.asset_checks or [] for key in c.check_keys]
    selected = set(keys) if keys is not None else {k for k in checks if k.name == "freshness_check"}
    job = definitions.resolve_implicit_global_asset_job_def()
    with freeze_time(at):
        result = job.get_subset(
            asset_selection=set(), asset_check_selection=selected
        ).execute_in_process(instance=instance)
    assert result.success
    return {e.asset_key: e for e in result.get_asset_check_evaluations()}


def sensor_tick(instance: DagsterInstance, at: datetime) -> RunRequest | None:
    """One evaluation of ``freshness_checks_sensor`` at ``at``: its run request, if any."""
    context = build_sensor_context(instance=instance, definitions=project_defs)
    with freeze_time(at):
        data = freshness_checks_sensor.evaluate_tick(context)
    requests = list(data.run_requests or [])
    assert len(requests) <= 1
    return requests[0] if requests else None


def run_request(instance: DagsterInstance, request: RunRequest, at: datetime) -> None:
    """Execute ``request`` as the daemon would: its job, asset selection and check keys."""
    job = project_defs.resolve_job_def(request.job_name or "")
    with freeze_time(at):
        result = job.get_subset(
            asset_selection=set(request.asset_selection or []),
            asset_check_selection=set(request.asset_check_keys or []),
        ).execute_in_process(instance=instance, tags=dict(request.tags))
    assert result.success


def latest_results(instance: DagsterInstance, keys: set[AssetCheckKey]) -> list[bool]:
    """Whether each check passed at its latest completed evaluation (what the UI shows)."""
    summaries = instance.event_log_storage.get_asset_check_summary_records(sorted(keys, key=str))
    results = []
    for summary in summaries.values():
        record = summary.last_completed_check_execution_record
        assert record is not None and record.event is not None
        evaluation = record.event.asset_check_evaluation
        assert evaluation is not None
        results.append(evaluation.passed)
    return results


# --- the window ---------------------------------------------------------------------------------


def test_the_window_defaults_to_26_hours_and_reads_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(FRESHNESS_HOURS_ENV, raising=False)
    assert freshness_window() == timedelta(hours=26)
    monkeypatch.setenv(FRESHNESS_HOURS_ENV, "1.5")
    assert freshness_window() == timedelta(hours=1, minutes=30)
    monkeypatch.setenv(FRESHNESS_HOURS_ENV, " ")
    assert freshness_window() == timedelta(hours=26)


@pytest.mark.parametrize("value", ["a day", "0", "-3", "nan", "inf", "26h"])
def test_an_invalid_window_is_a_clear_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FRESHNESS_HOURS_ENV, value)
    with pytest.raises(ValueError) as raised:
        freshness_window()
    message = str(raised.value)
    assert FRESHNESS_HOURS_ENV in message
    assert f"e.g. {FRESHNESS_HOURS_ENV}=26" in message
    assert repr(value) in message


def test_the_registered_checks_cover_both_assets_red_and_non_blocking() -> None:
    specs = [spec for checks in freshness_checks for spec in checks.check_specs]
    assert {spec.asset_key for spec in specs} == {CONTACTS, SCORES}
    assert not any(spec.blocking for spec in specs)
    assert set(project_defs.asset_checks or []) >= set(freshness_checks)


# --- the checks ---------------------------------------------------------------------------------


def test_fresh_within_the_window_red_after_it() -> None:
    instance = DagsterInstance.ephemeral()
    record_sync(instance, T0)

    fresh = evaluate(instance, T0 + WINDOW - timedelta(minutes=1))
    assert set(fresh) == {CONTACTS, SCORES}
    assert all(e.passed for e in fresh.values())

    stale = evaluate(instance, T0 + WINDOW + timedelta(minutes=1))
    assert set(stale) == {CONTACTS, SCORES}
    for evaluation in stale.values():
        assert evaluation.passed is False
        # ERROR: red in the UI, not the yellow of a warning.
        assert evaluation.severity is AssetCheckSeverity.ERROR
        assert "overdue" in (evaluation.description or "")


def test_never_synced_is_red() -> None:
    instance = DagsterInstance.ephemeral()
    evaluations = evaluate(instance, T0)
    assert [e.passed for e in evaluations.values()] == [False, False]


def test_the_latest_sync_counts_whatever_partition_it_wrote() -> None:
    # A sync's time decides, not its partition's date: a full sync launched by hand over an
    # old day or range records old partitions, the schedules today's; either is a sync.
    instance = DagsterInstance.ephemeral()
    record_sync(instance, T0 - timedelta(days=3), partition="2026-11-20")
    record_sync(instance, T0, partition="2026-11-01")
    evaluations = evaluate(instance, T0 + timedelta(hours=25))
    assert all(e.passed for e in evaluations.values())


def test_each_asset_is_judged_on_its_own() -> None:
    # Scores stopped (a blocking schema check kept them from running) while contacts synced.
    instance = DagsterInstance.ephemeral()
    record_sync(instance, T0)
    with freeze_time(T0 + timedelta(hours=20)):
        instance.report_runless_asset_event(AssetMaterialization(CONTACTS, partition="2026-11-21"))
    evaluations = evaluate(instance, T0 + WINDOW + timedelta(hours=1))
    assert evaluations[CONTACTS].passed is True
    assert evaluations[SCORES].passed is False


def test_the_window_follows_the_configured_hours() -> None:
    checks = build_freshness_checks(timedelta(hours=2))
    definitions = Definitions(
        assets=project_defs.assets, asset_checks=checks, resources=project_defs.resources
    )
    instance = DagsterInstance.ephemeral()
    record_sync(instance, T0)
    keys = [key for c in checks for key in c.check_keys]
    assert all(
        e.passed for e in evaluate(instance, T0 + timedelta(hours=1), definitions, keys).values()
    )
    assert not any(
        e.passed for e in evaluate(instance, T0 + timedelta(hours=3), definitions, keys).values()
    )
    assert build_freshness_sensor(checks).name == "freshness_checks_sensor"


# --- the sensor, as the daemon runs it ----------------------------------------------------------


def test_the_sensor_turns_the_checks_red_when_syncs_stop_and_green_when_they_resume() -> None:
    instance = DagsterInstance.ephemeral()
    record_sync(instance, T0)
    all_checks = {
        AssetCheckKey(CONTACTS, "freshness_check"),
        AssetCheckKey(SCORES, "freshness_check"),
    }

    # Never evaluated: the sensor asks for both checks; they pass.
    request = sensor_tick(instance, T0 + timedelta(minutes=5))
    assert request is not None and set(request.asset_check_keys or []) == all_checks
    run_request(instance, request, T0 + timedelta(minutes=5))
    assert latest_results(instance, all_checks) == [True, True]

    # Passing, and cannot be overdue before the window ends: nothing to do.
    assert sensor_tick(instance, T0 + WINDOW - timedelta(minutes=1)) is None

    # No sync for longer than the window: the sensor re-runs the checks, which fail.
    late = T0 + WINDOW + timedelta(minutes=5)
    request = sensor_tick(instance, late)
    assert request is not None and set(request.asset_check_keys or []) == all_checks
    run_request(instance, request, late)
    assert latest_results(instance, all_checks) == [False, False]

    # Failed and still no sync: it stays red without new runs.
    assert sensor_tick(instance, late + timedelta(hours=1)) is None

    # A sync: the sensor re-runs the checks, which pass again.
    record_sync(instance, late + timedelta(hours=2), partition="2026-11-21")
    request = sensor_tick(instance, late + timedelta(hours=2, minutes=5))
    assert request is not None
    run_request(instance, request, late + timedelta(hours=2, minutes=5))
    assert latest_results(instance, all_checks) == [True, True]


# --- a real sync --------------------------------------------------------------------------------


def test_a_real_full_sync_is_fresh_for_the_window(acton_home: ActonHome) -> None:
    instance = DagsterInstance.ephemeral()
    result = run_full_sync(acton_home, instance=instance)
    assert result.success
    # The sync run itself evaluates the checks (its selection includes every check on its
    # assets), so a successful sync turns them green at once.
    in_run = {
        e.asset_key: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "freshness_check"
    }
    assert set(in_run) == {CONTACTS, SCORES}
    assert all(e.passed for e in in_run.values())

    # The full sync recorded today's partition; the newest record is its time.
    synced = max(
        instance.get_latest_materialization_event(key).timestamp for key in (CONTACTS, SCORES)
    )
    synced_at = datetime.fromtimestamp(synced, tz=UTC)
    assert all(
        e.passed for e in evaluate(instance, synced_at + WINDOW - timedelta(minutes=5)).values()
    )
    stale = evaluate(instance, synced_at + WINDOW + timedelta(minutes=5))
    assert not any(e.passed for e in stale.values())
