"""Scores from profile and behaviour rules on hand-made contacts and activity."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from acton_pipelines.mapping.models import (
    BehaviorRule,
    DataType,
    FieldMapping,
    Mapping,
    ProfileRule,
    ScoreSheet,
)
from acton_pipelines.scores.rules import compute_scores, score_breakdown

AT = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)

FIELDS = [
    FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
    FieldMapping(destination="Job Title", type=DataType.TEXT, lead="Title", contact="Title"),
    FieldMapping(destination="Industry", type=DataType.TEXT, lead="Industry"),
    FieldMapping(destination="Employees", type=DataType.NUMBER, lead="NumberOfEmployees"),
]

PROFILE_MAPPING = Mapping(
    fields=FIELDS,
    score_sheets=[
        ScoreSheet(
            name="default",
            profile_rules=[
                ProfileRule(
                    name="vp",
                    when={"field": "Job Title", "op": "contains", "value": "vp"},
                    points=20,
                ),
                ProfileRule(
                    name="bank",
                    when={"field": "Industry", "op": "equals", "value": "Banking"},
                    points=15,
                ),
                ProfileRule(
                    name="tiny",
                    when={"field": "Employees", "op": "less_than", "value": 10},
                    points=-30,
                ),
            ],
        ),
        ScoreSheet(
            name="partner",
            profile_rules=[
                ProfileRule(
                    name="retail",
                    when={"field": "Industry", "op": "in", "value": ["Retail"]},
                    points=5,
                )
            ],
        ),
    ],
)


def _contacts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "contact_id": ["c1", "c2", "c3"],
            "job_title": ["VP Finance", "engineer", None],
            "industry": ["banking", "Retail", None],
            "employees": [500.0, 5.0, None],
        },
        index=[100, 200, 300],
    )


def _scores(frame: pd.DataFrame) -> dict[tuple[str, str], int]:
    return {(r.contact_id, r.score_sheet): r.score for r in frame.itertuples()}


def test_one_row_per_contact_per_sheet_with_profile_points() -> None:
    scores = compute_scores(_contacts(), PROFILE_MAPPING, AT)
    assert list(scores.columns) == ["contact_id", "score_sheet", "score", "computed_at"]
    assert len(scores) == 6
    # c1: VP (+20) and banking (+15); c2: 5 employees (-30) clamps to 0, retail (+5) on partner;
    # c3: every value missing, so no rule matches (a NaN employee count is not "< 10").
    assert _scores(scores) == {
        ("c1", "default"): 35,
        ("c2", "default"): 0,
        ("c3", "default"): 0,
        ("c1", "partner"): 0,
        ("c2", "partner"): 5,
        ("c3", "partner"): 0,
    }
    assert pd.api.types.is_integer_dtype(scores["score"])
    assert (scores["computed_at"] == pd.Timestamp("2024-05-10T12:00:00Z")).all()


def test_naive_computed_at_is_utc() -> None:
    scores = compute_scores(_contacts(), PROFILE_MAPPING, datetime(2024, 5, 10, 12, 0))
    assert (scores["computed_at"] == pd.Timestamp("2024-05-10T12:00:00Z")).all()


def test_clamped_to_max_score() -> None:
    mapping = Mapping(
        fields=FIELDS,
        score_sheets=[
            ScoreSheet(
                name="default",
                profile_rules=[
                    ProfileRule(
                        name=f"huge{i}",
                        when={"field": "Industry", "op": "is_not_empty"},
                        points=600_000,
                    )
                    for i in range(2)
                ],
            )
        ],
    )
    scores = compute_scores(_contacts(), mapping, AT)
    assert _scores(scores) == {
        ("c1", "default"): 999_999,
        ("c2", "default"): 999_999,
        ("c3", "default"): 0,
    }


def test_sheet_without_rules_scores_zero() -> None:
    mapping = Mapping(fields=FIELDS, score_sheets=[ScoreSheet(name="empty")])
    assert _scores(compute_scores(_contacts(), mapping, AT)) == {
        ("c1", "empty"): 0,
        ("c2", "empty"): 0,
        ("c3", "empty"): 0,
    }


def test_empty_chunk() -> None:
    scores = compute_scores(_contacts().iloc[0:0], PROFILE_MAPPING, AT)
    assert scores.empty
    assert list(scores.columns) == ["contact_id", "score_sheet", "score", "computed_at"]


BEHAVIOR_MAPPING = Mapping(
    fields=FIELDS,
    score_sheets=[
        ScoreSheet(
            name="engagement",
            profile_rules=[
                ProfileRule(
                    name="vp",
                    when={"field": "Job Title", "op": "contains", "value": "vp"},
                    points=100,
                )
            ],
            behavior_rules=[
                BehaviorRule(name="opens", activity="email_open", points=3, within_days=7),
                BehaviorRule(name="visits", activity="web_visit", points=5, once_per_asset=True),
                BehaviorRule(name="clicks", activity="email_click", points=1),
                BehaviorRule(name="forms", activity="form_submit", points=-50),
            ],
        )
    ],
)


def _activity() -> pd.DataFrame:
    rows = [
        # c1 opens: two inside the 7-day window (one exactly on its start), one just before it,
        # one after computed_at.
        ("c1", "email_open", "2024-05-09T08:00:00Z", "mail-1"),
        ("c1", "email_open", "2024-05-03T12:00:00Z", "mail-1"),
        ("c1", "email_open", "2024-05-03T11:59:00Z", "mail-2"),
        ("c1", "email_open", "2024-05-11T00:00:00Z", "mail-3"),
        # c1 clicks: no window, so an old click counts; each click counts.
        ("c1", "email_click", "2023-01-01T00:00:00Z", "mail-1"),
        ("c1", "email_click", "2024-05-09T00:00:00Z", "mail-1"),
        # c2 visits: 'pricing' three times and 'docs' once -> two assets.
        ("c2", "web_visit", "2024-05-01T00:00:00Z", "pricing"),
        ("c2", "web_visit", "2024-05-02T00:00:00Z", "pricing"),
        ("c2", "web_visit", "2024-05-03T00:00:00Z", "pricing"),
        ("c2", "web_visit", "2024-04-03T00:00:00Z", "docs"),
        # c3 submits a form: -50 clamps the score at 0.
        ("c3", "form_submit", "2024-05-01T00:00:00Z", "form-1"),
        # Someone outside this chunk.
        ("c9", "email_open", "2024-05-09T00:00:00Z", "mail-1"),
    ]
    frame = pd.DataFrame(rows, columns=["contact_id", "activity", "occurred_at", "asset"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame


def test_behavior_rules_window_and_once_per_asset() -> None:
    scores = compute_scores(_contacts(), BEHAVIOR_MAPPING, AT, activity=_activity())
    # c1: VP 100 + 2 opens x 3 + 2 clicks x 1 = 108; c2: 2 assets x 5 = 10; c3: -50 -> 0.
    assert _scores(scores) == {
        ("c1", "engagement"): 108,
        ("c2", "engagement"): 10,
        ("c3", "engagement"): 0,
    }


def test_behavior_rules_ignored_without_activity() -> None:
    scores = compute_scores(_contacts(), BEHAVIOR_MAPPING, AT)
    assert _scores(scores) == {
        ("c1", "engagement"): 100,
        ("c2", "engagement"): 0,
        ("c3", "engagement"): 0,
    }


def test_behavior_without_once_per_asset_counts_each_visit() -> None:
    mapping = Mapping(
        fields=FIELDS,
        score_sheets=[
            ScoreSheet(
                name="visits",
                behavior_rules=[BehaviorRule(name="visits", activity="web_visit", points=5)],
            )
        ],
    )
    scores = compute_scores(_contacts(), mapping, AT, activity=_activity())
    assert _scores(scores)[("c2", "visits")] == 20


def test_window_moves_with_computed_at() -> None:
    # None of c1's opens is within 7 days of 2024-05-20 (the latest, on the 11th, is 9 days
    # before), so c1 keeps VP (100) and its two clicks (2) only.
    later = datetime(2024, 5, 20, 12, 0, tzinfo=UTC)
    scores = compute_scores(_contacts(), BEHAVIOR_MAPPING, later, activity=_activity())
    assert _scores(scores)[("c1", "engagement")] == 102


def test_chunk_only_scores_its_own_contacts() -> None:
    chunk = _contacts().iloc[[1]]
    scores = compute_scores(chunk, BEHAVIOR_MAPPING, AT, activity=_activity())
    assert _scores(scores) == {("c2", "engagement"): 10}


def test_activity_missing_column() -> None:
    with pytest.raises(ValueError, match="asset"):
        compute_scores(
            _contacts(), BEHAVIOR_MAPPING, AT, activity=_activity().drop(columns=["asset"])
        )


def test_score_breakdown_names_rules_before_clamping() -> None:
    breakdown = score_breakdown(_contacts(), BEHAVIOR_MAPPING, AT, activity=_activity())
    rows = {(r.contact_id, r.rule): (r.kind, r.points) for r in breakdown.itertuples()}
    assert rows == {
        ("c1", "vp"): ("profile", 100),
        ("c1", "opens"): ("behavior", 6),
        ("c1", "clicks"): ("behavior", 2),
        ("c2", "visits"): ("behavior", 10),
        ("c3", "forms"): ("behavior", -50),
    }
    assert set(breakdown["score_sheet"]) == {"engagement"}
