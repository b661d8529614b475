"""Benchmark: Dagster's bookkeeping of a full sync against the days since ACTON_SYNC_START_DATE.

    .venv/bin/python benchmarks/bookkeeping.py                      # schedule launch, 30/365/1095
    .venv/bin/python benchmarks/bookkeeping.py --launch range       # the old design, for comparison
    .venv/bin/python benchmarks/bookkeeping.py --launch both --days 30 365

One small seeded sandbox CRM (the same file copied into each home) and a SQLite warehouse; for
each setting, a fresh child process (the partitions are built when acton_pipelines is imported,
from ACTON_SYNC_START_DATE) runs one full sync in process on a Dagster instance with SQLite
storage (the CLI's ``deploy/local/dagster.yaml``), launched:

- ``schedule``: exactly as ``full_sync_schedule`` asks for it: the RunRequest its tick (this
  Monday 02:00 UTC, the anchor moved there) returns, with its job, tags and partition key;
- ``range``: as full syncs were launched before: ``full_sync`` over the whole partition range
  (``dagster/asset_partition_range_start/end``, mode full), one run.

The work (CRM read, warehouse writes) is the same in every setting, so what differs between
start dates is Dagster's bookkeeping. Printed per setting: wall and CPU seconds of the tick and
run (``time.process_time`` in the child; the in-process sandbox server's threads count too,
equally in every setting), the child's whole CPU including imports (``RUSAGE_CHILDREN``), and
the event-log records the run wrote. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

LAUNCHES = ("schedule", "range")
DEFAULT_DAYS = (30, 365, 1095)


def this_monday() -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


def child(launch: str) -> dict[str, Any]:
    """One full sync in this process, launched as ``launch`` says; what it cost and recorded."""
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    # Imported here: the partitions are built at import, from this process's environment.
    from dagster import DagsterEventType, DagsterInstance, build_schedule_context
    from sqlalchemy import create_engine, text

    from acton_pipelines import settings
    from acton_pipelines.cli.local_run import local_dagster_home
    from acton_pipelines.definitions import defs
    from acton_pipelines.runs.partitions import (
        RANGE_END_TAG,
        RANGE_START_TAG,
        SYNC_MODE_TAG,
        sync_partitions,
    )

    imported_wall, imported_cpu = time.perf_counter(), time.process_time()
    local_dagster_home()
    with DagsterInstance.get() as instance:
        if launch == "schedule":
            schedule = defs.get_schedule_def("full_sync_schedule")
            tick_at = datetime.combine(this_monday(), datetime.min.time(), tzinfo=UTC)
            context = build_schedule_context(
                instance=instance, scheduled_execution_time=tick_at + timedelta(hours=2)
            )
            (request,) = schedule.evaluate_tick(context).run_requests or []
            job_name, tags = request.job_name or schedule.job_name, dict(request.tags)
            partition_key = request.partition_key
        else:
            keys = sync_partitions.get_partition_keys()
            job_name, partition_key = "full_sync", None
            tags = {SYNC_MODE_TAG: "full", RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=tags, partition_key=partition_key, raise_on_error=False
        )
        finished_wall, finished_cpu = time.perf_counter(), time.process_time()
        records = instance.get_records_for_run(result.run_id).records
        kinds = [r.event_log_entry.dagster_event_type for r in records]
    with create_engine(settings.warehouse_url()).connect() as conn:
        contacts = conn.execute(text("SELECT count(*) FROM acton_contacts")).scalar_one()
    return {
        "launch": launch,
        "partitions": len(sync_partitions.get_partition_keys()),
        "success": result.success,
        "import_cpu": imported_cpu - started_cpu,
        "import_wall": imported_wall - started_wall,
        "cpu": finished_cpu - imported_cpu,
        "wall": finished_wall - imported_wall,
        "events": len(records),
        "planned": kinds.count(DagsterEventType.ASSET_MATERIALIZATION_PLANNED),
        "materializations": kinds.count(DagsterEventType.ASSET_MATERIALIZATION),
        "acton_contacts": contacts,
    }


def measure(launch: str, days: int, crm_db: Path, root: Path) -> dict[str, Any]:
    """A fresh home holding a copy of ``crm_db``, and a child process syncing it."""
    home = root / f"{launch}-{days}"
    (home / "sandbox").mkdir(parents=True)
    shutil.copyfile(crm_db, home / "sandbox" / "crm.sqlite")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("ACTON_WAREHOUSE_URL", "ACTON_SANDBOX_URL", "ACTON_CRM_MODE")
    }
    env.update(
        ACTON_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster"),
        ACTON_SYNC_START_DATE=(datetime.now(UTC).date() - timedelta(days=days)).isoformat(),
        # The schedule requests a run in "on" weeks only: make this one of them.
        ACTON_FULL_SYNC_ANCHOR=this_monday().isoformat(),
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, __file__, "--child", launch],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{launch} at {days} days failed:\n{done.stderr[-4000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["days"] = days
    figures["process_cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launch", choices=(*LAUNCHES, "both"), default="schedule")
    parser.add_argument("--days", type=int, nargs="+", default=list(DEFAULT_DAYS))
    parser.add_argument("--leads", type=int, default=1200)
    parser.add_argument("--contacts", type=int, default=800)
    parser.add_argument("--child", choices=LAUNCHES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return

    from crm_sandbox import seed_sandbox

    root = Path(tempfile.mkdtemp(prefix="acton_bookkeeping_"))
    crm = seed_sandbox(root / "crm.sqlite", leads=args.leads, contacts=args.contacts, seed=7)
    print(
        f"sandbox: {sum(crm.counts.values()):,} CRM records ({args.leads:,} leads, "
        f"{args.contacts:,} contacts); homes under {root}"
    )
    launches = LAUNCHES if args.launch == "both" else (args.launch,)
    header = (
        f"{'launch':9} {'days':>5} {'parts':>5} {'ok':>3} {'wall s':>7} {'CPU s':>7} "
        f"{'child CPU':>9} {'events':>7} {'planned':>7} {'mat.':>6} {'contacts':>8}"
    )
    print(header)
    results = []
    for launch in launches:
        for days in args.days:
            f = measure(launch, days, crm.db_path, root)
            results.append(f)
            print(
                f"{launch:9} {days:5} {f['partitions']:5} {'yes' if f['success'] else 'NO':>3} "
                f"{f['wall']:7.1f} {f['cpu']:7.1f} {f['process_cpu']:9.1f} {f['events']:7} "
                f"{f['planned']:7} {f['materializations']:6} {f['acton_contacts']:8}",
                flush=True,
            )
    for launch in launches:
        mine = sorted((f for f in results if f["launch"] == launch), key=lambda f: f["days"])
        if len(mine) > 1:
            first, last = mine[0], mine[-1]
            print(
                f"{launch}: {last['days']} days vs {first['days']}: "
                f"{last['cpu'] - first['cpu']:+.1f} CPU-s, {last['wall'] - first['wall']:+.1f} s "
                f"wall, {last['events'] - first['events']:+d} events"
            )
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
