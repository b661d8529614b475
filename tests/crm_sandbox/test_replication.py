"""getUpdated / getDeleted (``sobjects/{Obj}/updated`` and ``/deleted``) over HTTPS.

The private server's database gets records with known SystemModstamps and deletions written
straight into SQLite (and through the churn), so every window's expected answer is exact.
getDeleted refuses a start older than its log (400 INVALID_REPLICATION_DATE) unless the server
is created with ``deleted_before_log=LATE_EARLIEST_DATE`` (200, late earliestDateAvailable).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound

from crm_sandbox import SandboxServer, SeedSummary, churn_sandbox
from crm_sandbox.deletion_log import DELETION_LOG_TABLE
from crm_sandbox.replication import LATE_EARLIEST_DATE
from crm_sandbox.store import to_storage_datetime
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, client_for, copy_db

_API_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00\.000\+0000$")
# A quiet stretch after the seed: nothing in the seeded file is stamped in it.
BASE = SEED_NOW + timedelta(days=2)  # 2026-03-04 09:30 UTC
CLOCK_START = BASE + timedelta(hours=1)
# How far back getDeleted answers at CLOCK_START (15 days, minute-aligned).
EARLIEST = CLOCK_START - timedelta(days=15)


def _api(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _error_code(error: SalesforceMalformedRequest) -> str:
    return str(error.content[0]["errorCode"])


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock(CLOCK_START)


@pytest.fixture(scope="module")
def server(
    seeded: SeedSummary,
    cert_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    clock: FakeClock,
) -> Iterator[SandboxServer]:
    db_path = copy_db(seeded, tmp_path_factory.mktemp("replication"))
    with SandboxServer(db_path, cert_dir, clock=clock) as running:
        yield running


@pytest.fixture(scope="module")
def rsf(server: SandboxServer) -> Salesforce:
    return client_for(server)


@pytest.fixture(scope="module")
def lenient_server(
    server: SandboxServer, cert_dir: Path, clock: FakeClock
) -> Iterator[SandboxServer]:
    """A second server over the same file and clock, answering a too-old getDeleted start with
    200 and a late earliestDateAvailable (as some orgs do)."""
    with SandboxServer(
        server.db_path, cert_dir, clock=clock, deleted_before_log=LATE_EARLIEST_DATE
    ) as running:
        yield running


@pytest.fixture(scope="module")
def lenient_sf(lenient_server: SandboxServer) -> Salesforce:
    return client_for(lenient_server)


@pytest.fixture(autouse=True)
def reset_clock(clock: FakeClock) -> None:
    clock.now = CLOCK_START


@pytest.fixture(scope="module")
def db(server: SandboxServer) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(server.db_path, isolation_level=None)
    yield conn
    conn.close()


def _stamp(db: sqlite3.Connection, table: str, at: datetime, offset: int = 0) -> str:
    """Give the ``offset``-th live record of ``table`` (Id order) the SystemModstamp ``at``."""
    record_id = db.execute(
        f'SELECT "Id" FROM "{table}" WHERE "IsDeleted" = 0 ORDER BY "Id" LIMIT 1 OFFSET ?',
        (offset,),
    ).fetchone()[0]
    db.execute(
        f'UPDATE "{table}" SET "SystemModstamp" = ? WHERE "Id" = ?',
        (to_storage_datetime(at), record_id),
    )
    return str(record_id)


@pytest.fixture(scope="module")
def stamped(db: sqlite3.Connection) -> dict[str, str]:
    """Contacts changed at known seconds around BASE (nothing else is stamped near it)."""
    return {
        "at_00_20": _stamp(db, "Contact", BASE + timedelta(seconds=20), 0),
        "at_04_59": _stamp(db, "Contact", BASE + timedelta(minutes=4, seconds=59), 1),
        "at_05_10": _stamp(db, "Contact", BASE + timedelta(minutes=5, seconds=10), 2),
        "before": _stamp(db, "Contact", BASE - timedelta(seconds=1), 3),
    }


# --- getUpdated ----------------------------------------------------------------------------


def test_updated_answers_ids_and_latest_date_covered(
    rsf: Salesforce, stamped: dict[str, str]
) -> None:
    answer = rsf.Contact.updated(BASE, BASE + timedelta(minutes=10))

    assert set(answer) == {"ids", "latestDateCovered"}
    assert answer["ids"] == [stamped["at_00_20"], stamped["at_04_59"], stamped["at_05_10"]]
    assert answer["latestDateCovered"] == _api(BASE + timedelta(minutes=10))
    assert _API_DATETIME.match(answer["latestDateCovered"])


def test_seconds_are_truncated(rsf: Salesforce, stamped: dict[str, str]) -> None:
    # start 09:30:45 counts from 09:30:00; end 09:35:30 covers up to 09:35:00 (exclusive).
    answer = rsf.Contact.updated(
        BASE + timedelta(seconds=45), BASE + timedelta(minutes=5, seconds=30)
    )

    assert answer["ids"] == [stamped["at_00_20"], stamped["at_04_59"]]
    assert answer["latestDateCovered"] == _api(BASE + timedelta(minutes=5))


def test_next_window_starts_at_latest_date_covered(
    rsf: Salesforce, stamped: dict[str, str]
) -> None:
    first = rsf.Contact.updated(BASE, BASE + timedelta(minutes=5))
    covered = datetime.strptime(first["latestDateCovered"], "%Y-%m-%dT%H:%M:%S.%f%z")
    second = rsf.Contact.updated(covered, BASE + timedelta(minutes=10))

    assert set(first["ids"]) | set(second["ids"]) == {
        stamped["at_00_20"],
        stamped["at_04_59"],
        stamped["at_05_10"],
    }
    assert not set(first["ids"]) & set(second["ids"])


def test_latest_date_covered_is_never_after_the_server_clock(
    rsf: Salesforce, clock: FakeClock, stamped: dict[str, str]
) -> None:
    clock.now = BASE + timedelta(minutes=5, seconds=40)

    answer = rsf.Contact.updated(BASE, BASE + timedelta(days=1))

    assert answer["latestDateCovered"] == _api(BASE + timedelta(minutes=5))
    assert stamped["at_05_10"] not in answer["ids"]  # its minute is not over yet


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (BASE, BASE + timedelta(minutes=1)),
        (BASE, BASE + timedelta(minutes=1, seconds=59)),  # 09:30 -> 09:31 once truncated
        (BASE + timedelta(minutes=2), BASE),
        (BASE, BASE),
    ],
)
def test_start_must_precede_end_by_more_than_a_minute(
    rsf: Salesforce, start: datetime, end: datetime
) -> None:
    for call in (rsf.Lead.updated, rsf.Lead.deleted):
        with pytest.raises(SalesforceMalformedRequest) as error:
            call(start, end)
        assert _error_code(error.value) == "INVALID_REPLICATION_DATE"


def test_two_minutes_apart_is_enough(rsf: Salesforce) -> None:
    answer = rsf.Lead.updated(BASE, BASE + timedelta(minutes=2))

    assert answer["latestDateCovered"] == _api(BASE + timedelta(minutes=2))


def test_start_reaches_back_thirty_days(rsf: Salesforce) -> None:
    within = CLOCK_START - timedelta(days=29, hours=23)
    too_old = CLOCK_START - timedelta(days=30, minutes=2)

    assert "ids" in rsf.Lead.updated(within, CLOCK_START)
    for call in (rsf.Lead.updated, rsf.Lead.deleted):
        with pytest.raises(SalesforceMalformedRequest) as error:
            call(too_old, CLOCK_START)
        assert _error_code(error.value) == "INVALID_REPLICATION_DATE"


def test_updated_matches_system_modstamp_over_a_wide_window(
    rsf: Salesforce, db: sqlite3.Connection
) -> None:
    start, end = SEED_NOW - timedelta(days=20), SEED_NOW - timedelta(days=5)

    answer = rsf.Lead.updated(start, end)

    expected = [
        r[0]
        for r in db.execute(
            'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0 AND "SystemModstamp" >= ? '
            'AND "SystemModstamp" < ? ORDER BY "SystemModstamp", "Id"',
            (to_storage_datetime(start), to_storage_datetime(end)),
        )
    ]
    assert len(expected) > 100
    assert answer["ids"] == expected


def test_naive_datetimes_are_refused(rsf: Salesforce) -> None:
    # simple-salesforce renders a naive datetime as "2026-03-04T09:30:00:" (no offset).
    with pytest.raises(SalesforceMalformedRequest):
        rsf.Lead.updated(
            BASE.replace(tzinfo=None), (BASE + timedelta(hours=1)).replace(tzinfo=None)
        )
    with pytest.raises(SalesforceMalformedRequest):
        rsf.Lead.deleted(
            BASE.replace(tzinfo=None), (BASE + timedelta(hours=1)).replace(tzinfo=None)
        )


def _get(server: SandboxServer, token: str | None, path: str, query: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return server.session().get(
        f"{server.instance_url}/services/data/v59.0/{path}?{query}", headers=headers, timeout=10
    )


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("start=2026-03-04T09%3A30%3A00%2B00%3A00&end=2026-03-04T09%3A40%3A00%2B00%3A00", 200),
        ("start=2026-03-04T09:30:00Z&end=2026-03-04T09:40:00.000+0000".replace("+", "%2B"), 200),
        ("start=2026-03-04T11%3A30%3A00%2B02%3A00&end=2026-03-04T09%3A40%3A00Z", 200),
        ("start=2026-03-04T09%3A30%3A00&end=2026-03-04T09%3A40%3A00", 400),
        ("start=2026-03-04T09%3A30%3A00%3A&end=2026-03-04T09%3A40%3A00%3A", 400),
        ("start=yesterday&end=2026-03-04T09%3A40%3A00Z", 400),
        ("end=2026-03-04T09%3A40%3A00Z", 400),
    ],
)
def test_date_formats(
    server: SandboxServer, rsf: Salesforce, stamped: dict[str, str], query: str, status: int
) -> None:
    response = _get(server, rsf.session_id, "sobjects/Contact/updated/", query)

    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["latestDateCovered"] == _api(BASE + timedelta(minutes=10))
        assert stamped["at_00_20"] in response.json()["ids"]


def test_same_gate_as_the_other_routes(server: SandboxServer, rsf: Salesforce) -> None:
    query = "start=2026-03-04T09:30:00Z&end=2026-03-04T09:40:00Z"
    before = server.api_usage

    without_slash = _get(server, rsf.session_id, "sobjects/Lead/deleted", query)
    with_slash = _get(server, rsf.session_id, "sobjects/Lead/updated/", query)
    unauthorised = _get(server, None, "sobjects/Lead/updated/", query)
    unknown = _get(server, rsf.session_id, "sobjects/Shoe__c/updated/", query)

    assert without_slash.status_code == with_slash.status_code == 200
    assert with_slash.headers["Sforce-Limit-Info"].startswith("api-usage=")
    assert unauthorised.status_code == 401
    assert unauthorised.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    assert unknown.status_code == 404
    assert server.api_usage == before + 3  # refused-for-auth requests are not counted
    with pytest.raises(SalesforceResourceNotFound):
        rsf.restful("sobjects/Shoe__c/deleted/", params={"start": "x", "end": "y"})


# --- getDeleted ----------------------------------------------------------------------------


def _log(db: sqlite3.Connection, table: str, at: datetime, offset: int) -> str:
    """Soft-delete the ``offset``-th live record of ``table`` at ``at``, as a user would."""
    record_id = _stamp(db, table, at, offset)
    db.execute(f'UPDATE "{table}" SET "IsDeleted" = 1 WHERE "Id" = ?', (record_id,))
    db.execute(
        f"INSERT INTO {DELETION_LOG_TABLE} (object, id, deleted_at) VALUES (?, ?, ?)",
        (table, record_id, to_storage_datetime(at)),
    )
    return record_id


@pytest.fixture(scope="module")
def deleted_leads(db: sqlite3.Connection) -> dict[str, str]:
    """Leads deleted at known times (the seed's own deletions are weeks older than BASE)."""
    return {
        "at_01_05": _log(db, "Lead", BASE + timedelta(minutes=1, seconds=5), 10),
        "at_03_00": _log(db, "Lead", BASE + timedelta(minutes=3), 11),
        "at_09_59": _log(db, "Lead", BASE + timedelta(minutes=9, seconds=59), 12),
    }


def test_deleted_answers_records_and_dates(rsf: Salesforce, deleted_leads: dict[str, str]) -> None:
    answer = rsf.Lead.deleted(BASE, BASE + timedelta(minutes=9, seconds=30))

    assert set(answer) == {"deletedRecords", "earliestDateAvailable", "latestDateCovered"}
    assert answer["deletedRecords"] == [
        {"id": deleted_leads["at_01_05"], "deletedDate": "2026-03-04T09:31:05.000+0000"},
        {"id": deleted_leads["at_03_00"], "deletedDate": "2026-03-04T09:33:00.000+0000"},
    ]
    assert answer["latestDateCovered"] == _api(BASE + timedelta(minutes=9))
    assert answer["earliestDateAvailable"] == _api(CLOCK_START - timedelta(days=15))


def test_deleted_records_are_not_updated_ones(
    rsf: Salesforce, deleted_leads: dict[str, str]
) -> None:
    updated = rsf.Lead.updated(BASE, BASE + timedelta(minutes=20))["ids"]

    assert not set(deleted_leads.values()) & set(updated)


def _seeded_lead_deletions(db: sqlite3.Connection, start: datetime, end: datetime) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 1 AND "SystemModstamp" >= ? '
            'AND "SystemModstamp" < ? ORDER BY "SystemModstamp", "Id"',
            (to_storage_datetime(start), to_storage_datetime(end)),
        )
    ]


