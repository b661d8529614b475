"""A thousand Leads converted between the pull and the push: the dry run says where their
writes would go and the push puts them there, looking the Leads up in queries that fit the
CRM's URL limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from acton_pipelines.cli.main import cli
from acton_pipelines.crm.mirror_values import comparable_text
from acton_pipelines.push.build import plan_push
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SeedSummary, churn_sandbox, seed_sandbox
from tests.conftest import SEED_NOW, make_home, run_full_sync, run_sync
from tests.push.helpers import MAPPING, crm, rows


@pytest.fixture(scope="module")
def many_leads(tmp_path_factory: pytest.TempPathFactory) -> SeedSummary:
    """A CRM with about 1,350 live unconverted Leads."""
    db_path = tmp_path_factory.mktemp("many_leads") / "crm.sqlite"
    return seed_sandbox(db_path, leads=1500, contacts=200, seed=11, now=SEED_NOW)


def test_writes_to_a_thousand_converted_leads_land_on_their_contacts(
    tmp_path: Path, many_leads: SeedSummary, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_home(tmp_path / "home", many_leads, monkeypatch)
    assert run_full_sync(home).success
    conversions = churn_sandbox(
        home.sandbox_db, updates=0, creates=0, deletes=0, converts=1500
    ).conversions
    contact_of = {c.lead_id: c.contact_id for c in conversions}
    plan = plan_push(warehouse_engine(home.warehouse_url), MAPPING)
    moved = [w for w in plan.writes if w.object == "Lead" and w.record_id in contact_of]
    leads = sorted({w.record_id for w in moved})
    assert len(leads) >= 1_000

    dry_run = CliRunner().invoke(cli, ["push", "--dry-run"])
    assert dry_run.exit_code == 0, dry_run.output
    contacts = {contact_of[lead] for lead in leads}
    assert (
        f"{len(moved):,} writes on {len(leads):,} Leads converted since the last pull would go "
        f"to the {len(contacts):,} Contacts they became:"
    ) in dry_run.output
    assert f"Lead {leads[0]} -> Contact {contact_of[leads[0]]}" in dry_run.output

    pushed = run_sync(home, "push_to_crm", {})
    assert pushed.success
    outcomes = rows(
        home,
        "SELECT object, outcome, count(*) FROM crm_push_log WHERE sync_run_id = :r "
        "AND detail LIKE '%converted since the last pull%' GROUP BY object, outcome",
        r=pushed.run_id,
    )
    assert outcomes == [("Contact", "success", len(moved))]
    assert rows(
        home,
        "SELECT count(*) FROM crm_push_log WHERE sync_run_id = :r AND outcome != 'success'",
        r=pushed.run_id,
    ) == [(0,)]
    # The Contacts hold the values (where one write alone set the field: a Lead converted into
    # a Contact that has writes of its own, or that several Leads became, is left out).
    targets: dict[tuple[str, str], list[object]] = {}
    for write in plan.writes:
        record = contact_of.get(write.record_id, write.record_id)
        targets.setdefault((record, write.field), []).append(write.new_value)
    checked = 0
    for write in moved:
        contact = contact_of[write.record_id]
        if len(targets[(contact, write.field)]) == 1:
            (held,) = crm(home, f"SELECT {write.field} FROM Contact WHERE Id = ?", contact)[0]
            wanted = write.new_value
            assert comparable_text(bool(held) if isinstance(wanted, bool) else held) == (
                comparable_text(wanted)
            ), (contact, write.field)
            checked += 1
    assert checked >= 1_000
