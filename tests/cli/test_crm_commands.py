"""The commands that talk to the CRM and run syncs, on a private ACTON_HOME."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from acton_pipelines.cli.main import cli
from acton_pipelines.mapping import load_mapping
from tests.conftest import REPO_CONFIG, ActonHome


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def test_validate_checks_the_mapping_against_the_crm(acton_home: ActonHome, tmp_path: Path) -> None:
    config = tmp_path / "mapping_config"
    shutil.copytree(REPO_CONFIG, config)
    mapping_file = config / "contact_mapping.yaml"
    mapping_file.write_text(
        mapping_file.read_text().replace("contact: Renewal_Date__c", "contact: Renewal_Dt__c")
    )
    result = invoke("mapping", "validate", str(config))
    assert result.exit_code == 1
    assert "CRM field 'Renewal_Dt__c' does not exist on Contact" in result.output
    assert "did you mean 'Renewal_Date__c'" in result.output


def test_validate_reports_the_crm_check_when_it_passes(acton_home: ActonHome) -> None:
    result = invoke("mapping", "validate")
    assert result.exit_code == 0, result.output
    assert "every mapped CRM field exists and has a compatible type" in result.output


def test_init_writes_a_head_start_that_validates(acton_home: ActonHome, tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    result = invoke("mapping", "init", str(folder))
    assert result.exit_code == 0, result.output
    mapping = load_mapping(folder)
    sources = {f.destination: (f.lead, f.contact) for f in mapping.fields}
    assert sources["Email"] == ("Email", "Email")
    assert sources["Company"] == ("Company", "Account.Name")
    assert mapping.score_fields
    again = invoke("mapping", "init", str(folder))
    assert again.exit_code == 1 and "--force" in again.output


def test_sample_shows_the_mapped_fields_of_a_few_records(acton_home: ActonHome) -> None:
    result = invoke("sample", "Contact", "--limit", "3")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(acton_home.sandbox_db) as conn:
        (live,) = conn.execute("SELECT count(*) FROM Contact WHERE IsDeleted = 0").fetchone()
    assert result.output.startswith(f"Contact: {live:,} records; showing 3")
    for field in ("Account.Name", "Renewal_Date__c", "Interests__c"):
        assert field in result.output


def test_sandbox_seed_is_deterministic(acton_home: ActonHome) -> None:
    first = invoke("sandbox", "seed", "--leads", "50", "--contacts", "40", "--seed", "3")
    assert first.exit_code == 0, first.output
    with sqlite3.connect(acton_home.sandbox_db) as conn:
        emails = conn.execute("SELECT Email FROM Lead ORDER BY Id").fetchall()
    invoke("sandbox", "seed", "--leads", "50", "--contacts", "40", "--seed", "3")
    with sqlite3.connect(acton_home.sandbox_db) as conn:
        assert conn.execute("SELECT Email FROM Lead ORDER BY Id").fetchall() == emails
        (leads,) = conn.execute("SELECT count(*) FROM Lead").fetchone()
    assert leads == 50


def test_sync_full_runs_on_the_instance_under_acton_home(acton_home: ActonHome) -> None:
    result = invoke("sync", "full")
    assert result.exit_code == 0, result.output
    assert "The full sync finished" in result.output
    assert "acton_contacts" in result.output and "Unaffiliated" in result.output
    assert (acton_home.path / "warehouse.sqlite").exists()
    runs = list((acton_home.path / "dagster").rglob("*.db"))
    assert runs, "the run should be recorded in the Dagster instance under ACTON_HOME"


def test_sync_full_with_a_broken_mapping_fails_with_the_mapping_message(
    acton_home: ActonHome, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "mapping_config"
    shutil.copytree(REPO_CONFIG, config)
    (config / "score_sheets.yaml").write_text("score_sheets: []\n")
    monkeypatch.setenv("ACTON_MAPPING_DIR", str(config))
    result = invoke("sync", "full")
    assert result.exit_code == 1
    assert "score_sheets.yaml" in result.output
    assert "Traceback" not in result.output


def test_push_dry_run_prints_the_plan_and_writes_nothing(acton_home: ActonHome) -> None:
    assert invoke("sync", "full").exit_code == 0
    with sqlite3.connect(acton_home.sandbox_db) as conn:
        before = conn.execute("SELECT Id, ActOn_Score__c, SystemModstamp FROM Lead").fetchall()
    result = invoke("push", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "Lead.ActOn_Score__c:" in result.output and "Contact.Fit_Score__c:" in result.output
    with sqlite3.connect(acton_home.sandbox_db) as conn:
        after = conn.execute("SELECT Id, ActOn_Score__c, SystemModstamp FROM Lead").fetchall()
    assert after == before
    assert invoke("push").exit_code == 0
    assert "Nothing to push" in invoke("push", "--dry-run").output


def test_imports_applies_a_dropped_file(acton_home: ActonHome) -> None:
    assert invoke("sync", "full").exit_code == 0
    folder = acton_home.path / "imports"
    folder.mkdir(exist_ok=True)
    (folder / "contacts_fair.csv").write_text("email,First Name\nnew.visitor@example.com,Nia\n")
    result = invoke("imports")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(acton_home.path / "warehouse.sqlite") as conn:
        stored = conn.execute(
            "SELECT contact_id, first_name, source FROM acton_contacts "
            "WHERE email = 'new.visitor@example.com'"
        ).fetchall()
        outcome = conn.execute("SELECT file_name, status FROM acton_import_files").fetchall()
    assert stored == [("acton:new.visitor@example.com", "Nia", "acton")]
    assert outcome == [("contacts_fair.csv", "applied")]