def test_deleted_matches_the_seeded_deletions_within_fifteen_days(
    rsf: Salesforce, db: sqlite3.Connection
) -> None:
    # 30 seconds past the log's first minute: truncated, the start is that minute itself.
    answer = rsf.Lead.deleted(EARLIEST + timedelta(seconds=30), SEED_NOW)

    assert answer["earliestDateAvailable"] == _api(EARLIEST)
    expected = _seeded_lead_deletions(db, EARLIEST, SEED_NOW)
    assert expected, "the seed has no Lead deleted in the last 15 days"
    assert [r["id"] for r in answer["deletedRecords"]] == expected


@pytest.mark.parametrize(
    "start",
    [EARLIEST - timedelta(seconds=1), EARLIEST - timedelta(days=5), CLOCK_START - timedelta(29)],
)
def test_a_start_before_the_log_is_refused_like_salesforce(
    server: SandboxServer, rsf: Salesforce, start: datetime
) -> None:
    query = f"start={_api(start)}&end={_api(CLOCK_START)}".replace("+", "%2B")

    response = _get(server, rsf.session_id, "sobjects/Lead/deleted/", query)

    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "startDate is before earliestDateAvailable (2026-02-17T10:30:00.000+0000):"
            " the delete log no longer reaches back that far",
            "errorCode": "INVALID_REPLICATION_DATE",
            "fields": [],
        }
    ]
    with pytest.raises(SalesforceMalformedRequest) as error:
        rsf.Lead.deleted(start, CLOCK_START)
    assert error.value.status == 400
    assert _error_code(error.value) == "INVALID_REPLICATION_DATE"


