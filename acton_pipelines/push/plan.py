"""What a push would write: pure functions from warehouse frames and the CRM's current values
(the mirror: what the last pull read plus what earlier pushes set) to planned CRM writes.

A value is written only where it differs from what the CRM holds. Act-On-side edits are
merged per field, three-way: an edit goes out only while the CRM still holds the value the
edit was made against (``crm_value_at_edit``); once the CRM changed that field, the CRM wins.
"""

from __future__ import annotations

from collections.abc import Mapping as ReadOnly
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from acton_pipelines.crm.mirror_values import FieldRef, comparable_text
from acton_pipelines.crm.objects import split_hop
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping

OPT_OUT_FIELD = "HasOptedOutOfEmail"

# crm_push_log.reason: why a write was made, in one word.
SCORE = "score"
OPT_OUT = "opt-out"
OPT_IN = "opt-in"
EDIT = "edit"
CREATE = "create"

# acton_field_edits.push_status values the push sets.
PUSHED = "pushed"
SUPERSEDED = "superseded"
SKIPPED_BY_POLICY = "skipped_by_policy"
FAILED = "failed"
# Edits the push still has to decide on (a failed write is tried again).
WAITING = ("pending", FAILED)

# The CRM's current value of each field of each record, as comparable text; a field or record
# the mirror does not hold is absent (its value is unknown).
CrmValues = ReadOnly[FieldRef, str | None]


@dataclass(frozen=True)
class PlannedWrite:
    """One field of one CRM record to set, and why."""

    object: str
    record_id: str
    contact_id: str
    field: str
    # The CRM's value before the write (comparable text; None when empty or unknown).
    old_value: Any
    new_value: Any
    reason: str
    # The longer why: the score sheet, the Act-On field, what the CRM held...
    detail: str = ""
    # The Act-On-side edit this write carries (acton_field_edits.id), if any.
    edit_id: int | None = None

    @property
    def ref(self) -> FieldRef:
        """The CRM field this write sets: (object, record Id, field API name)."""
        return (self.object, self.record_id, self.field)


@dataclass(frozen=True)
class EditDecision:
    """What becomes of a waiting Act-On-side edit that is not sent: ``skipped_by_policy``,
    ``superseded`` (a later edit, or the CRM changed the field since), or ``pushed`` (the CRM
    already holds its value)."""

    edit_id: int
    status: str
    # Short enough to group decisions by (the dry run counts them per reason).
    reason: str
    # The values involved, for ``status_reason``.
    detail: str | None = None
    # A write the CRM's own change made moot: logged with outcome "superseded", never sent.
    unsent: PlannedWrite | None = None

    @property
    def status_reason(self) -> str:
        """``acton_field_edits.status_reason``: the reason and its values."""
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


@dataclass(frozen=True)
class PlannedCreate:
    """A CRM Lead to create for an Act-On contact designated "create in CRM"."""

    contact_id: str
    email: str
    fields: dict[str, Any]


def lead_fields(row: pd.Series, mapping: Mapping) -> dict[str, Any]:
    """Every mapped field of a new Lead (allow_push does not apply to records we create)."""
    values = {}
    for mapped in mapping.fields:
        source = mapped.lead
        if not source or split_hop(source)[0] is not None or mapped.column not in row.index:
            continue
        value = row[mapped.column]
        if not pd.isna(value):
            values[source] = crm_value(value, mapped.type)
    return values


def comparable(value: Any, data_type: DataType | None = None) -> str | None:
    """A value as the CRM would hold it, as comparable text (:func:`comparable_text`): what a
    planned value is compared with in the mirror. Datetimes go out as Salesforce text and are
    compared as instants."""
    if data_type is DataType.DATETIME and isinstance(value, str):
        return comparable_text(pd.Timestamp(value).to_pydatetime())
    return comparable_text(value)


def _crm_records(contacts: pd.DataFrame) -> pd.DataFrame:
    return contacts[contacts["external_id"].notna()]


def score_refs(contacts: pd.DataFrame, mapping: Mapping) -> set[FieldRef]:
    """The CRM fields :func:`score_writes` compares: each score field of each CRM record."""
    refs = set()
    for row in _crm_records(contacts).itertuples(index=False):
        for field in mapping.score_fields:
            api_name = field.source(row.record_type)
            if api_name:
                refs.add((row.record_type, row.external_id, api_name))
    return refs


