"""Load ``mapping_config/`` into a validated ``Mapping``, or explain every problem.

Loading runs in two phases. First each file is parsed and each entry validated on its own
(YAML syntax, unknown or missing keys, wrong types), so one bad entry never hides the others
and every problem points at its line. Only when the files are well-formed are the cross-entry
rules of ``rules.py`` checked: running them on half-read files would add noise such as "no
Email field" when the Email entry merely has a typo in one key.
"""

from __future__ import annotations

import typing
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from acton_pipelines.mapping.config_files import (
    CONTACT_MAPPING_FILE,
    FILE_CONTENTS,
    REQUIRED_FILES,
    SCORE_SHEETS_FILE,
    SEGMENTS_FILE,
)
from acton_pipelines.mapping.models import (
    DEFAULT_SCORE_SHEET,
    PRIMARY_SCORE_FIELD,
    STANDARD_FIELDS,
    Affiliation,
    AllOf,
    AnyOf,
    BehaviorRule,
    Condition,
    DataType,
    DuplicateEmailPolicy,
    FieldMapping,
    Mapping,
    ProfileRule,
    PushPolicy,
    Rule,
    ScoreSheet,
    SegmentRule,
)
from acton_pipelines.mapping.problems import (
    MappingError,
    MappingProblem,
    did_you_mean,
    entry_label,
)
from acton_pipelines.mapping.rules import check_mapping
from acton_pipelines.mapping.yaml_lines import LineDict, load_yaml_with_lines

FILE_ORDER = (CONTACT_MAPPING_FILE, SCORE_SHEETS_FILE, SEGMENTS_FILE)

# Keys each kind of entry accepts, in the order messages list them.
TOP_LEVEL_KEYS: dict[str, tuple[str, ...]] = {
    CONTACT_MAPPING_FILE: (
        "duplicate_email_policy",
        "push_policy",
        "standard_fields",
        "custom_fields",
    ),
    SCORE_SHEETS_FILE: ("score_sheets",),
    SEGMENTS_FILE: ("affiliation", "segments"),
}
STANDARD_FIELD_KEYS = ("destination", "lead", "contact", "score_sheet", "allow_push")
CUSTOM_FIELD_KEYS = ("destination", "type", "lead", "contact", "score_sheet", "allow_push")
SCORE_SHEET_KEYS = ("name", "description", "profile_rules", "behavior_rules")
PROFILE_RULE_KEYS = ("name", "when", "points")
BEHAVIOR_RULE_KEYS = ("name", "activity", "points", "within_days", "once_per_asset")
SEGMENT_KEYS = ("name", "description", "when")
CONDITION_KEYS = ("field", "op", "value")
AFFILIATION_KEYS = tuple(Affiliation.model_fields)

RULE_SHAPE = "a condition {field, op, value} or a group {all: [...]} / {any: [...]}"

# Stands in for a `when` that failed to parse, so the rest of its entry is still validated.
_UNPARSED_RULE = Condition(field="", op="is_empty")

M = TypeVar("M", bound=BaseModel)


