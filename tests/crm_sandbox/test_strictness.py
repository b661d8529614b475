"""Where the sandbox is as strict as Salesforce, so that a lenient sandbox cannot hide a pipeline
bug: unknown API versions, the open-cursor limit, the Recycle Bin's 15 days for queryAll, deep
nesting and oversized queries, a JSON error body with an ``errorCode`` for every failure, an
owner-only data file.

All over HTTPS against private servers (tests here open cursors, change and break databases).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import simple_salesforce.api
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceResourceNotFound

from crm_sandbox import SandboxServer, SeedSummary, login, seed_sandbox, store
from crm_sandbox.certs import ensure_certificates
from crm_sandbox.deletion_log import DELETION_LOG_TABLE, RECYCLE_BIN_RETENTION
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.query import MAX_OPEN_CURSORS, QueryEngine
from crm_sandbox.seed import DB_FILE_MODE
from crm_sandbox.soql import MAX_CONDITION_DEPTH
from crm_sandbox.store import to_storage_datetime
from tests.crm_sandbox.conftest import SEED_NOW, FakeClock, copy_db

NOT_FOUND_BODY = [
    {"message": "The requested resource does not exist", "errorCode": "NOT_FOUND", "fields": []}
]
UNKNOWN_EXCEPTION_PREFIX = (
    "An unexpected error occurred. Please include this ErrorId if you contact support: "
)
# 200-record pages over the seed's 4,500 Leads: every query leaves a cursor open.
SMALL_PAGES = {"Sforce-Query-Options": "batchSize=200"}


class Api:
    """Raw HTTPS calls with a session, to see statuses, headers and bodies as sent."""

    def __init__(self, server: SandboxServer) -> None:
        self.http = server.session()
        self.base, token = login(server, self.http)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params: str) -> requests.Response:
        return self.http.get(self.base + path, params=params, headers=self.headers, timeout=30)

    def send(self, method: str, path: str, body: bytes | None = None) -> requests.Response:
        headers = {**self.headers, "Content-Type": "application/json"}
        return self.http.request(method, self.base + path, data=body, headers=headers, timeout=30)

    def query(self, soql: str) -> dict[str, Any]:
        response = self.http.get(
            f"{self.base}/services/data/v59.0/query",
            params={"q": soql},
            headers={**self.headers, **SMALL_PAGES},
            timeout=30,
        )
        response.raise_for_status()
        page: dict[str, Any] = response.json()
        return page


def _salesforce_error(response: requests.Response) -> dict[str, Any]:
    """The first error of a Salesforce error answer, checking that it is one (JSON array)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, list) and body and "errorCode" in body[0], body
    first: dict[str, Any] = body[0]
    return first


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    """The private server's clock (an hour after the seed)."""
    return FakeClock(SEED_NOW + timedelta(hours=1))


@pytest.fixture(scope="module")
def strict_server(
    seeded: SeedSummary, cert_dir: Path, tmp_path_factory: pytest.TempPathFactory, clock: FakeClock
) -> Iterator[SandboxServer]:
    with SandboxServer(
        copy_db(seeded, tmp_path_factory.mktemp("strict")), cert_dir, clock=clock
    ) as running:
        yield running


@pytest.fixture(scope="module")
def api(strict_server: SandboxServer) -> Api:
    return Api(strict_server)


# --- API versions ----------------------------------------------------------------------------


def test_every_listed_version_is_served_and_the_library_default_is_listed(api: Api) -> None:
    listed = [v["version"] for v in api.get("/services/data").json()]

    assert simple_salesforce.api.DEFAULT_API_VERSION in listed
    assert listed == [f"{n}.0" for n in range(31, 65)]
    for version in listed:
        assert api.get(f"/services/data/v{version}/limits").status_code == 200, version


@pytest.mark.parametrize("version", ["v99.0", "v65.0", "v30.0", "v7.0", "v59.1", "v59", "59.0"])
@pytest.mark.parametrize("resource", ["", "/limits", "/sobjects/Lead/describe", "/query"])
def test_a_version_not_listed_answers_not_found(api: Api, version: str, resource: str) -> None:
    response = api.get(f"/services/data/{version}{resource}", q="SELECT Id FROM Lead")

    assert response.status_code == 404
    assert _salesforce_error(response) and response.json() == NOT_FOUND_BODY


def test_the_library_sees_an_unknown_version_as_not_found(
    strict_server: SandboxServer, api: Api
) -> None:
    token = api.headers["Authorization"].removeprefix("Bearer ")
    future = Salesforce(instance_url=api.base, session_id=token, session=api.http, version="99.0")

    with pytest.raises(SalesforceResourceNotFound) as refused:
        future.query("SELECT Id FROM Lead")

    assert refused.value.content == NOT_FOUND_BODY


# --- open cursors ----------------------------------------------------------------------------


