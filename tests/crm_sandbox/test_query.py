"""SOQL over HTTPS: paging, relationships, filters, ordering, errors.

Expected values come from reading the server's SQLite file directly, an oracle independent of
the SOQL translation under test.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceMalformedRequest

from crm_sandbox import SandboxServer, SeedSummary
from crm_sandbox.deletion_log import RECYCLE_BIN_RETENTION
from crm_sandbox.store import to_storage_datetime
from tests.crm_sandbox.conftest import PAGING_LEADS, FakeClock

_NEXT_URL = re.compile(r"^/services/data/v59\.0/query/01g[A-Za-z0-9]{15}-(\d+)$")
_API_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


@pytest.fixture(scope="module")
def db(server: SandboxServer) -> Iterator[sqlite3.Connection]:
    """Read-only access to the server's database, as the oracle."""
    conn = sqlite3.connect(f"file:{server.db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


def _scalar(db: sqlite3.Connection, sql: str, *params: Any) -> Any:
    return db.execute(sql, params).fetchone()[0]


def _ids(records: list[dict[str, Any]]) -> list[str]:
    return [r["Id"] for r in records]


def _error_code(error: SalesforceMalformedRequest) -> str:
    return str(error.content[0]["errorCode"])


# --- paging --------------------------------------------------------------------------------


def test_query_all_pages_through_every_live_lead(
    sf: Salesforce, db: sqlite3.Connection, seeded: SeedSummary
) -> None:
    result = sf.query_all("SELECT Id, Email FROM Lead")

    expected = {r[0] for r in db.execute('SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0')}
    ids = _ids(result["records"])
    assert result["totalSize"] == PAGING_LEADS - seeded.soft_deleted["Lead"]
    assert len(ids) == len(set(ids)) == result["totalSize"]
    assert set(ids) == expected


def test_pages_are_2000_records_with_a_next_records_path(sf: Salesforce) -> None:
    first = sf.query("SELECT Id FROM Lead ORDER BY Id")

    assert first["done"] is False
    assert len(first["records"]) == 2000
    assert _NEXT_URL.match(first["nextRecordsUrl"])
    assert _NEXT_URL.match(first["nextRecordsUrl"])[1] == "2000"

    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["totalSize"] == first["totalSize"]
    assert len(second["records"]) == 2000
    assert _NEXT_URL.match(second["nextRecordsUrl"])[1] == "4000"

    last = sf.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    assert last["done"] is True
    assert "nextRecordsUrl" not in last
    assert len(last["records"]) == first["totalSize"] - 4000
    all_ids = _ids(first["records"] + second["records"] + last["records"])
    assert all_ids == sorted(all_ids)


def test_a_page_can_be_fetched_again(sf: Salesforce) -> None:
    first = sf.query("SELECT Id FROM Lead")
    url = first["nextRecordsUrl"]

    again = sf.query_more(url, identifier_is_url=True)

    assert _ids(sf.query_more(url, identifier_is_url=True)["records"]) == _ids(again["records"])


def test_batch_size_option_sets_the_page_size(sf: Salesforce) -> None:
    page = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=500"})
    tiny = sf.query("SELECT Id FROM Lead", headers={"Sforce-Query-Options": "batchSize=5"})

    assert len(page["records"]) == 500
    assert _NEXT_URL.match(page["nextRecordsUrl"])[1] == "500"
    assert len(tiny["records"]) == 200  # Salesforce's minimum
    follow = sf.query_more(page["nextRecordsUrl"], identifier_is_url=True)
    assert len(follow["records"]) == 500


def test_paging_follows_order_by_then_id(sf: Salesforce, db: sqlite3.Connection) -> None:
    result = sf.query_all("SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp DESC")

    keys = [(r["SystemModstamp"], r["Id"]) for r in result["records"]]
    by_stamp_desc_then_id = sorted(keys, key=lambda k: k[1])
    by_stamp_desc_then_id.sort(key=lambda k: k[0], reverse=True)
    assert keys == by_stamp_desc_then_id
    assert len(keys) == _scalar(db, 'SELECT COUNT(*) FROM "Lead" WHERE "IsDeleted" = 0')


def test_unknown_locator_is_invalid(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query_more("/services/data/v59.0/query/01g5e0000000999AAA-2000", identifier_is_url=True)

    assert _error_code(error.value) == "INVALID_QUERY_LOCATOR"


# --- record shape --------------------------------------------------------------------------


def test_records_carry_attributes_and_salesforce_json_formats(sf: Salesforce) -> None:
    records = sf.query(
        "SELECT Id, SystemModstamp, ConvertedDate, IsConverted, ActOn_Score__c, "
        "NumberOfEmployees, Interests__c FROM Lead WHERE IsConverted = true "
        "AND ActOn_Score__c != null AND NumberOfEmployees != null "
        "AND Interests__c INCLUDES ('Analytics;Automation', 'Email;Events', 'SEO;Social') LIMIT 5"
    )["records"]

    assert records
    for record in records:
        assert record["attributes"] == {
            "type": "Lead",
            "url": f"/services/data/v59.0/sobjects/Lead/{record['Id']}",
        }
        assert len(record["Id"]) == 18
        assert _API_DATETIME.match(record["SystemModstamp"])
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["ConvertedDate"])
        assert record["IsConverted"] is True
        assert isinstance(record["ActOn_Score__c"], float)
        assert isinstance(record["NumberOfEmployees"], int)
        assert ";" in record["Interests__c"]


def test_field_names_are_case_insensitive_and_answered_in_describe_casing(sf: Salesforce) -> None:
    record = sf.query(
        "select id, EMAIL, account.NAME from contact where accountid != null limit 1"
    )["records"][0]

    assert list(record) == ["attributes", "Id", "Email", "Account"]
    assert list(record["Account"]) == ["attributes", "Name"]


def test_parent_fields_are_nested_or_null(sf: Salesforce, db: sqlite3.Connection) -> None:
    records = sf.query_all(
        "SELECT Id, AccountId, Account.Name, Account.Type, Owner.Email FROM Contact"
    )["records"]

    with_account = [r for r in records if r["AccountId"]]
    without_account = [r for r in records if not r["AccountId"]]
    assert with_account and without_account
    for record in with_account:
        account = record["Account"]
        assert account["attributes"]["type"] == "Account"
        assert account["attributes"]["url"].endswith(record["AccountId"])
        name = _scalar(db, 'SELECT "Name" FROM "Account" WHERE "Id" = ?', record["AccountId"])
        assert account["Name"] == name
    assert all(r["Account"] is None for r in without_account)
    assert all(r["Owner"]["attributes"]["type"] == "User" for r in records)


def test_two_level_parent_fields(sf: Salesforce, db: sqlite3.Connection) -> None:
    record = sf.query(
        "SELECT Id, Account.Name, Account.Owner.Name FROM Contact WHERE AccountId != null LIMIT 1"
    )["records"][0]

    owner = record["Account"]["Owner"]
    assert owner["attributes"]["type"] == "User"
    owner_id = owner["attributes"]["url"].rsplit("/", 1)[1]
    assert owner["Name"] == _scalar(db, 'SELECT "Name" FROM "User" WHERE "Id" = ?', owner_id)


def test_lead_owner_may_be_a_queue(sf: Salesforce, seeded: SeedSummary) -> None:
    records = sf.query_all("SELECT Id, OwnerId, Owner.Name FROM Lead WHERE OwnerId LIKE '00G%'")[
        "records"
    ]

    assert 0 < len(records) <= seeded.queue_owned_leads
    assert {r["Owner"]["attributes"]["type"] for r in records} == {"Group"}
    assert {r["Owner"]["Name"] for r in records} <= {"Inbound Leads", "Partner Leads"}


def test_filter_on_parent_field(sf: Salesforce, db: sqlite3.Connection) -> None:
    result = sf.query_all("SELECT Id FROM Contact WHERE Account.Type = 'Prospect'")

    expected = _scalar(
        db,
        'SELECT COUNT(*) FROM "Contact" c JOIN "Account" a ON a."Id" = c."AccountId" '
        'WHERE a."Type" = \'Prospect\' AND c."IsDeleted" = 0',
    )
    assert result["totalSize"] == expected > 0


# --- WHERE ---------------------------------------------------------------------------------


def _stamp_window(db: sqlite3.Connection) -> tuple[datetime, datetime, int]:
    stamps = [r[0] for r in db.execute('SELECT "SystemModstamp" FROM "Lead" ORDER BY 1')]
    start_text, end_text = stamps[len(stamps) // 3], stamps[2 * len(stamps) // 3]
    start = datetime.strptime(start_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    end = datetime.strptime(end_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    # format_soql drops milliseconds: compare against whole seconds, as the pipeline would.
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    expected = _scalar(
        db,
        'SELECT COUNT(*) FROM "Lead" WHERE "IsDeleted" = 0 '
        'AND "SystemModstamp" >= ? AND "SystemModstamp" < ?',
        start.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        end.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    )
    return start, end, expected


def test_system_modstamp_window_with_format_soql(sf: Salesforce, db: sqlite3.Connection) -> None:
    start, end, expected = _stamp_window(db)
    soql = format_soql(
        "SELECT Id FROM Lead WHERE SystemModstamp >= {} AND SystemModstamp < {}", start, end
    )

    assert "+00:00" in soql
    assert 0 < sf.query_all(soql)["totalSize"] == expected


@pytest.mark.parametrize(
    "render",
    [
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        lambda d: d.isoformat(),
        lambda d: d.astimezone(UTC).replace(tzinfo=None).isoformat() + "+00:00",
        lambda d: (d - timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%S-05:00"),
        lambda d: (d + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000+0200"),
    ],
    ids=["Z", "millis+0000", "isoformat", "+00:00", "-05:00", "+0200"],
)
def test_datetime_literal_formats_mean_the_same_instant(
    sf: Salesforce, db: sqlite3.Connection, render: Any
) -> None:
    start, end, expected = _stamp_window(db)
    soql = (
        f"SELECT COUNT() FROM Lead WHERE SystemModstamp >= {render(start)} "
        f"AND SystemModstamp < {render(end)}"
    )

    assert sf.query(soql)["totalSize"] == expected


@pytest.mark.parametrize("literal", ["2026-01-01", "'2026-01-01T00:00:00Z'", "'x'", "5", "true"])
def test_datetime_fields_need_an_unquoted_datetime(sf: Salesforce, literal: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query(f"SELECT Id FROM Lead WHERE SystemModstamp > {literal}")

    assert _error_code(error.value) == "INVALID_FIELD"
    assert "must be of type dateTime" in error.value.content[0]["message"]


def test_date_literals_follow_the_server_clock(
    sf: Salesforce, db: sqlite3.Connection, clock: FakeClock
) -> None:
    today = clock().date()
    start = (today - timedelta(days=7)).isoformat() + "T00:00:00.000Z"
    end = (today + timedelta(days=1)).isoformat() + "T00:00:00.000Z"
    expected = _scalar(
        db,
        'SELECT COUNT(*) FROM "Lead" WHERE "IsDeleted" = 0 '
        'AND "SystemModstamp" >= ? AND "SystemModstamp" < ?',
        start,
        end,
    )

    result = sf.query("SELECT COUNT() FROM Lead WHERE SystemModstamp = LAST_N_DAYS:7")
    assert result["totalSize"] == expected > 0
    future = sf.query("SELECT COUNT() FROM Lead WHERE SystemModstamp > TODAY")
    assert future["totalSize"] == 0


def _deleted_leads(db: sqlite3.Connection, clock: FakeClock) -> tuple[set[str], set[str]]:
    """The soft-deleted Leads still in the Recycle Bin at the server's "now", and older ones
    (the seed backdates deletions by up to three months)."""
    cutoff = to_storage_datetime(clock.now - RECYCLE_BIN_RETENTION)
    rows = db.execute(
        'SELECT "Id", "SystemModstamp" >= ? FROM "Lead" WHERE "IsDeleted" = 1', [cutoff]
    )
    recent, older = set(), set()
    for record_id, in_bin in rows:
        (recent if in_bin else older).add(record_id)
    return recent, older


def test_query_excludes_and_query_all_includes_rows_deleted_in_the_last_15_days(
    sf: Salesforce, seeded: SeedSummary, db: sqlite3.Connection, clock: FakeClock
) -> None:
    recent, older = _deleted_leads(db, clock)
    live = sf.query("SELECT COUNT() FROM Lead")["totalSize"]
    everything = sf.query("SELECT COUNT() FROM Lead", include_deleted=True)["totalSize"]
    deleted = sf.query_all("SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true", True)

    assert recent and older  # both sides of the 15-day line are present
    assert len(recent) + len(older) == seeded.soft_deleted["Lead"]
    assert live == PAGING_LEADS - seeded.soft_deleted["Lead"]
    assert everything == live + len(recent)
    assert set(_ids(deleted["records"])) == recent
    assert all(r["IsDeleted"] is True for r in deleted["records"])
    assert sf.query("SELECT COUNT() FROM Lead WHERE IsDeleted = true")["totalSize"] == 0


def test_query_all_pages_include_recently_deleted_rows(
    sf: Salesforce, db: sqlite3.Connection, clock: FakeClock
) -> None:
    recent, older = _deleted_leads(db, clock)
    result = sf.query_all("SELECT Id FROM Lead", include_deleted=True)

    ids = set(_ids(result["records"]))
    assert len(ids) == len(result["records"]) == PAGING_LEADS - len(older) > 2000
    assert recent <= ids and not older & ids


def test_id_in_list(sf: Salesforce, db: sqlite3.Connection) -> None:
    wanted = [r[0] for r in db.execute('SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0 LIMIT 3')]
    soql = format_soql("SELECT Id FROM Lead WHERE Id IN {}", wanted)

    assert sorted(_ids(sf.query(soql)["records"])) == sorted(wanted)
    short = format_soql("SELECT Id FROM Lead WHERE Id IN {}", [i[:15] for i in wanted])
    assert sorted(_ids(sf.query(short)["records"])) == sorted(wanted)
    excluded = format_soql("SELECT COUNT() FROM Lead WHERE Id NOT IN {}", wanted)
    assert sf.query(excluded)["totalSize"] == sf.query("SELECT COUNT() FROM Lead")["totalSize"] - 3


def test_and_or_not_with_parentheses(sf: Salesforce, db: sqlite3.Connection) -> None:
    soql = (
        "SELECT COUNT() FROM Lead WHERE (Status = 'Working - Contacted' OR Country = 'Germany') "
        "AND NOT (HasOptedOutOfEmail = true OR Email = null)"
    )
    expected = _scalar(
        db,
        'SELECT COUNT(*) FROM "Lead" WHERE "IsDeleted" = 0 AND ("Status" = \'Working - '
        'Contacted\' OR "Country" = \'Germany\') AND NOT ("HasOptedOutOfEmail" = 1 OR '
        '"Email" IS NULL)',
    )

    assert sf.query(soql)["totalSize"] == expected > 0


def test_mixing_and_or_without_parentheses_is_malformed(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id FROM Lead WHERE Status = 'a' AND City = 'b' OR Country = 'c'")

    assert _error_code(error.value) == "MALFORMED_QUERY"


def test_not_equal_matches_nulls(sf: Salesforce, db: sqlite3.Connection) -> None:
    expected = _scalar(
        db,
        'SELECT COUNT(*) FROM "Lead" WHERE "IsDeleted" = 0 '
        'AND ("Industry" IS NULL OR "Industry" != \'Banking\')',
    )

    assert sf.query("SELECT COUNT() FROM Lead WHERE Industry != 'Banking'")["totalSize"] == expected


def test_string_comparison_ignores_case(sf: Salesforce, seeded: SeedSummary) -> None:
    result = sf.query("SELECT COUNT() FROM Lead WHERE Status = 'CLOSED - converted'")

    assert result["totalSize"] == seeded.converted_leads


def test_like_is_case_insensitive_with_wildcards(sf: Salesforce, db: sqlite3.Connection) -> None:
    emails = [r[0] for r in db.execute('SELECT "Email" FROM "Lead" WHERE "IsDeleted" = 0')]
    expected = sum(1 for e in emails if e and e.lower().endswith(".example.org"))

    lower = sf.query("SELECT COUNT() FROM Lead WHERE Email LIKE '%.example.org'")["totalSize"]
    upper = sf.query("SELECT COUNT() FROM Lead WHERE Email LIKE '%.EXAMPLE.ORG'")["totalSize"]
    assert lower == upper == expected > 0
    one_char = sf.query("SELECT COUNT() FROM Lead WHERE Email LIKE '%@example_org'")["totalSize"]
    assert one_char == 0  # "_" is one character, and every good domain has a subdomain


def test_includes_and_excludes_on_multi_select_picklists(
    sf: Salesforce, db: sqlite3.Connection
) -> None:
    values = [
        set((r[0] or "").split(";")) - {""}
        for r in db.execute('SELECT "Interests__c" FROM "Lead" WHERE "IsDeleted" = 0')
    ]
    includes = sum(1 for v in values if {"Email", "SEO"} <= v or "Social" in v)
    excludes = sum(1 for v in values if "Email" not in v)

    assert (
        sf.query("SELECT COUNT() FROM Lead WHERE Interests__c INCLUDES ('Email;SEO', 'Social')")[
            "totalSize"
        ]
        == includes
        > 0
    )
    assert (
        sf.query("SELECT COUNT() FROM Lead WHERE Interests__c EXCLUDES ('email')")["totalSize"]
        == excludes
    )


def test_numeric_and_boolean_filters(sf: Salesforce, db: sqlite3.Connection) -> None:
    expected = _scalar(
        db,
        'SELECT COUNT(*) FROM "Contact" WHERE "IsDeleted" = 0 AND "ActOn_Score__c" >= 50 '
        'AND "Newsletter__c" = 1',
    )
    soql = "SELECT COUNT() FROM Contact WHERE ActOn_Score__c >= 50 AND Newsletter__c = TRUE"

    assert sf.query(soql)["totalSize"] == expected > 0


# --- ORDER BY, LIMIT, OFFSET, COUNT() --------------------------------------------------------


def test_order_by_limit_offset_with_nulls_last(sf: Salesforce, db: sqlite3.Connection) -> None:
    rows = db.execute('SELECT "Id", "ActOn_Score__c" FROM "Lead" WHERE "IsDeleted" = 0').fetchall()
    ordered = sorted(rows, key=lambda r: r[0])
    ordered.sort(key=lambda r: (r[1] is None, -(r[1] or 0)))  # DESC NULLS LAST, then Id

    result = sf.query(
        "SELECT Id, ActOn_Score__c FROM Lead ORDER BY ActOn_Score__c DESC NULLS LAST "
        "LIMIT 10 OFFSET 5"
    )

    assert result["totalSize"] == 10
    assert result["done"] is True
    assert _ids(result["records"]) == [r[0] for r in ordered[5:15]]


def test_ascending_order_puts_nulls_first_by_default(sf: Salesforce) -> None:
    records = sf.query("SELECT Id, ActOn_Score__c FROM Lead ORDER BY ActOn_Score__c LIMIT 3")[
        "records"
    ]

    assert [r["ActOn_Score__c"] for r in records] == [None, None, None]


def test_order_by_text_ignores_case(sf: Salesforce) -> None:
    records = sf.query_all("SELECT Id, LastName FROM Contact ORDER BY LastName")["records"]

    names = [r["LastName"] for r in records]
    assert names == sorted(names, key=str.casefold)


def test_count_returns_total_size_and_no_records(sf: Salesforce, db: sqlite3.Connection) -> None:
    result = sf.query("SELECT COUNT() FROM Contact WHERE AccountId = null")

    assert result["records"] == []
    assert result["done"] is True
    assert result["totalSize"] == _scalar(
        db, 'SELECT COUNT(*) FROM "Contact" WHERE "AccountId" IS NULL AND "IsDeleted" = 0'
    )


def test_offset_is_capped_at_2000(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id FROM Lead LIMIT 10 OFFSET 2001")

    assert _error_code(error.value) == "NUMBER_OUTSIDE_VALID_RANGE"


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT FROM Lead",
        "SELECT Id FROM",
        "SELECT Id FROM Lead WHERE",
        "SELECT Id FROM Lead WHERE Email = 'unterminated",
        "SELECT Id FROM Lead LIMIT x",
        "SELECT Id, COUNT() FROM Lead",
        "SELECT Id FROM Lead WHERE Email == 'a'",
        "DELETE FROM Lead",
        "SELECT Id, Id FROM Lead",
    ],
)
def test_bad_syntax_is_malformed_query(sf: Salesforce, soql: str) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query(soql)

    assert _error_code(error.value) == "MALFORMED_QUERY"
    assert error.value.status == 400


def test_unknown_field_is_invalid_field(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id, Shoe_Size__c FROM Lead")

    assert _error_code(error.value) == "INVALID_FIELD"
    assert error.value.content[0]["message"].startswith(
        "No such column 'Shoe_Size__c' on entity 'Lead'."
    )


def test_unknown_relationship_is_invalid_field(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id, Boss.Name FROM Lead")

    assert _error_code(error.value) == "INVALID_FIELD"


def test_unknown_object_is_invalid_type(sf: Salesforce) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.query("SELECT Id FROM Widget__c")

    assert _error_code(error.value) == "INVALID_TYPE"


def test_quotes_in_values_are_data_not_syntax(sf: Salesforce) -> None:
    soql = format_soql("SELECT COUNT() FROM Lead WHERE LastName = {}", "x' OR LastName != 'x")

    assert sf.query(soql)["totalSize"] == 0
