"""Jobs: what a data engineer (or a schedule or sensor) launches."""

from dagster import AssetSelection, define_asset_job

from acton_pipelines.partitions import SYNC_MODE_TAG

# The syncs read the CRM; only the push job writes to it. Imports run on their own, when files
# arrive (imports_sensor), not with every sync.
SYNC_ASSETS = AssetSelection.all() - AssetSelection.assets("crm_push", "acton_imports")

full_sync_job = define_asset_job(
    name="full_sync",
    selection=SYNC_ASSETS,
    tags={SYNC_MODE_TAG: "full"},
    description=(
        "Full sync (Act-On's 'Sync Now'): one run over every partition that reads every CRM "
        "record, removes what the CRM no longer has (listed in sync_deletions), then rebuilds "
        "Act-On Contacts, scores and segments. Launch it over the whole partition range as a "
        "single run."
    ),
)

incremental_sync_job = define_asset_job(
    name="incremental_sync",
    selection=SYNC_ASSETS,
    tags={SYNC_MODE_TAG: "incremental"},
    description=(
        "Incremental sync: reads the CRM records changed (or deleted) in the selected days "
        "(SystemModstamp, with a lookback overlap), then updates only the Act-On contacts, "
        "scores and segments those changes touch. Falls back to a full sync of an object when "
        "the CRM's deletion log no longer reaches back to its last successful sync."
    ),
)

crm_push_job = define_asset_job(
    name="push_to_crm",
    selection=AssetSelection.assets("crm_push"),
    description=(
        "Push scores and opt-outs to the CRM (after every successful sync, by the "
        "push_after_sync sensor). Every write is logged in crm_push_log."
    ),
)

acton_imports_job = define_asset_job(
    name="import_files",
    selection=AssetSelection.assets("acton_imports"),
    description=(
        "Import the new CSV files of the imports folder (ACTON_IMPORTS_DIR): Act-On-side "
        "contacts, opt-outs, opt-ins, field edits and activity; launched by imports_sensor."
    ),
)
