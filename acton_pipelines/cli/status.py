"""``acton status``: one screen that says whether the pipeline is healthy, and what to do if not.

The facts are gathered by ``acton_pipelines.cli.status_facts``; this module only renders them
(``render_status`` is a pure function of the report) and sets the exit status: 0 when nothing
needs attention, 1 otherwise, so monitoring can run ``acton status`` (or ``acton status
--json``) and alert on the exit status.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import click

from acton_pipelines.cli.status_facts import (
    DAEMON_ALIVE,
    SYNC_OBJECTS,
    Automation,
    StatusReport,
    ago,
    failures_by_job,
    gather_status,
)
from acton_pipelines.crm.deletion_log import DELETION_LOG_DAYS

# Lines are cut to this width (causes and skip reasons can be long); the attention block is not.
WIDTH = 100
TIME_FORMAT = "%Y-%m-%d %H:%M"


def fit(text: str, width: int = WIDTH) -> str:
    """``text`` cut to ``width`` characters, ending with "…" when cut."""
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def when(moment: datetime | None, now: datetime, never: str = "never") -> str:
    """``2026-12-01 22:00 (3 h ago)``, or ``never``."""
    if moment is None:
        return never
    return f"{moment:{TIME_FORMAT}} ({ago(moment, now)})"


def plural(count: int, word: str) -> str:
    """``1 file``, ``2 files``, with thousands separators."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _days_hours(left: timedelta) -> str:
    days, rest = divmod(int(left.total_seconds()), 86400)
    return f"{days} d {rest // 3600} h" if days else f"{rest // 3600} h {rest % 3600 // 60} min"


def _sync_lines(report: StatusReport) -> list[str]:
    now, warehouse = report.now, report.warehouse
    if warehouse.error:
        return [fit(f"Warehouse unreadable: {warehouse.error}")]
    objects = warehouse.objects
    name_width = max(len(name) for name in SYNC_OBJECTS)
    cells = [
        (o.object, when(o.last_full, now), when(o.last_incremental, now), o.rows) for o in objects
    ]
    full_width = max([len("last full"), *(len(c[1]) for c in cells)])
    incremental_width = max([len("last incremental"), *(len(c[2]) for c in cells)])
    lines = [
        f"{'Syncs (started)':<{name_width + 2}}  {'last full':<{full_width}}  "
        f"{'last incremental':<{incremental_width}}  {'rows':>10}"
    ]
    for name, full, incremental, rows in cells:
        shown = "no table" if rows is None else f"{rows:,}"
        lines.append(
            f"  {name:<{name_width}}  {full:<{full_width}}  {incremental:<{incremental_width}}  "
            f"{shown:>10}"
        )
    others = [
        f"{name} {count:,}" for name, count in warehouse.rows.items() if name not in SYNC_OBJECTS
    ]
    if others:
        lines.append(fit(f"  other tables: {' · '.join(others)}"))
    if warehouse.deletion_log_left is not None:
        lines.append(
            f"  deletion log: {_days_hours(warehouse.deletion_log_left)} left before a full sync "
            f"is due (it reaches back {DELETION_LOG_DAYS} days)"
        )
    elif warehouse.full_sync_due:
        lines.append(fit(f"  deletion log: a full sync is due: {warehouse.full_sync_due}"))
    return lines


def _failure_lines(report: StatusReport) -> list[str]:
    groups = failures_by_job(report.failed_runs)
    if not groups:
        return ["Failed runs since the last success: none"]
    lines = ["Failed runs since the last success:"]
    width = max(len(job) for job, _ in groups)
    for job, runs in groups:
        newest = runs[0]
        count = f"{plural(len(runs), 'run')}, last" if len(runs) > 1 else "failed"
        lines.append(
            fit(
                f"  {job:<{width}}  {count} {when(newest.failed_at, report.now)} "
                f"run {newest.run_id[:8]}: {newest.cause or 'see the run in the Dagster UI'}"
            )
        )
    return lines


def _daemon(report: StatusReport) -> str:
    beat = report.dagster.daemon_heartbeat
    if beat is None:
        return "daemon: no heartbeat yet"
    alive = report.now - beat < DAEMON_ALIVE
    return f"daemon: {'running' if alive else 'not running'}, heartbeat {ago(beat, report.now)}"


def _state(automaton: Automation) -> str:
    return "running" if automaton.running else "stopped"


