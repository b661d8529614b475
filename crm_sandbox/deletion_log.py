"""The delete log: when each soft-deleted record was deleted, and what has been purged.

Salesforce keeps deleted records in the Recycle Bin (``IsDeleted = true``, visible to queryAll)
and writes each deletion to a delete log that ``getDeleted`` reads. After the retention period
records are physically deleted (purged) and leave both; the log then only reaches back to the
newest purged deletion. The sandbox keeps the log in a side table rather than in a column of the
object tables, so that it can never leak into describe, SOQL or record reads (which only know
the API fields), and the newest purged deletion per object in the meta table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta

from crm_sandbox import store
from crm_sandbox.objects import OBJECTS, ObjectDef

DELETION_LOG_TABLE = "_sandbox_deletion_log"
# How long a deleted record stays in Salesforce's Recycle Bin: queryAll sees it for this long
# after its deletion (see ``soql``), and the churn purges it after this long by default. The
# one place this period is set. getDeleted's reach is its own (``replication``), also 15 days.
RECYCLE_BIN_RETENTION = timedelta(days=15)


def _purged_key(obj: ObjectDef) -> str:
    return f"deletion_log_purged_through:{obj.name}"


def deletable_objects() -> list[ObjectDef]:
    """The objects whose records can be deleted (those with an IsDeleted field)."""
    return [obj for obj in OBJECTS.values() if obj.has_field("IsDeleted")]


def ensure(conn: sqlite3.Connection) -> None:
    """Create the log if the file has none, filled from the records already soft-deleted.

    Files seeded before the log existed get it on first use; their soft-deleted records count
    as deleted at their SystemModstamp, which is what deleting them set.
    """
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (DELETION_LOG_TABLE,)
    ).fetchone()
    if exists:
        return
    conn.execute(
        f"CREATE TABLE {DELETION_LOG_TABLE} ("
        "object TEXT NOT NULL, id TEXT PRIMARY KEY, deleted_at TEXT NOT NULL)"
    )
    conn.execute(
        f"CREATE INDEX ix_{DELETION_LOG_TABLE}_object_at "
        f"ON {DELETION_LOG_TABLE} (object, deleted_at)"
    )
    for obj in deletable_objects():
        conn.execute(
            f"INSERT INTO {DELETION_LOG_TABLE} (object, id, deleted_at) "
            f'SELECT ?, "Id", "SystemModstamp" FROM {store.quote_ident(obj.name)} '
            'WHERE "IsDeleted" = 1',
            (obj.name,),
        )


def record(conn: sqlite3.Connection, obj: ObjectDef, ids: Iterable[str], at: datetime) -> None:
    """Log the deletion of ``ids`` of ``obj`` at ``at`` (the caller soft-deletes the rows)."""
    stamp = store.to_storage_datetime(at)
    conn.executemany(
        f"INSERT OR REPLACE INTO {DELETION_LOG_TABLE} (object, id, deleted_at) VALUES (?, ?, ?)",
        [(obj.name, record_id, stamp) for record_id in ids],
    )


def entries(
    conn: sqlite3.Connection, obj: ObjectDef, start: datetime, end: datetime
) -> list[tuple[str, str]]:
    """(Id, stored deletion time) of the logged deletions of ``obj`` in [start, end)."""
    rows = conn.execute(
        f"SELECT id, deleted_at FROM {DELETION_LOG_TABLE} "
        "WHERE object = ? AND deleted_at >= ? AND deleted_at < ? ORDER BY deleted_at, id",
        (obj.name, store.to_storage_datetime(start), store.to_storage_datetime(end)),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def purged_through(conn: sqlite3.Connection, obj: ObjectDef) -> datetime | None:
    """The deletion time of the newest purged record of ``obj`` (None: nothing purged yet)."""
    stored = store.get_meta(conn, _purged_key(obj))
    return None if stored is None else store.from_storage_datetime(stored)


def purge(conn: sqlite3.Connection, before: datetime) -> dict[str, list[str]]:
    """Physically delete the records deleted before ``before``; return their Ids per object.

    The rows leave their object table (queryAll no longer sees them) and the log (getDeleted
    no longer lists them), and the log's reach moves forward past them.
    """
    cutoff = store.to_storage_datetime(before)
    purged: dict[str, list[str]] = {}
    for obj in deletable_objects():
        rows = conn.execute(
            f"SELECT id, deleted_at FROM {DELETION_LOG_TABLE} "
            "WHERE object = ? AND deleted_at < ? ORDER BY deleted_at, id",
            (obj.name, cutoff),
        ).fetchall()
        if not rows:
            continue
        ids = [str(r[0]) for r in rows]
        conn.executemany(
            f'DELETE FROM {store.quote_ident(obj.name)} WHERE "Id" = ? AND "IsDeleted" = 1',
            [(record_id,) for record_id in ids],
        )
        conn.executemany(
            f"DELETE FROM {DELETION_LOG_TABLE} WHERE id = ?", [(record_id,) for record_id in ids]
        )
        newest = max(str(r[1]) for r in rows)
        previous = store.get_meta(conn, _purged_key(obj))
        # Text comparison is time order for the fixed-width stored form.
        if previous is None or newest > previous:
            store.set_meta(conn, _purged_key(obj), newest)
        purged[obj.name] = ids
    return purged
