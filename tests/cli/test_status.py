"""``acton status`` on private homes: a new one, one after a real full sync (SQLite and
PostgreSQL warehouses), a failed run, a rejected import; and the rendering on its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from acton_pipelines.cli.main import cli
from acton_pipelines.cli.status import WIDTH, render_status
from acton_pipelines.cli.status_facts import (
    SYNC_OBJECTS,
    Attention,
    Automation,
    DagsterFacts,
    FailedRun,
    ImportsFacts,
    ObjectSyncs,
    StatusReport,
    TickResult,
    WarehouseFacts,
)
from tests.conftest import ActonHome

NOW = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def new_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ACTON_HOME: nothing synced, no Dagster instance yet."""
    home = tmp_path / "home"
    monkeypatch.setenv("ACTON_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for name in ("ACTON_WAREHOUSE_URL", "ACTON_MAPPING_DIR", "ACTON_IMPORTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


def test_a_new_home_is_never_synced(new_home: Path) -> None:
    result = invoke("status")
    assert result.exit_code == 1, result.output
    assert "Needs attention:\n  - never synced — run `acton sync full`" in result.output
    assert "no tick yet" in result.output
    assert "Traceback" not in result.output
    assert not (new_home / "warehouse.sqlite").exists()


def test_a_rejected_import_file_needs_attention(new_home: Path) -> None:
    imports = new_home / "imports"
    imports.mkdir(parents=True)
    (imports / "opt_outs_1.csv").write_text("email\nnot-an-email\n")
    # `acton imports` exits 1 for a rejected file, and moves it to rejected/.
    assert invoke("imports").exit_code == 1
    assert (imports / "rejected" / "opt_outs_1.csv").exists()
    result = invoke("status")
    assert result.exit_code == 1
    assert "0 files waiting" in result.output
    assert f"  - 1 import file rejected in {imports / 'rejected'} — " in result.output


def shown_rows(output: str) -> dict[str, int]:
    """The rows column of the syncs table, per object."""
    rows = {}
    for line in output.splitlines():
        words = line.split()
        if words and words[0] in SYNC_OBJECTS and line.startswith("  "):
            rows[words[0]] = int(words[-1].replace(",", ""))
    return rows


def test_after_a_full_sync_nothing_needs_attention_until_a_run_fails(
    acton_home: ActonHome, warehouse_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTON_WAREHOUSE_URL", warehouse_url)
    assert invoke("sync", "full").exit_code == 0

    result = invoke("status")
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("Nothing needs attention.")
    engine = create_engine(make_url(warehouse_url), poolclass=NullPool)
    with engine.connect() as conn:
        counts = {
            t: conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
            for t in (*SYNC_OBJECTS, "acton_contact_rejects")
        }
    engine.dispose()
    assert shown_rows(result.output) == {t: counts[t] for t in SYNC_OBJECTS}
    # Quarantined values are shown, and are not a reason to exit 1.
    quarantined = counts["acton_contact_rejects"]
    assert quarantined > 0
    assert f"Rejects: {quarantined:,} values quarantined in acton_contact_rejects" in result.output
    password = make_url(warehouse_url).password
    assert not password or str(password) not in result.output

    as_json = invoke("status", "--json")
    assert as_json.exit_code == 0
    report = json.loads(as_json.output)
    assert report["needs_attention"] is False
    assert {o["object"]: o["rows"] for o in report["warehouse"]["objects"]} == shown_rows(
        result.output
    )

    monkeypatch.setenv("ACTON_MAPPING_DIR", "/nonexistent")
    assert invoke("sync", "full").exit_code == 1
    failed = invoke("status")
    assert failed.exit_code == 1
    attention = failed.output.split("Needs attention:\n", 1)[1]
    (item,) = attention.splitlines()
    assert item.startswith("  - the last full sync failed ")
    assert "/nonexistent: the mapping folder does not exist" in item
    assert item.endswith(" — fix the cause, then `acton sync full`")


# --- the rendering, on a report built by hand -------------------------------------------------


def sample_report() -> StatusReport:
    objects = [
        ObjectSyncs(
            name,
            last_full=NOW - timedelta(days=3, hours=1),
            last_incremental=NOW - timedelta(minutes=40),
            rows=1234 * (index + 1),
        )
        for index, name in enumerate(SYNC_OBJECTS)
    ]
    warehouse = WarehouseFacts(
        url="postgresql+psycopg://acton:***@db.example.com/acton_warehouse",
        objects=objects,
        rows={o.object: o.rows or 0 for o in objects} | {"segments": 9, "sync_runs": 420},
        last_push=NOW - timedelta(hours=3),
        deletion_log_left=timedelta(days=13, hours=23, minutes=20),
        quarantined=37,
        pending_edits=2,
    )
    tick = TickResult(NOW - timedelta(seconds=20), "skipped", "No new files in /srv/imports. " * 5)
    dagster = DagsterFacts(
        home="/srv/acton/deploy/production",
        daemon_heartbeat=NOW - timedelta(seconds=12),
        schedules=[
            Automation(
                "full_sync_schedule",
                "schedule",
                True,
                TickResult(NOW - timedelta(days=1, hours=8), "success", "requested 1 run"),
                datetime(2026, 12, 21, 2, 0, tzinfo=UTC),
            ),
            Automation(
                "incremental_sync_schedule",
                "schedule",
                True,
                TickResult(NOW - timedelta(hours=1), "success", "requested 1 run"),
                datetime(2026, 12, 8, 11, 0, tzinfo=UTC),
            ),
        ],
        sensors=[
            Automation("deletion_log_sensor", "sensor", True, tick),
            Automation("imports_sensor", "sensor", False, None),
        ],
    )
    failed = [
        FailedRun("0a1b2c3d-aaaa", "incremental_sync", NOW - timedelta(minutes=30), "crm_leads: x"),
        FailedRun("9f8e7d6c-bbbb", "incremental_sync", NOW - timedelta(hours=2), "crm_leads: y"),
    ]
    return StatusReport(
        now=NOW,
        warehouse=warehouse,
        dagster=dagster,
        imports=ImportsFacts(folder="/srv/imports", waiting=["contacts_9.csv"]),
        freshness=timedelta(hours=26),
        failed_runs=failed,
        attention=[Attention("the last incremental sync failed 30 min ago", "fix it")],
    )


def test_the_screen_is_aligned_compact_and_in_utc() -> None:
    screen = render_status(sample_report())
    lines = screen.splitlines()
    assert lines[0] == "acton status at 2026-12-08 10:00 UTC (all times UTC)"
    leads = next(line for line in lines if line.startswith("  crm_leads "))
    assert "2026-12-05 09:00 (3 d ago)  2026-12-08 09:20 (40 min ago)" in leads
    assert leads.endswith(" 1,234")
    # Every object's columns start at the same place.
    starts = {line.index("2026-12-05") for line in lines if line.startswith("  crm_")}
    assert len(starts) == 1
    assert "  deletion log: 13 d 23 h left before a full sync is due" in screen
    assert (
        "  incremental_sync  2 runs, last 2026-12-08 09:30 (30 min ago) run 0a1b2c3d: crm_leads: x"
    ) in lines
    assert "Schedules (daemon: running, heartbeat 12 s ago)" in lines
    assert any(
        line.startswith("  full_sync_schedule ")
        and "next 2026-12-21 02:00 (in 12 d)" in line
        and line.endswith("last: success 32 h ago")
        for line in lines
    )
    assert "  imports_sensor             stopped  no tick yet" in lines
    assert "Push: last 2026-12-08 07:00 (3 h ago) · waiting: 2 edits, 0 new Leads" in lines
    assert "Imports: 1 file waiting in /srv/imports" in lines
    assert lines[-2:] == [
        "Needs attention:",
        "  - the last incremental sync failed 30 min ago — fix it",
    ]
    # One screen: every line but the attention items fits the width, ~30 lines in all.
    assert [line for line in lines[:-1] if len(line) > WIDTH] == []
    assert len(lines) <= 32


def test_nothing_to_do_says_so() -> None:
    report = sample_report()
    report.attention = []
    assert render_status(report).endswith("\nNothing needs attention.")
