"""Validating an import file as a whole: every problem of every row, before anything applies.

A file is applied only when it has no problem at all (``ValidatedFile.valid``); otherwise it is
rejected entirely and every problem is listed, with its line as in the file (header = line 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from acton_pipelines.crm.objects import split_hop
from acton_pipelines.imports.contact_directory import ContactDirectory
from acton_pipelines.imports.csv_table import CsvRow, CsvUnreadable, read_csv
from acton_pipelines.imports.files import ImportFile
from acton_pipelines.imports.kinds import (
    ACTIVITY_TYPES,
    KIND_COLUMNS,
    ImportKind,
    expected_names,
    kind_of,
)
from acton_pipelines.imports.problems import (
    HEADER_LINE,
    WHOLE_FILE,
    ImportProblem,
    first_per_cell,
)
from acton_pipelines.imports.records import (
    ActivityRow,
    ContactRow,
    EditRow,
    ImportRecord,
    OptRow,
)
from acton_pipelines.imports.timestamps import parse_timestamp
from acton_pipelines.imports.values import ValueCell, conform_cells
from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping, column_name

# Looks up the existing Act-On contacts of a set of (lower-case) addresses.
ContactLookup = Callable[[set[str]], ContactDirectory]

_TRUE_WORDS = frozenset({"true", "yes", "1"})
_FALSE_WORDS = frozenset({"false", "no", "0", ""})
BOOLEAN_REASON = "not a boolean (expected true/false, yes/no or 1/0)"
NO_CONTACT_REASON = "no Act-On contact has this email"


@dataclass(frozen=True)
class ValidatedFile:
    """A file's kind, its data rows (count), its typed records when it is valid, the existing
    contacts its addresses name, and its problems (first per line and column, by line)."""

    kind: ImportKind | None
    rows: int
    records: list[ImportRecord] = field(default_factory=list)
    directory: ContactDirectory = field(default_factory=ContactDirectory)
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def rejected_rows(self) -> int:
        """Data rows with a problem; every row when the problem is the file's (line 1)."""
        if any(p.line == HEADER_LINE for p in self.problems):
            return self.rows
        return len({p.line for p in self.problems})


def validate_file(
    file: ImportFile,
    mapping: Mapping,
    lookup: ContactLookup,
    required_on_new_lead: Sequence[str] = (),
) -> ValidatedFile:
    """Every problem of ``file``; its records when there is none.

    ``lookup`` finds the existing contacts of the file's addresses: edits and activity must
    name one; a ``contacts`` row asking ``create_in_crm`` must not name a CRM record, and must
    give (or its contact already hold) a value for each field of ``required_on_new_lead`` (the
    CRM's required Lead fields): a create the CRM would refuse is caught here, not retried at
    every push.
    """
    kind = kind_of(file.name)
    if kind is None:
        reason = f"unknown kind of file: the name must be one of {expected_names()}"
        return ValidatedFile(None, 0, problems=[_file_problem(file.name, reason)])
    try:
        table = read_csv(file.content)
    except CsvUnreadable as error:
        return ValidatedFile(kind, 0, problems=first_per_cell(error.problems))
    rows = len(table.rows) + len(table.problems)
    header = _resolve_header(kind, table.header, mapping)
    if header.problems:
        return ValidatedFile(kind, rows, problems=first_per_cell(header.problems))
    checker = _RowChecker(
        header, mapping, problems=list(table.problems), required_on_new_lead=required_on_new_lead
    )
    records = _KIND_CHECKS[kind](checker, table.rows, lookup)
    # By line, then in the header's order, as someone fixing the file reads it.
    position = {name: i for i, name in enumerate(table.header)}
    problems = sorted(
        first_per_cell(checker.problems),
        key=lambda p: (p.line, position.get(p.column, len(position))),
    )
    if problems:
        return ValidatedFile(kind, rows, directory=checker.directory, problems=problems)
    return ValidatedFile(kind, rows, records=records, directory=checker.directory)


def _file_problem(value: str | None, reason: str) -> ImportProblem:
    return ImportProblem(HEADER_LINE, WHOLE_FILE, value, reason)


@dataclass
class _Header:
    """Where each known column is in the file: ``labels`` maps a kind's column name (``email``,
    ``changed_at``...) to the header name as written; ``fields`` maps the header name of each
    field column of a ``contacts`` file to its field."""

    labels: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldMapping] = field(default_factory=dict)
    problems: list[ImportProblem] = field(default_factory=list)


def importable_field(name: str, mapping: Mapping) -> FieldMapping | str:
    """The field a column or ``field`` value names (its destination, ``Job Title``, or its
    column, ``job_title``), or why it cannot be imported."""
    wanted = column_name(name)
    found = next((f for f in mapping.fields if f.column == wanted), None)
    if found is None:
        return (
            f"'{name}' is not a field of the mapping (use a destination name such as "
            "'Job Title' or its column name 'job_title')"
        )
    if found.type is DataType.SCORE:
        return f"'{found.destination}' is a score, computed from its score sheet: not importable"
    return found