def score_writes(
    contacts: pd.DataFrame, scores: pd.DataFrame, mapping: Mapping, crm: CrmValues
) -> list[PlannedWrite]:
    """Each score field whose CRM value differs from its sheet's computed score.

    ``contacts``: ``contact_id, external_id, record_type``; ``scores``: ``contact_id,
    score_sheet, score``. Score fields always push, whatever the push policy. A record the
    mirror does not hold yet (a Lead this push created) waits for the pull to read it.
    """
    writes: list[PlannedWrite] = []
    crm_contacts = _crm_records(contacts)
    for field in mapping.score_fields:
        sheet = scores.loc[scores["score_sheet"] == field.score_sheet, ["contact_id", "score"]]
        merged = crm_contacts.merge(sheet, on="contact_id", how="inner")
        for row in merged.itertuples(index=False):
            api_name = field.source(row.record_type)
            ref = (row.record_type, row.external_id, api_name)
            if not api_name or ref not in crm:
                continue
            score = int(row.score)
            if crm[ref] != comparable(score):
                writes.append(
                    PlannedWrite(
                        object=row.record_type,
                        record_id=row.external_id,
                        contact_id=row.contact_id,
                        field=api_name,
                        old_value=crm[ref],
                        new_value=score,
                        reason=SCORE,
                        detail=f"{field.destination}, score sheet {field.score_sheet}",
                    )
                )
    return writes


def opt_out_refs(contacts: pd.DataFrame, opt_out_list: ReadOnly[str, bool]) -> set[FieldRef]:
    """The CRM flags :func:`opt_out_writes` compares: those of records whose address is listed."""
    crm_contacts = _crm_records(contacts)
    return {
        (row.record_type, row.external_id, OPT_OUT_FIELD)
        for row in crm_contacts.itertuples(index=False)
        if not pd.isna(row.email) and str(row.email).lower() in opt_out_list
    }


