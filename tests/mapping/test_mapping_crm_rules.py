"""Checks against the CRM's describe(): fields exist, relationships resolve, types fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acton_pipelines.mapping import (
    DataType,
    FieldMapping,
    Mapping,
    MappingProblem,
    ScoreSheet,
    canonical_crm_fields,
    check_against_crm,
    load_mapping,
    with_canonical_crm_fields,
)
from acton_pipelines.mapping.crm_rules import crm_type_fits

from .conftest import REPO_CONFIG, line_of

Describes = dict[str, dict[str, Any]]


def mapping_with(*fields: FieldMapping) -> Mapping:
    """A minimal mapping (Email + score) plus ``fields``."""
    return Mapping(
        fields=[
            FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email", contact="Email"),
            FieldMapping(
                destination="Act-On Primary Score",
                type=DataType.SCORE,
                lead="ActOn_Score__c",
                contact="ActOn_Score__c",
                score_sheet="default",
            ),
            *fields,
        ],
        score_sheets=[ScoreSheet(name="default")],
    )


def custom(destination: str, type_: DataType, **sources: str) -> FieldMapping:
    return FieldMapping(
        destination=destination,
        type=type_,
        standard=False,
        origin=("contact_mapping.yaml", "custom_fields[0]", 7),
        **sources,
    )


def only(problems: list[MappingProblem]) -> MappingProblem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_default_mapping_fits_the_sandbox_crm(describes: Describes) -> None:
    assert check_against_crm(load_mapping(REPO_CONFIG), describes) == []


def test_missing_field_with_suggestion(tmp_path: Path, describes: Describes) -> None:
    target = tmp_path / "mapping_config"
    target.mkdir()
    for path in REPO_CONFIG.iterdir():
        text = path.read_text()
        if path.name == "contact_mapping.yaml":
            text = text.replace("contact: Renewal_Date__c", "contact: Renewal_Dt__c")
        (target / path.name).write_text(text)
    mapping = load_mapping(target)
    line = line_of(target / "contact_mapping.yaml", "- destination: Renewal Date")

    problem = only(check_against_crm(mapping, describes))
    assert str(problem) == (
        f'contact_mapping.yaml, line {line}: custom_fields[1] "Renewal Date": contact: CRM '
        "field 'Renewal_Dt__c' does not exist on Contact (did you mean 'Renewal_Date__c'?); "
        "correct the API name (the CRM's Setup > Object Manager > Contact > Fields lists them)"
    )


def test_lead_field_checked_on_lead(describes: Describes) -> None:
    mapping = mapping_with(custom("Birthday", DataType.DATE, lead="Birthdate"))
    problem = only(check_against_crm(mapping, describes))
    assert problem.entry == 'custom_fields[0] "Birthday"'
    assert problem.message.startswith("lead: CRM field 'Birthdate' does not exist on Lead")


def test_names_match_ignoring_case_and_report_canonical(describes: Describes) -> None:
    mapping = mapping_with(
        custom("Renewal", DataType.DATE, contact="renewal_date__C"),
        custom("Company Name", DataType.TEXT, contact="account.name"),
    )
    assert check_against_crm(mapping, describes) == []
    canonical = canonical_crm_fields(mapping, describes)
    assert canonical[("Contact", "renewal_date__C")] == "Renewal_Date__c"
    assert canonical[("Contact", "account.name")] == "Account.Name"
    assert canonical[("Lead", "Email")] == "Email"
    fixed = with_canonical_crm_fields(mapping, describes)
    assert fixed.field("Renewal").contact == "Renewal_Date__c"  # type: ignore[union-attr]
    assert fixed.field("Company Name").contact == "Account.Name"  # type: ignore[union-attr]
    assert fixed.field("Company Name").lead is None  # type: ignore[union-attr]


def test_unknown_names_are_left_out_of_canonical(describes: Describes) -> None:
    mapping = mapping_with(custom("X", DataType.TEXT, contact="Nope__c"))
    assert ("Contact", "Nope__c") not in canonical_crm_fields(mapping, describes)


def test_relationship_must_exist(describes: Describes) -> None:
    mapping = mapping_with(custom("Company Name", DataType.TEXT, contact="Acount.Name"))
    problem = only(check_against_crm(mapping, describes))
    assert problem.message == (
        "contact: 'Acount' in 'Acount.Name' is not a relationship of Contact (did you mean "
        "'Account'?); write the relationship name of a lookup field (e.g. 'Account' for "
        "AccountId) before the dot"
    )


def test_lead_has_no_account_relationship(describes: Describes) -> None:
    mapping = mapping_with(custom("Company Name", DataType.TEXT, lead="Account.Name"))
    problem = only(check_against_crm(mapping, describes))
    assert "'Account' in 'Account.Name' is not a relationship of Lead" in problem.message


def test_field_behind_relationship_must_exist(describes: Describes) -> None:
    mapping = mapping_with(custom("Account Type", DataType.TEXT, contact="Account.Typ"))
    problem = only(check_against_crm(mapping, describes))
    assert problem.message.startswith(
        "contact: CRM field 'Typ' does not exist on Account (via Contact.Account) "
        "(did you mean 'Type'?)"
    )


def test_polymorphic_relationship_resolves_through_a_described_target(
    describes: Describes,
) -> None:
    # Owner references Group and User; only User is described, and it has Name.
    mapping = mapping_with(custom("Owner", DataType.TEXT, lead="Owner.name"))
    assert check_against_crm(mapping, describes) == []
    assert canonical_crm_fields(mapping, describes)[("Lead", "Owner.name")] == "Owner.Name"


def test_relationship_to_an_undescribed_object_is_accepted(describes: Describes) -> None:
    describes["Contact"]["fields"].append(
        {
            "name": "Partner__c",
            "type": "reference",
            "relationshipName": "Partner__r",
            "referenceTo": ["Partner__c"],
        }
    )
    mapping = mapping_with(custom("Partner", DataType.TEXT, contact="partner__r.Name"))
    assert check_against_crm(mapping, describes) == []
    assert canonical_crm_fields(mapping, describes)[("Contact", "partner__r.Name")] == (
        "Partner__r.Name"
    )


def test_type_incompatibility_on_a_custom_field(describes: Describes) -> None:
    mapping = mapping_with(custom("Newsletter", DataType.BOOLEAN, lead="Lead_Notes__c"))
    problem = only(check_against_crm(mapping, describes))
    assert problem.message == (
        "lead: CRM field 'Lead_Notes__c' on Lead is a textarea field, which does not fit data "
        "type Boolean; change 'type' to one of Text, Multi-Text, or map a CRM field of type "
        "boolean, string"
    )


def test_type_incompatibility_through_a_relationship(describes: Describes) -> None:
    mapping = mapping_with(custom("Revenue Date", DataType.DATE, contact="Account.AnnualRevenue"))
    problem = only(check_against_crm(mapping, describes))
    assert "'Account.AnnualRevenue' on Contact is a currency field" in problem.message
    assert "change 'type' to one of Text, Number, Score" in problem.message


def test_type_incompatibility_on_a_standard_field(describes: Describes) -> None:
    email = FieldMapping(
        destination="Email",
        type=DataType.EMAIL,
        lead="Phone",
        origin=("contact_mapping.yaml", "standard_fields[0]", 3),
    )
    mapping = Mapping(
        fields=[email, *mapping_with().fields[1:]], score_sheets=[ScoreSheet(name="default")]
    )
    problem = only(check_against_crm(mapping, describes))
    assert (problem.entry, problem.line) == ('standard_fields[0] "Email"', 3)
    assert problem.message == (
        "lead: CRM field 'Phone' on Lead is a phone field, which does not fit data type Email; "
        "map a CRM field of type email, string"
    )


def test_score_field_needs_a_number_or_text_field(describes: Describes) -> None:
    mapping = mapping_with(custom("Event Score", DataType.SCORE, lead="Last_Event_At__c"))
    problem = only(check_against_crm(mapping, describes))
    assert "is a datetime field, which does not fit data type Score" in problem.message
    assert "map a CRM field of type currency, double, int, long, percent, string" in (
        problem.message
    )


def test_score_field_must_be_writable(describes: Describes) -> None:
    for field in describes["Lead"]["fields"]:
        if field["name"] == "ActOn_Score__c":
            field["updateable"] = False  # e.g. a formula field
    problem = only(check_against_crm(mapping_with(), describes))
    assert problem.entry == 'standard_fields "Act-On Primary Score"'
    assert problem.message == (
        "lead: CRM field 'ActOn_Score__c' on Lead is read-only, but score fields always push "
        "to the CRM; map a writable Number or Text field"
    )


def test_object_not_described(describes: Describes) -> None:
    del describes["Lead"]
    problems = check_against_crm(mapping_with(), describes)
    assert len(problems) == 2  # Email and the score read Lead fields
    assert problems[0].message == (
        "lead: 'Email' cannot be checked: the CRM has no Lead object (it was not described); "
        "remove the lead column, or give the integration user access to Lead"
    )


@pytest.mark.parametrize(
    ("data_type", "fits", "does_not_fit"),
    [
        (DataType.TEXT, ["string", "boolean", "date", "reference", "address"], []),
        (DataType.EMAIL, ["email", "string"], ["phone", "textarea", "picklist"]),
        (
            DataType.NUMBER,
            ["double", "int", "currency", "percent", "string"],
            ["date", "boolean", "picklist"],
        ),
        (
            DataType.SCORE,
            ["double", "int", "currency", "percent", "string"],
            ["datetime", "textarea"],
        ),
        (DataType.DATE, ["date", "datetime", "string"], ["double", "boolean"]),
        (DataType.DATETIME, ["datetime", "date", "string"], ["int", "time"]),
        (DataType.BOOLEAN, ["boolean", "string"], ["int", "picklist"]),
        (
            DataType.MULTI_TEXT,
            ["multipicklist", "picklist", "string", "textarea"],
            ["email", "double"],
        ),
    ],
)
def test_compatibility_table(data_type: DataType, fits: list[str], does_not_fit: list[str]) -> None:
    assert all(crm_type_fits(data_type, t) for t in fits)
    assert not any(crm_type_fits(data_type, t) for t in does_not_fit)
