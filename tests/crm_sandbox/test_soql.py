"""The SOQL translation itself: values are bound, never spliced into the SQL text; nesting is
bounded; LIKE matches without backtracking."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sandbox import store
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.soql import (
    MAX_CONDITION_DEPTH,
    compile_soql,
    install_sql_functions,
    like_pattern,
    parse_soql,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _compile(soql: str, include_deleted: bool = False):  # noqa: ANN202 - test helper
    return compile_soql(parse_soql(soql), include_deleted=include_deleted, now=NOW)


def test_values_are_bound_parameters() -> None:
    compiled = _compile(
        "SELECT Id FROM Lead WHERE Email = 'x\\' OR 1=1 --' AND LastName IN ('Ab\\'c', 'Zed') "
        "AND NumberOfEmployees > 4711 AND SystemModstamp >= 2026-01-02T03:04:05Z"
    )
    sql = compiled.where_sql

    for literal in ("x'", "1=1", "Ab", "Zed", "4711", "2026"):
        assert literal not in sql
    assert compiled.params == ["x' OR 1=1 --", "Ab'c", "Zed", 4711, "2026-01-02T03:04:05.000Z"]


def test_escaped_quote_inside_a_string_is_data() -> None:
    compiled = _compile("SELECT Id FROM Lead WHERE LastName = 'O\\'Brien'")

    assert compiled.params == ["O'Brien"]


def test_plain_query_filters_deleted_rows_and_query_all_keeps_the_recycle_bin() -> None:
    assert '"IsDeleted" = 0' in _compile("SELECT Id FROM Lead").where_sql
    query_all = _compile("SELECT Id FROM Lead", include_deleted=True)

    assert query_all.where_sql == ' WHERE (t0."IsDeleted" = 0 OR t0."SystemModstamp" >= ?)'
    # Deleted rows stay visible for the Recycle Bin's 15 days before the query's "now".
    assert query_all.params == ["2026-02-15T09:30:00.000Z"]


@pytest.mark.parametrize(
    "soql",
    [
        "select id from lead where email = 'a' and not (status = 'b')",
        "SELECT Counter__c FROM Lead",  # a field starting with a keyword is still a field
        "SELECT Id FROM Lead WHERE Email <> 'a'",
        "SELECT Id FROM Lead ORDER BY Name ASC NULLS LAST, Email DESC LIMIT 5 OFFSET 1",
        "SELECT Id FROM Lead WHERE CreatedDate > N_DAYS_AGO:3 OR CreatedDate < NEXT_N_DAYS:2",
        "SELECT Lead.Email FROM Lead",
    ],
)
def test_grammar_accepts(soql: str) -> None:
    assert parse_soql(soql).sobject.lower() == "lead"


def test_identifiers_must_exist_before_reaching_sql() -> None:
    with pytest.raises(SalesforceApiError) as error:
        _compile("SELECT Id FROM Lead WHERE \"Email\" = 'a'")
    assert error.value.error_code == "MALFORMED_QUERY"

    with pytest.raises(SalesforceApiError) as unknown:
        _compile("SELECT Counter__c FROM Lead")
    assert unknown.value.error_code == "INVALID_FIELD"


def test_date_literal_ranges_use_the_given_now() -> None:
    compiled = _compile("SELECT Id FROM Lead WHERE CreatedDate = YESTERDAY")

    assert compiled.params[:2] == ["2026-03-01T00:00:00.000Z", "2026-03-02T00:00:00.000Z"]


# --- nesting depth ---------------------------------------------------------------------------


def _nested(kind: str, depth: int) -> str:
    """A WHERE clause nesting ``depth`` levels of NOT, or of parenthesised AND / OR groups."""
    leaf = "Email != 'a@example.com'"
    if kind == "not":
        return "NOT " * depth + leaf
    groups = "".join("(Email = 'x' AND " if i % 2 else "(LastName = 'y' OR " for i in range(depth))
    return groups + leaf + ")" * depth


@pytest.mark.parametrize("kind", ["not", "and_or"])
@pytest.mark.parametrize("depth", [MAX_CONDITION_DEPTH + 1, 50, 5000])
def test_conditions_nested_too_deeply_are_malformed(kind: str, depth: int) -> None:
    # 50 levels used to overflow SQLite's parser (a 500), 5000 Python's recursion.
    with pytest.raises(SalesforceApiError) as error:
        parse_soql(f"SELECT Id FROM Lead WHERE {_nested(kind, depth)}")

    assert (error.value.status, error.value.error_code) == (400, "MALFORMED_QUERY")
    assert "nested too deeply" in error.value.message


@pytest.mark.parametrize("kind", ["not", "and_or"])
@pytest.mark.parametrize("include_deleted", [False, True])
def test_the_deepest_allowed_nesting_runs_in_sqlite(kind: str, include_deleted: bool) -> None:
    """The depth limit is below what SQLite's parser takes (about 30 nested groups)."""
    conn = sqlite3.connect(":memory:")
    store.create_schema(conn)
    install_sql_functions(conn)
    compiled = _compile(
        f"SELECT Id, Owner.Email FROM Lead WHERE {_nested(kind, MAX_CONDITION_DEPTH)}",
        include_deleted,
    )

    for sql, params in (compiled.ids_sql(), compiled.count_sql()):
        assert conn.execute(sql, params).fetchall() is not None
    conn.close()


