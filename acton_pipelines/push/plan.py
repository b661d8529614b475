"""What a push would write: pure functions from warehouse frames to planned CRM writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from acton_pipelines.mapping.models import DataType, Mapping

OPT_OUT_FIELD = "HasOptedOutOfEmail"


@dataclass(frozen=True)
class PlannedWrite:
    """One field of one CRM record to set, and why."""

    object: str
    record_id: str
    contact_id: str
    field: str
    old_value: Any
    new_value: Any
    reason: str
    # The Act-On-side edit this write carries (acton_field_edits.id), if any.
    edit_id: int | None = None


@dataclass(frozen=True)
class EditDecision:
    """What becomes of a pending Act-On-side edit that is not pushed."""

    edit_id: int
    status: str  # skipped_by_policy or superseded
    reason: str


def _differs(old: Any, new: Any) -> bool:
    if pd.isna(old):
        return not pd.isna(new)
    return pd.isna(new) or old != new


def score_writes(
    contacts: pd.DataFrame, scores: pd.DataFrame, mapping: Mapping
) -> list[PlannedWrite]:
    """Each score field whose CRM value differs from its sheet's computed score.

    ``contacts``: ``contact_id, external_id, record_type`` and each score field's column (the
    CRM's current value); ``scores``: ``contact_id, score_sheet, score``. Score fields always
    push, whatever the push policy.
    """
    writes: list[PlannedWrite] = []
    crm_contacts = contacts[contacts["external_id"].notna()]
    for field in mapping.score_fields:
        sheet = scores.loc[scores["score_sheet"] == field.score_sheet, ["contact_id", "score"]]
        merged = crm_contacts.merge(sheet, on="contact_id", how="inner")
        for row in merged.itertuples(index=False):
            api_name = field.source(row.record_type)
            current = getattr(row, field.column)
            if api_name and _differs(current, row.score):
                writes.append(
                    PlannedWrite(
                        object=row.record_type,
                        record_id=row.external_id,
                        contact_id=row.contact_id,
                        field=api_name,
                        old_value=None if pd.isna(current) else int(current),
                        new_value=int(row.score),
                        reason=f"score ({field.destination}, sheet {field.score_sheet})",
                    )
                )
    return writes


def opt_out_writes(contacts: pd.DataFrame, opt_out_list: dict[str, bool]) -> list[PlannedWrite]:
    """``HasOptedOutOfEmail`` for every CRM record whose address is on the opt-out list and
    whose CRM flag differs: true for addresses opted out, false for addresses that opted back
    in on the Act-On side. Addresses not on the list are left alone.

    ``contacts``: ``contact_id, external_id, record_type, email, opted_out`` (the CRM's flag);
    ``opt_out_list``: lower-cased email -> opted out.
    """
    writes = []
    crm_contacts = contacts[contacts["external_id"].notna() & contacts["email"].notna()]
    for row in crm_contacts.itertuples(index=False):
        wanted = opt_out_list.get(str(row.email).lower())
        current = False if pd.isna(row.opted_out) else bool(row.opted_out)
        if wanted is not None and wanted != current:
            writes.append(
                PlannedWrite(
                    object=row.record_type,
                    record_id=row.external_id,
                    contact_id=row.contact_id,
                    field=OPT_OUT_FIELD,
                    old_value=current,
                    new_value=wanted,
                    reason="opt-out list" if wanted else "opted back in on the Act-On side",
                )
            )
    return writes


def crm_value(value: Any, data_type: DataType) -> Any:
    """An edit's text value as the CRM's JSON wants it (None clears the field)."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    text = str(value)
    if data_type in (DataType.NUMBER,):
        return float(text)
    if data_type is DataType.SCORE:
        return int(float(text))
    if data_type is DataType.BOOLEAN:
        return text.strip().lower() in ("true", "1", "yes", "1.0")
    if data_type is DataType.DATE:
        return pd.Timestamp(text).date().isoformat()
    if data_type is DataType.DATETIME:
        stamp = pd.Timestamp(text)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return text


def edit_writes(
    edits: pd.DataFrame, contacts: pd.DataFrame, mapping: Mapping
) -> tuple[list[PlannedWrite], list[EditDecision]]:
    """Pending Act-On-side edits as CRM updates, and the edits that are not pushed, with why.

    ``edits``: ``id, contact_id, field, value, changed_at`` (pending ones); ``contacts``:
    ``contact_id, external_id, record_type, crm_modified_at``. Per contact and field only the
    latest edit counts; an edit no later than the record's last CRM change loses (the most
    recent change wins, ties go to the CRM). ``allow_push`` (or the push policy) governs these
    updates of existing records; a field read through a relationship (``Account.Name``) or
    with no CRM field for the record's type cannot be pushed.
    """
    writes: list[PlannedWrite] = []
    decisions: list[EditDecision] = []
    if edits.empty:
        return writes, decisions
    by_contact = contacts.set_index("contact_id")
    ordered = edits.sort_values(["changed_at", "id"])
    latest = ordered.groupby(["contact_id", "field"]).tail(1)
    for row in ordered[~ordered["id"].isin(latest["id"])].itertuples(index=False):
        decisions.append(EditDecision(int(row.id), "superseded", "a later edit of the field"))
    for row in latest.itertuples(index=False):
        edit_id = int(row.id)
        field = mapping.field(row.field)
        contact = by_contact.loc[row.contact_id] if row.contact_id in by_contact.index else None
        if field is None or contact is None:
            decisions.append(EditDecision(edit_id, "skipped_by_policy", "no longer mapped"))
            continue
        if pd.isna(contact["external_id"]):
            decisions.append(EditDecision(edit_id, "skipped_by_policy", "not a CRM record"))
            continue
        modified = contact["crm_modified_at"]
        if not pd.isna(modified) and _utc(row.changed_at) <= _utc(modified):
            decisions.append(
                EditDecision(edit_id, "superseded", "the CRM record changed at or after the edit")
            )
            continue
        source = field.source(contact["record_type"])
        allowed = (
            field.allow_push if field.allow_push is not None else (mapping.push_policy == "two_way")
        )
        reason = None
        if source is None:
            reason = f"no CRM field on {contact['record_type']}"
        elif "." in source:
            reason = f"read through {source}: not a field of the record"
        elif not allowed:
            reason = "allow_push is off" if field.allow_push is False else "push policy pull_only"
        if reason:
            decisions.append(EditDecision(edit_id, "skipped_by_policy", reason))
            continue
        writes.append(
            PlannedWrite(
                object=contact["record_type"],
                record_id=contact["external_id"],
                contact_id=row.contact_id,
                field=source,
                old_value=None,
                new_value=crm_value(row.value, field.type),
                reason=f"Act-On edit of {field.destination}",
                edit_id=edit_id,
            )
        )
    return writes, decisions


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
