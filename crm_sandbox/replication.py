"""Salesforce's replication resources: ``sobjects/{Obj}/updated`` and ``sobjects/{Obj}/deleted``.

Both take a ``start`` and ``end`` date-time and answer for the window between them, following
Salesforce's rules:

- Seconds are ignored: both ends are truncated to the minute, and ``start`` must precede
  ``end`` by more than one minute (``INVALID_REPLICATION_DATE`` otherwise).
- ``latestDateCovered`` is ``end`` (truncated), or the start of the server's current minute if
  ``end`` is later: changes still being made in that minute are left to the next call, whose
  ``start`` must be this ``latestDateCovered``. The window is [start, latestDateCovered).
- ``start`` may reach back at most 30 days (``INVALID_REPLICATION_DATE``).
- Deletions are only answered for the last 15 days, or less after a purge: the answer's
  ``earliestDateAvailable`` is the minute 15 days back, or the minute after the newest purged
  deletion if that is later. A ``start`` (truncated) before it is refused with 400
  ``INVALID_REPLICATION_DATE``, as Salesforce documents ("If the purge has been performed
  before your getDeleted() call is executed, an INVALID_REPLICATION_DATE error is returned"):
  the client must resync. Some orgs and API versions answer 200 instead, with an
  ``earliestDateAvailable`` later than ``start`` as the resync signal; a server created with
  ``deleted_before_log=LATE_EARLIEST_DATE`` answers that way, so clients can be tested
  against both.
- ``getUpdated`` lists created and changed records by SystemModstamp, deleted ones excluded.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from crm_sandbox import deletion_log, store, values
from crm_sandbox.errors import SalesforceApiError
from crm_sandbox.objects import ObjectDef

UPDATED_REACH = timedelta(days=30)
# How far back getDeleted's delete log reaches. Its own window, though as long as the Recycle
# Bin keeps records for queryAll (``deletion_log.RECYCLE_BIN_RETENTION``).
DELETED_RETENTION = timedelta(days=15)
# How getDeleted answers a start older than the delete log reaches: Salesforce's documented
# 400 INVALID_REPLICATION_DATE (the default), or 200 with a late earliestDateAvailable.
INVALID_REPLICATION_DATE = "invalid_replication_date"
LATE_EARLIEST_DATE = "late_earliest_date"
DeletedBeforeLog = Literal["invalid_replication_date", "late_earliest_date"]
DELETED_BEFORE_LOG_ANSWERS: tuple[str, ...] = (INVALID_REPLICATION_DATE, LATE_EARLIEST_DATE)
# Salesforce refuses windows holding more Ids than this (EXCEEDED_ID_LIMIT).
MAX_IDS = 600_000
_MINUTE = timedelta(minutes=1)
# What simple-salesforce sends for an aware datetime (after URL decoding), and the Z / +0000 /
# fractional-second forms other clients use. An offset is required: the library turns a naive
# datetime into a garbled value ("...T10:00:00:"), which must be refused, not guessed at.
_DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})$"
)


def _replication_error(message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "INVALID_REPLICATION_DATE", message)


def floor_minute(value: datetime) -> datetime:
    """``value`` with its seconds dropped."""
    return value.replace(second=0, microsecond=0)


def api_datetime(value: datetime) -> str:
    """A datetime as Salesforce's JSON writes it (``2026-11-26T10:00:00.000+0000``)."""
    return values.to_api_datetime(store.to_storage_datetime(value))


def parse_date_param(name: str, raw: str | None) -> datetime:
    """The aware datetime of the ``start`` or ``end`` query parameter; 400 when unusable."""
    if raw is None or not raw.strip():
        raise SalesforceApiError(
            400, "MALFORMED_QUERY", f"Missing required parameter '{name}' (an ISO 8601 date-time)"
        )
    # A '+' sent unencoded arrives as a space: that offset is still meant as '+'.
    text = raw.strip().replace(" ", "+")
    if not _DATETIME_RE.match(text):
        raise SalesforceApiError(
            400,
            "MALFORMED_QUERY",
            f"Invalid value for '{name}': {raw!r} is not an ISO 8601 date-time with a UTC offset",
        )
    return values.parse_api_datetime(text).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    """A validated replication window: [start, covered), minute-aligned, UTC."""

    start: datetime
    end: datetime
    covered: datetime


