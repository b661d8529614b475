"""The mapping rules that need no CRM (the article's Step 1 and 2, DESIGN §4).

``check_mapping`` returns every broken rule as a ``MappingProblem`` naming the file, the entry,
the line and the fix; ``load_mapping`` calls it and raises if any. Checks against the CRM's
``describe()`` (fields exist, types fit) live in ``crm_rules.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from acton_pipelines.mapping.conditions import condition_problem, walk_conditions
from acton_pipelines.mapping.config_files import (
    CONTACT_MAPPING_FILE,
    SCORE_SHEETS_FILE,
    SEGMENTS_FILE,
)
from acton_pipelines.mapping.models import (
    BUILTIN_COLUMNS,
    DEFAULT_SCORE_SHEET,
    DEFAULT_SEGMENTS,
    PRIMARY_SCORE_FIELD,
    STANDARD_FIELDS,
    Affiliation,
    DataType,
    FieldMapping,
    Mapping,
    Rule,
    ScoreSheet,
    SegmentRule,
)
from acton_pipelines.mapping.problems import MappingProblem, closest, did_you_mean

# CRM names end up in SOQL, so only API names and one relationship hop are accepted.
CRM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")

# Columns of acton_contacts that are not destination fields (DESIGN §5).
RESERVED_COLUMNS = frozenset({*BUILTIN_COLUMNS, "updated_at"})

# "A default sheet and up to four more" (DESIGN §4, Scores).
MAX_SCORE_SHEETS = 5

Origin = tuple[str, str, int | None]


def check_mapping(mapping: Mapping) -> list[MappingProblem]:
    """Every rule of the mapping that can be checked without the CRM, as problems."""
    return [
        *_check_destinations(mapping.fields),
        *_check_crm_names(mapping.fields),
        *_check_email_mapped(mapping.fields),
        *_check_score_mapped(mapping.fields),
        *_check_score_fields(mapping),
        *_check_score_sheets(mapping.score_sheets),
        *_check_rule_fields(mapping),
        *_check_segments(mapping.segments),
        *_check_affiliation(mapping.affiliation),
    ]


def _origin(origin: Origin, default_file: str, default_entry: str) -> Origin:
    """The model's origin, or a sensible place when the model was built in code."""
    file, entry, line = origin
    return (file or default_file, entry or default_entry, line)


def _field_origin(field: FieldMapping) -> Origin:
    section = "standard_fields" if field.standard else "custom_fields"
    return _origin(field.origin, CONTACT_MAPPING_FILE, section)


def field_problem(field: FieldMapping, message: str) -> MappingProblem:
    """A problem at a field's entry, labelled with its destination."""
    return MappingProblem.at(_field_origin(field), field.destination, message)


def _where(field: FieldMapping) -> str:
    """``custom_fields[1], line 20``: the other entry of a clash."""
    _, entry, line = _field_origin(field)
    return f"{entry}, line {line}" if line is not None else entry


def _check_destinations(fields: Sequence[FieldMapping]) -> Iterable[MappingProblem]:
    by_name: dict[str, FieldMapping] = {}
    by_column: dict[str, FieldMapping] = {}
    standard_lower = {name.lower(): name for name in STANDARD_FIELDS}
    for field in fields:
        name = field.destination
        if field.standard and name not in STANDARD_FIELDS:
            yield field_problem(
                field,
                f"'{name}' is not an Act-On standard field{did_you_mean(name, STANDARD_FIELDS)}; "
                "use a standard field name, or move the entry to custom_fields (with a type) "
                "to create a custom field",
            )
        if not field.standard and name.lower() in standard_lower:
            yield field_problem(
                field,
                f"'{name}' is an Act-On standard field, not a custom one; move the entry to "
                f"standard_fields as '{standard_lower[name.lower()]}' and drop its 'type'",
            )
        if not field.column:
            yield field_problem(
                field, "the destination needs letters or digits; give the field a name"
            )
            continue
        other = by_name.get(name.lower())
        if other is not None:
            yield field_problem(
                field,
                f"destination '{name}' is also used by {_where(other)}; destination names must "
                "be unique (ignoring case): rename or remove one of them",
            )
            continue
        by_name[name.lower()] = field
        if field.column in RESERVED_COLUMNS:
            yield field_problem(
                field,
                f"'{name}' would become warehouse column '{field.column}', which is a built-in "
                f"column of every Act-On contact; rename the field (e.g. 'CRM {name}')",
            )
            continue
        other = by_column.get(field.column)
        if other is not None:
            yield field_problem(
                field,
                f"'{name}' would become warehouse column '{field.column}', like "
                f"'{other.destination}' ({_where(other)}); rename one of them",
            )
            continue
        by_column[field.column] = field


def _check_crm_names(fields: Sequence[FieldMapping]) -> Iterable[MappingProblem]:
    for field in fields:
        for entity, name in (("lead", field.lead), ("contact", field.contact)):
            if name is None or CRM_NAME.match(name):
                continue
            hint = (
                "only one relationship hop is supported (e.g. 'Account.Name')"
                if name.count(".") > 1
                else "write an API name such as 'Email' or 'Renewal_Date__c', or one "
                "relationship hop such as 'Account.Name'"
            )
            yield field_problem(field, f"{entity} '{name}' is not a valid CRM API name; {hint}")


