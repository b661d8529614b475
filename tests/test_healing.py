"""A run that fails half-way is healed by the next one.

The CRM mirrors of a run may commit while its ``acton_contacts`` step fails (or the process is
killed in the middle of it). The next run, whatever it reads itself, must catch up on what the
failed one changed: every table then equals what a fresh full sync of the same CRM gives. The
failures are real: a trigger in the warehouse that refuses writes to ``acton_contacts``, and
``kill -9`` of an ``acton sync incremental`` process blocked inside that step.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SeedSummary, churn_sandbox
from tests.conftest import ActonHome, make_home, run_full_sync, run_incremental_sync
from tests.test_incremental_sync import (
    DERIVED_TABLES,
    fresh_full_sync_of,
    renamed_ids,
    today,
    translated_ids,
)
from tests.warehouse_contents import table_contents

REFUSAL = "acton_contacts refuses writes (test)"


@contextmanager
def acton_contacts_refuses_writes(engine: Engine) -> Iterator[None]:
    """A trigger that makes every write to acton_contacts fail, for as long as the block runs."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            for action in ("INSERT", "UPDATE", "DELETE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER refuse_{action.lower()} BEFORE {action} ON acton_contacts "
                        f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
                    )
                )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_writes() RETURNS trigger AS $$ BEGIN "
                    f"RAISE EXCEPTION '{REFUSAL}'; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_writes BEFORE INSERT OR UPDATE OR DELETE "
                    "ON acton_contacts FOR EACH STATEMENT EXECUTE FUNCTION refuse_writes()"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                for action in ("insert", "update", "delete"):
                    conn.execute(text(f"DROP TRIGGER refuse_{action}"))
            else:
                conn.execute(text("DROP TRIGGER refuse_writes ON acton_contacts"))
                conn.execute(text("DROP FUNCTION refuse_writes()"))


def sync_runs_of(engine: Engine, run_id: str) -> dict[str, tuple[str, str | None]]:
    """object -> (status, error) of one run's sync_runs rows."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT object, status, error FROM sync_runs WHERE run_id = :r"), {"r": run_id}
        ).all()
    return {r.object: (r.status, r.error) for r in rows}


def deleted_in_crm(home: ActonHome) -> set[str]:
    """Ids of the Leads and Contacts deleted in the sandbox CRM."""
    with sqlite3.connect(home.sandbox_db) as conn:
        rows = conn.execute(
            'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 1 '
            'UNION SELECT "Id" FROM "Contact" WHERE "IsDeleted" = 1'
        ).fetchall()
    return {r[0] for r in rows}


def contacts_of(engine: Engine, external_ids: set[str]) -> set[str]:
    """Which of ``external_ids`` still have an Act-On contact."""
    with engine.connect() as conn:
        present = conn.execute(text("SELECT external_id FROM acton_contacts")).scalars()
        return external_ids & set(present)


def assert_equals_a_fresh_full_sync(
    home: ActonHome, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = fresh_full_sync_of(home, root, monkeypatch)
    healed = table_contents(home.warehouse_url, DERIVED_TABLES)
    expected = translated_ids(
        table_contents(fresh.warehouse_url, DERIVED_TABLES), renamed_ids(home)
    )
    for name in DERIVED_TABLES:
        assert healed[name] == expected[name], name


@pytest.fixture
def synced_home(
    tmp_path: Path, small_crm: SeedSummary, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> ActonHome:
    """A home on each warehouse backend, after its first full sync."""
    home = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse=warehouse_url)
    assert run_full_sync(home).success
    return home


@pytest.mark.parametrize("failed_mode", ["full", "incremental"])
def test_an_acton_contacts_failure_after_the_mirrors_is_healed_by_the_next_run(
    synced_home: ActonHome, failed_mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = synced_home
    engine = warehouse_engine(home.warehouse_url)
    churn_sandbox(home.sandbox_db, updates=30, creates=10, deletes=12, converts=5, seed=11)
    deleted = deleted_in_crm(home)

    with acton_contacts_refuses_writes(engine):
        failed = (
            run_full_sync(home) if failed_mode == "full" else run_incremental_sync(home, today())
        )
    assert not failed.success
    runs = sync_runs_of(engine, failed.run_id)
    # The mirrors committed (deletions included); acton_contacts did not, and says why.
    assert {runs[t][0] for t in ("crm_leads", "crm_contacts", "crm_accounts")} == {"success"}
    assert runs["acton_contacts"][0] == "failed"
    assert REFUSAL in (runs["acton_contacts"][1] or "")
    left_behind = contacts_of(engine, deleted)
    assert left_behind, "the failed run should have left contacts of deleted CRM records"

    # Nothing changed in the CRM since: the next run reads next to nothing itself.
    healing = run_incremental_sync(home, today())
    assert healing.success
    assert contacts_of(engine, deleted) == set()
    assert_equals_a_fresh_full_sync(home, tmp_path / "fresh", monkeypatch)


def stage_tables(engine: Engine, of: str) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            names = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
        else:
            names = conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        return [n for n in names.scalars() if n.startswith("_stage_") and of in n]


@contextmanager
def writes_blocked(engine: Engine) -> Iterator[None]:
    """Hold the lock every write to acton_contacts needs (SQLite: the database's write lock;
    PostgreSQL: an exclusive lock on the table), until the block ends."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        assert path
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text("LOCK TABLE acton_contacts IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            transaction.rollback()


def acton(home: ActonHome, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ACTON_HOME": str(home.path),
        "DAGSTER_HOME": str(home.path / "dagster"),
        "ACTON_WAREHOUSE_URL": home.warehouse_url,
    }
    command = [str(Path(sys.executable).parent / "acton"), *args]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_kill_9_inside_acton_contacts_is_healed_by_the_next_cli_run(
    synced_home: ActonHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = synced_home
    engine = warehouse_engine(home.warehouse_url)
    churn_sandbox(home.sandbox_db, updates=20, creates=5, deletes=12, converts=4, seed=5)
    deleted = deleted_in_crm(home)

    process = acton(home, "sync", "incremental")
    try:
        deadline = time.monotonic() + 180
        while not stage_tables(engine, "acton_contacts"):
            assert process.poll() is None, f"the sync ended before acton_contacts: {process}"
            assert time.monotonic() < deadline, "acton_contacts never started staging"
            time.sleep(0.01)
        with writes_blocked(engine):
            # Blocked at its next write, before acton_contacts can commit: kill it there.
            time.sleep(1)
            assert process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""

    # What the killed run left: mirrors synced, contacts of deleted records still there, a
    # staging table nobody will drop, and no successful acton_contacts build.
    assert contacts_of(engine, deleted), output
    assert stage_tables(engine, ""), output
    with engine.connect() as conn:
        last = conn.execute(
            text("SELECT object, status FROM sync_runs ORDER BY seq DESC LIMIT 1")
        ).one()
    assert last.object.startswith("crm_") and last.status == "success"

    rerun = acton(home, "sync", "incremental")
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    # The killed run was marked failed (its process is gone), so the new one did not wait.
    assert "is gone" in out
    assert stage_tables(engine, "") == []
    assert contacts_of(engine, deleted) == set()
    assert_equals_a_fresh_full_sync(home, tmp_path / "fresh", monkeypatch)
