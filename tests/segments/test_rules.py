"""Default and custom segments, their definitions and explained memberships."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from acton_pipelines.mapping.models import (
    BUILTIN_COLUMNS,
    Affiliation,
    DataType,
    FieldMapping,
    Mapping,
    ScoreSheet,
    SegmentRule,
)
from acton_pipelines.segments.rules import DEFAULT_SEGMENTS, segment_definitions, segment_members

FIELDS = [
    FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
    FieldMapping(destination="Job Title", type=DataType.TEXT, lead="Title", contact="Title"),
    FieldMapping(destination="Industry", type=DataType.TEXT, lead="Industry"),
    FieldMapping(destination="Employees", type=DataType.NUMBER, lead="NumberOfEmployees"),
]


def _mapping(segments: list[SegmentRule] | None = None, **affiliation: Any) -> Mapping:
    return Mapping(
        fields=FIELDS,
        score_sheets=[ScoreSheet(name="default")],
        affiliation=Affiliation(**affiliation),
        segments=segments or [],
    )


# (contact_id, external_id, record_type, account_id, account_type, won_opportunity_count,
#  job_title, industry, employees)
ROWS = [
    ("L1", "00Q1", "Lead", None, None, None, "VP Sales", "Banking", 50.0),
    ("L2", "00Q2", "Lead", None, "Customer - Direct", 1.0, None, None, None),
    ("P1", "0031", "Contact", "A1", "prospect", 0.0, "Analyst", "Banking", 5000.0),
    ("P2", "0032", "Contact", "A2", "Prospect - Hot", 0.0, None, "Retail", 20.0),
    ("C1", "0033", "Contact", "A3", "Customer - Direct", 0.0, "VP Ops", "Retail", None),
    ("W1", "0034", "Contact", "A4", "Other", 2.0, None, None, None),
    ("CW", "0035", "Contact", "A5", "Customer - Channel", 1.0, None, None, None),
    ("N1", "0036", "Contact", None, None, None, None, None, None),
    ("I1", None, None, None, None, None, None, "Banking", None),
]


def _contacts() -> pd.DataFrame:
    columns = [
        "contact_id",
        "external_id",
        "record_type",
        "account_id",
        "account_type",
        "won_opportunity_count",
        "job_title",
        "industry",
        "employees",
    ]
    frame = pd.DataFrame(ROWS, columns=columns, index=range(500, 500 + len(ROWS)))
    for name in BUILTIN_COLUMNS:
        if name not in frame.columns:
            frame[name] = None
    frame["won_opportunity_count"] = frame["won_opportunity_count"].astype(float)
    frame["employees"] = frame["employees"].astype(float)
    return frame


def _members(mapping: Mapping, contacts: pd.DataFrame | None = None) -> dict[str, list[str]]:
    members = segment_members(_contacts() if contacts is None else contacts, mapping)
    assert list(members.columns) == ["segment", "contact_id", "matched_rule"]
    result: dict[str, list[str]] = {}
    for row in members.itertuples():
        result.setdefault(row.segment, []).append(row.contact_id)
    return result


def _why(mapping: Mapping, segment: str) -> dict[str, str]:
    members = segment_members(_contacts(), mapping)
    of_segment = members[members["segment"] == segment]
    return dict(zip(of_segment["contact_id"], of_segment["matched_rule"], strict=True))


def test_default_segment_names_and_order() -> None:
    assert DEFAULT_SEGMENTS == (
        "All Act-On Contacts",
        "All Leads",
        "All Contacts",
        "Affiliated with Leads",
        "Affiliated with Prospects",
        "Affiliated with Customers",
        "Unaffiliated",
    )


def test_default_memberships() -> None:
    members = _members(_mapping())
    assert members["All Act-On Contacts"] == [r[0] for r in ROWS]
    assert members["All Leads"] == ["L1", "L2"]
    assert members["All Contacts"] == ["P1", "P2", "C1", "W1", "CW", "N1"]
    assert members["Affiliated with Leads"] == ["L1", "L2"]
    # P1's "prospect" matches "Prospect" case-insensitively; "Prospect - Hot" is not exact.
    assert members["Affiliated with Prospects"] == ["P1"]
    # L2 is a Lead, so its account type and won count do not make it a customer.
    assert members["Affiliated with Customers"] == ["C1", "W1", "CW"]
    # N1 is a Contact without an account; I1 has no CRM record.
    assert members["Unaffiliated"] == ["N1", "I1"]


def test_one_row_per_segment_and_contact() -> None:
    members = segment_members(_contacts(), _mapping())
    assert not members.duplicated(["segment", "contact_id"]).any()
    # 9 + 2 + 6 + 2 + 1 + 3 + 2
    assert len(members) == 25


def test_default_matched_rules() -> None:
    mapping = _mapping()
    assert _why(mapping, "All Act-On Contacts")["I1"] == "every Act-On contact"
    assert _why(mapping, "All Leads") == {"L1": "record_type = Lead", "L2": "record_type = Lead"}
    assert _why(mapping, "All Contacts")["N1"] == "record_type = Contact"
    assert _why(mapping, "Affiliated with Leads")["L1"].startswith("record_type = Lead")
    assert _why(mapping, "Affiliated with Prospects") == {
        "P1": "record_type = Contact and account_type = 'Prospect' (prospect)"
    }
    # CW matches both the prefix and the closed-won rule: the first one is named.
    assert _why(mapping, "Affiliated with Customers") == {
        "C1": "record_type = Contact and account_type starts with 'Customer' (Customer - Direct)",
        "W1": "account has a Closed Won opportunity",
        "CW": "record_type = Contact and account_type starts with 'Customer' (Customer - Channel)",
    }
    assert _why(mapping, "Unaffiliated") == {
        "N1": "record_type = Contact and account_id is empty",
        "I1": "external_id is empty (no CRM record)",
    }


def test_more_prospect_values() -> None:
    mapping = _mapping(prospect_account_types=["Prospect", "Prospect - Hot"])
    assert _members(mapping)["Affiliated with Prospects"] == ["P1", "P2"]
    assert _why(mapping, "Affiliated with Prospects")["P2"] == (
        "record_type = Contact and account_type = 'Prospect - Hot' (Prospect - Hot)"
    )


def test_no_prospect_values() -> None:
    members = _members(_mapping(prospect_account_types=[]))
    assert "Affiliated with Prospects" not in members


def test_customer_prefixes() -> None:
    mapping = _mapping(customer_account_type_prefixes=["customer - direct"])
    assert _members(mapping)["Affiliated with Customers"] == ["C1", "W1", "CW"]
    # CW's type no longer matches a prefix, so its closed-won deal is what makes it a customer.
    assert _why(mapping, "Affiliated with Customers")["CW"] == (
        "account has a Closed Won opportunity"
    )


def test_closed_won_switched_off() -> None:
    members = _members(_mapping(closed_won_makes_customer=False))
    assert members["Affiliated with Customers"] == ["C1", "CW"]


def test_no_customer_rule_at_all() -> None:
    mapping = _mapping(customer_account_type_prefixes=[], closed_won_makes_customer=False)
    assert "Affiliated with Customers" not in _members(mapping)
    definitions = segment_definitions(mapping).set_index("segment")["description"]
    assert definitions["Affiliated with Customers"].startswith("never")


def test_contacts_without_account_switched_off() -> None:
    members = _members(_mapping(contacts_without_account_are_unaffiliated=False))
    assert members["Unaffiliated"] == ["I1"]


def test_blank_external_id_is_no_crm_record() -> None:
    contacts = _contacts()
    contacts.loc[contacts["contact_id"] == "I1", "external_id"] = "  "
    assert _members(_mapping(), contacts)["Unaffiliated"] == ["N1", "I1"]


def test_definitions_default() -> None:
    definitions = segment_definitions(_mapping())
    assert list(definitions.columns) == ["segment", "kind", "description"]
    assert list(definitions["segment"]) == list(DEFAULT_SEGMENTS)
    assert set(definitions["kind"]) == {"default"}
    text = definitions.set_index("segment")["description"]
    assert "'Prospect'" in text["Affiliated with Prospects"]
    assert "starts with 'Customer'" in text["Affiliated with Customers"]
    assert "Closed Won" in text["Affiliated with Customers"]
    assert "external_id is empty" in text["Unaffiliated"]
    assert "account_id is empty" in text["Unaffiliated"]


def test_definitions_follow_affiliation_knobs() -> None:
    mapping = _mapping(
        prospect_account_types=["Prospect", "Evaluating"],
        customer_account_type_prefixes=["Customer", "Client"],
        closed_won_makes_customer=False,
        contacts_without_account_are_unaffiliated=False,
    )
    text = segment_definitions(mapping).set_index("segment")["description"]
    assert "['Prospect', 'Evaluating']" in text["Affiliated with Prospects"]
    assert "starts with 'Client'" in text["Affiliated with Customers"]
    assert "Closed Won" not in text["Affiliated with Customers"]
    assert "account_id" not in text["Unaffiliated"]


CUSTOM = [
    SegmentRule(
        name="Bankers or big",
        when={
            "any": [
                {"field": "Industry", "op": "equals", "value": "Banking"},
                {"field": "Employees", "op": "greater_than", "value": 1000},
            ]
        },
    ),
    SegmentRule(
        name="Senior retail",
        when={
            "all": [
                {"field": "Job Title", "op": "starts_with", "value": "VP"},
                {"field": "Industry", "op": "equals", "value": "Retail"},
            ]
        },
    ),
]


def test_custom_segments_members_and_matched_rule() -> None:
    mapping = _mapping(segments=CUSTOM)
    members = _members(mapping)
    assert members["Bankers or big"] == ["L1", "P1", "I1"]
    assert members["Senior retail"] == ["C1"]
    # P1 is both a banker and big: the first branch of the 'any' is named.
    assert _why(mapping, "Bankers or big") == {
        "L1": "Industry = 'Banking'",
        "P1": "Industry = 'Banking'",
        "I1": "Industry = 'Banking'",
    }
    assert _why(mapping, "Senior retail") == {
        "C1": "Job Title starts with 'VP' and Industry = 'Retail'"
    }


def test_custom_any_names_the_branch_that_matched() -> None:
    contacts = _contacts()
    contacts.loc[contacts["contact_id"] == "P1", "industry"] = "Insurance"
    members = segment_members(contacts, _mapping(segments=CUSTOM))
    p1 = members[(members["segment"] == "Bankers or big") & (members["contact_id"] == "P1")]
    assert p1["matched_rule"].tolist() == ["Employees > 1000"]


def test_custom_definitions_follow_defaults() -> None:
    definitions = segment_definitions(_mapping(segments=CUSTOM))
    assert list(definitions["segment"]) == [*DEFAULT_SEGMENTS, "Bankers or big", "Senior retail"]
    custom = definitions.iloc[len(DEFAULT_SEGMENTS) :]
    assert list(custom["kind"]) == ["custom", "custom"]
    assert list(custom["description"]) == [
        "Industry = 'Banking' or Employees > 1000",
        "Job Title starts with 'VP' and Industry = 'Retail'",
    ]


def test_custom_name_clashing_with_default() -> None:
    clash = SegmentRule(name="all leads", when={"field": "Industry", "op": "is_not_empty"})
    with pytest.raises(ValueError, match="all leads"):
        segment_definitions(_mapping(segments=[clash]))


def test_empty_chunk() -> None:
    members = segment_members(_contacts().iloc[0:0], _mapping(segments=CUSTOM))
    assert members.empty
    assert list(members.columns) == ["segment", "contact_id", "matched_rule"]


def test_a_won_deal_moves_a_prospect_account_to_customers() -> None:
    won_prospect = _contacts()
    won_prospect.loc[won_prospect["contact_id"] == "P1", "won_opportunity_count"] = 1.0
    members = _members(_mapping(), won_prospect)
    assert "P1" not in members.get("Affiliated with Prospects", [])
    assert "P1" in members["Affiliated with Customers"]
    # Without the closed-won knob the account type alone decides.
    members = _members(_mapping(closed_won_makes_customer=False), won_prospect)
    assert "P1" in members["Affiliated with Prospects"]
    assert "P1" not in members.get("Affiliated with Customers", [])
