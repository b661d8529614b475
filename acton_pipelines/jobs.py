"""Jobs: what a data engineer (or a schedule) launches."""

from dagster import AssetSelection, define_asset_job

full_sync_job = define_asset_job(
    name="full_sync",
    selection=AssetSelection.all(),
    description=(
        "Full sync (Act-On's 'Sync Now'): read every CRM record, map it onto Act-On Contacts, "
        "remove contacts whose CRM record is gone, then recompute scores and segments."
    ),
)
