"""``acton status``: what a data engineer needs to know in ten seconds, as facts.

The facts come from three places, each read by a plain function into a dataclass:

- the warehouse (``warehouse_facts``): ``sync_runs`` (last successful full and incremental
  sync per object, failed syncs), ``run_failures``, the deletion-log window, rows per table
  (``acton_pipelines.warehouse.summary.summarize``), rejects, pending pushes;
- the Dagster instance (``dagster_facts``): failed and running runs, the schedules' and
  sensors' state and last tick, the daemon's heartbeat;
- the imports folder (``imports_facts``): files waiting, files rejected.

``build_report`` puts them together into a ``StatusReport`` and derives what needs attention
(``attention_items``); ``acton_pipelines.cli.status`` renders it. Every source may be missing
or broken (a new warehouse, an instance the daemon never ran on, a code location that does not
load): the report then says so, and the other facts are still there.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from sqlalchemy import Connection, Engine, func, inspect, select
from sqlalchemy.engine import make_url

from acton_pipelines import settings
from acton_pipelines.crm.deletion_log import DELETION_LOG_DAYS
from acton_pipelines.crm.objects import CRM_TABLES
from acton_pipelines.imports.files import ERRORS_SUFFIX, REJECTED_DIR, import_paths
from acton_pipelines.runs.run_failures import (
    error_cause,
    failure_causes,
    one_line,
    run_failure_summary,
)
from acton_pipelines.schedules.sync_history import FullSyncDue, full_sync_due
from acton_pipelines.warehouse.engine import display_url, warehouse_engine
from acton_pipelines.warehouse.summary import summarize
from acton_pipelines.warehouse.sync_runs import as_utc
from acton_pipelines.warehouse.sync_runs import one_line as one_line_error
from acton_pipelines.warehouse.tables import (
    acton_field_edits,
    crm_create_requests,
    crm_push_log,
    run_failures,
    sync_runs,
)

if TYPE_CHECKING:
    from dagster._core.scheduler.instigation import InstigatorTick

# The objects whose syncs the report lists, in pipeline order: the CRM mirror tables, then the
# tables built from them. (The push, object "crm_push", has a line of its own.)
SYNC_OBJECTS: tuple[str, ...] = (*CRM_TABLES, "acton_contacts", "contact_scores", "segment_members")
PUSH_OBJECT = "crm_push"

# Dagster job names (acton_pipelines.jobs), and the job of runs started from the asset graph.
FULL_SYNC_JOB = "full_sync"
INCREMENTAL_SYNC_JOB = "incremental_sync"
PUSH_JOB = "push_to_crm"
IMPORTS_JOB = "import_files"
ASSET_JOB = "__ASSET_JOB"

# A failed run is reported until a later run heals it (see ``healed_by``), but not for ever: a
# failure nobody retried in this long (an import whose files were removed, say) would keep the
# exit status at 1 with nothing left to do. Older sync failures are still covered: by then the
# deletion log no longer reaches the last successful sync, and that is reported.
FAILURE_HORIZON = timedelta(days=DELETION_LOG_DAYS)
# Failed runs read from the instance, and how many of them get their cause looked up in the
# event log (one query each): the report shows the newest failure of each job.
MAX_FAILED_RUNS = 200
MAX_CAUSE_LOOKUPS = 10
MAX_ACTIVE_RUNS = 5

# The code location the daemon and the UI load (workspace.yaml); its name and module are the
# fallback when the file is not there (an installed package run outside the repository).
WORKSPACE_FILE = settings.REPO_ROOT / "workspace.yaml"
DEFINITIONS_MODULE = "acton_pipelines.definitions"
LOCATION_NAME = "acton_pipelines"

# A daemon heartbeats every 30 s or so; one silent for longer than this is not running.
DAEMON_ALIVE = timedelta(minutes=5)


def _from_timestamp(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


# --- the facts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectSyncs:
    """The last successful full and incremental sync of one object (``sync_runs.object``),
    when they started, and the rows of its table now (``None``: no such table).

    Start times, as ``full_sync_due`` counts them: the data is as recent as the moment its read
    began, and the deletion log must reach back to that moment."""

    object: str
    last_full: datetime | None = None
    last_incremental: datetime | None = None
    rows: int | None = None

    @property
    def last_success(self) -> datetime | None:
        """The newest successful sync, whatever its mode."""
        return max((t for t in (self.last_full, self.last_incremental) if t), default=None)


@dataclass(frozen=True)
class FailedRun:
    """A failed run: its id, its Dagster job, when it failed, and why (one line; ``None`` when
    not looked up, see ``MAX_CAUSE_LOOKUPS``)."""

    run_id: str
    job: str
    failed_at: datetime
    cause: str | None


@dataclass(frozen=True)
class ActiveRun:
    """A run queued or in progress on the instance."""

    run_id: str
    job: str
    status: str
    since: datetime | None


@dataclass(frozen=True)
class TickResult:
    """A schedule's or sensor's last evaluation: when, its outcome (success, skipped, failure,
    started) and one line of detail (runs requested, the skip reason, the error)."""

    at: datetime
    outcome: str
    detail: str


@dataclass(frozen=True)
class Automation:
    """A schedule or sensor: whether it runs, its last tick, and (schedules) its next tick."""

    name: str
    kind: str
    running: bool
    last_tick: TickResult | None = None
    next_tick: datetime | None = None


@dataclass
class WarehouseFacts:
    """What the warehouse says. ``error`` is set (and the rest empty) when it cannot be read;
    a warehouse that does not exist yet is simply empty."""

    url: str
    error: str | None = None
    objects: list[ObjectSyncs] = field(default_factory=list)
    # When the newest successful push started, and how many of its CRM writes failed.
    last_push: datetime | None = None
    failed_push_writes: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    # Why a full sync is due (``full_sync_due``), else how long incremental syncs can carry on.
    full_sync_due: str | None = None
    full_sync_due_label: str | None = None
    deletion_log_left: timedelta | None = None
    quarantined: int = 0
    pending_edits: int = 0
    pending_creates: int = 0
    # Failed runs as the warehouse recorded them (sync_runs, run_failures), and per job the
    # start of the newest later success it proves (see ``warehouse_successes``).
    failures: list[FailedRun] = field(default_factory=list)
    successes: dict[str, datetime] = field(default_factory=dict)


@dataclass
class DagsterFacts:
    """What the Dagster instance says. ``error``: the instance could not be opened;
    ``definitions_error``: the code location did not load (no schedule or sensor facts)."""

    home: str | None = None
    error: str | None = None
    definitions_error: str | None = None
    daemon_heartbeat: datetime | None = None
    schedules: list[Automation] = field(default_factory=list)
    sensors: list[Automation] = field(default_factory=list)
    failures: list[FailedRun] = field(default_factory=list)
    successes: dict[str, datetime] = field(default_factory=dict)
    active_runs: list[ActiveRun] = field(default_factory=list)

    @property
    def ticked(self) -> bool:
        """Whether any schedule or sensor has ever been evaluated (by a daemon)."""
        return any(a.last_tick for a in (*self.schedules, *self.sensors))


@dataclass
class ImportsFacts:
    """The imports folder: files waiting to be imported, files rejected (in ``rejected/``)."""

    folder: str
    waiting: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def rejected_dir(self) -> str:
        return str(Path(self.folder) / REJECTED_DIR)


@dataclass(frozen=True)
class Attention:
    """Something that needs a person: what is wrong, and what to do about it."""

    problem: str
    action: str


@dataclass
class StatusReport:
    """Everything ``acton status`` shows. ``failed_runs`` are the failures no later run
    healed, newest first; ``attention`` is what makes the command exit 1."""

    now: datetime
    warehouse: WarehouseFacts
    dagster: DagsterFacts
    imports: ImportsFacts
    # ACTON_FRESHNESS_HOURS; None (with freshness_error) when it is not a valid number.
    freshness: timedelta | None
    freshness_error: str | None = None
    failed_runs: list[FailedRun] = field(default_factory=list)
    attention: list[Attention] = field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: datetimes in ISO 8601 (UTC), durations in seconds.

        The sources' raw failures and successes are left out: ``failed_runs`` is what is left of
        them once merged and healed."""
        data = _jsonable(dataclasses.asdict(self))
        for source in ("warehouse", "dagster"):
            data[source].pop("failures")
            data[source].pop("successes")
        data["needs_attention"] = self.needs_attention
        return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


