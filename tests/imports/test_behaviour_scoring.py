"""Imported activity moves scores through the score sheets' behaviour rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.imports.conftest import ImportHome


def default_score(home: ImportHome, contact_id: str) -> int:
    (score,) = home.rows(
        "SELECT score FROM contact_scores WHERE contact_id = :c AND score_sheet = 'default'",
        c=contact_id,
    )[0]
    return int(score)


def test_form_submits_score_once_per_form_and_old_clicks_expire(home: ImportHome) -> None:
    home.drop("contacts_1.csv", "email,First Name\nactive.reader@example.com,Ada\n")
    home.run_imports()
    contact_id = "acton:active.reader@example.com"
    before = default_score(home, contact_id)
    recent = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    long_ago = (datetime.now(UTC) - timedelta(days=90)).isoformat()
    home.drop(
        "activity_1.csv",
        "email,activity,occurred_at,asset\n"
        f"active.reader@example.com,form_submit,{recent},demo-request\n"
        f"active.reader@example.com,form_submit,{recent},demo-request\n"
        f"active.reader@example.com,email_click,{long_ago},newsletter-1\n",
    )
    home.run_imports()
    # default sheet: "Submitted a form" 25 points once per asset; clicks count for 30 days only.
    assert default_score(home, contact_id) == before + 25
