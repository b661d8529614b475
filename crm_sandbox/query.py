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
# Open cursors kept in memory: at most this many, each forgotten after 15 idle minutes, as
# Salesforce expires its query locators. A finished cursor is kept too: a client may retry its
# last page after a dropped connection.
MAX_OPEN_CURSORS = 50
CURSOR_IDLE_SECONDS = 15 * 60
_LOCATOR_PREFIX = "01g"
_BATCH_SIZE_RE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


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
            (matching,) = conn.execute(sql, params).fetchone()
            total = max(0, matching - compiled.offset)
            if compiled.limit is not None:
                total = min(total, compiled.limit)
            return {"totalSize": total, "done": True, "records": []}
        sql, params = compiled.ids_sql()
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
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
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
        return page

    def _remember(self, cursor: _Cursor) -> str:
        with self._lock:
            self._serial += 1
            locator = make_id(_LOCATOR_PREFIX, self._serial)
            self._cursors[locator] = cursor
            self._expire()
        return locator

    def _expire(self) -> None:
        """Forget idle cursors and the oldest beyond the cap (the caller holds the lock)."""
        cutoff = time.monotonic() - CURSOR_IDLE_SECONDS
        for locator in [k for k, c in self._cursors.items() if c.last_used < cutoff]:
            del self._cursors[locator]
        while len(self._cursors) > MAX_OPEN_CURSORS:
            self._cursors.popitem(last=False)
