"""The mapping sensor: a full sync when a destination field is added or re-pointed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import RunRequest, SensorResult, SkipReason, build_sensor_context

from acton_pipelines.mapping import load_mapping
from acton_pipelines.mapping.models import DataType, FieldMapping
from acton_pipelines.runs.partitions import (
    PARTITION_TAG,
    RANGE_START_TAG,
    SYNC_MODE_TAG,
    sync_partitions,
)
from acton_pipelines.schedules.full_sync_request import FULL_SYNC_REASON_TAG
from acton_pipelines.schedules.mapping_sensor import mapping_change_sensor, mapping_fingerprint
from acton_pipelines.warehouse.run_mappings import MappingResource

NEW_FIELD = """
  - destination: Region
    type: Text
    lead: Region__c
    contact: Region__c
"""


def evaluate(mapping_dir: Path, cursor: str | None) -> SensorResult | SkipReason:
    context = build_sensor_context(
        cursor=cursor, resources={"mapping": MappingResource(directory=str(mapping_dir))}
    )
    return mapping_change_sensor(context)  # type: ignore[return-value]


def edit(mapping_dir: Path, old: str, new: str) -> None:
    path = mapping_dir / "contact_mapping.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def add_field(mapping_dir: Path) -> None:
    path = mapping_dir / "contact_mapping.yaml"
    path.write_text(path.read_text() + NEW_FIELD)


def first_cursor(mapping_dir: Path) -> str:
    result = evaluate(mapping_dir, cursor=None)
    assert isinstance(result, SensorResult) and result.cursor
    return result.cursor


def test_the_fingerprint_ignores_order_and_changes_with_the_fields(mapping_dir: Path) -> None:
    mapping = load_mapping(mapping_dir)
    fingerprint = mapping_fingerprint(mapping)
    reordered = mapping.model_copy(update={"fields": list(reversed(mapping.fields))})
    region = FieldMapping(destination="Region", type=DataType.TEXT, lead="Region__c")
    added = mapping.model_copy(update={"fields": [*mapping.fields, region]})
    email = mapping.fields[0].model_copy(update={"lead": "Alt_Email__c"})
    repointed = mapping.model_copy(update={"fields": [email, *mapping.fields[1:]]})
    policy = mapping.model_copy(update={"duplicate_email_policy": "most_recent"})

    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0
    assert mapping_fingerprint(reordered) == fingerprint
    assert mapping_fingerprint(policy) == fingerprint  # not a destination field
    assert mapping_fingerprint(added) != fingerprint
    assert mapping_fingerprint(repointed) != fingerprint


def test_the_first_evaluation_records_the_mapping_without_a_run(mapping_dir: Path) -> None:
    result = evaluate(mapping_dir, cursor=None)
    assert isinstance(result, SensorResult)
    assert not result.run_requests
    assert result.cursor is not None
    state = json.loads(result.cursor)
    assert state["fingerprint"] == mapping_fingerprint(load_mapping(mapping_dir))
    assert "Email" in state["fields"]
    assert state["seq"] == 0


def test_a_new_field_requests_one_full_sync(mapping_dir: Path) -> None:
    cursor = first_cursor(mapping_dir)
    add_field(mapping_dir)
    fingerprint = mapping_fingerprint(load_mapping(mapping_dir))

    result = evaluate(mapping_dir, cursor)
    assert isinstance(result, SensorResult) and result.run_requests
    (request,) = result.run_requests
    assert isinstance(request, RunRequest)
    assert request.job_name == "full_sync"
    assert request.run_key == f"mapping-1-{fingerprint}"
    assert request.tags[SYNC_MODE_TAG] == "full"
    # Today's partition only: one materialization per asset, not one per day of the range.
    assert request.partition_key == sync_partitions.get_last_partition_key()
    assert request.tags[PARTITION_TAG] == request.partition_key
    assert RANGE_START_TAG not in request.tags
    assert request.tags[FULL_SYNC_REASON_TAG] == "mapping-changed"
    assert result.cursor and json.loads(result.cursor)["fingerprint"] == fingerprint
    assert json.loads(result.cursor)["seq"] == 1

    again = evaluate(mapping_dir, result.cursor)
    assert isinstance(again, SkipReason) and "unchanged" in (again.skip_message or "")


def test_a_new_crm_source_on_a_field_requests_a_full_sync(mapping_dir: Path) -> None:
    cursor = first_cursor(mapping_dir)
    edit(mapping_dir, "lead: Title", "lead: Job_Title__c")
    result = evaluate(mapping_dir, cursor)
    assert isinstance(result, SensorResult) and result.run_requests
    assert len(result.run_requests) == 1


def test_a_removed_field_updates_the_cursor_without_a_run(mapping_dir: Path) -> None:
    cursor = first_cursor(mapping_dir)
    edit(mapping_dir, "  - destination: Fax\n    lead: Fax\n    contact: Fax\n", "")
    result = evaluate(mapping_dir, cursor)
    assert isinstance(result, SensorResult)
    assert not result.run_requests
    assert result.cursor and result.cursor != cursor
    assert "Fax" not in json.loads(result.cursor)["fields"]


def test_a_mapping_that_fails_to_load_is_skipped_with_its_problem(mapping_dir: Path) -> None:
    cursor = first_cursor(mapping_dir)
    edit(mapping_dir, "type: Boolean", "type: Boolen")
    result = evaluate(mapping_dir, cursor)
    # A bare SkipReason: the cursor stays where it was.
    assert isinstance(result, SkipReason)
    assert "'Boolen' is not an Act-On data type" in (result.skip_message or "")
    assert "contact_mapping.yaml, line" in (result.skip_message or "")


def test_a_cursor_that_is_not_ours_starts_over(mapping_dir: Path) -> None:
    result = evaluate(mapping_dir, cursor="not json")
    assert isinstance(result, SensorResult) and not result.run_requests and result.cursor


def requests_of(result: SensorResult | SkipReason) -> list[RunRequest]:
    if isinstance(result, SkipReason):
        return []
    return [r for r in result.run_requests or [] if isinstance(r, RunRequest)]


def test_a_mapping_changed_back_and_forth_syncs_every_time(mapping_dir: Path) -> None:
    # Dagster launches a run key once per sensor: A -> B -> A -> B must not reuse B's key.
    path = mapping_dir / "contact_mapping.yaml"
    mapping_a = path.read_text()
    mapping_b = mapping_a + NEW_FIELD

    results: list[SensorResult | SkipReason] = []
    cursor: str | None = None
    for text in (mapping_a, mapping_b, mapping_a, mapping_b):
        path.write_text(text)
        result = evaluate(mapping_dir, cursor)
        assert isinstance(result, SensorResult) and result.cursor
        results.append(result)
        cursor = result.cursor
    first, to_b, back_to_a, to_b_again = results

    fingerprint_b = mapping_fingerprint(load_mapping(mapping_dir))
    assert requests_of(first) == [] and requests_of(back_to_a) == []
    (one,) = requests_of(to_b)
    (two,) = requests_of(to_b_again)
    assert (one.run_key, two.run_key) == (
        f"mapping-1-{fingerprint_b}",
        f"mapping-2-{fingerprint_b}",
    )
    # Removing the field needed no full sync: the number moved only with the requests.
    assert isinstance(back_to_a, SensorResult) and back_to_a.cursor
    assert json.loads(back_to_a.cursor)["seq"] == 1
    assert json.loads(cursor or "")["seq"] == 2


def test_a_cursor_from_before_the_sequence_counts_from_zero(mapping_dir: Path) -> None:
    state = json.loads(first_cursor(mapping_dir))
    del state["seq"]
    add_field(mapping_dir)
    result = evaluate(mapping_dir, json.dumps(state))
    (request,) = requests_of(result)
    assert request.run_key == f"mapping-1-{mapping_fingerprint(load_mapping(mapping_dir))}"


@pytest.mark.parametrize("seq", ["3", -1, True, 1.5])
def test_a_cursor_with_a_sequence_that_is_not_a_count_starts_over(
    mapping_dir: Path, seq: object
) -> None:
    state = json.loads(first_cursor(mapping_dir))
    add_field(mapping_dir)
    result = evaluate(mapping_dir, json.dumps({**state, "seq": seq}))
    assert isinstance(result, SensorResult) and not result.run_requests
    assert result.cursor and json.loads(result.cursor)["seq"] == 0
