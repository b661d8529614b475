"""Pushing 20,000 score changes through Bulk API 2.0 in bounded memory: the plan is read from
the warehouse a chunk at a time (only the records whose score differs from the mirror), each
chunk sent and recorded before the next is read, so the push's peak of Python allocations is
about the same for 5,000 changes as for 20,000, and below what reading even just the keys of
``acton_contacts`` whole would take (what the push used to read). The sandbox CRM is served in
a process of its own: what is traced is the pipeline's alone. (The 100,000-change figures are
benchmarks/push_at_volume.py's.)"""

from __future__ import annotations

import dataclasses
import shutil
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from acton_pipelines.warehouse.engine import dispose_engines, warehouse_engine
from acton_pipelines.warehouse.tables import acton_contacts_table
from crm_sandbox import seed_sandbox
from tests.conftest import SEED_NOW, ActonHome, make_home, run_full_sync
from tests.push.helpers import MAPPING, crm, rows
from tests.push.volume import measured_push, score_changes, served_sandbox

SMALL, LARGE = 5_000, 20_000
# Seeded Leads: about 99% end up live and unconverted in the warehouse, LARGE of them needed.
LEADS = 20_400
# Records a chunk: both pushes span several chunks, so they differ in how many chunks they
# read, not in how large one is (the default, 10,000, would make the small push one chunk);
# small enough that one chunk takes well under a whole read of the table's keys. Every chunk
# is still one Bulk job.
CHUNK = 1_000
BULK_THRESHOLD = 500


@pytest.fixture(scope="module")
def synced_leads(tmp_path_factory: pytest.TempPathFactory) -> ActonHome:
    """A sandbox CRM of about 20,000 live Leads, fully synced once for this module."""
    root = tmp_path_factory.mktemp("push_at_volume")
    summary = seed_sandbox(root / "seed.sqlite", leads=LEADS, contacts=0, seed=5, now=SEED_NOW)
    with pytest.MonkeyPatch.context() as env:
        home = make_home(root / "synced", summary, env)
        assert run_full_sync(home).success
    # A SQLite file is whole (its WAL checkpointed) once its last connection closes.
    dispose_engines()
    return home


def home_with_changes(
    synced: ActonHome, root: Path, changes: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[ActonHome, list[str]]:
    """A copy of the synced home planning exactly ``changes`` score writes; their Leads."""
    home = make_home(root, dataclasses.replace(synced.seed, db_path=synced.sandbox_db), monkeypatch)
    shutil.copyfile(synced.path / "warehouse.sqlite", root / "warehouse.sqlite")
    shutil.copytree(synced.path / "sandbox" / "certs", root / "sandbox" / "certs")
    return home, score_changes(home.warehouse_url, changes)


def whole_table_peak(home: ActonHome) -> int:
    """The peak of Python allocations of reading ``acton_contacts`` whole into a frame, just
    the columns the push used to read that way (its keys and the address)."""
    contacts = acton_contacts_table(MAPPING)
    columns = [contacts.c[c] for c in ("contact_id", "external_id", "record_type", "email")]
    with warehouse_engine(home.warehouse_url).connect() as conn:
        tracemalloc.start()
        try:
            frame = pd.DataFrame(
                [tuple(r) for r in conn.execute(select(*columns))],
                columns=[c.name for c in columns],
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert len(frame) >= LARGE
    return peak


def test_twenty_thousand_score_changes_push_in_the_memory_of_five_thousand(
    synced_leads: ActonHome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("acton_pipelines.push.plan.PLAN_CHUNK", CHUNK)
    monkeypatch.setattr("acton_pipelines.push.collections.BULK_THRESHOLD", BULK_THRESHOLD)
    monkeypatch.setattr("acton_pipelines.push.collections.BULK_POLL_SECONDS", 0)
    peaks = {}
    # The larger push first: whatever the first push in a process allocates once (imports,
    # statement caches) then counts against it, not in its favour.
    for changes in (LARGE, SMALL):
        home, leads = home_with_changes(synced_leads, tmp_path / str(changes), changes, monkeypatch)
        with served_sandbox(home.path) as url:
            pushed = measured_push(home.warehouse_url, url, f"push-{changes}", traced=True)
        assert pushed.peak_bytes is not None
        peaks[changes] = pushed.peak_bytes
        assert pushed.accepted == changes
        assert rows(
            home,
            "SELECT count(*), count(DISTINCT record_id), min(outcome), max(outcome) "
            "FROM crm_push_log WHERE sync_run_id = :r AND detail LIKE '%[Bulk job 750%'",
            r=f"push-{changes}",
        ) == [(changes, changes, "success", "success")]
        # The CRM holds each new score (the computed one, which the mirror now shows too).
        held = dict(crm(home, "SELECT Id, ActOn_Score__c FROM Lead"))
        wanted = dict(
            rows(
                home,
                "SELECT c.external_id, s.score FROM contact_scores s JOIN acton_contacts c "
                "ON c.contact_id = s.contact_id WHERE s.score_sheet = 'default'",
            )
        )
        assert {lead: held[lead] for lead in leads} == {lead: wanted[lead] for lead in leads}
        whole = whole_table_peak(home)

    # Four times the changes, about the same memory: the plan is never held whole.
    assert peaks[LARGE] < 2 * peaks[SMALL], peaks
    # And less than reading even the table's keys whole would take.
    assert peaks[LARGE] < whole, (peaks, whole)