def test_get_updated_is_not_bound_by_the_delete_log(rsf: Salesforce) -> None:
    assert "ids" in rsf.Lead.updated(EARLIEST - timedelta(days=5), CLOCK_START)


def test_the_lenient_answer_is_200_with_a_late_earliest_date(
    lenient_sf: Salesforce, db: sqlite3.Connection
) -> None:
    start = CLOCK_START - timedelta(days=20)

    answer = lenient_sf.Lead.deleted(start, SEED_NOW)

    assert answer["earliestDateAvailable"] == _api(EARLIEST)
    assert answer["earliestDateAvailable"] > _api(start)  # the resync signal
    # What the log still holds, from its first minute.
    expected = _seeded_lead_deletions(db, EARLIEST, SEED_NOW)
    assert expected and [r["id"] for r in answer["deletedRecords"]] == expected


def test_the_lenient_server_still_refuses_a_start_over_thirty_days_ago(
    lenient_sf: Salesforce,
) -> None:
    with pytest.raises(SalesforceMalformedRequest) as error:
        lenient_sf.Lead.deleted(CLOCK_START - timedelta(days=31), CLOCK_START)
    assert _error_code(error.value) == "INVALID_REPLICATION_DATE"


def test_an_unknown_deleted_before_log_answer_is_refused(
    server: SandboxServer, cert_dir: Path
) -> None:
    with pytest.raises(ValueError, match="deleted_before_log"):
        SandboxServer(server.db_path, cert_dir, deleted_before_log="ignore")  # type: ignore[arg-type]


