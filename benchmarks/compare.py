"""Benchmark: ``acton`` against the naive script, on one sandbox CRM served in its own process.

    .venv/bin/python benchmarks/compare.py                                  # 100k and 1M, both
    .venv/bin/python benchmarks/compare.py --sizes 10000 --backends sqlite   # smoke run (~minutes)

For each size (Leads + Contacts: 55% Leads, 45% Contacts, with their Accounts, Opportunities and
Users) the CRM is seeded once (``acton sandbox seed``, measured) and one ``acton sandbox serve``
process serves it for the whole invocation; each (size, warehouse) starts from a copy of the same
seeded file, swapped in under the running server (it opens the file per request). Then, each
step a child process of its own, measured:

1. ``naive``: ``benchmarks/naive_sync.py`` (simple-salesforce ``query_all``, ``json_normalize``,
   ``to_sql``), reading the fields the pipeline reads;
2. ``full``: ``acton sync full`` in a fresh ``ACTON_HOME`` (``ACTON_SANDBOX_URL`` = the server);
3. ``churn``: ``acton sandbox churn`` of 1% of the records, applied to the served file (one
   SQLite transaction: the server sees it before or after, never halfway);
4. ``incremental``: ``acton sync incremental`` (its wall time as % of the full sync's);
5. ``push``: ``acton push`` of ``--push-changes`` score changes. The situation it measures is a
   running installation: the CRM holds the scores the previous pushes wrote (every Lead and
   Contact has both scores: the benchmark's CRM fills the seed's empty ones), and since then the
   primary score of N contacts changed (+5, an email click). The warehouse's ``contact_scores``
   is set to exactly that before the push; records the churn created without a score add a few
   writes (the note gives the push log's count).

Per step: wall seconds; CPU seconds (user + sys of the child and all it waited for:
``getrusage(RUSAGE_CHILDREN)`` deltas around a tiny launcher that runs only that command); peak
RSS (the launcher's own ``RUSAGE_CHILDREN`` ``ru_maxrss``: that one command's largest process);
API calls (the sandbox's ``api-usage`` from ``GET .../limits`` before and after, less the probe);
records per second; and for ``full`` how many times faster than ``naive`` it is (wall and CPU).
PostgreSQL warehouses are fresh databases at ``--pg-url`` created and dropped here. Figures
only: nothing is asserted. ``--json FILE`` also writes every measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ACTON = str(Path(sys.executable).with_name("acton"))
NAIVE = str(REPO / "benchmarks" / "naive_sync.py")
API_VERSION = "59.0"
LEAD_SHARE = 0.55
CHURN_SHARE = 0.01
# How the churn's changes split between its kinds (of 1% of all records).
CHURN_MIX = {"updates": 0.70, "creates": 0.20, "deletes": 0.07, "converts": 0.03}
SCORE_CHANGE = 5
MAX_SCORE = 999_999
# Inherited variables that would point a step somewhere else than this benchmark's own places.
_OWN_ENV = (
    "ACTON_HOME",
    "ACTON_WAREHOUSE_URL",
    "ACTON_SANDBOX_URL",
    "ACTON_CRM_MODE",
    "DAGSTER_HOME",
)

# Runs one command and reports its rusage: RUSAGE_CHILDREN of a process with one child is that
# child's (and its waited-for descendants'), maxrss included, which the benchmark's own
# RUSAGE_CHILDREN cannot give per step (its maxrss is the max over every child so far).
_LAUNCHER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w") as out:
    json.dump({"code": code, "wall": wall, "maxrss_kib": usage.ru_maxrss}, out)
sys.exit(code)
"""


@dataclass
class Step:
    """One measured step."""

    size: int
    backend: str
    step: str
    wall: float
    cpu: float
    peak_mib: float
    ok: bool
    log: str
    api_calls: int | None = None
    records: int | None = None
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        """Records per second, for the steps that go through all their records."""
        if self.step in ("churn", "incremental") or not (self.records and self.wall):
            return None
        return self.records / self.wall


@dataclass(frozen=True)
class Launched:
    """What one command cost: wall and CPU seconds, peak RSS, and whether it exited 0."""

    wall: float
    cpu: float
    peak_mib: float
    ok: bool


