"""What a push would write: pure functions from warehouse frames to planned CRM writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from acton_pipelines.mapping.models import Mapping

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


def opt_out_writes(contacts: pd.DataFrame, opted_out_emails: set[str]) -> list[PlannedWrite]:
    """``HasOptedOutOfEmail = true`` on every CRM record whose email is on the opt-out list but
    whose CRM flag is not set (a Lead and a Contact sharing an address, say).

    ``contacts``: ``contact_id, external_id, record_type, email, opted_out``.
    """
    writes = []
    crm_contacts = contacts[contacts["external_id"].notna() & contacts["email"].notna()]
    for row in crm_contacts.itertuples(index=False):
        if str(row.email).lower() in opted_out_emails and not bool(row.opted_out):
            writes.append(
                PlannedWrite(
                    object=row.record_type,
                    record_id=row.external_id,
                    contact_id=row.contact_id,
                    field=OPT_OUT_FIELD,
                    old_value=False if pd.isna(row.opted_out) else bool(row.opted_out),
                    new_value=True,
                    reason="opt-out list",
                )
            )
    return writes
