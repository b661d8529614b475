"""The SOQL translation itself: values are bound, never spliced into the SQL text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.soql import compile_soql, parse_soql

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


def test_plain_query_filters_deleted_rows_and_query_all_does_not() -> None:
    assert '"IsDeleted" = 0' in _compile("SELECT Id FROM Lead").where_sql
    assert _compile("SELECT Id FROM Lead", include_deleted=True).where_sql == ""


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
