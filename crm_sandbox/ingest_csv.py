"""The CSV of Bulk API 2.0 ingest jobs: uploaded data in, per-record result files out.

Upload semantics follow Salesforce: the header row names API fields in any order and any case
(an ``Id`` column addresses updates); an empty cell leaves a field as it is (unset on insert),
``#N/A`` clears it; every other cell is the field's value as text, validated like a REST write.
A header naming an unknown field fails the whole job ("InvalidBatch"), not single rows.

Result files carry ``sf__Id`` plus ``sf__Created`` (successes) or ``sf__Error`` (failures) in
front of the uploaded columns; ``sf__Error`` reads ``CODE:message:fields --``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass

from crm_sandbox.batch_writes import RecordWrite, WriteResult
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.objects import ObjectDef

NULL_MARKER = "#N/A"
ID_COLUMN = "id"
COLUMN_DELIMITERS = {
    "BACKQUOTE": "`",
    "CARET": "^",
    "COMMA": ",",
    "PIPE": "|",
    "SEMICOLON": ";",
    "TAB": "\t",
}
LINE_ENDINGS = {"LF": "\n", "CRLF": "\r\n"}
SUCCESS_COLUMNS = ("sf__Id", "sf__Created")
FAILURE_COLUMNS = ("sf__Id", "sf__Error")


class InvalidBatch(Exception):
    """Uploaded data the job cannot process at all; the message becomes the job's error."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"InvalidBatch : {detail}")


@dataclass(frozen=True)
class CsvFormat:
    """The delimiter and line ending a job was created with (by their Salesforce names)."""

    column_delimiter: str = "COMMA"
    line_ending: str = "LF"

    @property
    def delimiter(self) -> str:
        """The delimiter character."""
        return COLUMN_DELIMITERS[self.column_delimiter]

    @property
    def terminator(self) -> str:
        """The line terminator written in result files."""
        return LINE_ENDINGS[self.line_ending]


@dataclass(frozen=True)
class IngestData:
    """Uploaded CSV: the header as sent and the data rows (blank lines dropped)."""

    header: list[str]
    rows: list[list[str]]


def parse_upload(text: str, fmt: CsvFormat) -> IngestData:
    """Split uploaded CSV into header and rows; raise :class:`InvalidBatch` if it is unusable."""
    # newline="" leaves CR LF inside quoted cells alone; the reader accepts both line endings.
    reader = csv.reader(
        io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=fmt.delimiter
    )
    try:
        lines = [line for line in reader if line]
    except csv.Error as exc:
        raise InvalidBatch(f"Unable to parse CSV: {exc}") from exc
    if not lines:
        raise InvalidBatch("The uploaded data has no header row")
    header = [name.strip() for name in lines[0]]
    for number, row in enumerate(lines[1:], start=2):
        if len(row) != len(header):
            raise InvalidBatch(
                f"Wrong number of columns in line {number}: {len(row)}, header has {len(header)}"
            )
    return IngestData(header, lines[1:])


def check_header(obj: ObjectDef, header: Sequence[str]) -> None:
    """Refuse unknown and repeated columns, as Salesforce fails such a job."""
    seen: set[str] = set()
    for name in header:
        if obj.field(name) is None:
            raise InvalidBatch(f"Field name not found : {name}")
        if name.lower() in seen:
            raise InvalidBatch(f"Duplicate field name : {name}")
        seen.add(name.lower())


def row_write(obj: ObjectDef, header: Sequence[str], row: Sequence[str]) -> RecordWrite:
    """The record write one data row asks for."""
    record_id: str | None = None
    fields: dict[str, str | None] = {}
    for name, cell in zip(header, row, strict=True):
        if name.lower() == ID_COLUMN:
            record_id = cell.strip() or None
        elif cell == NULL_MARKER:
            fields[name] = None
        elif cell != "":
            fields[name] = cell
    return RecordWrite(obj, fields, record_id)


def error_text(error: SalesforceApiError) -> str:
    """Salesforce's ``sf__Error`` text: ``CODE:message:Field1,Field2 --`` (``:--`` if no field)."""
    fields = f"{','.join(error.fields)} --" if error.fields else "--"
    return f"{error.error_code}:{error.message}:{fields}"


def success_row(result: WriteResult, row: Sequence[str]) -> list[str]:
    """A ``successfulResults`` row: the record's Id, whether it was created, the uploaded cells."""
    return [result.record_id or "", "true" if result.created else "false", *row]


def failure_row(result: WriteResult, row: Sequence[str]) -> list[str]:
    """A ``failedResults`` row: the record's Id if known, the error, the uploaded cells."""
    assert result.error is not None
    return [result.record_id or "", error_text(result.error), *row]


def write_csv(header: Sequence[str], rows: Sequence[Sequence[str]], fmt: CsvFormat) -> str:
    """A result file: every value double-quoted, in the job's delimiter and line ending."""
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, delimiter=fmt.delimiter, lineterminator=fmt.terminator, quoting=csv.QUOTE_ALL
    )
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