def _resolve_header(kind: ImportKind, names: list[str], mapping: Mapping) -> _Header:
    columns = KIND_COLUMNS[kind]
    header = _Header()
    for name in names:
        key = name.lower()
        if key in columns.known:
            header.labels[key] = name
        elif kind is ImportKind.CONTACTS:
            _resolve_field_column(header, name, mapping)
        else:
            reason = f"unknown column (a {kind.value} file has {', '.join(columns.known)})"
            header.problems.append(ImportProblem(HEADER_LINE, name, name, reason))
    for required in columns.required:
        if required not in header.labels:
            reason = f"missing required column '{required}'"
            header.problems.append(ImportProblem(HEADER_LINE, required, None, reason))
    return header


def _resolve_field_column(header: _Header, name: str, mapping: Mapping) -> None:
    found = importable_field(name, mapping)
    if isinstance(found, str):
        header.problems.append(ImportProblem(HEADER_LINE, name, name, found))
        return
    if found.column == mapping.email_field.column:
        # "Email" is the required email column under its destination name.
        header.labels["email"] = name
        return
    twin = next((label for label, f in header.fields.items() if f.column == found.column), None)
    if twin is not None:
        reason = f"same field as column '{twin}' ({found.destination})"
        header.problems.append(ImportProblem(HEADER_LINE, name, name, reason))
        return
    header.fields[name] = found


@dataclass
class _RowChecker:
    """Collects the problems of a file's rows and the shared checks of every kind."""

    header: _Header
    mapping: Mapping
    problems: list[ImportProblem]
    directory: ContactDirectory = field(default_factory=ContactDirectory)
    required_on_new_lead: Sequence[str] = ()

    def cell(self, row: CsvRow, column: str) -> str:
        """The stripped text of a kind's column in ``row`` (``""`` when the file lacks it)."""
        label = self.header.labels.get(column)
        return row.cells[label].strip() if label is not None else ""

    def problem(self, row: CsvRow, column: str, reason: str) -> None:
        label = self.header.labels.get(column, column)
        value = row.cells.get(label)
        self.problems.append(ImportProblem(row.line, label, value, reason))

    def email_cells(self, rows: list[CsvRow]) -> list[ValueCell]:
        """The email of each row as a cell of the mapping's Email field: checked like the
        sync checks CRM addresses (and lower-cased). A row without one is a problem."""
        cells = []
        for row in rows:
            text = self.cell(row, "email")
            if not text:
                self.problem(row, "email", "email is required")
                continue
            label = self.header.labels["email"]
            cells.append(ValueCell(row.line, label, self.mapping.email_field, text))
        return cells

    def conform(self, cells: list[ValueCell]) -> dict[tuple[int, str], object]:
        conformed = conform_cells(cells, self.mapping)
        self.problems.extend(conformed.problems)
        return conformed.values

    def emails(self, values: dict[tuple[int, str], object]) -> dict[int, str]:
        """Each line's conformed email (lines whose email is bad are left out)."""
        column = self.mapping.email_field.column
        return {line: str(v) for (line, c), v in values.items() if c == column and v}

    def look_up(self, lookup: ContactLookup, emails: dict[int, str]) -> None:
        self.directory = lookup(set(emails.values()))

    def require_contact(self, rows: list[CsvRow], emails: dict[int, str]) -> None:
        for row in rows:
            email = emails.get(row.line)
            if email is not None and email not in self.directory:
                self.problem(row, "email", NO_CONTACT_REASON)

    def timestamp(self, row: CsvRow, column: str, *, required: bool) -> datetime | None:
        text = self.cell(row, column)
        if not text:
            if required:
                self.problem(row, column, f"{column} is required")
            return None
        try:
            return parse_timestamp(text)
        except ValueError as error:
            self.problem(row, column, str(error))
            return None

    def flag(self, row: CsvRow, column: str) -> bool:
        text = self.cell(row, column).lower()
        if text not in _TRUE_WORDS | _FALSE_WORDS:
            self.problem(row, column, BOOLEAN_REASON)
        return text in _TRUE_WORDS


def _contacts(
    checker: _RowChecker, rows: list[CsvRow], lookup: ContactLookup
) -> list[ImportRecord]:
    cells = checker.email_cells(rows)
    for row in rows:
        for label, found in checker.header.fields.items():
            # An empty cell gives no value: a form leaves the field as it is.
            if row.cells[label].strip():
                cells.append(ValueCell(row.line, label, found, row.cells[label]))
    values = checker.conform(cells)
    emails = checker.emails(values)
    checker.look_up(lookup, emails)
    records: list[ImportRecord] = []
    for row in rows:
        create = checker.flag(row, "create_in_crm")
        submitted_at = checker.timestamp(row, "submitted_at", required=False)
        email = emails.get(row.line)
        if email is None:
            continue
        in_crm = [c for c in checker.directory[email] if c.in_crm]
        if create and in_crm:
            known = ", ".join(f"{c.record_type} {c.external_id}" for c in in_crm)
            checker.problem(row, "create_in_crm", f"already in the CRM ({known})")
        given = {
            label: found
            for label, found in checker.header.fields.items()
            if (row.line, found.column) in values
        }
        if create and not in_crm:
            held = {c for contact in checker.directory[email] for c in contact.filled}
            filled = held | {f.column for f in given.values()}
            missing = _missing_for_new_lead(checker, filled)
            if missing:
                # One problem per cell is kept: every missing field in it.
                checker.problem(row, "create_in_crm", "; ".join(missing))
        records.append(
            ContactRow(
                line=row.line,
                email=email,
                values={f.column: values[(row.line, f.column)] for f in given.values()},
                fields={f.column: f for f in given.values()},
                create_in_crm=create,
                submitted_at=submitted_at,
            )
        )
    return records