def test_an_eleventh_open_cursor_releases_the_oldest(api: Api) -> None:
    pages = [api.query("SELECT Id FROM Lead") for _ in range(MAX_OPEN_CURSORS + 1)]
    assert MAX_OPEN_CURSORS == 10 and all(not p["done"] for p in pages)

    released = api.get(pages[0]["nextRecordsUrl"])

    assert released.status_code == 400
    assert _salesforce_error(released) == {
        "message": "invalid query locator",
        "errorCode": "INVALID_QUERY_LOCATOR",
        "fields": [],
    }
    for page in pages[1:]:
        assert api.get(page["nextRecordsUrl"]).status_code == 200


def test_cursors_read_to_the_end_are_no_longer_open(api: Api) -> None:
    oldest = api.query("SELECT Id FROM Lead ORDER BY Id")
    finished = api.query("SELECT Id FROM Lead ORDER BY Email")
    urls = [finished["nextRecordsUrl"]]
    while True:
        page = api.get(urls[-1]).json()
        if page["done"]:
            break
        urls.append(page["nextRecordsUrl"])
    newer = [api.query("SELECT Id FROM Lead") for _ in range(MAX_OPEN_CURSORS - 1)]

    # Ten open (oldest and nine newer); the finished one took no place among them.
    assert api.get(oldest["nextRecordsUrl"]).status_code == 200
    assert api.get(newer[0]["nextRecordsUrl"]).status_code == 200
    # Its last page can still be fetched again (a retry after a dropped connection).
    assert api.get(urls[-1]).json()["done"] is True


# --- queryAll and the Recycle Bin ------------------------------------------------------------


def test_query_all_sees_deletions_for_the_recycle_bins_15_days(
    strict_server: SandboxServer, api: Api, clock: FakeClock
) -> None:
    ages = {
        "yesterday": timedelta(days=1),
        "just in": RECYCLE_BIN_RETENTION,
        "just out": RECYCLE_BIN_RETENTION + timedelta(milliseconds=1),
        "long gone": timedelta(days=40),
    }
    deleted: dict[str, str] = {}
    with sqlite3.connect(strict_server.db_path) as conn:
        live = conn.execute(
            'SELECT "Id" FROM "Lead" WHERE "IsDeleted" = 0 ORDER BY "Id" DESC LIMIT ?', [len(ages)]
        )
        for (name, age), (record_id,) in zip(ages.items(), live.fetchall(), strict=True):
            # Deleted as a user deletes (the stamp moves, the delete log records it).
            at = to_storage_datetime(clock.now - age)
            conn.execute(
                'UPDATE "Lead" SET "IsDeleted" = 1, "SystemModstamp" = ? WHERE "Id" = ?',
                [at, record_id],
            )
            conn.execute(
                f"INSERT INTO {DELETION_LOG_TABLE} (object, id, deleted_at) VALUES (?, ?, ?)",
                ["Lead", record_id, at],
            )
            deleted[name] = record_id
    conn.close()
    soql = format_soql("SELECT Id FROM Lead WHERE Id IN {}", list(deleted.values()))

    seen = api.get("/services/data/v59.0/queryAll", q=soql).json()["records"]

    assert {r["Id"] for r in seen} == {deleted["yesterday"], deleted["just in"]}
    assert api.get("/services/data/v59.0/query", q=soql).json()["records"] == []


# --- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["query", "queryAll"])
def test_fifty_nested_nots_are_a_malformed_query(api: Api, endpoint: str) -> None:
    # Once a text/plain 500 (SQLite's parser stack overflowed), which clients retry.
    response = api.get(
        f"/services/data/v59.0/{endpoint}",
        q="SELECT Id FROM Lead WHERE " + "NOT " * 50 + "Email = 'a'",
    )

    assert response.status_code == 400
    error = _salesforce_error(response)
    assert error["errorCode"] == "MALFORMED_QUERY"
    assert f"nested too deeply: at most {MAX_CONDITION_DEPTH}" in error["message"]


def test_a_long_flat_chain_of_conditions_runs(api: Api) -> None:
    # 1,100 terms fit in the URI limit; SQLite alone would nest them past its depth of 1,000.
    soql = "SELECT Id FROM Lead WHERE " + " OR ".join(["Id=null"] * 1100)

    response = api.get("/services/data/v59.0/query", q=soql)

    assert response.status_code == 200, response.text
    assert response.json()["totalSize"] == 0


def test_a_query_too_large_for_sqlite_is_too_complicated_not_a_server_error() -> None:
    """Nesting at the limit with a long chain at every level passes SQLite's parser stack; the
    query engine answers Salesforce's 400, not a 500 that clients would retry."""
    conn = sqlite3.connect(":memory:")
    store.create_schema(conn)
    where = "Email = 'z'"
    for level in range(MAX_CONDITION_DEPTH):
        terms = [f"Email != 'a{i}'" for i in range(101)]
        where = "(" + (" AND " if level % 2 else " OR ").join([*terms, where]) + ")"

    with pytest.raises(SalesforceApiError) as refused:
        QueryEngine().run(
            conn,
            f"SELECT Id FROM Lead WHERE {where}",
            include_deleted=False,
            now=SEED_NOW,
            batch_size=200,
            version="v59.0",
        )
    conn.close()

    assert (refused.value.status, refused.value.error_code) == (400, "QUERY_TOO_COMPLICATED")


