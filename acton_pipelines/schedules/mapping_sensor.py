"""A full sync when the mapping gains a destination field or re-points one at the CRM."""

import hashlib
import json
from dataclasses import dataclass, replace

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from acton_pipelines.jobs import full_sync_job
from acton_pipelines.mapping import MappingError
from acton_pipelines.mapping.models import FieldMapping, Mapping
from acton_pipelines.schedules.full_sync_request import full_sync_request
from acton_pipelines.warehouse.run_mappings import MappingResource

# How many problems of a mapping that fails to load the skip reason shows.
SHOWN_PROBLEMS = 3


def field_signature(field: FieldMapping) -> list[str | None]:
    """What a sync does with a destination field: its data type and its CRM sources."""
    return [field.type.value, field.lead, field.contact]


def mapping_fingerprint(mapping: Mapping) -> str:
    """A short hash of the destination fields (names, data types, CRM sources), independent
    of their order in ``contact_mapping.yaml``."""
    fields = {f.destination: field_signature(f) for f in mapping.fields}
    text = json.dumps(sorted(fields.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MappingState:
    """What the sensor remembers between evaluations (its cursor): the fingerprint, each
    destination's signature (to tell a new field from a re-pointed or removed one), and how
    many changes so far have requested a full sync (``seq``).

    ``seq`` goes into the run key: Dagster launches a run key at most once per sensor, so a key
    made of the fingerprint alone would launch nothing when a mapping comes back to a state it
    had before (fields added, removed, then added again).
    """

    fingerprint: str
    fields: dict[str, list[str | None]]
    seq: int = 0

    @classmethod
    def of(cls, mapping: Mapping, seq: int = 0) -> "MappingState":
        """The state of ``mapping``, after ``seq`` full-sync requests."""
        fields = {f.destination: field_signature(f) for f in mapping.fields}
        return cls(fingerprint=mapping_fingerprint(mapping), fields=fields, seq=seq)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "MappingState | None":
        """The state saved in ``cursor``; ``None`` when there is none, or it is not one of ours
        (e.g. reset by hand in the UI): the sensor then starts over as on its first run.

        A cursor written before ``seq`` existed has none: it counts as 0.
        """
        try:
            data = json.loads(cursor or "")
            seq = data.get("seq", 0)
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                return None
            return cls(fingerprint=str(data["fingerprint"]), fields=dict(data["fields"]), seq=seq)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def to_cursor(self) -> str:
        """The cursor text (JSON) for this state."""
        data = {"fingerprint": self.fingerprint, "fields": self.fields, "seq": self.seq}
        return json.dumps(data, sort_keys=True)


def mapping_run_key(state: MappingState) -> str:
    """The run key of the full sync ``state`` requests: ``mapping-<seq>-<fingerprint>``, unique
    per change, so A→B→A→B requests a second full sync for the second B."""
    return f"mapping-{state.seq}-{state.fingerprint}"


def full_sync_reason(before: MappingState, after: MappingState) -> str | None:
    """Why the change from ``before`` to ``after`` needs every CRM record read again, or
    ``None`` (a removed field: the warehouse keeps its column, nothing to read)."""
    added = sorted(after.fields.keys() - before.fields.keys())
    if added:
        return f"new destination field(s): {', '.join(added)}"
    changed = sorted(
        name
        for name, signature in after.fields.items()
        if name in before.fields and before.fields[name] != signature
    )
    if changed:
        return f"changed CRM source or data type: {', '.join(changed)}"
    return None


@sensor(
    job=full_sync_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Watches the mapping (ACTON_MAPPING_DIR). A new destination field requests a full sync "
        "(Act-On: adding a field triggers a full sync), and so does an existing field given a "
        "new CRM source or data type: every record must be read and converted again, which an "
        "incremental sync would only do for records that change. A removed field only updates "
        "the cursor (the warehouse keeps its column). Each change that needs a full sync is "
        "numbered in the cursor and keyed mapping-<number>-<fingerprint>, so a mapping changed "
        "back and forth (A, B, A, B) syncs every time. The first evaluation records the mapping "
        "without a run; a mapping that fails to load is skipped with its problems."
    ),
)
def mapping_change_sensor(
    context: SensorEvaluationContext, mapping: MappingResource
) -> SensorResult | SkipReason:
    try:
        loaded = mapping.load()
    except MappingError as error:
        shown = "; ".join(str(p) for p in error.problems[:SHOWN_PROBLEMS])
        more = len(error.problems) - SHOWN_PROBLEMS
        suffix = f" (and {more} more)" if more > 0 else ""
        return SkipReason(f"The mapping does not load: {shown}{suffix}")
    before = MappingState.from_cursor(context.cursor)
    after = MappingState.of(loaded, seq=before.seq if before else 0)
    if before is None:
        # The first sync is the user's to start; from now on changes are compared with this.
        return SensorResult(
            skip_reason=f"Recorded mapping {after.fingerprint}; changes from now on are synced.",
            cursor=after.to_cursor(),
        )
    if before.fingerprint == after.fingerprint:
        return SkipReason(f"Mapping unchanged ({after.fingerprint}).")
    reason = full_sync_reason(before, after)
    if reason is None:
        return SensorResult(
            skip_reason=f"Mapping changed ({after.fingerprint}) without needing a full sync.",
            cursor=after.to_cursor(),
        )
    # Each change that needs a full sync gets the next number, hence a run key of its own.
    after = replace(after, seq=before.seq + 1)
    run_key = mapping_run_key(after)
    context.log.info(f"Requesting a full sync ({run_key}): the mapping has {reason}.")
    request = full_sync_request(run_key, reason="mapping-changed")
    return SensorResult(run_requests=[request], cursor=after.to_cursor())