def opt_out_writes(
    contacts: pd.DataFrame, opt_out_list: ReadOnly[str, bool], crm: CrmValues
) -> list[PlannedWrite]:
    """``HasOptedOutOfEmail`` for every CRM record whose address is on the opt-out list and
    whose CRM flag differs: true for addresses opted out, false for addresses that opted back
    in on the Act-On side. Addresses not on the list are left alone. The list is the pull's
    and the imports' to keep: the push only sends it.

    ``contacts``: ``contact_id, external_id, record_type, email``; ``opt_out_list``:
    lower-cased email -> opted out.
    """
    writes = []
    for row in _crm_records(contacts).itertuples(index=False):
        wanted = None if pd.isna(row.email) else opt_out_list.get(str(row.email).lower())
        ref = (row.record_type, row.external_id, OPT_OUT_FIELD)
        if wanted is None or ref not in crm:
            continue
        current = crm[ref] == "true"
        if wanted != current:
            writes.append(
                PlannedWrite(
                    object=row.record_type,
                    record_id=row.external_id,
                    contact_id=row.contact_id,
                    field=OPT_OUT_FIELD,
                    old_value=crm[ref],
                    new_value=wanted,
                    reason=OPT_OUT if wanted else OPT_IN,
                    detail=(
                        "the address is on the opt-out list"
                        if wanted
                        else "the address opted back in on the Act-On side"
                    ),
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


def _latest_edits(edits: pd.DataFrame) -> tuple[pd.DataFrame, list[EditDecision]]:
    """Per contact and field the latest edit; the older ones are superseded by it."""
    ordered = edits.sort_values(["changed_at", "id"])
    latest = ordered.groupby(["contact_id", "field"]).tail(1)
    older = [
        EditDecision(int(edit_id), SUPERSEDED, "a later edit of the field")
        for edit_id in ordered.loc[~ordered["id"].isin(latest["id"]), "id"]
    ]
    return latest, older


def _policy_reason(
    field: FieldMapping | None, contact: pd.Series | None, mapping: Mapping
) -> str | None:
    """Why an edit cannot update the contact's CRM record, or None when it may."""
    if field is None or contact is None:
        return "no longer mapped"
    if pd.isna(contact["external_id"]):
        return "not a CRM record"
    source = field.source(contact["record_type"])
    if source is None:
        return f"no CRM field on {contact['record_type']}"
    if "." in source:
        return f"read through {source}: not a field of the record"
    allowed = field.allow_push if field.allow_push is not None else mapping.push_policy == "two_way"
    if not allowed:
        return "allow_push is off" if field.allow_push is False else "push policy pull_only"
    return None


def _edited_ref(field: FieldMapping | None, contact: pd.Series | None) -> FieldRef | None:
    """The CRM field an edit changes on its contact's record; None when the contact has no CRM
    record, or its record no field of its own for the edit."""
    if field is None or contact is None:
        return None
    record_type, external_id = contact["record_type"], contact["external_id"]
    if pd.isna(external_id) or pd.isna(record_type):
        return None
    source = field.source(record_type)
    if source is None or "." in source:
        return None
    return (record_type, external_id, source)


def _contact(by_contact: pd.DataFrame, contact_id: str) -> pd.Series | None:
    return by_contact.loc[contact_id] if contact_id in by_contact.index else None


def edit_refs(edits: pd.DataFrame, contacts: pd.DataFrame, mapping: Mapping) -> set[FieldRef]:
    """The CRM fields :func:`edit_writes` compares: the edited field of each edited record."""
    by_contact = contacts.set_index("contact_id")
    refs = {
        _edited_ref(mapping.field(row.field), _contact(by_contact, row.contact_id))
        for row in edits.itertuples(index=False)
    }
    return {ref for ref in refs if ref is not None}


def _shown(value: str | None) -> str:
    return "empty" if value is None else repr(value)


def edit_writes(
    edits: pd.DataFrame, contacts: pd.DataFrame, mapping: Mapping, crm: CrmValues
) -> tuple[list[PlannedWrite], list[EditDecision]]:
    """Waiting Act-On-side edits as CRM updates, and the edits that are not sent, with why.

    ``edits``: ``id, contact_id, field, value, changed_at, crm_value_at_edit`` (pending and
    failed ones); ``contacts``: ``contact_id, external_id, record_type``. Per contact and field
    only the latest edit counts. ``allow_push`` (or the push policy) governs updates of
    existing records; a field read through a relationship (``Account.Name``) or with no CRM
    field for the record's type cannot be pushed. Then the three-way merge, per field: the
    edit goes out while the CRM still holds ``crm_value_at_edit``; once the CRM changed the
    field, the edit is superseded (the CRM wins). Changes to other fields never matter. A
    value the mirror does not know counts as unchanged.
    """
    if edits.empty:
        return [], []
    by_contact = contacts.set_index("contact_id")
    latest, decisions = _latest_edits(edits)
    writes: list[PlannedWrite] = []
    for row in latest.itertuples(index=False):
        field = mapping.field(row.field)
        contact = _contact(by_contact, row.contact_id)
        blocked = _policy_reason(field, contact, mapping)
        ref = _edited_ref(field, contact)
        if blocked or ref is None or field is None:
            reason = blocked or "not a field of the record"
            decisions.append(EditDecision(int(row.id), SKIPPED_BY_POLICY, reason))
            continue
        write = PlannedWrite(
            object=ref[0],
            record_id=ref[1],
            contact_id=row.contact_id,
            field=ref[2],
            old_value=None,
            new_value=crm_value(row.value, field.type),
            reason=EDIT,
            detail=f"Act-On edit of {field.destination}",
            edit_id=int(row.id),
        )
        at_edit = None if pd.isna(row.crm_value_at_edit) else str(row.crm_value_at_edit)
        decided = _three_way(write, at_edit, crm, field.type)
        if isinstance(decided, PlannedWrite):
            writes.append(decided)
        else:
            decisions.append(decided)
    return writes, decisions


def _three_way(
    write: PlannedWrite, at_edit: str | None, crm: CrmValues, data_type: DataType
) -> PlannedWrite | EditDecision:
    """The edit's write if the CRM still holds the value the edit was made against (with that
    value as the write's old value), else why it is not sent."""
    if write.ref not in crm:
        return write
    now = crm[write.ref]
    assert write.edit_id is not None
    wanted = comparable(write.new_value, data_type)
    if now != at_edit:
        values = (
            f"the CRM held {_shown(at_edit)} when the edit was made and holds {_shown(now)} "
            f"now; the edit's {_shown(wanted)} was not sent"
        )
        unsent = replace(write, old_value=now, detail=f"{write.detail}: {values}")
        return EditDecision(
            write.edit_id, SUPERSEDED, "the CRM changed the field since the edit", values, unsent
        )
    if now == wanted:
        return EditDecision(write.edit_id, PUSHED, "the CRM already holds the value")
    return replace(write, old_value=now)