def window(start_raw: str | None, end_raw: str | None, now: datetime) -> Window:
    """The window asked for, checked against Salesforce's rules at server time ``now``."""
    now = now.astimezone(UTC)
    start = floor_minute(parse_date_param("start", start_raw))
    end = floor_minute(parse_date_param("end", end_raw))
    if end - start <= _MINUTE:
        raise _replication_error(
            "startDate must chronologically precede endDate by more than one minute"
        )
    if start < now - UPDATED_REACH:
        raise _replication_error("startDate cannot be more than 30 days ago")
    return Window(start=start, end=end, covered=min(end, floor_minute(now)))


def get_updated(
    conn: sqlite3.Connection, obj: ObjectDef, start: str | None, end: str | None, now: datetime
) -> dict[str, Any]:
    """The ``updated`` answer: Ids of live records whose SystemModstamp is in the window."""
    span = window(start, end, now)
    live = ' AND "IsDeleted" = 0' if obj.has_field("IsDeleted") else ""
    rows = conn.execute(
        f'SELECT "Id" FROM {store.quote_ident(obj.name)} '
        f'WHERE "SystemModstamp" >= ? AND "SystemModstamp" < ?{live} '
        'ORDER BY "SystemModstamp", "Id"',
        (store.to_storage_datetime(span.start), store.to_storage_datetime(span.covered)),
    )
    ids = [str(r[0]) for r in rows]
    _check_id_limit(ids)
    return {"ids": ids, "latestDateCovered": api_datetime(span.covered)}


def earliest_date_available(conn: sqlite3.Connection, obj: ObjectDef, now: datetime) -> datetime:
    """The oldest deletion the log still answers for: 15 days back, or after the last purge.

    A purged deletion's minute is unavailable as a whole, so the purge moves the reach to the
    minute after it: a client starting at that minute then learns it must resync.
    """
    earliest = floor_minute(now.astimezone(UTC) - DELETED_RETENTION)
    purged = deletion_log.purged_through(conn, obj)
    if purged is not None:
        earliest = max(earliest, floor_minute(purged) + _MINUTE)
    return earliest


def get_deleted(
    conn: sqlite3.Connection,
    obj: ObjectDef,
    start: str | None,
    end: str | None,
    now: datetime,
    before_log: DeletedBeforeLog = INVALID_REPLICATION_DATE,
) -> dict[str, Any]:
    """The ``deleted`` answer: logged deletions in the window, within the log's reach.

    A ``start`` before ``earliestDateAvailable`` is refused (400 INVALID_REPLICATION_DATE), or,
    with ``before_log=LATE_EARLIEST_DATE``, answered with what the log still holds.
    """
    span = window(start, end, now)
    earliest = earliest_date_available(conn, obj, now)
    if span.start < earliest and before_log == INVALID_REPLICATION_DATE:
        raise _replication_error(
            f"startDate is before earliestDateAvailable ({api_datetime(earliest)}): the delete "
            "log no longer reaches back that far"
        )
    records: list[dict[str, str]] = []
    if obj.has_field("IsDeleted"):
        deletion_log.ensure(conn)
        for record_id, deleted_at in deletion_log.entries(
            conn, obj, max(span.start, earliest), span.covered
        ):
            records.append({"id": record_id, "deletedDate": values.to_api_datetime(deleted_at)})
    _check_id_limit(records)
    return {
        "deletedRecords": records,
        "earliestDateAvailable": api_datetime(earliest),
        "latestDateCovered": api_datetime(span.covered),
    }


def _check_id_limit(found: list[Any]) -> None:
    if len(found) > MAX_IDS:
        raise SalesforceApiError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"More than {MAX_IDS:,} ids found; choose start and end dates closer together",
        )