def _check_email_mapped(fields: Sequence[FieldMapping]) -> Iterable[MappingProblem]:
    email = next((f for f in fields if f.destination == "Email"), None)
    if email is None:
        yield MappingProblem(
            CONTACT_MAPPING_FILE,
            "standard_fields",
            None,
            "no Email field: you must map an email field to your CRM; add "
            "'- {destination: Email, lead: Email, contact: Email}' to standard_fields",
        )
    elif email.lead is None and email.contact is None:
        yield field_problem(
            email,
            "you must map an email field to your CRM; set lead and/or contact to the CRM's "
            "email field (usually 'Email')",
        )


def _check_score_mapped(fields: Sequence[FieldMapping]) -> Iterable[MappingProblem]:
    scores = [f for f in fields if f.type is DataType.SCORE]
    if any(f.lead or f.contact for f in scores):
        return
    fix = (
        "set lead and contact to a CRM Number or Text field (e.g. ActOn_Score__c; ask your CRM "
        "administrator to create one if needed)"
    )
    if scores:
        yield field_problem(scores[0], f"you must map at least one score field to your CRM; {fix}")
    else:
        yield MappingProblem(
            CONTACT_MAPPING_FILE,
            "standard_fields",
            None,
            f"no score field: you must map at least one score field to your CRM; add "
            f"'{PRIMARY_SCORE_FIELD}' to standard_fields and {fix}",
        )


def _check_score_fields(mapping: Mapping) -> Iterable[MappingProblem]:
    sheet_names = [s.name for s in mapping.score_sheets]
    pushed_to: dict[str, FieldMapping] = {}
    for field in mapping.fields:
        if field.type is not DataType.SCORE:
            if field.score_sheet is not None:
                yield field_problem(
                    field,
                    "score_sheet only applies to Score fields; remove it, or make the field a "
                    "custom field of type Score",
                )
            continue
        yield from _check_score_sheet_binding(field, sheet_names)
        if field.allow_push is False:
            yield field_problem(
                field,
                "score fields always push to the CRM; remove the mapping to stop pushing the "
                "score (and remove 'allow_push: false')",
            )
        if field.lead and field.contact and field.lead.lower() != field.contact.lower():
            yield field_problem(
                field,
                f"a score field must use the same API name on Lead and Contact, but lead is "
                f"'{field.lead}' and contact is '{field.contact}'; create the CRM field with "
                "one name on both objects and map that name",
            )
        for name in dict.fromkeys(n for n in (field.lead, field.contact) if n):
            if "." in name:
                yield field_problem(
                    field,
                    f"'{name}' is a field of a related record, but scores are pushed to the "
                    "Lead or Contact itself; map a field of the Lead or Contact",
                )
                continue
            other = pushed_to.setdefault(name.lower(), field)
            if other is not field:
                yield field_problem(
                    field,
                    f"'{other.destination}' ({_where(other)}) already pushes its score to "
                    f"'{name}'; each score field needs its own CRM field",
                )


def _check_score_sheet_binding(
    field: FieldMapping, sheet_names: Sequence[str]
) -> Iterable[MappingProblem]:
    listed = ", ".join(sheet_names) or "(none defined)"
    sheet = field.score_sheet
    if sheet is None:
        yield field_problem(
            field,
            f"a Score field needs a score sheet; add 'score_sheet: <name>' with one of: {listed}",
        )
    elif sheet not in sheet_names:
        yield field_problem(
            field,
            f"score sheet '{sheet}' does not exist{did_you_mean(sheet, sheet_names)}; use one of: "
            f"{listed}, or add it to {SCORE_SHEETS_FILE}",
        )
    if field.destination == PRIMARY_SCORE_FIELD and sheet not in (None, DEFAULT_SCORE_SHEET):
        yield field_problem(
            field,
            f"{PRIMARY_SCORE_FIELD} is always scored by the '{DEFAULT_SCORE_SHEET}' sheet; set "
            f"score_sheet: {DEFAULT_SCORE_SHEET} (or remove it) and map a custom Score field to "
            f"use sheet '{sheet}'",
        )


def _sheet_origin(sheet: ScoreSheet) -> Origin:
    return _origin(sheet.origin, SCORE_SHEETS_FILE, "score_sheets")


