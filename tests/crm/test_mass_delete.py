"""The mass-delete guard: a sync that would delete too much of a table stops before deleting.

Both sides of the line, as a pure rule and through real syncs: records removed from the sandbox
CRM (as a permission change or a purge would make them disappear from a full read), and records
deleted in the CRM (as an incremental sync sees them).
"""

from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from acton_pipelines.cli.main import cli
from acton_pipelines.crm.mass_delete import (
    DeletionCheck,
    mass_delete_problem,
    max_delete_fraction,
)
from acton_pipelines.runs.partitions import ALLOW_MASS_DELETE_TAG, full_sync_tags
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import churn_sandbox
from tests.conftest import ActonHome, run_full_sync, run_sync


def check(held: int, to_delete: int, read: int = 1) -> DeletionCheck:
    return DeletionCheck(
        "crm_leads", "Lead", rows_held=held, rows_read=read, rows_to_delete=to_delete
    )


@pytest.mark.parametrize(
    ("held", "to_delete", "refused"),
    [
        (1000, 200, False),  # exactly 20%: allowed
        (1000, 201, True),  # just over
        (30, 10, False),  # 33%, but only 10 rows: ordinary housekeeping
        (30, 11, True),
        (5, 5, False),  # a tiny table may empty itself
    ],
)
def test_the_line_is_a_share_of_the_table_above_a_few_rows(
    held: int, to_delete: int, refused: bool
) -> None:
    problem = mass_delete_problem(check(held, to_delete), max_fraction=0.2)
    assert (problem is not None) == refused
    if problem:
        assert f"{to_delete:,} of {held:,}" in problem
        assert "crm_leads" in problem and "--allow-mass-delete" in problem


def test_an_empty_read_of_a_big_table_is_refused_whatever_the_fraction() -> None:
    problem = mass_delete_problem(check(101, 101, read=0), max_fraction=1.0)
    assert problem is not None and "returned 0 Lead records" in problem
    assert mass_delete_problem(check(100, 100, read=0), max_fraction=1.0) is None


def test_the_fraction_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_MAX_DELETE_FRACTION", "0.5")
    assert max_delete_fraction() == 0.5
    for bad in ("half", "0", "1.5"):
        monkeypatch.setenv("ACTON_MAX_DELETE_FRACTION", bad)
        with pytest.raises(ValueError, match="ACTON_MAX_DELETE_FRACTION"):
            max_delete_fraction()


def count(home: ActonHome, table: str) -> int:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def crm_row_ids(home: ActonHome, sql: str) -> list[str]:
    with sqlite3.connect(home.sandbox_db) as conn:
        return [r[0] for r in conn.execute(sql)]


def remove_leads_from_crm(home: ActonHome, share: float) -> int:
    """Make ``share`` of the live Leads disappear from the CRM's reads (as a purge or a lost
    permission would); returns how many."""
    ids = crm_row_ids(home, 'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0 ORDER BY "Id"')
    gone = ids[: int(len(ids) * share)]
    with sqlite3.connect(home.sandbox_db) as conn:
        conn.executemany('DELETE FROM "Lead" WHERE "Id" = ?', [(i,) for i in gone])
    return len(gone)


def sync_run(home: ActonHome, run_id: str, table: str) -> tuple[str, str | None] | None:
    with warehouse_engine(home.warehouse_url).connect() as conn:
        row = conn.execute(
            text("SELECT status, error FROM sync_runs WHERE run_id = :r AND object = :o"),
            {"r": run_id, "o": table},
        ).one_or_none()
    return (row.status, row.error) if row else None


def test_a_full_sync_missing_a_third_of_the_leads_stops_and_deletes_nothing(
    synced_home: ActonHome,
) -> None:
    home = synced_home
    leads, contacts = count(home, "crm_leads"), count(home, "acton_contacts")
    removed = remove_leads_from_crm(home, 0.35)

    refused = run_full_sync(home)
    assert not refused.success
    status, error = sync_run(home, refused.run_id, "crm_leads") or ("", None)
    assert status == "failed"
    assert f"would delete {removed:,} of {leads:,}" in (error or "")
    assert "--allow-mass-delete" in (error or "")
    # Nothing deleted, and no successful crm_leads sync recorded (its cursor did not move).
    assert count(home, "crm_leads") == leads
    assert count(home, "acton_contacts") == contacts

    confirmed = run_sync(home, "full_sync", {**full_sync_tags(), ALLOW_MASS_DELETE_TAG: "true"})
    assert confirmed.success
    assert count(home, "crm_leads") == leads - removed
    assert sync_run(home, confirmed.run_id, "crm_leads") == ("success", None)


def test_a_full_sync_below_the_line_deletes(synced_home: ActonHome) -> None:
    home = synced_home
    leads = count(home, "crm_leads")
    removed = remove_leads_from_crm(home, 0.1)
    assert removed > 10
    assert run_full_sync(home).success
    assert count(home, "crm_leads") == leads - removed


def test_a_crm_that_returns_no_lead_at_all_is_refused(synced_home: ActonHome) -> None:
    home = synced_home
    leads = count(home, "crm_leads")
    remove_leads_from_crm(home, 1.0)
    refused = run_full_sync(home)
    assert not refused.success
    _, error = sync_run(home, refused.run_id, "crm_leads") or ("", None)
    assert "returned 0 Lead records" in (error or "")
    assert count(home, "crm_leads") == leads


def test_an_incremental_sync_of_mass_deletions_needs_the_cli_flag(
    synced_home: ActonHome,
) -> None:
    home = synced_home
    leads = count(home, "crm_leads")
    churn = churn_sandbox(home.sandbox_db, updates=0, creates=0, converts=0, deletes=500, seed=3)
    assert len(churn.deleted.get("Lead", [])) > 0.2 * leads

    runner = CliRunner()
    refused = runner.invoke(cli, ["sync", "incremental"])
    assert refused.exit_code == 1
    assert "would delete" in refused.output and "--allow-mass-delete" in refused.output
    assert "Traceback" not in refused.output
    assert count(home, "crm_leads") == leads

    confirmed = runner.invoke(cli, ["sync", "incremental", "--allow-mass-delete"])
    assert confirmed.exit_code == 0, confirmed.output
    live = crm_row_ids(home, 'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0')
    assert count(home, "crm_leads") == len(live)
