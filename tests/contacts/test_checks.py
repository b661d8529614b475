"""The asset checks on acton_contacts, and values of other data types quarantined end to end."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, build_asset_check_context
from sqlalchemy import text

from acton_pipelines.contacts.assets import (
    acton_contacts_duplicate_emails,
    acton_contacts_rejects,
    acton_contacts_schema,
)
from acton_pipelines.warehouse.engine import warehouse_engine
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource
from crm_sandbox import SeedSummary
from tests.conftest import REPO_CONFIG, ActonHome, make_home, run_full_sync

# A Number field fed by a text CRM field: every non-numeric company name is a bad value.
EXTRA_NUMBER_FIELD = """
  - destination: Company Number
    type: Number
    lead: Company
"""


@pytest.fixture(scope="module")
def synced(
    tmp_path_factory: pytest.TempPathFactory, small_crm: SeedSummary
) -> Iterator[tuple[ActonHome, Path]]:
    root = tmp_path_factory.mktemp("checks")
    mapping_dir = root / "mapping_config"
    shutil.copytree(REPO_CONFIG, mapping_dir)
    with (mapping_dir / "contact_mapping.yaml").open("a") as mapping_file:
        mapping_file.write(EXTRA_NUMBER_FIELD)
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = make_home(root / "home", small_crm, monkeypatch)
        result = run_full_sync(home, mapping_dir)
        assert result.success
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert evaluations["acton_contacts_rejects"].passed is False
        assert evaluations["acton_contacts_rejects"].severity is AssetCheckSeverity.WARN
        assert evaluations["acton_contacts_schema"].passed is True
        yield home, mapping_dir


def run_check(check, home: ActonHome, mapping_dir: Path):  # type: ignore[no-untyped-def]
    resources = {
        "warehouse": WarehouseResource(url=home.warehouse_url),
        "mapping": MappingResource(directory=str(mapping_dir)),
    }
    return check(build_asset_check_context(resources=resources))


def test_a_text_value_in_a_number_field_is_quarantined_with_its_reason(
    synced: tuple[ActonHome, Path],
) -> None:
    home, _ = synced
    with warehouse_engine(home.warehouse_url).connect() as conn:
        leads = conn.execute(
            text("SELECT count(*) FROM acton_contacts WHERE record_type = 'Lead'")
        ).scalar_one()
        rejects = conn.execute(
            text(
                "SELECT r.value, r.reason, c.company, c.company_number "
                "FROM acton_contact_rejects r JOIN acton_contacts c ON c.contact_id = r.contact_id "
                "WHERE r.field = 'Company Number'"
            )
        ).all()
    assert len(rejects) == leads  # every lead has a company name, none of them a number
    assert {reason for _, reason, _, _ in rejects} == {"not a number"}
    # The bad value is kept in the quarantine, the contact and its other values still load.
    assert all(value == company and number is None for value, _, company, number in rejects)


def test_rejects_check_warns_with_counts_by_reason(synced: tuple[ActonHome, Path]) -> None:
    result = run_check(acton_contacts_rejects, *synced)
    assert result.passed is False
    assert result.severity is AssetCheckSeverity.WARN
    by_reason = result.metadata["by_reason"].value
    assert set(by_reason) == {"not a valid email address", "not a number"}


def test_duplicate_emails_are_reported(synced: tuple[ActonHome, Path]) -> None:
    home, _ = synced
    with warehouse_engine(home.warehouse_url).connect() as conn:
        shared, sharing = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(contacts), 0) FROM (SELECT email, count(*) AS "
                "contacts FROM acton_contacts WHERE email IS NOT NULL GROUP BY email "
                "HAVING count(*) > 1) AS shared"
            )
        ).one()
    result = run_check(acton_contacts_duplicate_emails, *synced)
    assert shared > 0
    assert result.passed is False
    assert result.metadata["shared_emails"].value == shared
    # keep_both (the repository's mapping): every contact of a shared address is kept.
    assert result.metadata["policy"].value == "keep_both"
    assert result.metadata["kept"].value == sharing
    assert result.metadata["not_kept"].value == 0


def test_schema_check_blocks_on_a_value_that_breaks_the_mapping(
    synced: tuple[ActonHome, Path],
) -> None:
    home, mapping_dir = synced
    assert acton_contacts_schema.check_specs_by_output_name  # defined as a check
    assert all(spec.blocking for spec in acton_contacts_schema.check_specs)
    engine = warehouse_engine(home.warehouse_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE acton_contacts SET email = 'written by hand' WHERE contact_id = "
                "(SELECT min(contact_id) FROM acton_contacts WHERE email IS NOT NULL)"
            )
        )
    result = run_check(acton_contacts_schema, home, mapping_dir)
    assert result.passed is False
    assert result.severity is AssetCheckSeverity.ERROR
    assert result.metadata["nonconforming_values"].value == 1


def test_schema_check_names_missing_columns(synced: tuple[ActonHome, Path], tmp_path: Path) -> None:
    home, mapping_dir = synced
    wider = tmp_path / "mapping_config"
    shutil.copytree(mapping_dir, wider)
    with (wider / "contact_mapping.yaml").open("a") as mapping_file:
        mapping_file.write("  - destination: Partner Tier\n    type: Text\n")
    result = run_check(acton_contacts_schema, home, wider)
    assert result.passed is False
    assert result.metadata["missing_columns"].value == ["partner_tier"]