def test_objects_without_deletes_answer_an_empty_list(rsf: Salesforce) -> None:
    answer = rsf.User.deleted(BASE, BASE + timedelta(minutes=10))

    assert answer["deletedRecords"] == []
    assert answer["latestDateCovered"] == _api(BASE + timedelta(minutes=10))


# --- after a churn -------------------------------------------------------------------------


@pytest.fixture()
def churn_server(
    seeded: SeedSummary, cert_dir: Path, tmp_path: Path
) -> Iterator[tuple[SandboxServer, FakeClock]]:
    clock = FakeClock(CLOCK_START)
    with SandboxServer(copy_db(seeded, tmp_path), cert_dir, clock=clock) as running:
        yield running, clock


def test_churn_then_get_updated_and_deleted_return_exactly_the_touched_ids(
    churn_server: tuple[SandboxServer, FakeClock],
) -> None:
    server, clock = churn_server
    churn_at = BASE + timedelta(minutes=7, seconds=15)
    summary = churn_sandbox(server.db_path, deletes=30, seed=9, now=churn_at)
    clock.now = churn_at + timedelta(minutes=3)
    sf = client_for(server)

    for name in ("Lead", "Contact", "Account", "Opportunity"):
        sobject = getattr(sf, name)
        updated = sobject.updated(BASE, clock.now)
        deleted = sobject.deleted(BASE, clock.now)

        assert set(updated["ids"]) == summary.live_changed(name), name
        assert len(updated["ids"]) == len(set(updated["ids"]))
        assert {r["id"] for r in deleted["deletedRecords"]} == set(summary.deleted.get(name, []))
        assert {r["deletedDate"] for r in deleted["deletedRecords"]} <= {
            "2026-03-04T09:37:15.000+0000"
        }


