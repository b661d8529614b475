"""Reading import files: line numbers as in the file, and what makes a file unreadable."""

from __future__ import annotations

import pytest

from acton_pipelines.imports.csv_table import CsvUnreadable, read_csv
from acton_pipelines.imports.problems import WHOLE_ROW


def test_rows_keep_their_line_numbers_across_blank_lines_and_quoted_newlines() -> None:
    content = (
        b"\xef\xbb\xbfemail,Notes\r\n"  # a byte-order mark, as spreadsheets write it
        b"a@example.com,one\r\n"
        b"\r\n"
        b'b@example.com,"two\r\nlines"\r\n'
        b",\r\n"
        b"c@example.com,three\r\n"
    )
    table = read_csv(content)
    assert table.header == ["email", "Notes"]
    assert [(r.line, r.cells["email"]) for r in table.rows] == [
        (2, "a@example.com"),
        (4, "b@example.com"),
        (7, "c@example.com"),
    ]
    assert table.rows[1].cells["Notes"] == "two\r\nlines"
    assert table.problems == []


def test_a_row_with_the_wrong_number_of_values_is_a_problem_on_its_line() -> None:
    table = read_csv(b"email,field\na@example.com,x\nb@example.com\nc@example.com,y,z\n")
    assert [r.line for r in table.rows] == [2]
    assert [(p.line, p.column) for p in table.problems] == [(3, WHOLE_ROW), (4, WHOLE_ROW)]
    assert "1 values, but the header has 2 columns" in table.problems[0].reason


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"email,\xff\n", "not UTF-8"),
        (b"email,Email\n", "column appears twice"),
        (b"email,,value\n", "blank column name"),
    ],
)
def test_unreadable_files_are_problems_on_line_1(content: bytes, reason: str) -> None:
    with pytest.raises(CsvUnreadable) as raised:
        read_csv(content)
    (problem,) = raised.value.problems
    assert problem.line == 1
    assert reason in problem.reason