# --- the warehouse ----------------------------------------------------------------------------


def warehouse_facts(url: str, now: datetime) -> WarehouseFacts:
    """What the warehouse at ``url`` says at ``now``; never raises (``error`` says what went
    wrong). A SQLite warehouse whose file does not exist is read as empty, not created."""
    shown = display_url(url) if _parses(url) else "(unparsable ACTON_WAREHOUSE_URL)"
    try:
        parsed = make_url(url)
        missing_file = parsed.database and not Path(parsed.database).exists()
        if parsed.get_backend_name() == "sqlite" and missing_file:
            return _empty_warehouse(shown)
        facts = read_warehouse(warehouse_engine(url), now)
    except Exception as error:  # noqa: BLE001 - the report must show the other facts anyway
        return WarehouseFacts(url=shown, error=one_line_error(error))
    # As the user wrote it (the engine may have swapped the driver), password masked.
    facts.url = shown
    return facts


def _parses(url: str) -> bool:
    try:
        make_url(url)
    except Exception:  # noqa: BLE001
        return False
    return True


def _empty_warehouse(url: str) -> WarehouseFacts:
    facts = WarehouseFacts(url=url, objects=[ObjectSyncs(name) for name in SYNC_OBJECTS])
    facts.full_sync_due_label = "never-synced"
    facts.full_sync_due = "nothing has been synced into this warehouse yet"
    return facts


