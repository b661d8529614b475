"""Every write is logged as sent before its call and as answered after it, batch by batch, on
both warehouse backends: a batch that fails whole fails alone, and a push stopped half-way
keeps what it heard back and is finished by the next push without repeating a write."""

from __future__ import annotations

import pytest

from acton_pipelines.crm.mirror_values import comparable_text
from acton_pipelines.push.build import plan_push
from acton_pipelines.push.collections import update_batches
from acton_pipelines.push.plan import PlannedWrite
from acton_pipelines.warehouse.engine import warehouse_engine
from tests.conftest import ActonHome
from tests.push.helpers import MAPPING, crm, push_with, rows, sandbox_client

Key = tuple[str, str, str]


@pytest.fixture
def home(synced_home_each_backend: ActonHome) -> ActonHome:
    return synced_home_each_backend


def planned_batches(home: ActonHome) -> list[list[PlannedWrite]]:
    """The batches the next push will send (at least three Collections calls here)."""
    batches = update_batches(plan_push(warehouse_engine(home.warehouse_url), MAPPING).writes)
    assert len(batches) >= 3 and not any(b.bulk for b in batches)
    return [b.writes for b in batches]


def key(write: PlannedWrite) -> Key:
    return (write.object, write.record_id, write.field)


def logged(home: ActonHome, run_id: str) -> dict[Key, tuple[str, str | None, object]]:
    """Per write of the run: outcome, error, answered_at."""
    found = {}
    for obj, record_id, field, outcome, error, answered in rows(
        home,
        "SELECT object, record_id, field, outcome, error, answered_at FROM crm_push_log "
        "WHERE sync_run_id = :r",
        r=run_id,
    ):
        assert (obj, record_id, field) not in found, "a write logged twice in one run"
        found[(obj, record_id, field)] = (outcome, error, answered)
    return found


def crm_values(home: ActonHome, writes: list[PlannedWrite]) -> dict[Key, str | None]:
    """What the sandbox CRM holds for each write's field, as comparable text."""
    values = {}
    for write in writes:
        (value,) = crm(
            home, f"SELECT {write.field} FROM {write.object} WHERE Id = ?", write.record_id
        )[0]
        # The sandbox keeps booleans as 0/1.
        values[key(write)] = comparable_text(
            bool(value) if isinstance(write.new_value, bool) else value
        )
    return values


def sent_values(writes: list[PlannedWrite]) -> dict[Key, str | None]:
    return {key(w): comparable_text(w.new_value) for w in writes}


def test_a_batch_that_fails_whole_fails_alone(home: ActonHome) -> None:
    first, second, *rest = planned_batches(home)
    before = crm_values(home, second)
    with sandbox_client(home) as (server, client):
        sending: list[str] = []

        def arm_on_second_call(message: str) -> None:
            if not message.startswith("crm_push: sending"):
                return
            sending.append(message)
            if len(sending) == 2:
                # The second update call meets a permanent error (no retry helps).
                server.inject_fault(
                    path_contains="/composite/sobjects",
                    method="PATCH",
                    status=400,
                    error_code="JSON_PARSER_ERROR",
                    message="Unexpected character at [line:1, column:1]",
                )

        push_with(home, client, "run-with-a-failing-batch", arm_on_second_call)

    log = logged(home, "run-with-a-failing-batch")
    assert {log[key(w)][0] for w in first} == {"success"}
    assert {log[key(w)][:2] for w in second} == {
        ("failed", "JSON_PARSER_ERROR: Unexpected character at [line:1, column:1]")
    }
    assert {log[key(w)][0] for batch in rest for w in batch} == {"success"}
    assert all(answered is not None for _, _, answered in log.values())
    assert crm_values(home, first) == sent_values(first)
    assert crm_values(home, second) == before
    # The failed batch is all the next push plans, and it goes through.
    assert {key(w) for w in plan_push(warehouse_engine(home.warehouse_url), MAPPING).writes} == {
        key(w) for w in second
    }
    with sandbox_client(home) as (_, client):
        push_with(home, client, "the-next-push")
    assert {v[0] for v in logged(home, "the-next-push").values()} == {"success"}
    assert set(logged(home, "the-next-push")) == {key(w) for w in second}
    assert crm_values(home, second) == sent_values(second)


class PushKilled(Exception):
    """Stands for the process dying at that moment."""


def test_a_push_killed_half_way_is_finished_by_the_next_without_repeating_a_write(
    home: ActonHome,
) -> None:
    batches = planned_batches(home)
    first, second = batches[0], batches[1]
    everything = [w for batch in batches for w in batch]
    before = crm_values(home, second)
    with sandbox_client(home) as (_, client):
        sending: list[str] = []

        def killed_before_the_second_call(message: str) -> None:
            if message.startswith("crm_push: sending"):
                sending.append(message)
                if len(sending) == 2:
                    raise PushKilled

        with pytest.raises(PushKilled):
            push_with(home, client, "killed-run", killed_before_the_second_call)

    log = logged(home, "killed-run")
    # Answered before the kill: kept. Logged as sent but never answered: still "sent".
    assert {k: v[0] for k, v in log.items()} == {key(w): "success" for w in first} | {
        key(w): "sent" for w in second
    }
    assert all(answered is None for outcome, _, answered in log.values() if outcome == "sent")
    assert crm_values(home, first) == sent_values(first)
    assert crm_values(home, second) == before
    assert rows(home, "SELECT count(*) FROM sync_runs WHERE run_id = 'killed-run'") == [(0,)]

    with sandbox_client(home) as (_, client):
        push_with(home, client, "next-run")
    resumed = logged(home, "next-run")
    assert {v[0] for v in resumed.values()} == {"success"}
    assert set(resumed) == {key(w) for w in everything} - {key(w) for w in first}
    assert crm_values(home, everything) == sent_values(everything)
    assert {v[0] for v in logged(home, "killed-run").values()} == {"success", "sent"}
    assert rows(home, "SELECT object, status FROM sync_runs WHERE run_id = 'next-run'") == [
        ("crm_push", "success")
    ]
