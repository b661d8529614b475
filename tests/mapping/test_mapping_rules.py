"""One test per mapping rule that needs no CRM: each asserts the file, entry, line and fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from acton_pipelines.mapping import (
    Condition,
    DataType,
    FieldMapping,
    Mapping,
    MappingProblem,
    ProfileRule,
    ScoreSheet,
    check_mapping,
)

from .conftest import line_of

Edit = Callable[[str, str, str], int]
Problems = Callable[[], list[MappingProblem]]

CONTACT = "contact_mapping.yaml"
SHEETS = "score_sheets.yaml"
SEGMENTS = "segments.yaml"


def only(problems: list[MappingProblem]) -> MappingProblem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def entry_line(config_dir: Path, file: str, text: str) -> int:
    return line_of(config_dir / file, text)


# -- Email and score must be mapped ----------------------------------------------------------


def test_email_field_must_exist(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "  - destination: Email\n    lead: Email\n    contact: Email\n", "")
    # The default sheet's "Has email" rule now reads an unmapped field: reported separately.
    problem = only([p for p in problems() if p.file == CONTACT])
    assert (problem.file, problem.entry, problem.line) == (CONTACT, "standard_fields", None)
    assert "you must map an email field to your CRM" in problem.message
    assert "add '- {destination: Email, lead: Email, contact: Email}'" in problem.message


def test_email_field_must_be_mapped_to_the_crm(edit: Edit, problems: Problems) -> None:
    line = edit(
        CONTACT,
        "  - destination: Email\n    lead: Email\n    contact: Email\n",
        "  - destination: Email\n",
    )
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == (
        CONTACT,
        'standard_fields[0] "Email"',
        line,
    )
    assert "set lead and/or contact to the CRM's email field" in problem.message


def test_a_score_field_must_be_mapped_to_the_crm(edit: Edit, problems: Problems) -> None:
    line = edit(
        CONTACT,
        "    lead: ActOn_Score__c\n    contact: ActOn_Score__c\n",
        "",
    )
    edit(CONTACT, "    lead: Fit_Score__c\n    contact: Fit_Score__c\n", "")
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == (
        CONTACT,
        'standard_fields[16] "Act-On Primary Score"',
        line - 1,
    )
    assert "you must map at least one score field to your CRM" in problem.message
    assert "set lead and contact to a CRM Number or Text field" in problem.message


def test_one_crm_score_field_is_enough(edit: Edit, config_dir: Path) -> None:
    from acton_pipelines.mapping import load_mapping

    edit(CONTACT, "    lead: Fit_Score__c\n    contact: Fit_Score__c\n", "")
    assert load_mapping(config_dir).field("Fit Score").lead is None  # type: ignore[union-attr]


def test_no_score_field_at_all(edit: Edit, problems: Problems) -> None:
    text_primary = (
        "  - destination: Act-On Primary Score\n    lead: ActOn_Score__c\n"
        "    contact: ActOn_Score__c\n    score_sheet: default\n"
    )
    edit(CONTACT, text_primary, "")
    edit(
        CONTACT,
        "    type: Score\n    lead: Fit_Score__c\n    contact: Fit_Score__c\n"
        "    score_sheet: fit\n",
        "    type: Number\n    lead: Fit_Score__c\n    contact: Fit_Score__c\n",
    )
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == (CONTACT, "standard_fields", None)
    assert "no score field: you must map at least one score field" in problem.message
    assert "add 'Act-On Primary Score' to standard_fields" in problem.message


# -- destinations ------------------------------------------------------------------------------


def test_destinations_are_unique_ignoring_case(
    edit: Edit, problems: Problems, config_dir: Path
) -> None:
    line = edit(CONTACT, "  - destination: Notes\n", "  - destination: interests\n")
    problem = only(problems())
    first = entry_line(config_dir, CONTACT, "- destination: Interests")
    assert (problem.file, problem.entry, problem.line) == (
        CONTACT,
        'custom_fields[7] "interests"',
        line,
    )
    assert problem.message == (
        f"destination 'interests' is also used by custom_fields[0], line {first}; destination "
        "names must be unique (ignoring case): rename or remove one of them"
    )


def test_destination_columns_are_unique(edit: Edit, problems: Problems, config_dir: Path) -> None:
    line = edit(CONTACT, "  - destination: Notes\n", "  - destination: Mailing State Province\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[7] "Mailing State Province"', line)
    assert (
        "would become warehouse column 'mailing_state_province', like 'Mailing State/Province'"
        in (problem.message)
    )
    assert problem.message.endswith("rename one of them")


def test_destination_may_not_take_a_builtin_column(edit: Edit, problems: Problems) -> None:
    line = edit(CONTACT, "  - destination: Notes\n", "  - destination: Record Type\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[7] "Record Type"', line)
    assert "column 'record_type', which is a built-in column" in problem.message
    assert "rename the field (e.g. 'CRM Record Type')" in problem.message


def test_standard_field_must_be_a_standard_name(edit: Edit, problems: Problems) -> None:
    line = edit(CONTACT, "  - destination: Job Title\n", "  - destination: Job Titel\n")
    found = problems()
    problem = next(p for p in found if "not an Act-On standard field" in p.message)
    assert (problem.file, problem.entry, problem.line) == (
        CONTACT,
        'standard_fields[4] "Job Titel"',
        line,
    )
    assert problem.message == (
        "'Job Titel' is not an Act-On standard field (did you mean 'Job Title'?); use a "
        "standard field name, or move the entry to custom_fields (with a type) to create a "
        "custom field"
    )


def test_custom_field_may_not_use_a_standard_name(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "  - destination: Fax\n    lead: Fax\n    contact: Fax\n", "")
    line = edit(CONTACT, "  - destination: Notes\n", "  - destination: fax\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[7] "fax"', line)
    assert problem.message == (
        "'fax' is an Act-On standard field, not a custom one; move the entry to "
        "standard_fields as 'Fax' and drop its 'type'"
    )


# -- score fields and sheets -------------------------------------------------------------------


def test_score_field_names_an_existing_sheet(edit: Edit, problems: Problems) -> None:
    line = edit(CONTACT, "    score_sheet: fit\n", "    score_sheet: fitt\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[6] "Fit Score"', line - 4)
    assert problem.message == (
        "score sheet 'fitt' does not exist (did you mean 'fit'?); use one of: default, fit, "
        "or add it to score_sheets.yaml"
    )


def test_custom_score_field_needs_a_sheet(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "    score_sheet: fit\n", "")
    problem = only(problems())
    assert problem.entry == 'custom_fields[6] "Fit Score"'
    assert "add 'score_sheet: <name>' with one of: default, fit" in problem.message


def test_primary_score_is_bound_to_the_default_sheet(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "    score_sheet: default\n", "    score_sheet: fit\n")
    problem = only(problems())
    assert problem.entry == 'standard_fields[16] "Act-On Primary Score"'
    assert "always scored by the 'default' sheet; set score_sheet: default" in problem.message


def test_score_field_uses_one_api_name(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "    contact: Fit_Score__c\n", "    contact: Contact_Fit__c\n")
    problem = only(problems())
    assert problem.entry == 'custom_fields[6] "Fit Score"'
    assert "lead is 'Fit_Score__c' and contact is 'Contact_Fit__c'" in problem.message
    assert "create the CRM field with one name on both objects" in problem.message


def test_score_field_cannot_switch_push_off(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "    score_sheet: fit\n", "    score_sheet: fit\n    allow_push: false\n")
    problem = only(problems())
    assert problem.entry == 'custom_fields[6] "Fit Score"'
    assert problem.message.startswith(
        "score fields always push to the CRM; remove the mapping to stop pushing the score"
    )


def test_score_field_is_on_the_record_itself(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "    contact: Fit_Score__c\n", "    contact: Account.Fit_Score__c\n")
    edit(CONTACT, "    lead: Fit_Score__c\n", "")
    problem = only(problems())
    assert problem.entry == 'custom_fields[6] "Fit Score"'
    assert "'Account.Fit_Score__c' is a field of a related record" in problem.message
    assert "map a field of the Lead or Contact" in problem.message


def test_score_fields_need_their_own_crm_field(edit: Edit, problems: Problems) -> None:
    edit(
        CONTACT, "    lead: Fit_Score__c\n    contact: Fit_Score__c\n", "    lead: ActOn_Score__c\n"
    )
    problem = only(problems())
    assert problem.entry == 'custom_fields[6] "Fit Score"'
    assert "'Act-On Primary Score' (standard_fields[16], line" in problem.message
    assert "already pushes its score to 'ActOn_Score__c'" in problem.message
    assert "each score field needs its own CRM field" in problem.message


def test_score_sheet_only_on_score_fields(edit: Edit, problems: Problems) -> None:
    line = edit(
        CONTACT, "    contact: Department\n", "    contact: Department\n    score_sheet: fit\n"
    )
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[5] "Department"', line - 2)
    assert "score_sheet only applies to Score fields; remove it" in problem.message


def test_at_most_five_score_sheets(edit: Edit, problems: Problems, config_dir: Path) -> None:
    extra = "".join(f"  - name: extra{i}\n    profile_rules: []\n" for i in range(4))
    with (config_dir / SHEETS).open("a") as f:
        f.write(extra)
    problem = only(problems())
    assert problem.file == SHEETS
    assert problem.entry == 'score_sheets[5] "extra3"'
    assert problem.line == entry_line(config_dir, SHEETS, "- name: extra3")
    assert "at most 5 score sheets are allowed (a default sheet and up to four more)" in (
        problem.message
    )
    assert "remove or merge sheets" in problem.message


def test_score_sheet_names_are_unique(edit: Edit, problems: Problems, config_dir: Path) -> None:
    edit(SHEETS, "  - name: fit\n", "  - name: Default\n")
    edit(CONTACT, "    score_sheet: fit\n", "    score_sheet: default\n")
    problem = only(problems())
    first = entry_line(config_dir, SHEETS, "- name: default")
    assert problem.entry == 'score_sheets[1] "Default"'
    assert problem.line == entry_line(config_dir, SHEETS, "- name: Default")
    assert f"also used on line {first}" in problem.message
    assert "must be unique (ignoring case): rename one of them" in problem.message


def test_a_sheet_named_default_is_required(edit: Edit, problems: Problems) -> None:
    edit(SHEETS, "  - name: default\n", "  - name: main\n")
    edit(CONTACT, "    score_sheet: default\n", "")
    found = problems()
    problem = next(p for p in found if p.file == SHEETS)
    assert (problem.entry, problem.line) == ("score_sheets", None)
    assert "no score sheet named 'default'; add one (name: default)" in problem.message


def test_default_sheet_name_is_lowercase(edit: Edit, problems: Problems) -> None:
    line = edit(SHEETS, "  - name: default\n", "  - name: Default\n")
    found = problems()
    problem = next(p for p in found if p.file == SHEETS)
    assert (problem.entry, problem.line) == ('score_sheets[0] "Default"', line)
    assert "must be named exactly 'default' (lowercase); rename 'Default'" in problem.message


def test_rule_names_are_unique_in_a_sheet(edit: Edit, problems: Problems) -> None:
    line = edit(SHEETS, "      - name: Target industry\n", "      - name: Senior job title\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == (
        'score_sheets[0] "default" profile_rules[1] "Senior job title"',
        line,
    )
    assert "used twice in sheet 'default'" in problem.message
    assert "make them unique" in problem.message


def test_behavior_window_is_positive(edit: Edit, problems: Problems) -> None:
    line = edit(
        SHEETS,
        "{name: Clicked an email, activity: email_click, points: 5, within_days: 30}",
        "{name: Clicked an email, activity: email_click, points: 5, within_days: 0}",
    )
    problem = only(problems())
    assert (problem.entry, problem.line) == (
        'score_sheets[0] "default" behavior_rules[1] "Clicked an email"',
        line,
    )
    assert "within_days must be at least 1, got 0; remove it" in problem.message


# -- fields used by rules ----------------------------------------------------------------------


def test_score_rule_field_must_be_mapped(edit: Edit, problems: Problems) -> None:
    line = edit(
        SHEETS,
        "when: {field: Department, op: in",
        "when: {field: Departmnet, op: in",
    )
    problem = only(problems())
    assert problem.file == SHEETS
    assert problem.entry == 'score_sheets[1] "fit" profile_rules[1] "Technical department"'
    assert problem.line == line - 1
    assert problem.message.startswith(
        "when: field 'Departmnet' used by this score rule is not mapped; did you mean "
        "'Department'? Otherwise add it to contact_mapping.yaml"
    )
    assert "or use a built-in column: contact_id, external_id, record_type" in problem.message


def test_segment_field_must_be_mapped(edit: Edit, problems: Problems, config_dir: Path) -> None:
    edit(
        SEGMENTS,
        "        - {field: Newsletter, op: equals, value: true}",
        "        - {field: Birthday, op: is_not_empty}",
    )
    problem = only(problems())
    assert problem.file == SEGMENTS
    assert problem.entry == 'segments[1] "Engaged customers due for renewal"'
    assert problem.line == entry_line(config_dir, SEGMENTS, "- name: Engaged customers")
    assert problem.message.startswith(
        "when.all[1]: field 'Birthday' used by this segment is not mapped; add it to "
        "contact_mapping.yaml (an Act-On-only field is fine)"
    )


def test_act_on_only_and_builtin_fields_can_be_used(edit: Edit, config_dir: Path) -> None:
    from acton_pipelines.mapping import load_mapping

    edit(
        SEGMENTS,
        "        - {field: Newsletter, op: equals, value: true}",
        "        - {field: Notes, op: is_not_empty}\n        - {field: owner_email, op: "
        "contains, value: '@example.com'}",
    )
    assert len(load_mapping(config_dir).segments) == 2


# -- operators and values fit the field type ---------------------------------------------------


def test_ordering_operator_needs_an_ordered_type(edit: Edit, problems: Problems) -> None:
    edit(
        SHEETS,
        "when: {field: Department, op: in, value: [Engineering, IT, Operations]}",
        "when: {field: Department, op: greater_than, value: M}",
    )
    problem = only(problems())
    assert problem.entry == 'score_sheets[1] "fit" profile_rules[1] "Technical department"'
    assert problem.message == (
        "when: operator 'greater_than' does not work on 'Department' (Text field); use one of "
        "equals, not_equals, in, not_in, is_empty, is_not_empty, contains, starts_with"
    )


def test_number_value_must_parse(edit: Edit, problems: Problems) -> None:
    edit(SHEETS, "op: greater_than, value: 1000000}", "op: greater_than, value: a million}")
    problem = only(problems())
    assert problem.entry == 'score_sheets[1] "fit" profile_rules[0] "Large company"'
    assert problem.message == (
        "when: value 'a million' does not fit 'Annual Revenue' (Number field); write a number "
        "such as 1000000"
    )


def test_date_value_must_parse(edit: Edit, problems: Problems) -> None:
    edit(SEGMENTS, "op: less_than, value: 2027-01-01}", "op: less_than, value: next year}")
    problem = only(problems())
    assert problem.entry == 'segments[1] "Engaged customers due for renewal"'
    assert problem.message == (
        "when.all[2]: value 'next year' does not fit 'Renewal Date' (Date field); write a date "
        "as YYYY-MM-DD, e.g. 2026-12-31"
    )


def test_boolean_value_must_be_true_or_false(edit: Edit, problems: Problems) -> None:
    edit(
        SEGMENTS,
        "{field: Newsletter, op: equals, value: true}",
        "{field: Newsletter, op: equals, value: 'yes'}",
    )
    problem = only(problems())
    assert "when.all[1]: value 'yes' does not fit 'Newsletter' (Boolean field)" in problem.message
    assert "write true or false, without quotes" in problem.message


def test_in_needs_a_list(edit: Edit, problems: Problems) -> None:
    edit(SHEETS, "op: in, value: [Engineering, IT, Operations]}", "op: in, value: Engineering}")
    problem = only(problems())
    assert problem.message == (
        "when: operator 'in' needs a list of values, e.g. value: [A, B]; got 'Engineering'"
    )


def test_is_empty_takes_no_value(edit: Edit, problems: Problems) -> None:
    edit(SHEETS, "{field: Email, op: is_not_empty}", "{field: Email, op: is_not_empty, value: x}")
    problem = only(problems())
    assert problem.entry == 'score_sheets[0] "default" profile_rules[2] "Has email"'
    assert problem.message == "when: operator 'is_not_empty' takes no value; remove 'value: 'x''"


# -- segments ------------------------------------------------------------------------------------


def test_segment_may_not_take_a_default_name(
    edit: Edit, problems: Problems, config_dir: Path
) -> None:
    line = edit(
        SEGMENTS,
        "  - name: Senior decision makers in target industries\n",
        "  - name: all leads\n",
    )
    problem = only(problems())
    assert (problem.file, problem.entry, problem.line) == (
        SEGMENTS,
        'segments[0] "all leads"',
        line,
    )
    assert problem.message == (
        "'All Leads' is a default segment Act-On creates itself; give your segment another name"
    )


def test_segment_names_are_unique(edit: Edit, problems: Problems, config_dir: Path) -> None:
    first = entry_line(config_dir, SEGMENTS, "- name: Senior decision makers")
    line = edit(
        SEGMENTS,
        "  - name: Engaged customers due for renewal\n",
        "  - name: Senior Decision Makers in target industries\n",
    )
    problem = only(problems())
    assert (problem.entry, problem.line) == (
        'segments[1] "Senior Decision Makers in target industries"',
        line,
    )
    assert f"also used on line {first}" in problem.message
    assert "rename one of them" in problem.message


# -- CRM names are safe for SOQL -----------------------------------------------------------------


def test_crm_names_must_be_api_names(edit: Edit, problems: Problems) -> None:
    line = edit(CONTACT, "    contact: Department\n", "    contact: Department FROM User --\n")
    problem = only(problems())
    assert (problem.entry, problem.line) == ('custom_fields[5] "Department"', line - 2)
    assert problem.message == (
        "contact 'Department FROM User --' is not a valid CRM API name; write an API name "
        "such as 'Email' or 'Renewal_Date__c', or one relationship hop such as 'Account.Name'"
    )


def test_only_one_relationship_hop(edit: Edit, problems: Problems) -> None:
    edit(CONTACT, "    contact: Account.Industry\n", "    contact: Account.Owner.Name\n")
    problem = only(problems())
    assert problem.entry == 'standard_fields[13] "Industry"'
    assert "only one relationship hop is supported" in problem.message


# -- a mapping built in code ---------------------------------------------------------------------


def test_mapping_built_in_code_gets_default_places() -> None:
    mapping = Mapping(
        fields=[
            FieldMapping(destination="Email", type=DataType.EMAIL, lead="Email"),
            FieldMapping(
                destination="Act-On Primary Score",
                type=DataType.SCORE,
                lead="Score__c",
                score_sheet="default",
            ),
        ],
        score_sheets=[
            ScoreSheet(
                name="default",
                profile_rules=[
                    ProfileRule(name="r", when=Condition(field="Phone", op="is_empty"), points=1)
                ],
            )
        ],
    )
    problem = only(check_mapping(mapping))
    assert (problem.file, problem.entry, problem.line) == (SHEETS, 'score_sheets "r"', None)
    assert "field 'Phone' used by this score rule is not mapped" in problem.message
