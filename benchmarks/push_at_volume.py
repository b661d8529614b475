"""Benchmark: pushing N score changes (Bulk API 2.0 jobs, planned and recorded a chunk at a
time), printing the push's CPU seconds, wall time, peak RSS and peak of Python allocations.

    .venv/bin/python benchmarks/push_at_volume.py                 # 20,000 and 100,000 changes
    .venv/bin/python benchmarks/push_at_volume.py --changes 5000 20000

One sandbox CRM is seeded with enough Leads for the largest N and fully synced once (``acton
sync full``, in a process of its own); then, for each N, a copy of that home is made to plan
exactly N score changes (tests/push/volume.py), its sandbox is served by ``acton sandbox
serve`` in a process of its own, and the push runs in a fresh process, twice (on two copies):
once plain for CPU, wall and RSS, once under tracemalloc for the Python allocations. Figures
only: nothing is asserted.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.push.volume: the scenario the volume test runs

# Seeded Leads that end up as live, unconverted Leads in the warehouse (about 99%).
LEADS_PER_CHANGE = 1.03


def _rss_mib() -> float:
    """This process's resident memory now (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(home: Path, url: str, changes: int, traced: bool) -> None:
    """One push in this (fresh) process; prints its figures as one JSON line."""
    os.environ["ACTON_HOME"] = str(home)
    from tests.push.volume import measured_push

    warehouse = f"sqlite:///{home / 'warehouse.sqlite'}"
    before = _rss_mib()
    pushed = measured_push(warehouse, url, f"bench-{changes}", traced=traced)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "accepted": pushed.accepted,
                "cpu_s": pushed.cpu_seconds,
                "wall_s": pushed.wall_seconds,
                "rss_before_mib": before,
                "peak_rss_mib": peak_rss,
                "traced_peak_mib": None if pushed.peak_bytes is None else pushed.peak_bytes / 2**20,
            }
        )
    )


def _copy_home(synced: Path, to: Path) -> Path:
    (to / "sandbox").mkdir(parents=True)
    shutil.copyfile(synced / "sandbox" / "crm.sqlite", to / "sandbox" / "crm.sqlite")
    shutil.copytree(synced / "sandbox" / "certs", to / "sandbox" / "certs")
    shutil.copyfile(synced / "warehouse.sqlite", to / "warehouse.sqlite")
    return to


def _push_in_new_process(home: Path, url: str, changes: int, traced: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", str(home), "--url", url]
    command += ["--changes", str(changes)] + (["--traced"] if traced else [])
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(changes: list[int]) -> None:
    from crm_sandbox import seed_sandbox
    from tests.push.volume import score_changes, served_sandbox

    root = Path(tempfile.mkdtemp(prefix="acton_push_bench_"))
    synced = root / "synced"
    leads = int(max(changes) * LEADS_PER_CHANGE)
    env = {**os.environ, "ACTON_HOME": str(synced)}
    env.pop("ACTON_SANDBOX_URL", None)
    env.pop("ACTON_WAREHOUSE_URL", None)
    started = time.perf_counter()
    seed_sandbox(synced / "sandbox" / "crm.sqlite", leads=leads, contacts=0, seed=5)
    acton = str(Path(sys.executable).parent / "acton")
    subprocess.run([acton, "sync", "full"], env=env, check=True, capture_output=True)
    print(f"setup: {leads:,} Leads seeded and synced in {time.perf_counter() - started:.0f} s")
    print(
        f"{'changes':>9} {'accepted':>9} {'CPU s':>7} {'wall s':>7} {'RSS MiB':>15} "
        f"{'py peak MiB':>12}"
    )
    for count in changes:
        figures: dict[str, dict[str, float]] = {}
        for traced in (False, True):
            home = _copy_home(synced, root / f"push_{count}_{'traced' if traced else 'plain'}")
            score_changes(f"sqlite:///{home / 'warehouse.sqlite'}", count)
            with served_sandbox(home) as url:
                figures["traced" if traced else "plain"] = _push_in_new_process(
                    home, url, count, traced
                )
            shutil.rmtree(home)
        plain, traced_run = figures["plain"], figures["traced"]
        rss = f"{plain['rss_before_mib']:.0f} -> {plain['peak_rss_mib']:.0f}"
        print(
            f"{count:>9,} {int(plain['accepted']):>9,} {plain['cpu_s']:>7.1f} "
            f"{plain['wall_s']:>7.1f} {rss:>15} {traced_run['traced_peak_mib']:>12.1f}"
        )
    print(f"(homes under {root}; RSS: before the push -> peak of the pushing process)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.url, args.changes[0], args.traced)
    else:
        run(args.changes)


if __name__ == "__main__":
    main()
