"""What a full sync records besides the mapped fields, on SQLite and on PostgreSQL: each Lead's
owner name (a queue's as well as a user's), and every mirrored object's describe in
``crm_fields``. Expectations are read from the sandbox's own SQLite file and object
definitions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox import SeedSummary
from crm_sandbox import objects as sandbox_objects
from tests.conftest import ActonHome, fresh_postgres_database, make_home, run_full_sync
from tests.crm_sandbox.sqlite_reads import fetch_all

MIRRORED = {
    "Lead": sandbox_objects.LEAD,
    "Contact": sandbox_objects.CONTACT,
    "Account": sandbox_objects.ACCOUNT,
    "User": sandbox_objects.USER,
    "Opportunity": sandbox_objects.OPPORTUNITY,
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def synced(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    small_crm: SeedSummary,
) -> Iterator[ActonHome]:
    """One full sync per backend, shared by the module's tests."""
    with contextlib.ExitStack() as stack:
        warehouse = None
        if request.param == "postgresql":
            server = request.getfixturevalue("postgres_server")
            url = stack.enter_context(fresh_postgres_database(server))
            warehouse = url.render_as_string(hide_password=False)
        monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
        home = make_home(tmp_path_factory.mktemp("synced"), small_crm, monkeypatch, warehouse)
        assert run_full_sync(home).success
        yield home


def test_every_lead_has_its_owners_name_a_queues_included(synced: ActonHome) -> None:
    owners = fetch_all(
        synced.sandbox_db,
        "SELECT l.Id AS id, coalesce(u.Name, g.Name) AS owner, g.Id IS NOT NULL AS queue "
        'FROM Lead l LEFT JOIN "User" u ON u.Id = l.OwnerId '
        "LEFT JOIN \"Group\" g ON g.Id = l.OwnerId AND g.Type = 'Queue' "
        "WHERE l.IsDeleted = 0",
    )
    assert any(o["queue"] for o in owners) and not all(o["queue"] for o in owners)
    with warehouse_engine(synced.warehouse_url).connect() as conn:
        mirrored = dict(conn.execute(text("SELECT id, owner__name FROM crm_leads")).all())
    assert mirrored == {o["id"]: o["owner"] for o in owners}


def test_crm_fields_holds_the_describe_of_every_mirrored_object(synced: ActonHome) -> None:
    with warehouse_engine(synced.warehouse_url).connect() as conn:
        rows = conn.execute(
            text(
                "SELECT object, field, type, nillable, createable, defaulted_on_create, "
                "external_id, described_at FROM crm_fields"
            )
        ).all()
    held: dict[str, set[str]] = {}
    for row in rows:
        held.setdefault(row.object, set()).add(row.field)
        assert row.described_at is not None
    assert held == {name: {f.name for f in obj.fields} for name, obj in MIRRORED.items()}
    by_field = {(r.object, r.field): r for r in rows}
    last_name = by_field[("Lead", "LastName")]
    assert (bool(last_name.nillable), bool(last_name.createable)) == (False, True)
    assert not last_name.defaulted_on_create and last_name.type == "string"
    assert bool(by_field[("Lead", "Status")].defaulted_on_create)
    assert bool(by_field[("Lead", "Email")].nillable)