def read_warehouse(engine: Engine, now: datetime) -> WarehouseFacts:
    """What the warehouse of ``engine`` says at ``now`` (tables that do not exist yet count as
    empty). Raises on database errors; ``warehouse_facts`` catches them."""
    summary = summarize(engine)
    present = set(inspect(engine).get_table_names())
    facts = WarehouseFacts(url=engine.url.render_as_string(hide_password=True))
    facts.rows = dict(summary.rows)
    facts.quarantined = summary.rows.get("acton_contact_rejects", 0)
    due = full_sync_due(engine, now)
    if isinstance(due, FullSyncDue):
        facts.full_sync_due, facts.full_sync_due_label = due.reason, due.label
    else:
        facts.deletion_log_left = due
    with engine.connect() as conn:
        last: dict[tuple[str, str], datetime] = {}
        # run_failures first: it names the run's job, where sync_runs only hints at it.
        if run_failures.name in present:
            facts.failures += _recorded_run_failures(conn, now - FAILURE_HORIZON)
        if sync_runs.name in present:
            last = _last_successes(conn)
            facts.failures += _failed_syncs(conn, now - FAILURE_HORIZON)
            facts.last_push, facts.failed_push_writes = _last_push(conn, present, last)
        facts.pending_edits = _count(
            conn,
            present,
            acton_field_edits,
            # A failed push leaves an edit "failed": the next push retries it.
            acton_field_edits.c.push_status.in_(["pending", "failed"]),
        )
        facts.pending_creates = _count(
            conn, present, crm_create_requests, crm_create_requests.c.status == "pending"
        )
    facts.objects = [
        ObjectSyncs(
            name,
            last_full=last.get((name, "full")),
            last_incremental=last.get((name, "incremental")),
            rows=summary.rows.get(name),
        )
        for name in SYNC_OBJECTS
    ]
    facts.successes = warehouse_successes(last)
    return facts


def _count(conn: Connection, present: set[str], table: Any, *where: Any) -> int:
    if table.name not in present:
        return 0
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def _last_successes(conn: Connection) -> dict[tuple[str, str], datetime]:
    """Per (object, mode), when its newest successful sync started."""
    rows = conn.execute(
        select(sync_runs.c.object, sync_runs.c.mode, func.max(sync_runs.c.started_at))
        .where(sync_runs.c.status == "success", sync_runs.c.started_at.is_not(None))
        .group_by(sync_runs.c.object, sync_runs.c.mode)
    )
    return {(name, mode): as_utc(started) for name, mode, started in rows if started}


def warehouse_successes(last: Mapping[tuple[str, str], datetime]) -> dict[str, datetime]:
    """Per job, the start of the newest success ``sync_runs`` proves, for syncs launched on
    another Dagster instance (or before a move to a new one): a full sync once every CRM object
    has a successful full sync since then (the earliest of their newest), an incremental sync
    the same with any mode, the push with its ``crm_push`` row."""

    def everyone(modes: tuple[str, ...]) -> datetime | None:
        starts = []
        for table in CRM_TABLES:
            times = [last[(table, mode)] for mode in modes if (table, mode) in last]
            if not times:
                return None
            starts.append(max(times))
        return min(starts, default=None)

    successes: dict[str, datetime] = {}
    full = everyone(("full",))
    incremental = everyone(("full", "incremental"))
    push = last.get((PUSH_OBJECT, "push"))
    for job, moment in (
        (FULL_SYNC_JOB, full),
        (INCREMENTAL_SYNC_JOB, incremental),
        (PUSH_JOB, push),
    ):
        if moment is not None:
            successes[job] = moment
    return successes


