"""Loading mapping_config/: the default mapping, and structural problems with their lines."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from acton_pipelines.mapping import (
    STANDARD_FIELDS,
    AllOf,
    AnyOf,
    Condition,
    DataType,
    MappingError,
    MappingProblem,
    load_mapping,
)

from .conftest import REPO_CONFIG, line_of

Edit = Callable[[str, str, str], int]
Problems = Callable[[], list[MappingProblem]]


def only(problems: list[MappingProblem]) -> MappingProblem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_default_mapping_loads() -> None:
    mapping = load_mapping(REPO_CONFIG)

    assert mapping.duplicate_email_policy == "keep_both"
    assert mapping.push_policy == "two_way"
    assert [f.destination for f in mapping.fields if f.standard] == [
        "Email",
        "First Name",
        "Last Name",
        "Company",
        "Job Title",
        "Phone",
        "Mobile Phone",
        "Fax",
        "Mailing Street",
        "Mailing City",
        "Mailing State/Province",
        "Mailing Zip/Postal Code",
        "Mailing Country",
        "Industry",
        "Lead Source",
        "Status",
        "Act-On Primary Score",
    ]
    custom = {f.destination: f for f in mapping.fields if not f.standard}
    assert {name: f.type for name, f in custom.items()} == {
        "Interests": DataType.MULTI_TEXT,
        "Renewal Date": DataType.DATE,
        "Newsletter": DataType.BOOLEAN,
        "Last Event At": DataType.DATETIME,
        "Annual Revenue": DataType.NUMBER,
        "Department": DataType.TEXT,
        "Fit Score": DataType.SCORE,
        "Notes": DataType.TEXT,
    }
    assert (custom["Notes"].lead, custom["Notes"].contact) == (None, None)
    assert custom["Renewal Date"].lead is None
    assert custom["Fit Score"].score_sheet == "fit"
    assert mapping.field("Company").source("Contact") == "Account.Name"  # type: ignore[union-attr]
    assert mapping.field("Status").contact is None  # type: ignore[union-attr]
    # Standard fields take Act-On's data type.
    for field in mapping.fields:
        if field.standard:
            assert field.type is STANDARD_FIELDS[field.destination]
    assert mapping.email_field.lead == "Email"
    assert [f.destination for f in mapping.score_fields] == ["Act-On Primary Score", "Fit Score"]
    assert [s.name for s in mapping.score_sheets] == ["default", "fit"]
    assert len(mapping.segments) == 2
    assert mapping.affiliation.prospect_account_types == ["Prospect"]
    assert mapping.source_dir == str(REPO_CONFIG)


def test_entries_remember_file_entry_and_line() -> None:
    mapping = load_mapping(REPO_CONFIG)
    contact_file = REPO_CONFIG / "contact_mapping.yaml"

    renewal = mapping.field("Renewal Date")
    assert renewal is not None
    assert renewal.origin == (
        "contact_mapping.yaml",
        "custom_fields[1]",
        line_of(contact_file, "- destination: Renewal Date"),
    )
    email = mapping.field("Email")
    assert email is not None
    assert email.origin == (
        "contact_mapping.yaml",
        "standard_fields[0]",
        line_of(contact_file, "- destination: Email"),
    )
    fit = mapping.sheet("fit")
    assert fit is not None
    assert fit.origin == (
        "score_sheets.yaml",
        "score_sheets[1]",
        line_of(REPO_CONFIG / "score_sheets.yaml", "- name: fit"),
    )
    rule = fit.profile_rules[1]
    assert rule.origin == (
        "score_sheets.yaml",
        'score_sheets[1] "fit" profile_rules[1]',
        line_of(REPO_CONFIG / "score_sheets.yaml", "- name: Technical department"),
    )
    segment = mapping.segments[1]
    assert segment.origin == (
        "segments.yaml",
        "segments[1]",
        line_of(REPO_CONFIG / "segments.yaml", "- name: Engaged customers due for renewal"),
    )


def test_rules_parse_into_nested_groups() -> None:
    mapping = load_mapping(REPO_CONFIG)
    when = mapping.segments[1].when
    assert isinstance(when, AllOf)
    assert isinstance(when.all[0], AnyOf)
    assert when.all[0].any[1] == Condition(
        field="won_opportunity_count", op="greater_than", value=0
    )
    assert when.all[2] == Condition(field="Renewal Date", op="less_than", value=date(2027, 1, 1))


def test_primary_score_defaults_to_the_default_sheet(config_dir: Path, edit: Edit) -> None:
    edit(
        "contact_mapping.yaml",
        "    contact: ActOn_Score__c\n    score_sheet: default\n",
        "    contact: ActOn_Score__c\n",
    )
    mapping = load_mapping(config_dir)
    assert mapping.field("Act-On Primary Score").score_sheet == "default"  # type: ignore[union-attr]


def test_segments_file_is_optional(config_dir: Path) -> None:
    (config_dir / "segments.yaml").unlink()
    mapping = load_mapping(config_dir)
    assert mapping.segments == []
    assert mapping.affiliation.customer_account_type_prefixes == ["Customer"]


@pytest.mark.parametrize("file", ["contact_mapping.yaml", "score_sheets.yaml"])
def test_missing_required_file(config_dir: Path, problems: Problems, file: str) -> None:
    (config_dir / file).unlink()
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == (file, "", None)
    assert "the file is missing from" in problem.message
    assert "create it with" in problem.message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping(tmp_path / "nowhere")
    problem = only(caught.value.problems)
    assert "folder does not exist" in problem.message
    assert "contact_mapping.yaml and score_sheets.yaml" in problem.message


def test_yaml_syntax_error_points_at_its_line(edit: Edit, problems: Problems) -> None:
    line = edit(
        "score_sheets.yaml",
        "            - {field: Job Title, op: contains, value: VP}",
        "            - {field: Job Title, op: contains, value: VP",
    )
    problem = only(problems())
    assert problem.file == "score_sheets.yaml"
    assert problem.entry == ""
    # PyYAML notices the unclosed brace at the next line.
    assert problem.line is not None and line <= problem.line <= line + 1
    assert "not valid YAML" in problem.message
    assert "check the indentation, colons and quotes" in problem.message


def test_bad_indentation_is_a_syntax_problem(edit: Edit, problems: Problems) -> None:
    line = edit("contact_mapping.yaml", "    lead: FirstName\n", "      lead: FirstName\n")
    problem = only(problems())
    assert (problem.file, problem.line) == ("contact_mapping.yaml", line)
    assert "not valid YAML" in problem.message


def test_unknown_key_with_suggestion(edit: Edit, problems: Problems, config_dir: Path) -> None:
    edit(
        "contact_mapping.yaml",
        "    contact: Renewal_Date__c",
        "    contact: Renewal_Date__c\n    score_shet: fit",
    )
    problem = only(problems())
    assert problem.file == "contact_mapping.yaml"
    assert problem.entry == 'custom_fields[1] "Renewal Date"'
    assert problem.line == line_of(config_dir / "contact_mapping.yaml", "score_shet")
    assert problem.message == (
        "unknown key 'score_shet' (did you mean 'score_sheet'?); "
        "use destination, type, lead, contact, score_sheet, allow_push"
    )


def test_unknown_top_level_key(edit: Edit, problems: Problems) -> None:
    line = edit("contact_mapping.yaml", "push_policy: two_way", "push_polcy: two_way")
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == ("contact_mapping.yaml", "", line)
    assert "unknown key 'push_polcy' (did you mean 'push_policy'?)" in problem.message
    assert "this file holds duplicate_email_policy, push_policy" in problem.message


def test_type_on_a_standard_field(edit: Edit, problems: Problems, config_dir: Path) -> None:
    edit("contact_mapping.yaml", "  - destination: Fax\n", "  - destination: Fax\n    type: Text\n")
    problem = only(problems())
    assert problem.entry == 'standard_fields[7] "Fax"'
    assert problem.line == line_of(config_dir / "contact_mapping.yaml", "type: Text\n    lead: Fax")
    assert "standard fields have a fixed data type" in problem.message
    assert "move the entry to custom_fields" in problem.message


def test_missing_required_key(edit: Edit, problems: Problems) -> None:
    line = edit(
        "contact_mapping.yaml", "  - destination: Department\n    type: Text\n", "  - type: Text\n"
    )
    problem = only(problems())
    assert (problem.entry, problem.line) == ("custom_fields[5]", line)
    assert problem.message == "'destination' is missing; add it"


def test_wrong_value_type(edit: Edit, problems: Problems, config_dir: Path) -> None:
    edit(
        "contact_mapping.yaml",
        "    allow_push: false  # the Account",
        "    allow_push: sometimes  # the Account",
    )
    problem = only(problems())
    assert problem.entry == 'custom_fields[4] "Annual Revenue"'
    assert problem.line == line_of(config_dir / "contact_mapping.yaml", "allow_push: sometimes")
    assert "'allow_push' should be a valid boolean" in problem.message
    assert "'sometimes'; correct the value" in problem.message


@pytest.mark.parametrize(
    ("written", "hint"),
    [("Integer", ""), ("boolean", " (did you mean 'Boolean'?)")],
)
def test_data_type_must_be_from_the_list(
    edit: Edit, problems: Problems, written: str, hint: str
) -> None:
    line = edit("contact_mapping.yaml", "    type: Boolean", f"    type: {written}")
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[2] "Newsletter"', line)
    assert problem.message == (
        f"data type '{written}' is not an Act-On data type{hint}; use one of: "
        "Boolean, Date, Datetime, Text, Number, Score, Email, Multi-Text"
    )


def test_policy_must_be_a_known_value(edit: Edit, problems: Problems) -> None:
    line = edit(
        "contact_mapping.yaml",
        "duplicate_email_policy: keep_both",
        "duplicate_email_policy: newest",
    )
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == (
        "contact_mapping.yaml",
        "duplicate_email_policy",
        line,
    )
    assert problem.message == (
        "'newest' is not a duplicate_email_policy; use one of: keep_both, prefer_contact, "
        "most_recent"
    )


def test_section_must_be_a_list(edit: Edit, problems: Problems, config_dir: Path) -> None:
    text = (config_dir / "contact_mapping.yaml").read_text()
    custom = text[text.index("custom_fields:\n") :]
    line = edit("contact_mapping.yaml", custom, "custom_fields: Interests\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == ("custom_fields", line)
    assert "must be a list (entries starting with '- ')" in problem.message


def test_repeated_key_is_reported(edit: Edit, problems: Problems) -> None:
    line = edit("contact_mapping.yaml", "    lead: Title\n", "    lead: Title\n    lead: Titel\n")
    problem = only(problems())
    assert (problem.file, problem.line) == ("contact_mapping.yaml", line + 1)
    assert "key 'lead' appears twice" in problem.message
    assert "remove one of them" in problem.message


def test_bad_operator_in_a_nested_rule(edit: Edit, problems: Problems) -> None:
    line = edit(
        "score_sheets.yaml",
        "- {field: Job Title, op: contains, value: Director}",
        "- {field: Job Title, op: contain, value: Director}",
    )
    problem = only(problems())
    assert problem.file == "score_sheets.yaml"
    assert problem.entry == 'score_sheets[0] "default" profile_rules[0] "Senior job title"'
    assert problem.line == line
    assert problem.message.startswith(
        "when.any[1]: 'op' cannot be 'contain' (did you mean 'contains'?); use one of: equals"
    )


def test_group_with_extra_keys(edit: Edit, problems: Problems) -> None:
    line = edit(
        "segments.yaml",
        "    when:\n      all:\n        - any:\n            - {field: account_type",
        "    when:\n      field: Newsletter\n      all:\n        - any:\n"
        "            - {field: account_type",
    )
    problem = only(problems())
    assert problem.file == "segments.yaml"
    assert problem.entry == 'segments[1] "Engaged customers due for renewal"'
    assert problem.line == line + 1
    assert "a group holds only one key, 'all' or 'any', but it also has 'field'" in problem.message
    assert "put the extra conditions inside the list" in problem.message


def test_condition_missing_op(edit: Edit, problems: Problems) -> None:
    line = edit(
        "score_sheets.yaml", "when: {field: Email, op: is_not_empty}", "when: {field: Email}"
    )
    problem = only(problems())
    assert (problem.entry, problem.line) == (
        'score_sheets[0] "default" profile_rules[2] "Has email"',
        line,
    )
    assert problem.message == "when: 'op' is missing; add it"


def test_all_problems_are_reported_together(edit: Edit, problems: Problems) -> None:
    edit("contact_mapping.yaml", "push_policy: two_way", "push_policy: both")
    edit("score_sheets.yaml", "        points: 30", "        points: lots")
    edit("segments.yaml", "  closed_won_makes_customer: true", "  closed_won_makes_customer: maybe")
    found = problems()
    assert [p.file for p in found] == ["contact_mapping.yaml", "score_sheets.yaml", "segments.yaml"]


def test_error_text_lists_one_problem_per_line(edit: Edit, config_dir: Path) -> None:
    edit("contact_mapping.yaml", "push_policy: two_way", "push_policy: both")
    edit("score_sheets.yaml", "        points: 30", "        points: lots")
    with pytest.raises(MappingError) as caught:
        load_mapping(config_dir)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"The mapping in {config_dir} has 2 problems:"
    assert lines[1:] == [str(p) for p in caught.value.problems]
    assert lines[1].startswith("contact_mapping.yaml, line ")


def test_error_survives_pickling() -> None:
    error = MappingError([MappingProblem("a.yaml", "x", 3, "broken; fix it")], source="cfg")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems
    assert (
        str(copy)
        == str(error)
        == "The mapping in cfg has 1 problem:\na.yaml, line 3: x: broken; fix it"
    )


def test_problem_text_format() -> None:
    problem = MappingProblem(
        "contact_mapping.yaml",
        'custom_fields[2] "Renewal Date"',
        14,
        "CRM field 'Renewal_Dt__c' does not exist on Contact",
    )
    assert str(problem) == (
        'contact_mapping.yaml, line 14: custom_fields[2] "Renewal Date": '
        "CRM field 'Renewal_Dt__c' does not exist on Contact"
    )
    assert str(MappingProblem("score_sheets.yaml", "", None, "missing")) == (
        "score_sheets.yaml: missing"
    )
