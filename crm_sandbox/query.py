"""Running SOQL queries and serving their result pages (``query``, ``queryAll``, locators).

When a query runs, the Ids of every matching record are listed once, in query order. Pages are
then cut from that list and their records fetched by Id, so paging is stable: a record changed
or deleted between two page requests cannot shift, duplicate or drop rows, as with Salesforce's
server-side cursors.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_sandbox import values
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.ids import make_id
from crm_sandbox.records import attributes
from crm_sandbox.soql import (
    CompiledQuery,
    Projection,
    compile_soql,
    install_sql_functions,
    parse_soql,
)

DEFAULT_BATCH_SIZE = 2000
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2000
# Salesforce's documented cursor limit: a user has at most 10 query cursors open; opening an
# 11th releases the oldest, and a queryMore on a released (or expired) locator answers 400
# INVALID_QUERY_LOCATOR. Cursors expire after 15 idle minutes. (Salesforce's limits cheat sheet
# now says the cap was lifted and locators last two days; the sandbox keeps the stricter, long
# documented behaviour, which a client that works here also survives there.) The sandbox has
# one API user, so the cap is per server. A finished cursor (its last page served) is no longer
# open and does not count, but is kept while there is room (at most as many again) so that a
# client may retry its last page after a dropped connection.
MAX_OPEN_CURSORS = 10
MAX_FINISHED_CURSORS = MAX_OPEN_CURSORS
CURSOR_IDLE_SECONDS = 15 * 60
INVALID_LOCATOR_MESSAGE = "invalid query locator"
# Salesforce's answer to a query too complex to run (as widely reported).
QUERY_TOO_COMPLICATED_MESSAGE = (
    "Query is either selecting too many fields or the filter conditions are too complicated."
)
# SQLite's errors for a statement too large to compile.
_SQLITE_SIZE_LIMITS = ("parser stack overflow", "Expression tree is too large", "too many")
_LOCATOR_PREFIX = "01g"
_BATCH_SIZE_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


@contextmanager
def within_sqlite_limits() -> Iterator[None]:
    """Turn SQLite refusing a query for its size into Salesforce's 400 QUERY_TOO_COMPLICATED.

    The SOQL translation bounds nesting and groups long chains, but a query combining both at
    their extremes can still pass SQLite's parser stack or expression depth. That is the
    query's fault, not a passing server fault: a 500 would be retried by clients.
    """
    try:
        yield
    except sqlite3.OperationalError as error:
        if not any(limit in str(error) for limit in _SQLITE_SIZE_LIMITS):
            raise
        raise SalesforceApiError(
            400, "QUERY_TOO_COMPLICATED", QUERY_TOO_COMPLICATED_MESSAGE
        ) from None


def batch_size_from_header(header: str | None) -> int:
    """The page size asked for in ``Sforce-Query-Options``, clamped to 200..2000."""
    if not header:
        return DEFAULT_BATCH_SIZE
    match = _BATCH_SIZE_RE.search(header)
    if match is None:
        return DEFAULT_BATCH_SIZE
    return max(MIN_BATCH_SIZE, min(MAX_BATCH_SIZE, int(match.group(1))))


@dataclass
class _Cursor:
    compiled: CompiledQuery
    ids: list[str]
    batch_size: int
    endpoint: str
    # Real elapsed time (not the server's possibly fake clock) decides expiry.
    last_used: float = dataclasses.field(default_factory=time.monotonic)
    # Whether its last page has been served: no longer an open cursor.
    finished: bool = False


def _render(projections: list[Projection], row: sqlite3.Row, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for projection in projections:
        if projection.column is not None:
            assert projection.field is not None
            out[projection.key] = values.to_api(projection.field, row[projection.column])
            continue
        parent = next(
            ((obj, row[column]) for obj, column in projection.id_columns if row[column]), None
        )
        if parent is None:
            out[projection.key] = None
        else:
            obj, parent_id = parent
            out[projection.key] = {
                "attributes": attributes(version, obj, parent_id),
                **_render(projection.children, row, version),
            }
    return out


class QueryEngine:
    """Runs queries against a connection and keeps the cursors of unfinished result sets."""

    def __init__(self) -> None:
        self._cursors: OrderedDict[str, _Cursor] = OrderedDict()
        self._serial = 0
        self._lock = threading.Lock()

    def run(
        self,
        conn: sqlite3.Connection,
        soql: str,
        *,
        include_deleted: bool,
        now: datetime,
        batch_size: int,
        version: str,
    ) -> dict[str, Any]:
        """The first result page of ``soql`` (``include_deleted`` means queryAll)."""
        compiled = compile_soql(parse_soql(soql), include_deleted=include_deleted, now=now)
        install_sql_functions(conn)
        if compiled.is_count:
            sql, params = compiled.count_sql()
            with within_sqlite_limits():
                (matching,) = conn.execute(sql, params).fetchone()
            total = max(0, matching - compiled.offset)
            if compiled.limit is not None:
                total = min(total, compiled.limit)
            return {"totalSize": total, "done": True, "records": []}
        sql, params = compiled.ids_sql()
        with within_sqlite_limits():
            ids = [str(r[0]) for r in conn.execute(sql, params)]
        endpoint = "queryAll" if include_deleted else "query"
        cursor = _Cursor(compiled, ids, batch_size, endpoint)
        return self._page(conn, cursor, 0, version)

    def more(
        self, conn: sqlite3.Connection, locator: str, offset: int, version: str
    ) -> dict[str, Any]:
        """The page starting at ``offset`` of the result set behind ``locator``."""
        with self._lock:
            self._expire()
            cursor = self._cursors.get(locator)
            if cursor is not None:
                cursor.last_used = time.monotonic()
        if cursor is None or offset < 0 or offset >= len(cursor.ids):
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", INVALID_LOCATOR_MESSAGE)
        install_sql_functions(conn)
        return self._page(conn, cursor, offset, version, locator)

    def _page(
        self,
        conn: sqlite3.Connection,
        cursor: _Cursor,
        offset: int,
        version: str,
        locator: str | None = None,
    ) -> dict[str, Any]:
        page_ids = cursor.ids[offset : offset + cursor.batch_size]
        rows = {}
        if page_ids:
            sql = cursor.compiled.rows_for_ids_sql()
            rows = {r["row_id"]: r for r in conn.execute(sql, (json.dumps(page_ids),))}
        sobject = cursor.compiled.sobject
        records = [
            {
                "attributes": attributes(version, sobject, record_id),
                **_render(cursor.compiled.projections, rows[record_id], version),
            }
            for record_id in page_ids
            if record_id in rows
        ]
        next_offset = offset + len(page_ids)
        page: dict[str, Any] = {"totalSize": len(cursor.ids), "done": True, "records": records}
        if next_offset < len(cursor.ids):
            locator = locator or self._remember(cursor)
            page["done"] = False
            page["nextRecordsUrl"] = (
                f"/services/data/{version}/{cursor.endpoint}/{locator}-{next_offset}"
            )
        elif locator is not None:
            with self._lock:
                cursor.finished = True
        return page

    def _remember(self, cursor: _Cursor) -> str:
        with self._lock:
            self._serial += 1
            locator = make_id(_LOCATOR_PREFIX, self._serial)
            self._cursors[locator] = cursor
            self._expire()
        return locator

    def _expire(self) -> None:
        """Forget idle cursors, then the oldest open ones beyond ``MAX_OPEN_CURSORS`` and the
        oldest finished ones beyond ``MAX_FINISHED_CURSORS`` (the caller holds the lock).

        "Oldest" is by opening, as Salesforce releases cursors: reading a cursor does not
        protect it from being released by ten newer ones.
        """
        cutoff = time.monotonic() - CURSOR_IDLE_SECONDS
        for locator in [k for k, c in self._cursors.items() if c.last_used < cutoff]:
            del self._cursors[locator]
        for finished, cap in ((False, MAX_OPEN_CURSORS), (True, MAX_FINISHED_CURSORS)):
            kind = [k for k, c in self._cursors.items() if c.finished is finished]
            for locator in kind[: max(0, len(kind) - cap)]:
                del self._cursors[locator]