def _failed_syncs(conn: Connection, since: datetime) -> list[FailedRun]:
    """The failed ``sync_runs`` rows since ``since``, one ``FailedRun`` per run; its job is
    guessed from the rows' modes (the instance, when it knows the run, says better)."""
    when = func.coalesce(sync_runs.c.finished_at, sync_runs.c.started_at)
    rows = conn.execute(
        select(sync_runs.c.run_id, sync_runs.c.object, sync_runs.c.mode, sync_runs.c.error, when)
        .where(sync_runs.c.status == "failed", when >= since)
        .order_by(when)
    ).all()
    runs: dict[str, list[Any]] = {}
    for row in rows:
        runs.setdefault(row[0], []).append(row)
    failed = []
    for run_id, run_rows in runs.items():
        modes = {row[2] for row in run_rows}
        job = (
            PUSH_JOB
            if "push" in modes
            else FULL_SYNC_JOB
            if modes == {"full"}
            else INCREMENTAL_SYNC_JOB
        )
        # Objects that failed for the same reason share one "a, b: reason".
        by_error: dict[str, list[str]] = {}
        for row in run_rows:
            by_error.setdefault(row[3] or "failed (no error recorded)", []).append(row[1])
        cause = "; ".join(f"{', '.join(names)}: {error}" for error, names in by_error.items())
        failed_at = max(as_utc(row[4]) for row in run_rows if row[4] is not None)
        failed.append(FailedRun(run_id=run_id, job=job, failed_at=failed_at, cause=cause))
    return failed


def _recorded_run_failures(conn: Connection, since: datetime) -> list[FailedRun]:
    """The ``run_failures`` rows (written by the run_failure_alerts sensor) since ``since``."""
    rows = conn.execute(
        select(
            run_failures.c.run_id,
            run_failures.c.job_name,
            run_failures.c.failed_at,
            run_failures.c.cause,
        ).where(run_failures.c.failed_at >= since)
    )
    return [
        FailedRun(run_id=run_id, job=job, failed_at=as_utc(failed_at), cause=cause)
        for run_id, job, failed_at, cause in rows
    ]


