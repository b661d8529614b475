"""Reading an import file's bytes as a header and rows, each row with its line number."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from acton_pipelines.imports.problems import HEADER_LINE, WHOLE_FILE, WHOLE_ROW, ImportProblem


@dataclass(frozen=True)
class CsvRow:
    """A data row: the line it starts on (header = line 1) and its cells by header name."""

    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class CsvTable:
    """A parsed file: the header names (stripped), the non-blank rows that have one cell per
    column, and the problems of the rows that do not (they are not in ``rows``)."""

    header: list[str]
    rows: list[CsvRow]
    problems: list[ImportProblem]


class CsvUnreadable(ValueError):
    """The file is not a CSV table we can read; ``problems`` say where and why."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        super().__init__("; ".join(p.reason for p in problems))
        self.problems = problems


def read_csv(content: bytes) -> CsvTable:
    """Parse ``content`` (UTF-8, with or without a byte-order mark, as spreadsheets export it).

    Blank lines are skipped. A row with more or fewer cells than the header is a problem on its
    line (the other rows are still returned, so every bad line can be reported); a file that is
    not UTF-8, is empty, or has a blank or repeated header name raises :class:`CsvUnreadable`.
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvUnreadable(
            [ImportProblem(HEADER_LINE, WHOLE_FILE, None, f"not UTF-8 text ({error.reason})")]
        ) from None
    # newline="" hands line endings to the csv module, which needs them for quoted newlines.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise CsvUnreadable(
            [ImportProblem(HEADER_LINE, WHOLE_FILE, None, "empty file: no header line")]
        ) from None
    _check_header(header)

    rows: list[CsvRow] = []
    problems: list[ImportProblem] = []
    # A quoted value may span lines: a row starts on the line after the previous one ended.
    line = reader.line_num + 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(cells) == len(header):
                    rows.append(CsvRow(line, dict(zip(header, cells, strict=True))))
                else:
                    reason = f"{len(cells)} values, but the header has {len(header)} columns"
                    problems.append(ImportProblem(line, WHOLE_ROW, None, reason))
            line = reader.line_num + 1
    except csv.Error as error:
        problems.append(ImportProblem(line, WHOLE_ROW, None, f"not valid CSV ({error})"))
    return CsvTable(header=header, rows=rows, problems=problems)


def _check_header(header: list[str]) -> None:
    problems: list[ImportProblem] = []
    seen: set[str] = set()
    for position, name in enumerate(header, start=1):
        if not name:
            problems.append(
                ImportProblem(HEADER_LINE, f"(column {position})", None, "blank column name")
            )
        elif name.lower() in seen:
            problems.append(ImportProblem(HEADER_LINE, name, name, "column appears twice"))
        seen.add(name.lower())
    if problems:
        raise CsvUnreadable(problems)