def launch(command: list[str], env: dict[str, str], log: Path) -> Launched:
    """Run ``command`` through the launcher, its output to ``log``, and measure it. The CPU is
    this process's RUSAGE_CHILDREN delta: the command and everything it waited for, plus the
    launcher's own few hundredths of a second."""
    report = log.with_suffix(".json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("w") as out:
        code = subprocess.call(
            [sys.executable, "-c", _LAUNCHER, str(report), *command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reported = json.loads(report.read_text()) if report.exists() else {"wall": 0, "maxrss_kib": 0}
    return Launched(
        wall=reported["wall"],
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        peak_mib=reported["maxrss_kib"] / 1024,
        ok=code == 0,
    )


def tail(path: str, lines: int = 12) -> str:
    text = Path(path).read_text(errors="replace").splitlines() if Path(path).exists() else []
    return "\n".join("    " + line for line in text[-lines:])


class Sandbox:
    """One ``acton sandbox serve`` process over ``home/sandbox/crm.sqlite``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.db = home / "sandbox" / "crm.sqlite"
        self.ca_cert = home / "sandbox" / "certs" / "ca.pem"
        self.url = ""
        self.log: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def install(self, pristine: Path) -> None:
        """Put a copy of ``pristine`` in place, atomically (the server may be serving)."""
        self.db.parent.mkdir(parents=True, exist_ok=True)
        staging = self.db.with_name("crm.sqlite.copying")
        shutil.copyfile(pristine, staging)
        os.replace(staging, self.db)

    def start(self, env: dict[str, str], log: Path) -> None:
        """Serve on a free port; return once it printed its URL."""
        self.log = log
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [ACTON, "sandbox", "serve", "--port", "0"],
                env={**env, "ACTON_HOME": str(self.home)},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        deadline = time.monotonic() + 120
        while not self.url and time.monotonic() < deadline and self.process.poll() is None:
            found = re.search(r"Sandbox CRM at (https://\S+)", log.read_text(errors="replace"))
            if found:
                self.url = found.group(1)
            else:
                time.sleep(0.2)
        if not self.url:
            self.stop()
            raise RuntimeError(f"acton sandbox serve did not start:\n{tail(str(log))}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def api_usage(self) -> int:
        """The org's API usage now: the ``Sforce-Limit-Info`` of a ``GET .../limits`` (itself
        one counted request; the login before it is not counted, as in Salesforce). Logs in
        as the pipeline does, with the ``ACTON_SANDBOX_*`` logins the server was given."""
        from acton_pipelines.crm.sandbox_connection import sandbox_login

        sf = sandbox_login(self.url, self.ca_cert, API_VERSION)
        sf.limits()
        usage = sf.api_usage.get("api-usage")
        if usage is None:
            raise RuntimeError("the sandbox sent no Sforce-Limit-Info header")
        return int(usage.used)


class Warehouses:
    """Fresh warehouse URLs: SQLite files under ``root``, or PostgreSQL databases created (and
    dropped by :meth:`drop_all`) on the server at ``pg_url``."""

    def __init__(self, root: Path, pg_url: str) -> None:
        self.root = root
        self.pg_url = pg_url
        self.created: list[str] = []

    def new(self, backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{self.root / f'{name}.sqlite'}"
        database = f"acton_bench_{os.getpid()}_{name}".lower()
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
            conn.execute(f'CREATE DATABASE "{database}"')
        self.created.append(database)
        return f"{self.pg_url.rstrip('/')}/{database}"

    def drop_all(self) -> None:
        while self.created:
            database = self.created.pop()
            with self._admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    @contextlib.contextmanager
    def _admin(self) -> Iterator[object]:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.pg_url).set(drivername="postgresql", database="postgres")
        with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as conn:
            yield conn


def live_records(db: Path) -> int:
    """Records a full read returns: every live Lead, Contact, Account, Opportunity and User."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        total = conn.execute('SELECT COUNT(*) FROM "User"').fetchone()[0]
        for table in ("Lead", "Contact", "Account", "Opportunity"):
            total += conn.execute(
                f'SELECT COUNT(*) FROM "{table}" WHERE "IsDeleted" = 0'
            ).fetchone()[0]
        return int(total)
    finally:
        conn.close()


def fill_scores(db: Path, score_fields: list[str]) -> None:
    """Give every Lead and Contact a value in each score field (a running installation's CRM
    holds the scores earlier pushes wrote); deterministic, SystemModstamp untouched."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            for table in ("Lead", "Contact"):
                sets = ", ".join(
                    f'"{name}" = COALESCE("{name}", (rowid * {7 + i * 6}) % 101)'
                    for i, name in enumerate(score_fields)
                )
                conn.execute(f'UPDATE "{table}" SET {sets}')
    finally:
        conn.close()


def score_fields() -> list[tuple[str, str | None, str | None]]:
    """(score sheet, Lead field, Contact field) of each score field of the mapping in use."""
    from acton_pipelines import settings
    from acton_pipelines.mapping import load_mapping

    mapping = load_mapping(settings.mapping_dir())
    return [(f.score_sheet, f.source("Lead"), f.source("Contact")) for f in mapping.score_fields]


def prepare_push(crm_db: Path, warehouse_url: str, changes: int) -> int:
    """Set ``contact_scores`` to what the CRM holds (as after a push), then move the primary
    score of ``changes`` contacts (spread over the contact ids) by SCORE_CHANGE. Returns how
    many changed."""
    import pandas as pd
    from sqlalchemy import create_engine, text

    fields = score_fields()
    frames = []
    conn = sqlite3.connect(f"file:{crm_db}?mode=ro", uri=True)
    try:
        for sheet, lead_field, contact_field in fields:
            for record_type, name in (("Lead", lead_field), ("Contact", contact_field)):
                if not name:
                    continue
                frame = pd.read_sql_query(
                    f'SELECT "Id" AS external_id, "{name}" AS score FROM "{record_type}" '
                    f'WHERE "IsDeleted" = 0 AND "{name}" IS NOT NULL',
                    conn,
                )
                frame["record_type"], frame["score_sheet"] = record_type, sheet
                frames.append(frame)
    finally:
        conn.close()
    crm = pd.concat(frames, ignore_index=True)
    engine = create_engine(warehouse_url)
    try:
        contacts = pd.read_sql_query(
            text(
                "SELECT contact_id, external_id, record_type FROM acton_contacts "
                "WHERE external_id IS NOT NULL"
            ),
            engine,
        )
        targets = contacts.merge(crm, on=["external_id", "record_type"])[
            ["contact_id", "score_sheet", "score"]
        ].drop_duplicates(["contact_id", "score_sheet"])
        targets["score"] = targets["score"].round().astype("int64")
        # The primary score ("Act-On Primary Score") is always computed by the sheet "default".
        sheet = next((f[0] for f in fields if f[0] == "default"), fields[0][0])
        primary = targets[targets["score_sheet"] == sheet].sort_values("contact_id").index
        count = min(changes, len(primary))
        if count:
            chosen = primary[(pd.RangeIndex(count) * len(primary)) // count]
            moved = targets.loc[chosen, "score"] + SCORE_CHANGE
            targets.loc[chosen, "score"] = moved.where(
                moved <= MAX_SCORE, targets.loc[chosen, "score"] - SCORE_CHANGE
            )
        targets.to_sql(
            "bench_score_targets", engine, if_exists="replace", index=False, chunksize=50_000
        )
        with engine.begin() as db:
            db.execute(
                text(
                    "UPDATE contact_scores SET score = t.score FROM bench_score_targets AS t "
                    "WHERE contact_scores.contact_id = t.contact_id "
                    "AND contact_scores.score_sheet = t.score_sheet"
                )
            )
            db.execute(text("DROP TABLE bench_score_targets"))
        return count
    finally:
        engine.dispose()


def push_log_rows(warehouse_url: str) -> dict[str, int]:
    """Rows of ``crm_push_log`` per outcome."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(warehouse_url)
    try:
        if "crm_push_log" not in inspect(engine).get_table_names():
            return {}
        with engine.connect() as db:
            rows = db.execute(text("SELECT outcome, COUNT(*) FROM crm_push_log GROUP BY outcome"))
            return {str(outcome): int(count) for outcome, count in rows}
    finally:
        engine.dispose()


def pipeline_fields() -> list[str]:
    """``--fields`` options giving the naive script the fields the pipeline reads."""
    from acton_pipelines import settings
    from acton_pipelines.crm.objects import CRM_OBJECTS, fields_to_read
    from acton_pipelines.mapping import load_mapping

    mapping = load_mapping(settings.mapping_dir())
    out = []
    for crm_object in CRM_OBJECTS:
        out += ["--fields", f"{crm_object.name}={', '.join(fields_to_read(crm_object, mapping))}"]
    return out


class Benchmark:
    """Everything one invocation does, under one temporary folder."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.args = args
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if k not in _OWN_ENV}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.sandbox = Sandbox(root / "crm")
        self.warehouses = Warehouses(root, args.pg_url)
        self.steps: list[Step] = []
        self.score_fields = score_fields()

    def measure(
        self, size: int, backend: str, step: str, command: list[str], env: dict[str, str]
    ) -> Step:
        log = self.root / "logs" / f"{size}-{backend}-{step}.log"
        log.parent.mkdir(exist_ok=True)
        print(f"  {size:>9,} {backend:<10} {step} ...", end="", flush=True)
        result = Step(size, backend, step, **asdict(launch(command, env, log)), log=str(log))
        print(f" {result.wall:.1f} s" + ("" if result.ok else " FAILED"), flush=True)
        if not result.ok:
            print(tail(result.log))
        self.steps.append(result)
        return result

    def seed(self, size: int) -> Path:
        leads = round(size * LEAD_SHARE)
        home = self.root / f"seed-{size}"
        self.measure(
            size,
            "-",
            "seed",
            [ACTON, "sandbox", "seed", "--leads", str(leads), "--contacts", str(size - leads)],
            {**self.env, "ACTON_HOME": str(home)},
        )
        pristine = home / "sandbox" / "crm.sqlite"
        fill_scores(pristine, [name for _, *names in self.score_fields for name in names if name])
        self.steps[-1].records = live_records(pristine)
        self.steps[-1].note = f"{leads:,} Leads + {size - leads:,} Contacts (all objects: records)"
        return pristine

    def with_api_calls(self, step: Step, before: int) -> Step:
        step.api_calls = self.sandbox.api_usage() - before - 1
        return step

    def run(self, size: int, backend: str, pristine: Path) -> None:
        """The naive script, then full sync, churn, incremental sync and push on ``backend``."""
        self.sandbox.install(pristine)
        records = live_records(self.sandbox.db)
        tag = f"{size}_{backend}"

        url = self.warehouses.new(backend, f"naive_{size}")
        before = self.sandbox.api_usage()
        naive = self.measure(
            size,
            backend,
            "naive",
            [
                sys.executable,
                NAIVE,
                "--instance-url",
                self.sandbox.url,
                "--ca-cert",
                str(self.sandbox.ca_cert),
                "--warehouse",
                url,
                *pipeline_fields(),
            ],
            self.env,
        )
        self.with_api_calls(naive, before).records = records

        home = self.root / f"home-{tag}"
        (home / "sandbox" / "certs").mkdir(parents=True)
        shutil.copyfile(self.sandbox.ca_cert, home / "sandbox" / "certs" / "ca.pem")
        env = {**self.env, "ACTON_HOME": str(home), "ACTON_SANDBOX_URL": self.sandbox.url}
        if backend == "postgresql":
            env["ACTON_WAREHOUSE_URL"] = self.warehouses.new(backend, f"acton_{size}")
        warehouse = env.get("ACTON_WAREHOUSE_URL") or f"sqlite:///{home / 'warehouse.sqlite'}"

        before = self.sandbox.api_usage()
        full = self.measure(size, backend, "full", [ACTON, "sync", "full"], env)
        self.with_api_calls(full, before).records = records
        if naive.ok and full.ok:
            full.extra = {"wall_x": naive.wall / full.wall, "cpu_x": naive.cpu / full.cpu}
            full.note = (
                f"vs naive: {naive.wall / full.wall:.2f}x faster wall, "
                f"{naive.cpu / full.cpu:.2f}x less CPU"
            )
        if not full.ok:
            return

        changes = max(1, round(records * CHURN_SHARE))
        counts = {kind: max(1, round(changes * share)) for kind, share in CHURN_MIX.items()}
        churn = self.measure(
            size,
            backend,
            "churn",
            [ACTON, "sandbox", "churn", *(f"--{k}={v}" for k, v in counts.items()), "--seed", "1"],
            {**self.env, "ACTON_HOME": str(self.sandbox.home)},
        )
        churn.records = sum(counts.values())
        if not churn.ok:
            return
        before = self.sandbox.api_usage()
        incremental = self.measure(
            size, backend, "incremental", [ACTON, "sync", "incremental"], env
        )
        self.with_api_calls(incremental, before).records = churn.records
        if incremental.ok:
            share = incremental.wall / full.wall * 100
            incremental.extra = {"pct_of_full": share}
            incremental.note = f"{share:.1f}% of the full sync's wall"
        else:
            return

        wanted = min(self.args.push_changes, size)
        started = time.perf_counter()
        moved = prepare_push(self.sandbox.db, warehouse, wanted)
        print(f"  (push set-up: {time.perf_counter() - started:.1f} s)", flush=True)
        logged = push_log_rows(warehouse)
        before = self.sandbox.api_usage()
        push = self.measure(size, backend, "push", [ACTON, "push"], env)
        self.with_api_calls(push, before).records = moved
        after = push_log_rows(warehouse)
        written = after.get("success", 0) - logged.get("success", 0)
        failed = after.get("failed", 0) - logged.get("failed", 0)
        push.note = f"{moved:,} scores changed; push log: {written:,} written" + (
            f", {failed:,} failed" if failed else ""
        )

    def main(self) -> None:
        sizes = [int(s.replace("_", "")) for s in self.args.sizes.split(",") if s.strip()]
        backends = [b.strip() for b in self.args.backends.split(",") if b.strip()]
        for backend in backends:
            if backend not in ("sqlite", "postgresql"):
                raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql)")
        for size in sizes:
            pristine = self.seed(size)
            if not self.steps[-1].ok:
                continue
            if self.sandbox.process is None:
                self.sandbox.install(pristine)
                (self.root / "logs").mkdir(exist_ok=True)
                self.sandbox.start(self.env, self.root / "logs" / "sandbox-serve.log")
                print(f"  sandbox CRM served at {self.sandbox.url}", flush=True)
            for backend in backends:
                try:
                    self.run(size, backend, pristine)
                finally:
                    self.warehouses.drop_all()
            shutil.rmtree(pristine.parent.parent, ignore_errors=True)


def table(steps: list[Step]) -> str:
    """The measurements as one text table."""
    header = (
        "size",
        "warehouse",
        "step",
        "records",
        "wall s",
        "CPU s",
        "peak RSS MiB",
        "API calls",
        "records/s",
        "note",
    )
    rows = [header]
    for s in steps:
        rows.append(
            (
                f"{s.size:,}",
                s.backend,
                s.step,
                "" if s.records is None else f"{s.records:,}",
                f"{s.wall:.1f}",
                f"{s.cpu:.1f}",
                f"{s.peak_mib:.0f}",
                "" if s.api_calls is None else f"{s.api_calls:,}",
                "" if s.rate is None else f"{s.rate:,.0f}",
                s.note if s.ok else f"FAILED (log: {s.log})",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {0, 3, 4, 5, 6, 7, 8}
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine() -> str:
    """One line about where the figures came from."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {memory:.0f} GiB RAM, Python {sys.version.split()[0]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Leads + Contacts per run")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite, postgresql")
    parser.add_argument(
        "--push-changes", type=int, default=100_000, help="score changes to push (capped at size)"
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432",
        help="PostgreSQL server for the postgresql warehouses (databases made and dropped here)",
    )
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (homes, logs); PostgreSQL "
        "databases are dropped all the same",
    )
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="acton_compare_"))
    bench = Benchmark(args, root)
    started = time.perf_counter()
    print(f"Benchmark folder {root}; {machine()}", flush=True)
    try:
        bench.main()
    finally:
        bench.sandbox.stop()
        bench.warehouses.drop_all()
        failed = any(not s.ok for s in bench.steps)
        print()
        print(table(bench.steps))
        print(f"\n{machine()}; {time.perf_counter() - started:.0f} s in all")
        if args.json:
            args.json.write_text(json.dumps([asdict(s) for s in bench.steps], indent=2))
        if args.keep:
            print(f"Kept {root} (homes, warehouses, logs)")
        elif failed:
            print(f"Logs kept in {root / 'logs'}")
            for path in root.iterdir():
                if path.is_dir() and path.name != "logs":
                    shutil.rmtree(path, ignore_errors=True)
                elif path.is_file():
                    path.unlink()
        else:
            shutil.rmtree(root, ignore_errors=True)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
