"""A problem found in an import file: where it is (line and column) and why."""

from __future__ import annotations

from dataclasses import dataclass

HEADER_LINE = 1
# The column of a problem with a whole row or the whole file rather than one value.
WHOLE_ROW = "(row)"
WHOLE_FILE = "(file)"


@dataclass(frozen=True)
class ImportProblem:
    """One reason a file is rejected. ``line`` counts the file's lines as an editor does (the
    header is line 1); ``column`` is the header name as written in the file."""

    line: int
    column: str
    value: str | None
    reason: str


def first_per_cell(problems: list[ImportProblem]) -> list[ImportProblem]:
    """One problem per (line, column), the first found, sorted by line: the rejects table
    holds one reason per cell."""
    seen: dict[tuple[int, str], ImportProblem] = {}
    for problem in problems:
        seen.setdefault((problem.line, problem.column), problem)
    return sorted(seen.values(), key=lambda p: p.line)