def test_parentheses_alone_do_not_count_as_nesting() -> None:
    parsed = parse_soql("SELECT Id FROM Lead WHERE " + "(" * 1000 + "Email = 'a'" + ")" * 1000)

    assert parsed.where is not None


# --- LIKE ------------------------------------------------------------------------------------


def _backtracking_like(pattern: str, value: str) -> bool:
    """The reference: LIKE as one backtracking regex (exact, but exponential on patterns with
    many ``%``; fine for the small inputs it checks)."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append({"%": ".*", "_": "."}.get(pattern[i], re.escape(pattern[i])))
        i += 1
    return re.fullmatch("".join(out), value, re.IGNORECASE | re.DOTALL) is not None


@given(
    pattern=st.text(alphabet="aAbé%_\\", max_size=8),
    value=st.text(alphabet="aAbBÉé%_\\\n", max_size=12),
)
@settings(max_examples=2000, deadline=None)
def test_like_agrees_with_a_backtracking_reference(pattern: str, value: str) -> None:
    assert like_pattern(pattern).matches(value) is _backtracking_like(pattern, value)


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("", "", True),
        ("", "a", False),
        ("%", "", True),
        ("a%", "ABC", True),
        ("%c", "abC", True),
        ("a%c", "ac", True),
        ("a%c", "a", False),
        ("a_c", "abc", True),
        ("a_c", "ac", False),
        ("%b%b%", "abab", True),
        ("%b%b%", "ab", False),
        ("50\\%", "50%", True),
        ("50\\%", "500", False),
        ("a\\_c", "abc", False),
        ("a\\_c", "a_c", True),
        ("%@example_org", "x@example.org", True),
    ],
)
def test_like_examples(pattern: str, value: str, matches: bool) -> None:
    conn = sqlite3.connect(":memory:")
    install_sql_functions(conn)

    (got,) = conn.execute("SELECT sf_like(?, ?)", (value, pattern)).fetchone()

    assert bool(got) is matches
    conn.close()


def test_like_takes_linear_time_on_patterns_that_make_a_regex_backtrack() -> None:
    """Patterns with many ``%`` made the old regex translation backtrack for ages (about 4 s
    for ``%a%a%b`` on 1,500 characters, forever for the longer patterns); segment matching is
    one scan per segment."""
    conn = sqlite3.connect(":memory:")
    install_sql_functions(conn)
    patterns = ["%a%a%b", "%a%a%a%a%a%a%a%a%a%a%a%a%b", "%" + "_a" * 200 + "b%"]
    values = ["a" * 1_500, "a" * 100_000, "Ab" * 50_000]
    # The one timing bound of the suite: generous (2 s for all of it; it takes milliseconds),
    # because the point is "not exponential", not a benchmark.
    deadline = time.perf_counter() + 2.0
    results = []
    for pattern in patterns:
        for value in values:
            (got,) = conn.execute("SELECT sf_like(?, ?)", (value, pattern)).fetchone()
            results.append(got)
            assert time.perf_counter() < deadline, f"LIKE {pattern[:20]!r} took too long"
    conn.close()

    assert results == [0, 0, 1, 0, 0, 1, 0, 0, 1]
