"""A push that reaches the org's API reserve (``ACTON_API_RESERVE``) stops there, in one line:
every batch before it answered and recorded, the batch it stopped at left ``sent`` (its call
never made), none after it logged; the next push, with calls to spare, finishes the rest
without repeating a write."""

from __future__ import annotations

import pytest

from acton_pipelines.crm.client import CrmApiReserveReached
from acton_pipelines.push.build import plan_push
from acton_pipelines.warehouse.engine import warehouse_engine
from crm_sandbox.store import API_USAGE_KEY
from tests.conftest import ActonHome
from tests.push.helpers import MAPPING, crm, push_with, rows, sandbox_client

DEFAULT_LIMIT = 100_000  # the sandbox's daily allocation
CALLS_BEFORE_THE_RESERVE = 2


def outcomes(home: ActonHome, run_id: str) -> dict[str, int]:
    return dict(
        rows(
            home,
            "SELECT outcome, count(*) FROM crm_push_log WHERE sync_run_id = :r GROUP BY outcome",
            r=run_id,
        )
    )


def test_a_push_stops_at_the_reserve_with_each_batch_answered_or_left_sent(
    synced_home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = plan_push(warehouse_engine(synced_home.warehouse_url), MAPPING).writes
    ((used,),) = crm(synced_home, "SELECT value FROM _sandbox_meta WHERE key = ?", API_USAGE_KEY)
    # Two more calls, then the org is down to its reserve.
    reserve = DEFAULT_LIMIT - int(used) - CALLS_BEFORE_THE_RESERVE
    monkeypatch.setenv("ACTON_API_RESERVE", str(reserve))
    sending: list[str] = []
    with sandbox_client(synced_home) as (server, client):
        with pytest.raises(CrmApiReserveReached):
            push_with(synced_home, client, "stopped", sending.append)
        usage = server.api_usage

    # The calls before the reserve were made, and not one more.
    assert usage == int(used) + CALLS_BEFORE_THE_RESERVE
    # "crm_push: sending N writes on M records (one call)", for each batch begun.
    sizes = [int(m.split()[2].replace(",", "")) for m in sending if " sending " in m]
    assert len(sizes) == CALLS_BEFORE_THE_RESERVE + 1
    logged = outcomes(synced_home, "stopped")
    assert logged == {"success": sum(sizes[:-1]), "sent": sizes[-1]}
    assert sum(sizes) < len(planned)

    monkeypatch.setenv("ACTON_API_RESERVE", "0")
    with sandbox_client(synced_home) as (_, client):
        push_with(synced_home, client, "resumed")
    # The rest, each write once: what the stopped push answered is not sent again.
    assert outcomes(synced_home, "resumed") == {"success": len(planned) - logged["success"]}
    assert plan_push(warehouse_engine(synced_home.warehouse_url), MAPPING).writes == []