def _missing_for_new_lead(checker: _RowChecker, filled: set[str]) -> list[str]:
    """Why a Lead made from a contact whose columns ``filled`` hold values would be refused:
    one reason per required Lead field the mapping does not map, or the contact leaves empty."""
    reasons = []
    for required in checker.required_on_new_lead:
        mapped = [
            f
            for f in checker.mapping.fields
            if f.lead and split_hop(f.lead)[0] is None and f.lead.lower() == required.lower()
        ]
        if not mapped:
            reasons.append(
                f"the CRM requires {required} on a new Lead and the mapping maps no field to "
                f"Lead.{required}: add one (lead: {required}) to the mapping, or leave "
                "create_in_crm empty"
            )
        elif not any(f.column in filled for f in mapped):
            names = " or ".join(f"'{f.destination}'" for f in mapped)
            reasons.append(
                f"the CRM requires {required} on a new Lead: give this contact a {names}"
            )
    return reasons


def _opt_changes(
    column: str,
) -> Callable[[_RowChecker, list[CsvRow], ContactLookup], list[ImportRecord]]:
    def check(
        checker: _RowChecker, rows: list[CsvRow], lookup: ContactLookup
    ) -> list[ImportRecord]:
        emails = checker.emails(checker.conform(checker.email_cells(rows)))
        # Any address may opt out or in, a contact or not; the lookup finds those to update.
        checker.look_up(lookup, emails)
        records: list[ImportRecord] = []
        for row in rows:
            at = checker.timestamp(row, column, required=False)
            if row.line in emails:
                records.append(OptRow(row.line, emails[row.line], at))
        return records

    return check


def _edits(checker: _RowChecker, rows: list[CsvRow], lookup: ContactLookup) -> list[ImportRecord]:
    cells = checker.email_cells(rows)
    fields: dict[int, FieldMapping] = {}
    for row in rows:
        name = checker.cell(row, "field")
        found = importable_field(name, checker.mapping) if name else "field is required"
        if isinstance(found, FieldMapping) and found.column == checker.mapping.email_field.column:
            found = "the email identifies the contact: it cannot be edited by an import"
        if isinstance(found, str):
            checker.problem(row, "field", found)
            continue
        fields[row.line] = found
        text = row.cells[checker.header.labels["value"]]
        cells.append(ValueCell(row.line, checker.header.labels["value"], found, text))
    values = checker.conform(cells)
    emails = checker.emails(values)
    checker.look_up(lookup, emails)
    checker.require_contact(rows, emails)
    records: list[ImportRecord] = []
    for row in rows:
        changed_at = checker.timestamp(row, "changed_at", required=True)
        found = fields.get(row.line)
        if row.line not in emails or found is None or changed_at is None:
            continue
        if (row.line, found.column) in values:
            value = values[(row.line, found.column)]
            records.append(EditRow(row.line, emails[row.line], found, value, changed_at))
    return records


def _activity(
    checker: _RowChecker, rows: list[CsvRow], lookup: ContactLookup
) -> list[ImportRecord]:
    emails = checker.emails(checker.conform(checker.email_cells(rows)))
    checker.look_up(lookup, emails)
    checker.require_contact(rows, emails)
    records: list[ImportRecord] = []
    for row in rows:
        activity = checker.cell(row, "activity").lower()
        if activity not in ACTIVITY_TYPES:
            reason = f"unknown activity (expected {', '.join(ACTIVITY_TYPES)})"
            checker.problem(row, "activity", reason if activity else "activity is required")
        occurred_at = checker.timestamp(row, "occurred_at", required=True)
        asset = checker.cell(row, "asset") or None
        if row.line in emails and activity in ACTIVITY_TYPES and occurred_at is not None:
            records.append(ActivityRow(row.line, emails[row.line], activity, occurred_at, asset))
    return records


_KIND_CHECKS: dict[
    ImportKind, Callable[[_RowChecker, list[CsvRow], ContactLookup], list[ImportRecord]]
] = {
    ImportKind.CONTACTS: _contacts,
    ImportKind.OPT_OUTS: _opt_changes("opted_out_at"),
    ImportKind.OPT_INS: _opt_changes("opted_in_at"),
    ImportKind.EDITS: _edits,
    ImportKind.ACTIVITY: _activity,
}
