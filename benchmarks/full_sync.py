"""Benchmark: a full sync of a seeded sandbox CRM, printing throughput and peak memory.

    .venv/bin/python benchmarks/full_sync.py --leads 20000 --contacts 15000
    .venv/bin/python benchmarks/full_sync.py --warehouse postgresql+psycopg://postgres@127.0.0.1/bench

The warehouse defaults to a SQLite file in a temporary ACTON_HOME. Figures only: nothing is
asserted (tests never assert on wall-clock time).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--contacts", type=int, default=15_000)
    parser.add_argument("--warehouse", help="SQLAlchemy URL (default: SQLite in a temp folder)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="acton_bench_"))
    os.environ["ACTON_HOME"] = str(home)
    if args.warehouse:
        os.environ["ACTON_WAREHOUSE_URL"] = args.warehouse

    # Imported after ACTON_HOME is set: definitions read it when they load.
    from acton_pipelines.runs.local_run import run_job

    from acton_pipelines.crm.sandbox_connection import sandbox_paths
    from acton_pipelines.runs.partitions import full_sync_tags
    from crm_sandbox import seed_sandbox

    started = time.perf_counter()
    summary = seed_sandbox(sandbox_paths()[0], leads=args.leads, contacts=args.contacts)
    seeded = time.perf_counter()
    outcome = run_job("full_sync", full_sync_tags())
    finished = time.perf_counter()

    records = sum(summary.counts.values())
    sync_seconds = finished - seeded
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"home                 {home}")
    print(f"success              {outcome.success}")
    print(f"CRM records          {records:,} ({args.leads:,} leads, {args.contacts:,} contacts)")
    print(f"seed                 {seeded - started:8.1f} s")
    print(f"full sync            {sync_seconds:8.1f} s")
    print(f"throughput           {records / sync_seconds:8.0f} CRM records/s")
    print(f"peak memory (RSS)    {peak_mib:8.0f} MiB")


if __name__ == "__main__":
    main()
