"""A sync that fails says what happened, once: one line per cause and the run id in the
terminal, the same line on the run's steps and in ``sync_runs.error``; ``--verbose`` for the
whole Dagster log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance
from sqlalchemy import select

from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.tables import sync_runs
from crm_sandbox import SandboxServer
from tests.conftest import ActonHome


def unreachable_sandbox(home: ActonHome) -> str:
    """The URL of a sandbox that has stopped (its certificate stays under the home)."""
    with SandboxServer(home.sandbox_db, home.path / "sandbox" / "certs") as server:
        return server.instance_url


def acton(home: ActonHome, sandbox_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``acton ARGS`` in a process of its own, as a user runs it (the CRM settings are read
    when the code location loads, so they cannot change inside this test process)."""
    env = {
        **os.environ,
        "ACTON_HOME": str(home.path),
        "DAGSTER_HOME": str(home.path / "dagster"),
        "ACTON_SANDBOX_URL": sandbox_url,
        "ACTON_CRM_RETRY_MINUTES": "0.02",
    }
    command = [str(Path(sys.executable).parent / "acton"), *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_an_unreachable_crm_is_one_line_and_a_run_id(acton_home: ActonHome) -> None:
    url = unreachable_sandbox(acton_home)
    result = acton(acton_home, url, "sync", "full")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output and "Stack Trace" not in output
    assert len(output.splitlines()) < 15, output
    (failed,) = [line for line in output.splitlines() if "The full sync failed (run " in line]
    run_id = failed.split("(run ")[1].split(")")[0]
    (cause,) = [line for line in output.splitlines() if "cannot reach the sandbox CRM" in line]
    # The five CRM steps failed for one reason: one line names them all.
    assert cause.strip().startswith("crm_accounts, crm_contacts, crm_leads")
    assert url in cause

    with warehouse_engine(acton_home.warehouse_url).connect() as conn:
        rows = conn.execute(
            select(sync_runs.c.object, sync_runs.c.status, sync_runs.c.error).where(
                sync_runs.c.run_id == run_id
            )
        ).all()
    assert {r.object for r in rows} == {
        "crm_leads",
        "crm_contacts",
        "crm_accounts",
        "crm_users",
        "crm_opportunities",
    }
    for row in rows:
        assert row.status == "failed" and "cannot reach the sandbox CRM" in (row.error or "")
        assert "\n" not in (row.error or "")

    # On the run page: each step's failure is that one line (Failure.description).
    with DagsterInstance.from_config(str(acton_home.path / "dagster")) as instance:
        failures = instance.get_records_for_run(
            run_id, of_type=DagsterEventType.STEP_FAILURE
        ).records
        descriptions = {
            r.event_log_entry.dagster_event.step_failure_data.user_failure_data.description
            for r in failures
        }
    assert len(failures) == 5 and len(descriptions) == 1
    (description,) = descriptions
    assert "cannot reach the sandbox CRM" in description and "\n" not in description


def test_verbose_prints_dagsters_whole_log(acton_home: ActonHome) -> None:
    result = acton(acton_home, unreachable_sandbox(acton_home), "sync", "full", "--verbose")
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "STEP_FAILURE" in output and "Stack Trace" in output