def _check_score_sheets(sheets: Sequence[ScoreSheet]) -> Iterable[MappingProblem]:
    if len(sheets) > MAX_SCORE_SHEETS:
        yield MappingProblem.at(
            _sheet_origin(sheets[MAX_SCORE_SHEETS]),
            sheets[MAX_SCORE_SHEETS].name,
            f"at most {MAX_SCORE_SHEETS} score sheets are allowed (a default sheet and up to "
            f"four more), found {len(sheets)}; remove or merge sheets",
        )
    seen: dict[str, ScoreSheet] = {}
    for sheet in sheets:
        if not sheet.name.strip():
            yield MappingProblem.at(_sheet_origin(sheet), "", "the score sheet needs a name")
        other = seen.setdefault(sheet.name.lower(), sheet)
        if other is not sheet:
            yield MappingProblem.at(
                _sheet_origin(sheet),
                sheet.name,
                f"score sheet name '{sheet.name}' is also used on line {other.origin[2]}; "
                "score sheet names must be unique (ignoring case): rename one of them",
            )
        yield from _check_sheet_rules(sheet)
    default = seen.get(DEFAULT_SCORE_SHEET)
    if default is None:
        yield MappingProblem(
            SCORE_SHEETS_FILE,
            "score_sheets",
            None,
            f"no score sheet named '{DEFAULT_SCORE_SHEET}'; add one (name: "
            f"{DEFAULT_SCORE_SHEET}): it scores {PRIMARY_SCORE_FIELD}",
        )
    elif default.name != DEFAULT_SCORE_SHEET:
        yield MappingProblem.at(
            _sheet_origin(default),
            default.name,
            f"the default score sheet must be named exactly '{DEFAULT_SCORE_SHEET}' "
            f"(lowercase); rename '{default.name}'",
        )


def _check_sheet_rules(sheet: ScoreSheet) -> Iterable[MappingProblem]:
    names: set[str] = set()
    for rule in [*sheet.profile_rules, *sheet.behavior_rules]:
        origin = _origin(rule.origin, *_sheet_origin(sheet)[:2])
        if rule.name.lower() in names:
            yield MappingProblem.at(
                origin,
                rule.name,
                f"rule name '{rule.name}' is used twice in sheet '{sheet.name}'; rule names "
                "explain scores, so make them unique",
            )
        names.add(rule.name.lower())
    for behavior in sheet.behavior_rules:
        if behavior.within_days is not None and behavior.within_days < 1:
            yield MappingProblem.at(
                _origin(behavior.origin, *_sheet_origin(sheet)[:2]),
                behavior.name,
                f"within_days must be at least 1, got {behavior.within_days}; remove it to "
                "count activity of any age",
            )


def _check_rule_fields(mapping: Mapping) -> Iterable[MappingProblem]:
    types = {**BUILTIN_COLUMNS, **{f.destination: f.type for f in mapping.fields}}
    for sheet in mapping.score_sheets:
        for rule in sheet.profile_rules:
            origin = _origin(rule.origin, *_sheet_origin(sheet)[:2])
            yield from _check_conditions(rule.when, origin, rule.name, types, "score rule")
    for segment in mapping.segments:
        origin = _origin(segment.origin, SEGMENTS_FILE, "segments")
        yield from _check_conditions(segment.when, origin, segment.name, types, "segment")


def _check_conditions(
    when: Rule, origin: Origin, name: str, types: dict[str, DataType], kind: str
) -> Iterable[MappingProblem]:
    for path, condition in walk_conditions(when):
        data_type = types.get(condition.field)
        if data_type is None:
            match = closest(condition.field, types)
            hint = f"did you mean '{match}'? Otherwise add" if match else "add"
            yield MappingProblem.at(
                origin,
                name,
                f"{path}: field '{condition.field}' used by this {kind} is not mapped; {hint} "
                f"it to {CONTACT_MAPPING_FILE} (an Act-On-only field is fine) or use a built-in "
                f"column: {', '.join(BUILTIN_COLUMNS)}",
            )
            continue
        message = condition_problem(condition, data_type)
        if message is not None:
            yield MappingProblem.at(origin, name, f"{path}: {message}")


def _check_segments(segments: Sequence[SegmentRule]) -> Iterable[MappingProblem]:
    defaults = {name.lower(): name for name in DEFAULT_SEGMENTS}
    seen: dict[str, SegmentRule] = {}
    for segment in segments:
        origin = _origin(segment.origin, SEGMENTS_FILE, "segments")
        if segment.name.lower() in defaults:
            yield MappingProblem.at(
                origin,
                segment.name,
                f"'{defaults[segment.name.lower()]}' is a default segment Act-On creates "
                "itself; give your segment another name",
            )
            continue
        other = seen.setdefault(segment.name.lower(), segment)
        if other is not segment:
            yield MappingProblem.at(
                origin,
                segment.name,
                f"segment name '{segment.name}' is also used on line {other.origin[2]}; "
                "segment names must be unique (ignoring case): rename one of them",
            )


def _check_affiliation(affiliation: Affiliation) -> Iterable[MappingProblem]:
    """The default segments test ``account_type`` with these values (``segments/rules.py``),
    and the evaluator refuses blank text, so a blank one is reported here, when the mapping
    loads, rather than when segments are built."""
    examples = {"prospect_account_types": "Prospect", "customer_account_type_prefixes": "Customer"}
    for key, example in examples.items():
        for i, value in enumerate(getattr(affiliation, key)):
            if not value.strip():
                yield MappingProblem(
                    SEGMENTS_FILE,
                    "affiliation",
                    None,
                    f"{key}[{i}] is blank; write an account type such as '{example}', or "
                    "remove the entry",
                )
