"""Scores: one integer per Act-On contact per score sheet of the mapping.

A sheet's score is the sum of the points of its profile rules the contact matches, plus, when
an activity feed is given, the points of its behaviour rules (points per matching activity
event), clamped to ``0..MAX_SCORE`` (the CRM score field is a Number(6)).

Activity feed: a DataFrame with columns ``contact_id, activity, occurred_at, asset``. An event
counts for a behaviour rule when its ``activity`` is the rule's (case-insensitive), it happened
no later than ``computed_at`` (so recomputing a past score gives the same result) and, with
``within_days``, no earlier than ``computed_at - within_days`` days (inclusive). Events without a
time cannot be placed in time and never count. With ``once_per_asset`` each distinct ``asset`` of
a contact counts once (events without an asset count together as one asset).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from acton_pipelines.mapping.conditions import evaluate, rule_fields
from acton_pipelines.mapping.models import MAX_SCORE, BehaviorRule, Mapping, ScoreSheet

SCORE_COLUMNS = ["contact_id", "score_sheet", "score", "computed_at"]
BREAKDOWN_COLUMNS = ["contact_id", "score_sheet", "rule", "kind", "points"]
ACTIVITY_COLUMNS = ["contact_id", "activity", "occurred_at", "asset"]


@dataclass(frozen=True)
class _RulePoints:
    rule: str
    kind: str  # 'profile' or 'behavior'
    points: np.ndarray  # int64, one entry per contact, positional


def fields_read(mapping: Mapping) -> set[str]:
    """The fields (destination names or built-in columns) the score sheets' profile rules read."""
    return {
        name
        for sheet in mapping.score_sheets
        for rule in sheet.profile_rules
        for name in rule_fields(rule.when)
    }


def compute_scores(
    contacts: pd.DataFrame,
    mapping: Mapping,
    computed_at: datetime,
    activity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per contact per score sheet: ``contact_id, score_sheet, score, computed_at``.

    Rows are ordered by sheet (mapping order), then by contact (input order), on a fresh
    RangeIndex. ``score`` is an int64 in ``0..MAX_SCORE``; ``computed_at`` is UTC (a naive
    ``computed_at`` is taken as UTC).
    """
    at = _utc(computed_at)
    events = _prepare_activity(activity, contacts)
    contact_ids = contacts["contact_id"].to_numpy()
    frames = []
    for sheet in mapping.score_sheets:
        total = np.zeros(len(contacts), dtype=np.int64)
        for part in _sheet_points(sheet, contacts, mapping, at, events):
            total += part.points
        frames.append(
            pd.DataFrame(
                {
                    "contact_id": contact_ids,
                    "score_sheet": sheet.name,
                    "score": np.clip(total, 0, MAX_SCORE),
                }
            )
        )
    if not frames:
        return _empty_scores(contacts)
    scores = pd.concat(frames, ignore_index=True)
    scores["computed_at"] = pd.Series(at, index=scores.index, dtype="datetime64[us, UTC]")
    return scores[SCORE_COLUMNS]


def score_breakdown(
    contacts: pd.DataFrame,
    mapping: Mapping,
    computed_at: datetime,
    activity: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Which rules gave a contact points: ``contact_id, score_sheet, rule, kind, points``.

    One row per contact, sheet and rule with non-zero points (``kind`` is ``'profile'`` or
    ``'behavior'``); the points are before clamping, so they explain a clamped score too.
    """
    at = _utc(computed_at)
    events = _prepare_activity(activity, contacts)
    contact_ids = contacts["contact_id"].to_numpy()
    frames = []
    for sheet in mapping.score_sheets:
        for part in _sheet_points(sheet, contacts, mapping, at, events):
            given = part.points != 0
            frames.append(
                pd.DataFrame(
                    {
                        "contact_id": contact_ids[given],
                        "score_sheet": sheet.name,
                        "rule": part.rule,
                        "kind": part.kind,
                        "points": part.points[given],
                    }
                )
            )
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BREAKDOWN_COLUMNS}).astype(
            {"points": np.int64}
        )
    return pd.concat(frames, ignore_index=True)[BREAKDOWN_COLUMNS]


def _sheet_points(
    sheet: ScoreSheet,
    contacts: pd.DataFrame,
    mapping: Mapping,
    at: pd.Timestamp,
    events: pd.DataFrame | None,
) -> Iterator[_RulePoints]:
    for rule in sheet.profile_rules:
        matched = evaluate(rule.when, contacts, mapping).to_numpy()
        yield _RulePoints(rule.name, "profile", np.where(matched, rule.points, 0).astype(np.int64))
    if events is None:
        return
    for behavior in sheet.behavior_rules:
        counts = _event_counts(behavior, events, at)
        per_contact = contacts["contact_id"].astype("string").map(counts).fillna(0)
        yield _RulePoints(
            behavior.name,
            "behavior",
            per_contact.to_numpy(dtype=np.int64) * behavior.points,
        )


def _event_counts(rule: BehaviorRule, events: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Countable events per contact id for one behaviour rule."""
    selected = (events["activity"] == rule.activity) & (events["occurred_at"] <= at)
    if rule.within_days is not None:
        selected &= events["occurred_at"] >= at - pd.Timedelta(days=rule.within_days)
    chosen = events[selected.fillna(False).astype(bool)]
    if rule.once_per_asset:
        return chosen.groupby("contact_id")["asset"].nunique(dropna=False)
    return chosen.groupby("contact_id").size()


def _prepare_activity(activity: pd.DataFrame | None, contacts: pd.DataFrame) -> pd.DataFrame | None:
    """The activity events of this chunk's contacts, with normalised types."""
    if activity is None:
        return None
    missing = [c for c in ACTIVITY_COLUMNS if c not in activity.columns]
    if missing:
        raise ValueError(f"Activity data is missing column(s): {', '.join(missing)}.")
    contact_ids = activity["contact_id"].astype("string")
    # Only this chunk's contacts: the feed may cover every contact.
    mine = contact_ids.isin(contacts["contact_id"].astype("string")).fillna(False).astype(bool)
    return pd.DataFrame(
        {
            "contact_id": contact_ids[mine],
            "activity": activity["activity"][mine].astype("string").str.strip().str.lower(),
            "occurred_at": pd.to_datetime(activity["occurred_at"][mine], errors="coerce", utc=True),
            "asset": activity["asset"][mine].astype("string"),
        }
    )


def _utc(moment: datetime) -> pd.Timestamp:
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _empty_scores(contacts: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "contact_id": pd.Series(dtype=contacts["contact_id"].dtype),
            "score_sheet": pd.Series(dtype=object),
            "score": pd.Series(dtype=np.int64),
            "computed_at": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )
