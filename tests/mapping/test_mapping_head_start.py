"""The head start: a contact_mapping.yaml written from the CRM's describe."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from acton_pipelines.mapping import (
    Mapping,
    MappingError,
    check_against_crm,
    head_start_mapping,
    load_mapping,
)

Describes = dict[str, dict[str, Any]]


# The default score sheets read custom fields a head start does not map: use a sheet that
# reads only head-start fields.
SCORE_SHEETS = (
    "score_sheets:\n"
    "  - name: default\n"
    "    profile_rules:\n"
    "      - {name: Has title, when: {field: Job Title, op: is_not_empty}, points: 5}\n"
)


def load_head_start(tmp_path: Path, text: str) -> Mapping:
    """Load ``text`` as contact_mapping.yaml next to a score sheet file."""
    folder = tmp_path / "head_start"
    folder.mkdir()
    (folder / "contact_mapping.yaml").write_text(text)
    (folder / "score_sheets.yaml").write_text(SCORE_SHEETS)
    return load_mapping(folder)


def test_head_start_loads_and_maps_the_common_fields(tmp_path: Path, describes: Describes) -> None:
    text = head_start_mapping(describes)
    mapping = load_head_start(tmp_path, text)

    sources = {f.destination: (f.lead, f.contact) for f in mapping.fields}
    assert sources == {
        "Email": ("Email", "Email"),
        "First Name": ("FirstName", "FirstName"),
        "Last Name": ("LastName", "LastName"),
        "Company": ("Company", "Account.Name"),
        "Job Title": ("Title", "Title"),
        "Phone": ("Phone", "Phone"),
        "Mobile Phone": ("MobilePhone", "MobilePhone"),
        "Mailing Street": ("Street", "MailingStreet"),
        "Mailing City": ("City", "MailingCity"),
        "Mailing State/Province": ("State", "MailingState"),
        "Mailing Zip/Postal Code": ("PostalCode", "MailingPostalCode"),
        "Mailing Country": ("Country", "MailingCountry"),
        "Industry": ("Industry", "Account.Industry"),
        "Lead Source": ("LeadSource", "LeadSource"),
        "Status": ("Status", None),
        "Act-On Primary Score": ("ActOn_Score__c", "ActOn_Score__c"),
    }
    assert mapping.field("Act-On Primary Score").score_sheet == "default"  # type: ignore[union-attr]
    assert all(f.standard for f in mapping.fields)
    assert check_against_crm(mapping, describes) == []
    assert "# contact: not mapped (Contact has no Status field)" in text
    assert "# Other standard fields you may add: Fax, Product, Segment" in text


def test_head_start_is_deterministic(describes: Describes) -> None:
    first = head_start_mapping(describes)
    for describe in describes.values():
        random.Random(7).shuffle(describe["fields"])
    assert head_start_mapping(describes) == first


def test_head_start_uses_the_crm_spelling(describes: Describes) -> None:
    for field in describes["Lead"]["fields"]:
        if field["name"] == "FirstName":
            field["name"] = "firstname"
    text = head_start_mapping(describes)
    assert "  - destination: First Name\n    lead: firstname\n    contact: FirstName\n" in text


def test_head_start_without_a_score_field(tmp_path: Path, describes: Describes) -> None:
    for describe in describes.values():
        describe["fields"] = [f for f in describe["fields"] if "Score" not in f["name"]]
    text = head_start_mapping(describes)
    assert "  # Act-On Primary Score: no score-like field" in text
    assert "You must map at least one" in text
    assert "  # - destination: Act-On Primary Score" in text
    with pytest.raises(MappingError) as caught:
        load_head_start(tmp_path, text)
    messages = [p.message for p in caught.value.problems]
    assert any("you must map at least one score field" in m for m in messages)


def test_head_start_prefers_a_score_field_on_both_objects(describes: Describes) -> None:
    describes["Lead"]["fields"] = [
        f for f in describes["Lead"]["fields"] if f["name"] != "ActOn_Score__c"
    ]
    describes["Lead"]["fields"].append({"name": "Aaa_Score__c", "type": "double"})
    text = head_start_mapping(describes)
    assert (
        "  - destination: Act-On Primary Score\n    lead: Fit_Score__c\n"
        "    contact: Fit_Score__c\n    score_sheet: default\n"
    ) in text


def test_head_start_skips_unfit_score_candidates(describes: Describes) -> None:
    for describe in describes.values():
        for field in describe["fields"]:
            if field["name"] == "ActOn_Score__c":
                field["updateable"] = False
            if field["name"] == "Fit_Score__c":
                field["type"] = "date"
    assert "no score-like field" in head_start_mapping(describes)


def test_head_start_without_email(describes: Describes) -> None:
    for describe in describes.values():
        describe["fields"] = [f for f in describe["fields"] if f["name"] != "Email"]
    text = head_start_mapping(describes)
    assert "  # Email: neither Lead.Email nor Contact.Email exists in the CRM" in text
    assert "You must map an email field" in text
    assert "destination: Email" not in text


def test_head_start_for_a_contacts_only_crm(tmp_path: Path, describes: Describes) -> None:
    del describes["Lead"]
    text = head_start_mapping(describes)
    assert "    # lead: not mapped (Lead has no Company field)\n    contact: Account.Name" in text
    assert "  # Status: neither Lead.Status nor Contact.Status exists in the CRM" in text
    mapping = load_head_start(tmp_path, text)
    assert mapping.field("Email").lead is None  # type: ignore[union-attr]
