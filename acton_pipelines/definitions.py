"""The one Dagster ``Definitions`` of acton_pipelines."""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, colored_console_logger

from acton_pipelines.contacts.assets import (
    acton_contacts,
    acton_contacts_duplicate_emails,
    acton_contacts_rejects,
    acton_contacts_schema,
)
from acton_pipelines.crm.assets import crm_assets
from acton_pipelines.crm.resource import crm_resource_from_env
from acton_pipelines.imports.assets import acton_imports
from acton_pipelines.jobs import (
    acton_imports_job,
    crm_push_job,
    full_sync_job,
    incremental_sync_job,
)
from acton_pipelines.push.assets import crm_push
from acton_pipelines.runs.progress_logger import acton_cli_logger
from acton_pipelines.schedules.deletion_log_sensor import deletion_log_sensor
from acton_pipelines.schedules.edits_push_sensor import edits_push_sensor
from acton_pipelines.schedules.freshness import freshness_checks, freshness_checks_sensor
from acton_pipelines.schedules.full_sync import full_sync_schedule
from acton_pipelines.schedules.imports_sensor import imports_sensor
from acton_pipelines.schedules.incremental_sync import incremental_sync_schedule
from acton_pipelines.schedules.mapping_sensor import mapping_change_sensor
from acton_pipelines.schedules.push_after_sync import push_after_sync
from acton_pipelines.schedules.run_failure_sensor import run_failure_alerts
from acton_pipelines.scores.assets import contact_scores
from acton_pipelines.segments.assets import segments
from acton_pipelines.warehouse.resource import WarehouseResource
from acton_pipelines.warehouse.run_mappings import MappingResource


def warehouse_resource() -> WarehouseResource:
    """The warehouse from ``ACTON_WAREHOUSE_URL`` (an ``EnvVar``: it may hold a password)."""
    if os.environ.get("ACTON_WAREHOUSE_URL"):
        return WarehouseResource(url=EnvVar("ACTON_WAREHOUSE_URL"))
    return WarehouseResource()


defs = Definitions(
    assets=[*crm_assets, acton_contacts, acton_imports, contact_scores, segments, crm_push],
    asset_checks=[
        acton_contacts_rejects,
        acton_contacts_schema,
        acton_contacts_duplicate_emails,
        *freshness_checks,
    ],
    jobs=[full_sync_job, incremental_sync_job, crm_push_job, acton_imports_job],
    schedules=[full_sync_schedule, incremental_sync_schedule],
    sensors=[
        mapping_change_sensor,
        deletion_log_sensor,
        push_after_sync,
        imports_sensor,
        edits_push_sensor,
        run_failure_alerts,
        freshness_checks_sensor,
    ],
    resources={
        "crm": crm_resource_from_env(),
        "warehouse": warehouse_resource(),
        "mapping": MappingResource(),
    },
    # Dagster's console logger is what runs use unless their run config picks another; the
    # command line picks acton_cli (progress lines, no stack traces).
    loggers={"console": colored_console_logger, "acton_cli": acton_cli_logger},
)