def load_mapping(directory: Path) -> Mapping:
    """Load and check the mapping in ``directory`` (normally ``mapping_config/``).

    Reads ``contact_mapping.yaml`` and ``score_sheets.yaml`` (required) and ``segments.yaml``
    (optional: without it only the default segments exist). Raises ``MappingError`` listing
    every problem, each with its file, entry, line and fix.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise MappingError(
            [
                MappingProblem(
                    str(directory),
                    "",
                    None,
                    "the mapping folder does not exist; create it with "
                    f"{' and '.join(REQUIRED_FILES)} (start from the repository's mapping_config/)",
                )
            ],
            source=str(directory),
        )
    reader = _Reader()
    docs = {name: reader.read_file(directory, name) for name in FILE_ORDER}
    contact_doc = docs[CONTACT_MAPPING_FILE]
    fields = [
        *reader.fields(contact_doc, "standard_fields", standard=True),
        *reader.fields(contact_doc, "custom_fields", standard=False),
    ]
    mapping_args: dict[str, Any] = {
        "fields": fields,
        "score_sheets": reader.score_sheets(docs[SCORE_SHEETS_FILE]),
        "segments": reader.segments(docs[SEGMENTS_FILE]),
        "source_dir": str(directory),
    }
    affiliation = reader.affiliation(docs[SEGMENTS_FILE])
    if affiliation is not None:
        mapping_args["affiliation"] = affiliation
    for key, choices in (
        ("duplicate_email_policy", DuplicateEmailPolicy),
        ("push_policy", PushPolicy),
    ):
        value = reader.choice(contact_doc, key, typing.get_args(choices))
        if value is not None:
            mapping_args[key] = value
    if reader.problems:
        raise MappingError(_in_file_order(reader.problems), source=str(directory))

    mapping = Mapping(**mapping_args)
    problems = check_mapping(mapping)
    if problems:
        raise MappingError(_in_file_order(problems), source=str(directory))
    return mapping


def _in_file_order(problems: Iterable[MappingProblem]) -> list[MappingProblem]:
    def key(p: MappingProblem) -> tuple[int, int]:
        rank = FILE_ORDER.index(p.file) if p.file in FILE_ORDER else -1
        return rank, p.line or 0

    return sorted(problems, key=key)


class _Reader:
    """Reads the files entry by entry, collecting problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[MappingProblem] = []

    def problem(self, file: str, entry: str, line: int | None, message: str) -> None:
        self.problems.append(MappingProblem(file, entry, line, message))

    # -- files --------------------------------------------------------------------------

    def read_file(self, directory: Path, file: str) -> LineDict | None:
        """The file's top-level mapping; None (with a problem if required) when unusable."""
        path = directory / file
        if not path.is_file():
            if file in REQUIRED_FILES:
                self.problem(
                    file,
                    "",
                    None,
                    f"the file is missing from {directory}; create it with {FILE_CONTENTS[file]}",
                )
            return None
        try:
            doc, repeated = load_yaml_with_lines(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            self.problem(file, "", None, "the file is not UTF-8 text; save it as UTF-8")
            return None
        except yaml.YAMLError as exc:
            self.problem(file, "", *_yaml_error(exc))
            return None
        for key, line in repeated:
            self.problem(
                file,
                "",
                line,
                f"key '{key}' appears twice in the same entry and YAML would silently keep "
                "only the last one; remove one of them",
            )
        if doc is None:  # an empty file: report the missing keys below
            doc = LineDict(1)
        if not isinstance(doc, LineDict):
            self.problem(
                file,
                "",
                1,
                f"the file must be a YAML mapping with {FILE_CONTENTS[file]}; "
                f"it holds a {type(doc).__name__}",
            )
            return None
        self.keys(doc, file, "", TOP_LEVEL_KEYS[file], (), purpose=FILE_CONTENTS[file])
        return doc

    # -- contact_mapping.yaml -----------------------------------------------------------

    def fields(self, doc: LineDict | None, section: str, standard: bool) -> list[FieldMapping]:
        """The entries of ``standard_fields`` or ``custom_fields``."""
        file = CONTACT_MAPPING_FILE
        allowed = STANDARD_FIELD_KEYS if standard else CUSTOM_FIELD_KEYS
        required = ("destination",) if standard else ("destination", "type")
        found: list[FieldMapping] = []
        for i, raw in self.entries(doc, file, "", section, required=standard):
            entry = f"{section}[{i}]"
            label = entry_label(entry, raw.get("destination"))
            self.keys(raw, file, label, allowed, required, hints=_FIELD_KEY_HINTS)
            data = {k: raw[k] for k in allowed if k in raw}
            destination = data.get("destination")
            if standard:
                # The data type of a standard field is Act-On's, not the user's; an unknown
                # name is reported by rules.py, so any type will do until then.
                known = isinstance(destination, str) and destination in STANDARD_FIELDS
                data["type"] = STANDARD_FIELDS[destination] if known else DataType.TEXT
            if destination == PRIMARY_SCORE_FIELD and data.get("score_sheet") is None:
                data["score_sheet"] = DEFAULT_SCORE_SHEET
            data["standard"] = standard
            data["origin"] = (file, entry, raw.line)
            field = self.validate(FieldMapping, data, raw, file, label)
            if field is not None:
                found.append(field)
        return found

    def choice(self, doc: LineDict | None, key: str, choices: tuple[str, ...]) -> str | None:
        """A policy value, checked against its choices; None when absent (model default)."""
        if doc is None or doc.get(key) is None:
            return None
        value = doc[key]
        if value not in choices:
            hint = did_you_mean(value, choices) if isinstance(value, str) else ""
            self.problem(
                CONTACT_MAPPING_FILE,
                key,
                doc.line_of(key),
                f"{value!r} is not a {key}{hint}; use one of: {', '.join(choices)}",
            )
            return None
        return str(value)

    # -- score_sheets.yaml --------------------------------------------------------------

    def score_sheets(self, doc: LineDict | None) -> list[ScoreSheet]:
        """The entries of ``score_sheets``, with their profile and behavior rules."""
        file = SCORE_SHEETS_FILE
        sheets: list[ScoreSheet] = []
        for i, raw in self.entries(doc, file, "", "score_sheets", required=True):
            entry = f"score_sheets[{i}]"
            label = entry_label(entry, raw.get("name"))
            self.keys(raw, file, label, SCORE_SHEET_KEYS, ("name",))
            profile = [
                self.profile_rule(rule, file, f"{label} profile_rules[{j}]")
                for j, rule in self.entries(raw, file, label, "profile_rules")
            ]
            behavior = [
                self.validate(
                    BehaviorRule,
                    {
                        **{k: rule[k] for k in BEHAVIOR_RULE_KEYS if k in rule},
                        "origin": (file, f"{label} behavior_rules[{j}]", rule.line),
                    },
                    rule,
                    file,
                    entry_label(f"{label} behavior_rules[{j}]", rule.get("name")),
                    allowed=BEHAVIOR_RULE_KEYS,
                    required=("name", "activity", "points"),
                )
                for j, rule in self.entries(raw, file, label, "behavior_rules")
            ]
            data = {k: raw[k] for k in ("name", "description") if k in raw}
            data["profile_rules"] = [r for r in profile if r is not None]
            data["behavior_rules"] = [r for r in behavior if r is not None]
            data["origin"] = (file, entry, raw.line)
            sheet = self.validate(ScoreSheet, data, raw, file, label)
            if sheet is not None:
                sheets.append(sheet)
        return sheets

    def profile_rule(self, raw: LineDict, file: str, entry: str) -> ProfileRule | None:
        label = entry_label(entry, raw.get("name"))
        self.keys(raw, file, label, PROFILE_RULE_KEYS, PROFILE_RULE_KEYS)
        data = {k: raw[k] for k in ("name", "points") if k in raw}
        if "when" in raw:
            data["when"] = self.rule(raw["when"], file, label, "when", raw.line_of("when"))
            data["when"] = data["when"] or _UNPARSED_RULE
        data["origin"] = (file, entry, raw.line)
        return self.validate(ProfileRule, data, raw, file, label)

    # -- segments.yaml ------------------------------------------------------------------

    def affiliation(self, doc: LineDict | None) -> Affiliation | None:
        """The ``affiliation`` settings; None when absent (model defaults)."""
        if doc is None or doc.get("affiliation") is None:
            return None
        raw = doc["affiliation"]
        if not isinstance(raw, LineDict):
            self.problem(
                SEGMENTS_FILE,
                "affiliation",
                doc.line_of("affiliation"),
                f"affiliation must be a mapping with keys {', '.join(AFFILIATION_KEYS)}",
            )
            return None
        return self.validate(
            Affiliation,
            {k: raw[k] for k in AFFILIATION_KEYS if k in raw},
            raw,
            SEGMENTS_FILE,
            "affiliation",
            allowed=AFFILIATION_KEYS,
        )

    def segments(self, doc: LineDict | None) -> list[SegmentRule]:
        """The user's rule segments (the default segments are not listed in the file)."""
        file = SEGMENTS_FILE
        found: list[SegmentRule] = []
        for i, raw in self.entries(doc, file, "", "segments"):
            entry = f"segments[{i}]"
            label = entry_label(entry, raw.get("name"))
            self.keys(raw, file, label, SEGMENT_KEYS, ("name", "when"))
            data = {k: raw[k] for k in ("name", "description") if k in raw}
            if "when" in raw:
                data["when"] = self.rule(raw["when"], file, label, "when", raw.line_of("when"))
                data["when"] = data["when"] or _UNPARSED_RULE
            data["origin"] = (file, entry, raw.line)
            segment = self.validate(SegmentRule, data, raw, file, label)
            if segment is not None:
                found.append(segment)
        return found

    # -- shared pieces ------------------------------------------------------------------

    def rule(self, raw: Any, file: str, entry: str, path: str, line: int) -> Rule | None:
        """Parse a ``when``: a condition, or an ``all`` / ``any`` group of rules."""
        if not isinstance(raw, LineDict):
            self.problem(file, entry, line, f"{path} must be {RULE_SHAPE}; got {raw!r}")
            return None
        groups = [key for key in ("all", "any") if key in raw]
        if not groups:
            self.keys(raw, file, entry, CONDITION_KEYS, ("field", "op"), path=path)
            data = {k: raw[k] for k in CONDITION_KEYS if k in raw}
            return self.validate(Condition, data, raw, file, entry, path=path)
        key = groups[0]
        if len(raw) != 1:
            others = ", ".join(f"'{k}'" for k in raw if k != key)
            self.problem(
                file,
                entry,
                raw.line,
                f"{path}: a group holds only one key, 'all' or 'any', but it also has {others}; "
                "put the extra conditions inside the list or nest another group",
            )
            return None
        items = raw[key]
        if not isinstance(items, list) or not items:
            self.problem(
                file,
                entry,
                raw.line_of(key),
                f"{path}.{key} must be a non-empty list of rules (entries starting with '- ')",
            )
            return None
        parts = [
            self.rule(item, file, entry, f"{path}.{key}[{i}]", raw.line_of(key))
            for i, item in enumerate(items)
        ]
        if any(part is None for part in parts):
            return None
        rules = typing.cast(list[Rule], parts)
        return AllOf(all=rules) if key == "all" else AnyOf(any=rules)

    def entries(
        self,
        container: LineDict | None,
        file: str,
        entry: str,
        key: str,
        required: bool = False,
    ) -> list[tuple[int, LineDict]]:
        """The mapping entries of the list ``container[key]``, with their positions."""
        if container is None:
            return []
        where = f"{entry} {key}".strip()
        if key not in container:
            if required:
                self.problem(
                    file,
                    entry,
                    container.line,
                    f"'{key}' is missing; add it (a list of entries starting with '- ')",
                )
            return []
        items = container[key]
        if items is None:  # `custom_fields:` with nothing under it
            return []
        if not isinstance(items, list):
            self.problem(
                file,
                where,
                container.line_of(key),
                f"'{key}' must be a list (entries starting with '- '), not {items!r}",
            )
            return []
        found = []
        for i, item in enumerate(items):
            if isinstance(item, LineDict):
                found.append((i, item))
            else:
                self.problem(
                    file,
                    f"{where}[{i}]",
                    container.line_of(key),
                    f"each entry of '{key}' must be a mapping of keys to values "
                    f"(e.g. '- name: ...'), not {item!r}",
                )
        return found

    def keys(
        self,
        raw: LineDict,
        file: str,
        entry: str,
        allowed: Collection[str],
        required: Collection[str],
        *,
        path: str = "",
        purpose: str = "",
        hints: dict[str, str] | None = None,
    ) -> None:
        """Report unknown keys (with a suggestion) and missing required keys."""
        prefix = f"{path}: " if path else ""
        for key in raw:
            if key in allowed:
                continue
            if hints and key in hints:
                message = hints[key]
            else:
                known = f"this file holds {purpose}" if purpose else f"use {', '.join(allowed)}"
                message = f"unknown key '{key}'{did_you_mean(str(key), allowed)}; {known}"
            self.problem(file, entry, raw.line_of(key), prefix + message)
        for key in required:
            if key not in raw:
                self.problem(file, entry, raw.line, f"{prefix}'{key}' is missing; add it")

    def validate(
        self,
        model: type[M],
        data: dict[str, Any],
        raw: LineDict,
        file: str,
        entry: str,
        *,
        path: str = "",
        allowed: Collection[str] = (),
        required: Collection[str] = (),
    ) -> M | None:
        """``model`` built from ``data``; pydantic errors become problems at their line.

        With ``allowed``, unknown and missing keys are reported first; otherwise the caller
        has done so. Either way pydantic's own "missing" errors are not repeated.
        """
        if allowed:
            self.keys(raw, file, entry, allowed, required, path=path)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            prefix = f"{path}: " if path else ""
            for error in exc.errors():
                if error["type"] == "missing":
                    continue  # keys() has reported it, with the entry's own wording
                line = _line_of(raw, error["loc"])
                self.problem(file, entry, line, prefix + _explain(error))
            return None


# Fixes for keys that are easy to put on the wrong kind of field entry.
_FIELD_KEY_HINTS = {
    "type": (
        "standard fields have a fixed data type, so 'type' does not belong here; remove it, "
        "or move the entry to custom_fields to choose the type yourself"
    ),
    "name": "the Act-On field name goes in 'destination'; rename 'name' to 'destination'",
    "source": "CRM fields go in 'lead' and 'contact'; rename 'source' to one of them",
}


def _yaml_error(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """Line and message for a YAML syntax error."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    what = f"{context}, {problem}" if context else problem
    return (
        line,
        f"the file is not valid YAML ({what}); check the indentation, colons and quotes on "
        "this line and the one before",
    )


def _line_of(raw: LineDict, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest part of ``loc`` present in ``raw``."""
    line, node = raw.line, raw
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            line, node = node.line_of(part), node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            if isinstance(node, LineDict):
                line = node.line
        else:
            break
    return line


def _explain(error: Any) -> str:
    """A pydantic error as 'what is wrong; how to fix it'."""
    loc = error["loc"]
    key = ".".join(str(part) for part in loc)
    value = error.get("input")
    kind = error["type"]
    if kind == "enum" and loc and loc[-1] == "type":
        choices = [t.value for t in DataType]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"data type {value!r} is not an Act-On data type{hint}; use one of: " + ", ".join(
            choices
        )
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ", ").split(",")]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return f"'{key}' cannot be {value!r}{hint}; use one of: {', '.join(choices)}"
    expected = error["msg"].removeprefix("Input should be ")
    return f"'{key}' should be {expected}, not {value!r}; correct the value"
