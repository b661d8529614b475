"""The sandbox's SQLite file: one table per sObject, plus a small meta table.

Columns carry the API field names. Values are stored in forms that sort correctly as SQLite
values: datetimes as fixed-width UTC text (``2026-11-26T10:00:00.000Z``), dates as
``YYYY-MM-DD``, booleans as 0/1, multi-select picklists as ``;``-joined text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from acton_pipelines.sandbox.ids import make_id
from acton_pipelines.sandbox.objects import OBJECTS, FieldType, ObjectDef

META_TABLE = "_sandbox_meta"
API_USAGE_KEY = "api_usage"
DELETES_REFUSED_KEY = "deletes_refused"
# The server reads the file per request while a test thread may read counters: wait, not fail.
_BUSY_TIMEOUT_S = 10.0

_SQL_TYPES = {
    FieldType.BOOLEAN: "INTEGER",
    FieldType.INT: "INTEGER",
    FieldType.DOUBLE: "REAL",
    FieldType.CURRENCY: "REAL",
}


def quote_ident(name: str) -> str:
    """Quote an identifier already validated against the object metadata.

    Validation is the protection; quoting only keeps names like ``Group`` (an SQL keyword)
    usable as table names.
    """
    return '"' + name.replace('"', '""') + '"'


def to_storage_datetime(value: datetime) -> str:
    """The stored text of an aware datetime (converted to UTC, milliseconds kept)."""
    if value.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def from_storage_datetime(text: str) -> datetime:
    """The aware UTC datetime of a stored datetime text."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def connect(db_path: Path) -> sqlite3.Connection:
    """Open the sandbox database (which must exist) with rows addressable by column name."""
    if not db_path.exists():
        raise FileNotFoundError(f"sandbox database {db_path} does not exist; seed it first")
    conn = sqlite3.connect(db_path, timeout=_BUSY_TIMEOUT_S)
    conn.row_factory = sqlite3.Row
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create one table per sObject, the indexes the pipeline's queries need, and the meta table."""
    for obj in OBJECTS.values():
        columns = []
        for f in obj.fields:
            column = f"{quote_ident(f.name)} {_SQL_TYPES.get(f.type, 'TEXT')}"
            if f.type is FieldType.ID:
                column += " PRIMARY KEY"
            columns.append(column)
        conn.execute(f"CREATE TABLE {quote_ident(obj.name)} ({', '.join(columns)})")
        for indexed in ("SystemModstamp", "Email", "AccountId"):
            if obj.has_field(indexed):
                conn.execute(
                    f"CREATE INDEX {quote_ident(f'ix_{obj.name}_{indexed}')} "
                    f"ON {quote_ident(obj.name)} ({quote_ident(indexed)})"
                )
    conn.execute(f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def insert_rows(conn: sqlite3.Connection, obj: ObjectDef, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert rows (dicts keyed by field name; missing fields are NULL). Returns the count."""
    names = [f.name for f in obj.fields]
    sql = (
        f"INSERT INTO {quote_ident(obj.name)} ({', '.join(quote_ident(n) for n in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    values = [tuple(row.get(n) for n in names) for row in rows]
    conn.executemany(sql, values)
    return len(values)


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    """The meta value stored under ``key``."""
    row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = ?", (key,)).fetchone()
    return default if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Store ``value`` under ``key``."""
    conn.execute(
        f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def increment_counter(conn: sqlite3.Connection, key: str, by: int = 1) -> int:
    """Add ``by`` to the integer counter ``key`` (missing = 0) and return its new value."""
    row = conn.execute(
        f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + ? "
        "RETURNING value",
        (key, str(by), by),
    ).fetchone()
    return int(row[0])


def read_counter(conn: sqlite3.Connection, key: str) -> int:
    """The integer counter ``key`` (0 when never incremented)."""
    return int(get_meta(conn, key, "0") or 0)


def serial_key(obj: ObjectDef) -> str:
    """Meta key of the last Id serial handed out for ``obj``."""
    return f"serial:{obj.key_prefix}"


def allocate_id(conn: sqlite3.Connection, obj: ObjectDef) -> str:
    """A fresh Id for a new ``obj`` record, continuing after the seeded ones."""
    return make_id(obj.key_prefix, increment_counter(conn, serial_key(obj)))


def update_row(
    conn: sqlite3.Connection, obj: ObjectDef, record_id: str, changes: Mapping[str, Any]
) -> None:
    """Set ``changes`` (field name to stored value) on the row ``record_id`` of ``obj``."""
    names = list(changes)
    conn.execute(
        f"UPDATE {quote_ident(obj.name)} SET "
        + ", ".join(f"{quote_ident(name)} = ?" for name in names)
        + ' WHERE "Id" = ?',
        [*(changes[name] for name in names), record_id],
    )


def change_stamps(obj: ObjectDef, at: datetime) -> dict[str, str]:
    """The audit fields a user's change at ``at`` sets: SystemModstamp and LastModifiedDate."""
    stamp = to_storage_datetime(at)
    stamps = {"SystemModstamp": stamp}
    if obj.has_field("LastModifiedDate"):
        stamps["LastModifiedDate"] = stamp
    return stamps
