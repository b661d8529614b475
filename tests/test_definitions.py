"""The one Definitions object loads, and the workspace and pyproject point at it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from dagster import AssetKey

from acton_pipelines.definitions import defs
from acton_pipelines.runs import asset_groups as groups

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_with_the_full_sync_job_and_schedule() -> None:
    repository = defs.get_repository_def()
    assert repository.has_job("full_sync")
    assert {s.name for s in repository.schedule_defs} == {
        "full_sync_schedule",
        "incremental_sync_schedule",
    }
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert keys == {
        "crm_leads",
        "crm_contacts",
        "crm_accounts",
        "crm_users",
        "crm_opportunities",
        "acton_contacts",
        "contact_scores",
        "segments",
        "crm_push",
        "acton_imports",
    }
    assert repository.has_job("push_to_crm")
    assert repository.has_job("import_files")


def test_assets_are_grouped_by_domain() -> None:
    graph = defs.get_repository_def().asset_graph
    group = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert group["crm_leads"] == groups.CRM
    assert group["acton_contacts"] == groups.ACTON_CONTACTS
    assert group["acton_imports"] == groups.ACTON_CONTACTS
    assert group["contact_scores"] == groups.SCORING
    assert group["segments"] == groups.SEGMENTATION


def test_scores_and_segments_follow_acton_contacts_which_follows_the_crm() -> None:
    graph = defs.get_repository_def().asset_graph
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
        for k in graph.get_all_asset_keys()
    }
    assert parents["acton_contacts"] == {
        "crm_leads",
        "crm_contacts",
        "crm_accounts",
        "crm_users",
        "crm_opportunities",
    }
    assert parents["contact_scores"] == parents["segments"] == {"acton_contacts"}
    assert parents["crm_push"] == {"contact_scores"}
    assert parents["acton_imports"] == {"acton_contacts"}
    checks = {c.name for c in graph.asset_check_keys if c.asset_key == AssetKey("acton_contacts")}
    assert checks == {
        "acton_contacts_rejects",
        "acton_contacts_schema",
        "acton_contacts_duplicate_emails",
        "freshness_check",
    }


def test_imports_run_on_their_own_not_with_the_syncs() -> None:
    repository = defs.get_repository_def()
    imports = AssetKey("acton_imports")
    for name in ("full_sync", "incremental_sync"):
        assert imports not in repository.get_job(name).asset_layer.executable_asset_keys
    assert repository.get_job("import_files").asset_layer.executable_asset_keys == {imports}


def test_workspace_and_pyproject_name_the_same_module() -> None:
    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"]["module_name"] == pyproject["tool"]["dagster"]["module_name"]
    assert entry["python_module"]["module_name"] == "acton_pipelines.definitions"


def test_the_code_location_loads_as_the_webserver_loads_it() -> None:
    # Catches what only a code server notices, e.g. a job named like an asset.
    from dagster import Definitions

    Definitions.validate_loadable(defs)