def test_purge_moves_earliest_date_available(
    churn_server: tuple[SandboxServer, FakeClock], cert_dir: Path
) -> None:
    server, clock = churn_server
    deleted_at = BASE + timedelta(minutes=7, seconds=15)
    first = churn_sandbox(
        server.db_path, updates=0, creates=0, converts=0, deletes=15, now=deleted_at
    )
    sf = client_for(server)
    start = BASE
    clock.now = BASE + timedelta(days=2)
    before = sf.Lead.deleted(start, clock.now)
    assert {r["id"] for r in before["deletedRecords"]} == set(first.deleted["Lead"])
    assert before["earliestDateAvailable"] < _api(start)

    # A later churn with a one-day retention purges the first churn's deletions.
    purge = churn_sandbox(
        server.db_path,
        updates=0,
        creates=0,
        converts=0,
        deletes=0,
        now=clock.now,
        retention_days=1,
    )
    everything = sf.query_all("SELECT Id FROM Lead WHERE IsDeleted = true", include_deleted=True)
    assert set(first.deleted["Lead"]) <= set(purge.purged["Lead"])
    assert not set(first.deleted["Lead"]) & {r["Id"] for r in everything["records"]}

    # The log now starts the minute after the purged deletions: an older start must resync.
    with pytest.raises(SalesforceMalformedRequest) as error:
        sf.Lead.deleted(start, clock.now)
    assert _error_code(error.value) == "INVALID_REPLICATION_DATE"
    assert "2026-03-04T09:38:00.000+0000" in error.value.content[0]["message"]
    from_the_log = sf.Lead.deleted(BASE + timedelta(minutes=8), clock.now)
    assert from_the_log["deletedRecords"] == []
    assert from_the_log["earliestDateAvailable"] == _api(BASE + timedelta(minutes=8))

    # Answered the lenient way, the same start gets 200 and the late earliestDateAvailable.
    with SandboxServer(
        server.db_path, cert_dir, clock=clock, deleted_before_log=LATE_EARLIEST_DATE
    ) as lenient:
        after = client_for(lenient).Lead.deleted(start, clock.now)
    assert after["deletedRecords"] == []
    assert after["earliestDateAvailable"] == _api(BASE + timedelta(minutes=8))
    assert after["earliestDateAvailable"] > _api(start)  # the client must resync
