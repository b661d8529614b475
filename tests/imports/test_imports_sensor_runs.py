"""``imports_sensor``'s request, run as the daemon runs it: on the project's Definitions, a
real Dagster instance and a warehouse that has had a full sync."""

from __future__ import annotations

from dagster import DagsterInstance

from crm_sandbox import SeedSummary
from tests.conftest import ActonHome, home_definitions
from tests.imports.conftest import ImportHome, csv_text
from tests.launch import execute_request, instigator_job, sensor_tick

SENSOR = "imports_sensor"


def test_dropped_files_are_imported_by_the_sensors_run(
    home: ImportHome, small_crm: SeedSummary
) -> None:
    # The synced copy of the warehouse is this home's; its sandbox is not needed for imports.
    acton_home = ActonHome(
        path=home.path,
        sandbox_db=home.path / "sandbox" / "crm.sqlite",
        seed=small_crm,
        warehouse=home.warehouse_url,
    )
    definitions = home_definitions(acton_home)
    home.drop(
        "contacts-expo.csv",
        csv_text(
            "email,First Name,Job Title", "ida.expo@example.com,Ida,CFO", "jo.expo@example.org,Jo,"
        ),
    )
    home.drop(
        "edits-expo.csv",
        csv_text("email,field,value,changed_at", "nobody@example.com,Notes,x,2026-11-20"),
    )

    with DagsterInstance.ephemeral() as instance:
        tick = sensor_tick(definitions, SENSOR, instance, cursor=None)
        (request,) = tick.run_requests
        result = execute_request(
            definitions, request, instance, instigator_job(definitions, SENSOR)
        )
        assert result.success
        assert result.dagster_run.tags.get("acton/import_files") == "2"

        assert home.rows(
            "SELECT contact_id, first_name, job_title, source FROM acton_contacts "
            "WHERE email IN ('ida.expo@example.com', 'jo.expo@example.org') ORDER BY 1"
        ) == [
            ("acton:ida.expo@example.com", "Ida", "CFO", "acton"),
            ("acton:jo.expo@example.org", "Jo", None, "acton"),
        ]
        assert sorted(p.name for p in home.imports.iterdir()) == ["processed", "rejected"]
        assert sorted(p.name for p in (home.imports / "processed").iterdir()) == [
            "contacts-expo.csv"
        ]
        assert (home.imports / "rejected" / "edits-expo.csv.errors.txt").read_text() == (
            "edits-expo.csv, line 2, column email: no Act-On contact has this email "
            "(value 'nobody@example.com')\n"
        )

        # The files left the folder: the next tick requests nothing.
        again = sensor_tick(definitions, SENSOR, instance, cursor=tick.cursor)
        assert again.run_requests == [] and again.skip_message