def _last_push(
    conn: Connection,
    present: set[str],
    last: Mapping[tuple[str, str], datetime],
) -> tuple[datetime | None, int]:
    """When the newest successful push started, and how many of its CRM writes failed (the
    next push retries them)."""
    started = last.get((PUSH_OBJECT, "push"))
    if started is None or crm_push_log.name not in present:
        return started, 0
    run_id = conn.execute(
        select(sync_runs.c.run_id)
        .where(sync_runs.c.object == PUSH_OBJECT, sync_runs.c.status == "success")
        .order_by(sync_runs.c.seq.desc().nulls_last(), sync_runs.c.started_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    failed = _count(
        conn,
        present,
        crm_push_log,
        crm_push_log.c.sync_run_id == run_id,
        crm_push_log.c.outcome == "failed",
    )
    return started, failed


# --- the imports folder -----------------------------------------------------------------------


def imports_facts(folder: Path) -> ImportsFacts:
    """The files waiting in the imports folder ``folder`` and those in its ``rejected/``
    sub-folder (not their ``.errors.txt`` reasons files); never raises."""
    facts = ImportsFacts(folder=str(folder))
    try:
        facts.waiting = [path.name for path in import_paths(folder)]
        rejected = folder / REJECTED_DIR
        if rejected.is_dir():
            facts.rejected = sorted(
                path.name
                for path in rejected.iterdir()
                if path.is_file()
                and not path.name.startswith(".")
                and not path.name.endswith(ERRORS_SUFFIX)
            )
    except OSError:
        # An unreadable folder: the sensor cannot read it either, but that is its to report.
        pass
    return facts


# --- the Dagster instance ---------------------------------------------------------------------


def dagster_facts(
    instance: DagsterInstance,
    now: datetime,
    *,
    workspace_file: Path | None = WORKSPACE_FILE,
    home: str | None = None,
) -> DagsterFacts:
    """What ``instance`` says at ``now``: failed and active runs, and the state and ticks of the
    schedules and sensors of the code location in ``workspace_file`` (loaded in this process);
    never raises (``definitions_error`` says why the schedules and sensors are missing)."""
    facts = DagsterFacts(home=home)
    try:
        facts.failures, facts.successes = _instance_runs(instance, now)
        facts.active_runs = _active_runs(instance)
    except Exception as error:  # noqa: BLE001 - keep the rest of the report
        facts.error = f"cannot read the runs: {one_line_error(error)}"
    try:
        beats = instance.get_daemon_heartbeats().values()
        facts.daemon_heartbeat = _from_timestamp(max((b.timestamp for b in beats), default=None))
    except Exception:  # noqa: BLE001 - an instance without run storage heartbeats: not a fault
        facts.daemon_heartbeat = None
    try:
        facts.schedules, facts.sensors = automation(instance, now, workspace_file)
    except Exception as error:  # noqa: BLE001
        facts.definitions_error = one_line_error(error)
    return facts


def healed_by(job: str) -> tuple[str, ...]:
    """The jobs whose later success heals a failed run of ``job``: the job itself, and for
    syncs a full sync (it reads and rebuilds everything). A failed full sync needs a full sync:
    the biweekly safety net (deletion reconciliation) did not happen."""
    if job in (INCREMENTAL_SYNC_JOB, ASSET_JOB):
        return (job, FULL_SYNC_JOB)
    return (job,)


def _is_healed(failure: FailedRun, successes: Mapping[str, datetime]) -> bool:
    return any(
        successes.get(job) is not None and successes[job] > failure.failed_at
        for job in healed_by(failure.job)
    )


def _instance_runs(
    instance: DagsterInstance, now: datetime
) -> tuple[list[FailedRun], dict[str, datetime]]:
    """The instance's failed runs since ``FAILURE_HORIZON`` that no later success of a healing
    job on the instance healed (causes looked up for the newest ones), and per job the start of
    its newest successful run."""
    records = instance.get_run_records(
        RunsFilter(statuses=[DagsterRunStatus.FAILURE], updated_after=now - FAILURE_HORIZON),
        limit=MAX_FAILED_RUNS,
    )
    # Every job a warehouse failure may name too, whatever failed on this instance.
    jobs = {record.dagster_run.job_name for record in records} | set(_JOB_WORDS)
    successes: dict[str, datetime] = {}
    for job in sorted(jobs):
        for newest in instance.get_run_records(
            RunsFilter(job_name=job, statuses=[DagsterRunStatus.SUCCESS]), limit=1
        ):
            started = _from_timestamp(newest.start_time) or as_utc(newest.create_timestamp)
            if started is not None:
                successes[job] = started
    failures = []
    for record in records:
        failed_at = _from_timestamp(record.end_time) or as_utc(record.update_timestamp)
        if failed_at is None:
            continue
        failure = FailedRun(record.dagster_run.run_id, record.dagster_run.job_name, failed_at, None)
        if not _is_healed(failure, successes):
            failures.append(failure)
    failures.sort(key=lambda f: f.failed_at, reverse=True)
    return [
        dataclasses.replace(f, cause=run_failure_summary(failure_causes(instance, f.run_id)))
        if index < MAX_CAUSE_LOOKUPS
        else f
        for index, f in enumerate(failures)
    ], successes


def _active_runs(instance: DagsterInstance) -> list[ActiveRun]:
    # Queued runs too: a run waiting for the daemon to start it is worth seeing.
    waiting = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
    records = instance.get_run_records(
        RunsFilter(statuses=[*waiting, *IN_PROGRESS_RUN_STATUSES]), limit=MAX_ACTIVE_RUNS
    )
    return [
        ActiveRun(
            run_id=record.dagster_run.run_id,
            job=record.dagster_run.job_name,
            status=record.dagster_run.status.value.lower(),
            since=_from_timestamp(record.start_time) or as_utc(record.create_timestamp),
        )
        for record in records
    ]


def _code_location_origins(workspace_file: Path | None) -> Sequence[Any]:
    """The code locations the daemon loads: those of ``workspace_file`` (what ``dagster dev
    -w workspace.yaml`` and ``dagster-daemon run -w workspace.yaml`` read), else the project's
    module under its location name (what pyproject's ``[tool.dagster]`` names)."""
    from dagster._core.workspace.load import (
        location_origin_from_module_name,
        location_origins_from_yaml_paths,
    )

    if workspace_file is not None and workspace_file.is_file():
        return location_origins_from_yaml_paths([str(workspace_file)])
    return [
        location_origin_from_module_name(
            DEFINITIONS_MODULE, None, None, location_name=LOCATION_NAME
        )
    ]


def automation(
    instance: DagsterInstance, now: datetime, workspace_file: Path | None = WORKSPACE_FILE
) -> tuple[list[Automation], list[Automation]]:
    """The schedules and sensors of the code location(s) in ``workspace_file``, with their
    state, last tick and (schedules) next tick, as the daemon sees them.

    The daemon knows a schedule by ids derived from its code location's *origin* (how the
    location is loaded: a code server for the module of workspace.yaml) and its *selector*
    (location, repository and schedule names). Loading the definitions through a code server
    would start a subprocess; instead they are loaded in this process, and the ids computed from
    the same origin the daemon's workspace gives: state and ticks are then found exactly as the
    daemon and the UI find them. Raises when the definitions do not load.
    """
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteInstigatorOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.remote_representation.external import RemoteSchedule

    schedules: list[Automation] = []
    sensors: list[Automation] = []
    for origin in _code_location_origins(workspace_file):
        local = InProcessCodeLocationOrigin(
            origin.loadable_target_origin, location_name=origin.location_name
        )
        # Building the location's snapshot trips Dagster's own deprecation warnings (about
        # fields the project does not set); they say nothing to the reader of the status.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            location = local.create_location(instance)
        with location:
            for repository_name in location.get_repository_names():
                repository = location.get_repository(repository_name)
                repository_origin = RemoteRepositoryOrigin(origin, repository_name)
                for remote in [*repository.get_schedules(), *repository.get_sensors()]:
                    origin_id = RemoteInstigatorOrigin(repository_origin, remote.name).get_id()
                    running, last = _state_and_last_tick(instance, remote, origin_id)
                    if isinstance(remote, RemoteSchedule):
                        upcoming = _next_tick(remote, now) if running else None
                        schedules.append(
                            Automation(remote.name, "schedule", running, last, upcoming)
                        )
                    else:
                        sensors.append(Automation(remote.name, "sensor", running, last))
    return schedules, sensors


def _state_and_last_tick(
    instance: DagsterInstance, remote: Any, origin_id: str
) -> tuple[bool, TickResult | None]:
    """Whether a schedule or sensor runs (its stored state, else its default in code) and its
    last tick. An instance without schedule storage (an ephemeral one) has neither stored."""
    if instance.schedule_storage is None:
        return remote.get_current_instigator_state(None).is_running, None
    stored = instance.get_instigator_state(origin_id, remote.selector_id)
    running = remote.get_current_instigator_state(stored).is_running
    ticks = instance.get_ticks(origin_id, remote.selector_id, limit=1)
    return running, tick_result(ticks[0]) if ticks else None


def tick_result(tick: InstigatorTick) -> TickResult:
    """A tick as its outcome and one line of detail."""
    status = tick.status.value.lower()
    if status == "success":
        count = len(tick.run_ids)
        detail = f"requested {count} run{'s' if count != 1 else ''}"
    elif status == "skipped":
        detail = one_line(tick.skip_reason or "") or "nothing to do"
    elif status == "failure":
        detail = error_cause(tick.error)
    else:
        detail = "being evaluated"
    return TickResult(
        at=datetime.fromtimestamp(tick.timestamp, tz=UTC), outcome=status, detail=detail
    )


def _next_tick(remote: Any, now: datetime) -> datetime | None:
    """The schedule's next tick after ``now`` that requests a run: ``full_sync_schedule`` ticks
    weekly and skips its off weeks itself (cron cannot say "every other week"), so its next
    tick is the next one in an on week."""
    from acton_pipelines.schedules.full_sync import (
        full_sync_anchor,
        full_sync_schedule,
        is_full_sync_week,
    )

    ticks: Iterator[datetime] = remote.execution_time_iterator(now.timestamp())
    for _, moment in zip(range(60), ticks, strict=False):
        moment = moment.astimezone(UTC)
        if moment <= now:
            continue
        if remote.name == full_sync_schedule.name and not is_full_sync_week(
            moment.date(), full_sync_anchor()
        ):
            continue
        return moment
    return None


# --- the report -------------------------------------------------------------------------------


def unhealed_failures(
    failures: Iterable[FailedRun], successes: Iterable[Mapping[str, datetime]]
) -> list[FailedRun]:
    """One ``FailedRun`` per run id (the first given wins: list the instance's first; a later
    one only fills a missing cause), without those a later success healed, newest first."""
    by_run: dict[str, FailedRun] = {}
    for failure in failures:
        known = by_run.get(failure.run_id)
        if known is None:
            by_run[failure.run_id] = failure
        elif known.cause is None and failure.cause:
            by_run[failure.run_id] = dataclasses.replace(known, cause=failure.cause)
    newest: dict[str, datetime] = {}
    for source in successes:
        for job, moment in source.items():
            newest[job] = max(moment, newest.get(job, moment))
    return sorted(
        (f for f in by_run.values() if not _is_healed(f, newest)),
        key=lambda f: f.failed_at,
        reverse=True,
    )


def freshness_setting() -> tuple[timedelta | None, str | None]:
    """``ACTON_FRESHNESS_HOURS`` as a window, or ``(None, why)`` when it is not valid."""
    try:
        # Imported here: the module itself reads the variable when imported, and raises then.
        from acton_pipelines.schedules.freshness import freshness_window

        return freshness_window(), None
    except ValueError as error:
        return None, one_line_error(error)


def build_report(
    warehouse: WarehouseFacts,
    dagster: DagsterFacts,
    imports: ImportsFacts,
    now: datetime,
    freshness: timedelta | None,
    freshness_error: str | None = None,
) -> StatusReport:
    """The facts put together: failed runs merged and healed, and what needs attention."""
    report = StatusReport(
        now=now,
        warehouse=warehouse,
        dagster=dagster,
        imports=imports,
        freshness=freshness,
        freshness_error=freshness_error,
    )
    report.failed_runs = unhealed_failures(
        [*dagster.failures, *warehouse.failures], [dagster.successes, warehouse.successes]
    )
    report.attention = attention_items(report)
    return report


def gather_status(now: datetime | None = None) -> StatusReport:
    """The report for this environment: the warehouse of ``ACTON_WAREHOUSE_URL``, the Dagster
    instance under ``DAGSTER_HOME`` (``ACTON_HOME/dagster`` by default) and the imports folder
    of ``ACTON_IMPORTS_DIR``, at ``now`` (default: the current time)."""
    from acton_pipelines.cli.local_run import local_dagster_home

    now = now or datetime.now(UTC)
    freshness, freshness_error = freshness_setting()
    warehouse = warehouse_facts(settings.warehouse_url(), now)
    try:
        imports = imports_facts(settings.imports_dir())
    except OSError as error:
        imports = ImportsFacts(folder=f"(imports folder unusable: {one_line_error(error)})")
    home: str | None = None
    try:
        home = str(local_dagster_home())
        with DagsterInstance.get() as instance:
            dagster = dagster_facts(instance, now, home=home)
    except Exception as error:  # noqa: BLE001 - the warehouse facts still stand
        dagster = DagsterFacts(home=home, error=f"cannot be opened: {one_line_error(error)}")
    return build_report(warehouse, dagster, imports, now, freshness, freshness_error)


# --- what needs attention ---------------------------------------------------------------------


def age(delta: timedelta) -> str:
    """A duration the way people say it: ``45 s``, ``12 min``, ``3 h``, ``2 d``."""
    seconds = abs(delta.total_seconds())
    if seconds < 90:
        return f"{int(seconds)} s"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"


def ago(moment: datetime, now: datetime) -> str:
    """``3 h ago`` (or ``in 3 h`` for a moment after ``now``)."""
    return f"in {age(moment - now)}" if moment > now else f"{age(now - moment)} ago"


# Per job: what its failures are called and what to do about them.
_JOB_WORDS = {
    FULL_SYNC_JOB: ("full sync", "fix the cause, then `acton sync full`"),
    INCREMENTAL_SYNC_JOB: (
        "incremental sync",
        "fix the cause; the next hourly run catches up (or `acton sync incremental` now)",
    ),
    PUSH_JOB: ("push to the CRM", "fix the cause, then `acton push`"),
    IMPORTS_JOB: ("import of the imports folder", "fix the cause, then `acton imports`"),
    ASSET_JOB: (
        "run launched from the asset graph",
        "see the run in the Dagster UI (`acton ui`, then Runs)",
    ),
}


def failures_by_job(failures: Sequence[FailedRun]) -> list[tuple[str, list[FailedRun]]]:
    """``failures`` grouped by job, newest first in each group, the group with the newest
    failure first."""
    groups: dict[str, list[FailedRun]] = {}
    for failure in sorted(failures, key=lambda f: f.failed_at, reverse=True):
        groups.setdefault(failure.job, []).append(failure)
    return list(groups.items())


def attention_items(report: StatusReport) -> list[Attention]:
    """What needs a person, each with what to do.

    Attention: a warehouse or instance that cannot be read, definitions that do not load (the
    daemon cannot load them either), objects never synced, a full sync due (the deletion log no
    longer reaches the last sync), data older than ACTON_FRESHNESS_HOURS, failed runs no later
    run healed, a schedule or sensor whose last evaluation failed, rejected import files left in
    ``rejected/``. Not attention, only shown: quarantined values (the contacts loaded, the bad
    values were set to NULL and recorded, and the acton_contacts_rejects check warns in the UI:
    fixing them is data work in the CRM, not an incident), edits and imports waiting (the sensors
    take them within a minute), a daemon not running (on a laptop that is normal; unattended, the
    data goes stale and that is reported).
    """
    now, items = report.now, []
    warehouse, dagster, imports = report.warehouse, report.dagster, report.imports
    if warehouse.error:
        items.append(
            Attention(
                f"the warehouse {warehouse.url} cannot be read: {warehouse.error}",
                "check ACTON_WAREHOUSE_URL and that the database is up",
            )
        )
    else:
        items += _sync_attention(report)
    for job, runs in failures_by_job(report.failed_runs):
        newest = runs[0]
        what, action = _JOB_WORDS.get(
            job, (f"{job} run", "see the run in the Dagster UI (`acton ui`, then Runs)")
        )
        count = f" ({len(runs)} failed runs since the last success)" if len(runs) > 1 else ""
        cause = newest.cause or "see the run in the Dagster UI"
        items.append(
            Attention(
                f"the last {what} failed {ago(newest.failed_at, now)}{count}, run "
                f"{newest.run_id[:8]}: {cause}",
                action,
            )
        )
    for automaton in (*dagster.schedules, *dagster.sensors):
        tick = automaton.last_tick
        if tick is not None and tick.outcome == "failure":
            items.append(
                Attention(
                    f"{automaton.kind} {automaton.name} failed its last evaluation "
                    f"{ago(tick.at, now)}: {tick.detail}",
                    "see Automation in the Dagster UI (`acton ui`); it tries again on its next "
                    "tick",
                )
            )
    if dagster.error:
        items.append(
            Attention(
                f"the Dagster instance at {dagster.home or 'DAGSTER_HOME'} {dagster.error}",
                "check DAGSTER_HOME, its dagster.yaml and the DAGSTER_PG_* variables",
            )
        )
    if dagster.definitions_error:
        items.append(
            Attention(
                f"the Dagster definitions do not load: {dagster.definitions_error}",
                "the daemon cannot load them either: no schedule or sensor runs until this is "
                "fixed",
            )
        )
    if report.freshness_error:
        items.append(Attention(report.freshness_error, "fix or unset ACTON_FRESHNESS_HOURS"))
    if imports.rejected:
        count = len(imports.rejected)
        items.append(
            Attention(
                f"{count} import file{'s' if count != 1 else ''} rejected in "
                f"{imports.rejected_dir}",
                f"the reasons are beside each file in <name>{ERRORS_SUFFIX}: fix the file, drop "
                f"it into {imports.folder} again and delete it from {REJECTED_DIR}/",
            )
        )
    return items


def _sync_attention(report: StatusReport) -> list[Attention]:
    """Never synced, a full sync due, or stale data: at most one, the most urgent."""
    now, warehouse = report.now, report.warehouse
    crm = [o for o in warehouse.objects if o.object in CRM_TABLES]
    never = [o.object for o in crm if o.last_success is None]
    if never:
        which = "" if len(never) == len(crm) else f": {', '.join(never)}"
        return [Attention(f"never synced{which}", "run `acton sync full`")]
    if warehouse.full_sync_due:
        return [
            Attention(
                f"a full sync is due: {warehouse.full_sync_due}",
                "run `acton sync full` (deletion_log_sensor requests one while the daemon runs)",
            )
        ]
    if report.freshness is None:
        return []
    stale = [o for o in crm if o.last_success and now - o.last_success > report.freshness]
    if not stale:
        return []
    oldest = min(stale, key=lambda o: o.last_success or now)
    names = ", ".join(o.object for o in stale)
    hours = report.freshness.total_seconds() / 3600
    return [
        Attention(
            f"stale data: {names} last synced successfully "
            f"{ago(oldest.last_success or now, now)}, more than ACTON_FRESHNESS_HOURS "
            f"({hours:g} h)",
            "is dagster-daemon running (`make ui` starts one)? `acton sync incremental` catches up "
            "now",
        )
    ]