# --- every error is JSON with an errorCode ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("GET", "/services/data/v59.0/nothing/here", None, 404, "NOT_FOUND"),
        ("GET", "/nothing", None, 404, "NOT_FOUND"),
        ("GET", "/services/apexrest/Anything", None, 404, "NOT_FOUND"),
        ("POST", "/services/data/v99.0/sobjects/Lead", b"{}", 404, "NOT_FOUND"),
        ("PUT", "/services/data/v59.0/limits", None, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/services/oauth2/token", None, 405, "METHOD_NOT_ALLOWED"),
        ("POST", "/services/data/v59.0/sobjects/Lead", b"{not json", 400, "JSON_PARSER_ERROR"),
        ("PATCH", "/services/data/v59.0/composite/sobjects", b"[1]", 400, "JSON_PARSER_ERROR"),
        ("GET", "/services/data/v59.0/query", None, 400, "MALFORMED_QUERY"),
        ("GET", "/services/data/v59.0/query?q=SELECT", None, 400, "MALFORMED_QUERY"),
        ("GET", "/services/data/v59.0/query/nolocator", None, 400, "INVALID_QUERY_LOCATOR"),
    ],
)
def test_errors_are_json_with_an_error_code(
    api: Api, method: str, path: str, body: bytes | None, status: int, code: str
) -> None:
    response = api.send(method, path, body)

    assert response.status_code == status
    assert _salesforce_error(response)["errorCode"] == code


def _broken_server(
    seeded: SeedSummary, cert_dir: Path, folder: Path, breakage: str
) -> SandboxServer:
    """A server over a copy of the seed damaged by ``breakage`` (SQL), so that requests fail in
    ways no handler expects."""
    db_path = copy_db(seeded, folder)
    with sqlite3.connect(db_path) as conn:
        conn.execute(breakage)
    conn.close()
    return SandboxServer(db_path, cert_dir)


def _assert_unknown_exception(response: requests.Response) -> None:
    assert response.status_code == 500
    error = _salesforce_error(response)
    assert error["errorCode"] == "UNKNOWN_EXCEPTION"
    assert error["message"].startswith(UNKNOWN_EXCEPTION_PREFIX)
    # Like Salesforce, it names an ErrorId, never the cause.
    assert "no such table" not in response.text


def test_an_unexpected_error_in_a_handler_is_unknown_exception(
    seeded: SeedSummary, cert_dir: Path, tmp_path: Path
) -> None:
    with _broken_server(seeded, cert_dir, tmp_path, 'DROP TABLE "Lead"') as broken:
        api = Api(broken)

        _assert_unknown_exception(api.get("/services/data/v59.0/query", q="SELECT Id FROM Lead"))
        # Only that request failed: the server answers the next one.
        assert api.get("/services/data/v59.0/limits").status_code == 200


def test_an_unexpected_error_before_any_handler_is_unknown_exception(
    seeded: SeedSummary, cert_dir: Path, tmp_path: Path
) -> None:
    # Without its meta table, counting the request's API usage fails in the gate.
    with _broken_server(seeded, cert_dir, tmp_path, "DROP TABLE _sandbox_meta") as broken:
        api = Api(broken)

        _assert_unknown_exception(api.get("/services/data/v59.0/limits"))


# --- the data file is the owner's only -------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """``os.umask`` for one test: whatever it sets is undone after."""
    previous = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(previous)


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_the_seeded_database_is_owner_only_whatever_the_umask(
    tmp_path: Path, umask: Callable[[int], int], mask: int
) -> None:
    db_path = tmp_path / "crm.sqlite"
    umask(mask)
    seed_sandbox(db_path, leads=5, contacts=5, now=SEED_NOW)
    umask(0o022)

    assert stat.S_IMODE(db_path.stat().st_mode) == DB_FILE_MODE == 0o600
    with sqlite3.connect(db_path) as conn:  # readable and writable by its owner
        conn.execute("CREATE TABLE probe (x)")
    conn.close()


def test_reseeding_replaces_a_world_readable_database_with_a_private_one(tmp_path: Path) -> None:
    db_path = tmp_path / "crm.sqlite"
    seed_sandbox(db_path, leads=5, contacts=5, now=SEED_NOW)
    db_path.chmod(0o644)

    seed_sandbox(db_path, leads=5, contacts=5, now=SEED_NOW)

    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


def test_the_private_key_is_owner_only(tmp_path: Path, umask: Callable[[int], int]) -> None:
    umask(0o000)
    paths = ensure_certificates(tmp_path / "certs")
    umask(0o022)

    assert stat.S_IMODE(paths.server_key.stat().st_mode) == 0o600
