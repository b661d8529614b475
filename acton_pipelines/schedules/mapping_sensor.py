"""A full sync when the mapping gains a destination field or re-points one at the CRM."""

import hashlib
import json
from dataclasses import dataclass

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from acton_pipelines.jobs import full_sync_job
from acton_pipelines.mapping import MappingError
from acton_pipelines.mapping.models import FieldMapping, Mapping
from acton_pipelines.resources.mapping import MappingResource
from acton_pipelines.schedules.full_sync_request import full_sync_request

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
    """What the sensor remembers between evaluations (its cursor): the fingerprint and each
    destination's signature, to tell a new field from a re-pointed or removed one."""

    fingerprint: str
    fields: dict[str, list[str | None]]

    @classmethod
    def of(cls, mapping: Mapping) -> "MappingState":
        fields = {f.destination: field_signature(f) for f in mapping.fields}
        return cls(fingerprint=mapping_fingerprint(mapping), fields=fields)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "MappingState | None":
        """The state saved in ``cursor``; ``None`` when there is none, or it is not one of ours
        (e.g. reset by hand in the UI): the sensor then starts over as on its first run."""
        try:
            data = json.loads(cursor or "")
            return cls(fingerprint=str(data["fingerprint"]), fields=dict(data["fields"]))
        except (ValueError, TypeError, KeyError):
            return None

    def to_cursor(self) -> str:
        return json.dumps({"fingerprint": self.fingerprint, "fields": self.fields}, sort_keys=True)


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
        "the cursor (the warehouse keeps its column). The first evaluation records the mapping "
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
    after = MappingState.of(loaded)
    before = MappingState.from_cursor(context.cursor)
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
    context.log.info(f"Requesting a full sync: the mapping has {reason}.")
    request = full_sync_request(f"mapping-{after.fingerprint}", reason="mapping-changed")
    return SensorResult(run_requests=[request], cursor=after.to_cursor())
