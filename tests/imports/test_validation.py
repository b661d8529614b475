"""Validating import files: every problem, with its line as in the file, column and reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from acton_pipelines.imports.contact_directory import ContactDirectory, ContactRef
from acton_pipelines.imports.files import ImportFile
from acton_pipelines.imports.kinds import ImportKind
from acton_pipelines.imports.records import ActivityRow, ContactRow, EditRow, OptRow
from acton_pipelines.imports.validation import ValidatedFile, validate_file
from acton_pipelines.mapping import load_mapping
from acton_pipelines.mapping.models import Mapping
from acton_pipelines.settings import REPO_ROOT
from tests.imports.conftest import csv_text

LEAD = ContactRef("00Q1", "lead@example.com", "00Q1", "Lead", datetime(2026, 11, 1, tzinfo=UTC))
ACTON_ONLY = ContactRef("acton:form@example.com", "form@example.com", None, None, None)


@pytest.fixture(scope="module")
def mapping() -> Mapping:
    return load_mapping(REPO_ROOT / "mapping_config")


def validate(name: str, content: str, mapping: Mapping) -> ValidatedFile:
    """Validate a file against a warehouse holding a CRM Lead and an Act-On-only contact."""
    directory = ContactDirectory([LEAD, ACTON_ONLY])

    def lookup(emails: set[str]) -> ContactDirectory:
        return ContactDirectory(c for email in emails for c in directory[email])

    return validate_file(ImportFile(name, content.encode()), mapping, lookup)


def problems(validated: ValidatedFile) -> list[tuple[int, str, str | None, str]]:
    return [(p.line, p.column, p.value, p.reason) for p in validated.problems]


def test_a_bad_email_on_line_7_is_reported_on_line_7(mapping: Mapping) -> None:
    rows = [f"person{i}@example.com" for i in range(2, 7)] + ["not-an-email", "ok@example.com"]
    validated = validate("opt_outs.csv", csv_text("email", *rows), mapping)
    assert problems(validated) == [(7, "email", "not-an-email", "not a valid email address")]
    assert not validated.valid and validated.records == []
    assert validated.rows == 7 and validated.rejected_rows == 1


def test_every_bad_line_is_listed(mapping: Mapping) -> None:
    content = csv_text(
        "email,First Name,newsletter,Renewal Date,create_in_crm,submitted_at",
        "good@example.com,Ann,yes,2026-12-01,no,2026-11-20T10:00:00Z",
        "two@@example.com,Bob,maybe,soon,perhaps,last tuesday",
        ",Cy,,,,",
        "Lead@Example.com,Dee,,,true,",
    )
    validated = validate("contacts-form.csv", content, mapping)
    assert problems(validated) == [
        (3, "email", "two@@example.com", "not a valid email address"),
        (3, "newsletter", "maybe", "not a boolean (expected true/false, yes/no or 1/0)"),
        (3, "Renewal Date", "soon", "not a date (expected YYYY-MM-DD)"),
        (3, "create_in_crm", "perhaps", "not a boolean (expected true/false, yes/no or 1/0)"),
        (
            3,
            "submitted_at",
            "last tuesday",
            "not a datetime (expected ISO 8601, e.g. 2026-11-26T10:00:00Z)",
        ),
        (4, "email", "", "email is required"),
        (5, "create_in_crm", "true", "already in the CRM (Lead 00Q1)"),
    ]
    assert validated.records == []


def test_a_valid_contacts_file_gives_typed_values_of_the_given_fields(mapping: Mapping) -> None:
    content = csv_text(
        "Email,first_name,Newsletter,Renewal Date,Interests,create_in_crm,submitted_at",
        " New@Example.COM ,Ann,yes,2026-12-01,b;a;b,1,2026-11-20T10:00:00+01:00",
        "form@example.com,,,,,,",
    )
    validated = validate("contacts.csv", content, mapping)
    assert validated.valid and validated.kind is ImportKind.CONTACTS
    first, second = validated.records
    assert isinstance(first, ContactRow) and isinstance(second, ContactRow)
    assert first.email == "new@example.com"
    assert first.values == {
        "first_name": "Ann",
        "newsletter": True,
        "renewal_date": date(2026, 12, 1),
        "interests": "b;a",
    }
    assert first.create_in_crm is True
    assert first.submitted_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    # Empty cells give nothing: the form leaves those fields as they are.
    assert second.values == {} and second.create_in_crm is False and second.submitted_at is None


@pytest.mark.parametrize(
    ("header", "column", "reason"),
    [
        ("email,Favourite Colour", "Favourite Colour", "is not a field of the mapping"),
        ("email,Act-On Primary Score", "Act-On Primary Score", "is a score"),
        ("email,Job Title,job_title", "job_title", "same field as column 'Job Title'"),
        ("First Name", "email", "missing required column 'email'"),
    ],
)
def test_a_contacts_header_problem_rejects_the_file_on_line_1(
    header: str, column: str, reason: str, mapping: Mapping
) -> None:
    validated = validate(
        "contacts.csv", csv_text(header, "x@example.com" + "," * header.count(",")), mapping
    )
    (problem,) = validated.problems
    assert (problem.line, problem.column) == (1, column)
    assert reason in problem.reason
    assert validated.rejected_rows == validated.rows == 1


def test_an_unknown_file_name_is_one_problem_on_line_1(mapping: Mapping) -> None:
    validated = validate("leads.csv", csv_text("email", "a@example.com"), mapping)
    (problem,) = validated.problems
    assert problem.line == 1 and problem.value == "leads.csv"
    assert "contacts*.csv" in problem.reason and validated.kind is None


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("opt_outs.csv", "email,opted_out_at,reason"),
        ("activity.csv", "email,activity"),
        ("edits.csv", "email,field,value"),
    ],
)
def test_a_missing_or_unknown_column_rejects_the_file(
    name: str, header: str, mapping: Mapping
) -> None:
    validated = validate(name, csv_text(header), mapping)
    assert [p.line for p in validated.problems] == [1]
    assert not validated.valid


def test_opt_outs_and_opt_ins_may_name_any_address(mapping: Mapping) -> None:
    for name, column in (("opt_outs.csv", "opted_out_at"), ("opt_ins.csv", "opted_in_at")):
        content = csv_text(
            f"email,{column}", "Stranger@Example.com,", "lead@example.com,2026-11-02"
        )
        validated = validate(name, content, mapping)
        assert validated.records == [
            OptRow(2, "stranger@example.com", None),
            OptRow(3, "lead@example.com", datetime(2026, 11, 2, tzinfo=UTC)),
        ]
        assert [c.contact_id for c in validated.directory["lead@example.com"]] == ["00Q1"]


def test_edits_need_a_known_field_a_contact_a_fitting_value_and_a_time(mapping: Mapping) -> None:
    content = csv_text(
        "email,field,value,changed_at",
        "lead@example.com,Job Title,CTO,2026-11-20T10:00:00Z",
        "lead@example.com,Annual Revenue,lots,2026-11-20T10:00:00Z",
        "stranger@example.com,Job Title,CTO,2026-11-20T10:00:00Z",
        "lead@example.com,Shoe Size,44,2026-11-20T10:00:00Z",
        "lead@example.com,Email,new@example.com,2026-11-20T10:00:00Z",
        "lead@example.com,Job Title,CTO,",
        "lead@example.com,Fit Score,99,2026-11-20T10:00:00Z",
    )
    validated = validate("edits.csv", content, mapping)
    found = [(line, column, reason) for line, column, _, reason in problems(validated)]
    assert found == [
        (3, "value", "not a number"),
        (4, "email", "no Act-On contact has this email"),
        (5, "field", found[2][2]),
        (6, "field", "the email identifies the contact: it cannot be edited by an import"),
        (7, "changed_at", "changed_at is required"),
        (8, "field", found[5][2]),
    ]
    assert "not a field of the mapping" in found[2][2]
    assert "is a score" in found[5][2]


def test_valid_edits_carry_the_converted_value_and_an_empty_value_clears(mapping: Mapping) -> None:
    content = csv_text(
        "email,field,value,changed_at",
        "lead@example.com,annual_revenue,1200.5,2026-11-20T10:00:00Z",
        "form@example.com,Notes,,2026-11-21",
    )
    validated = validate("edits.csv", content, mapping)
    assert validated.valid
    revenue, notes = validated.records
    assert isinstance(revenue, EditRow) and isinstance(notes, EditRow)
    assert (revenue.field.destination, revenue.value) == ("Annual Revenue", 1200.5)
    assert (notes.field.destination, notes.value) == ("Notes", None)
    assert notes.changed_at == datetime(2026, 11, 21, tzinfo=UTC)


def test_activity_needs_a_known_activity_a_time_and_a_contact(mapping: Mapping) -> None:
    content = csv_text(
        "email,activity,occurred_at,asset",
        "lead@example.com,Email_Click,2026-11-20T10:00:00Z,newsletter-11",
        "lead@example.com,phone_call,2026-11-20T10:00:00Z,",
        "lead@example.com,web_visit,,",
        "stranger@example.com,web_visit,2026-11-20T10:00:00Z,",
    )
    validated = validate("activity.csv", content, mapping)
    assert [(p.line, p.column) for p in validated.problems] == [
        (3, "activity"),
        (4, "occurred_at"),
        (5, "email"),
    ]
    valid = validate("activity.csv", csv_text(*content.splitlines()[:2]), mapping)
    assert valid.records == [
        ActivityRow(
            2,
            "lead@example.com",
            "email_click",
            datetime(2026, 11, 20, 10, tzinfo=UTC),
            "newsletter-11",
        )
    ]