def _automation_lines(report: StatusReport) -> list[str]:
    now, dagster = report.now, report.dagster
    if dagster.error and not (dagster.schedules or dagster.sensors):
        return [fit(f"Dagster instance at {dagster.home or 'DAGSTER_HOME'}: {dagster.error}")]
    if dagster.definitions_error:
        return [fit(f"Schedules and sensors: not loaded ({dagster.definitions_error})")]
    automata = [*dagster.schedules, *dagster.sensors]
    width = max((len(a.name) for a in automata), default=0)
    lines = []
    if not dagster.ticked:
        # Nothing ever evaluated them: one line says so instead of one per sensor.
        lines.append(
            f"Schedules and sensors: no tick yet ({_daemon(report)}; `make ui` starts one)"
        )
        for schedule in dagster.schedules:
            upcoming = f"next {when(schedule.next_tick, now)}" if schedule.next_tick else ""
            lines.append(f"  {schedule.name:<{width}}  {_state(schedule)}  {upcoming}".rstrip())
        running = [s.name for s in dagster.sensors if s.running]
        stopped = [s.name for s in dagster.sensors if not s.running]
        if running:
            lines.append(fit(f"  sensors: {len(running)} running ({', '.join(running)})"))
        if stopped:
            lines.append(fit(f"  sensors stopped: {', '.join(stopped)}"))
        return lines
    lines.append(f"Schedules ({_daemon(report)})")
    upcoming_width = max(
        (len(when(s.next_tick, now)) + 5 for s in dagster.schedules if s.next_tick), default=0
    )
    for schedule in dagster.schedules:
        upcoming = f"next {when(schedule.next_tick, now)}" if schedule.next_tick else "no next tick"
        upcoming = f"{upcoming:<{upcoming_width}}"
        # A schedule's requested runs are in the runs; what it skipped, and why, is news.
        last = _tick(schedule, now, detail=_news(schedule))
        lines.append(
            fit(f"  {schedule.name:<{width}}  {_state(schedule)}  {upcoming}  last: {last}")
        )
    lines.append("Sensors")
    for sensor in dagster.sensors:
        lines.append(fit(f"  {sensor.name:<{width}}  {_state(sensor)}  {_tick(sensor, now)}"))
    return lines


def _news(automaton: Automation) -> bool:
    return automaton.last_tick is not None and automaton.last_tick.outcome != "success"


def _tick(automaton: Automation, now: datetime, detail: bool = True) -> str:
    tick = automaton.last_tick
    if tick is None:
        return "no tick yet"
    said = f"{tick.outcome} {ago(tick.at, now)}"
    return f"{said}: {tick.detail}" if detail else said


def _other_lines(report: StatusReport) -> list[str]:
    now, warehouse, imports = report.now, report.warehouse, report.imports
    lines = []
    if report.dagster.active_runs:
        runs = [
            f"{run.job} {run.run_id[:8]} {run.status}"
            + (f" since {ago(run.since, now).removesuffix(' ago')}" if run.since else "")
            for run in report.dagster.active_runs
        ]
        lines.append(fit(f"Runs now: {'; '.join(runs)}"))
    lines.append(
        fit(
            f"Rejects: {plural(warehouse.quarantined, 'value')} quarantined in "
            f"acton_contact_rejects (informational) · "
            f"{plural(len(imports.rejected), 'import file')} rejected"
        )
    )
    failed = (
        f", {plural(warehouse.failed_push_writes, 'write')} failed (retried by the next push)"
        if warehouse.failed_push_writes
        else ""
    )
    pushed = f"last {when(warehouse.last_push, now)}" if warehouse.last_push else "never pushed"
    lines.append(
        fit(
            f"Push: {pushed}{failed} · waiting: "
            f"{plural(warehouse.pending_edits, 'edit')}, "
            f"{plural(warehouse.pending_creates, 'new Lead')}"
        )
    )
    lines.append(
        fit(f"Imports: {plural(len(imports.waiting), 'file')} waiting in {imports.folder}")
    )
    lines.append(fit(f"Warehouse: {warehouse.url}"))
    lines.append(fit(f"Dagster home: {report.dagster.home or 'not opened'}"))
    return lines


def render_status(report: StatusReport) -> str:
    """The report as one screen of text: syncs per object, failed runs, schedules and sensors,
    rejects, pending work, and the "Needs attention:" block (times in UTC)."""
    lines = [f"acton status at {report.now:{TIME_FORMAT}} UTC (all times UTC)", ""]
    lines += _sync_lines(report)
    lines += _failure_lines(report)
    lines += _automation_lines(report)
    lines += _other_lines(report)
    lines.append("")
    if report.attention:
        lines.append("Needs attention:")
        lines += [f"  - {item.problem} — {item.action}" for item in report.attention]
    else:
        lines.append("Nothing needs attention.")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for monitoring).")
def status(as_json: bool) -> None:
    """What the pipeline is doing and whether anything needs attention (exit 1 if so).

    Last successful syncs per object, failed runs, schedules and sensors, the deletion-log
    window, rows per table, rejects, pending pushes and imports.
    """
    report = gather_status()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(render_status(report))
    raise SystemExit(1 if report.needs_attention else 0)
