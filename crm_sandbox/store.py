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

from crm_sandbox.ids import make_id
from crm_sandbox.objects import OBJECTS, FieldDef, FieldType, ObjectDef

META_TABLE = "_sandbox_meta"
API_USAGE_KEY = "api_usage"
DELETES_REFUSED_KEY = "deletes_refused"
# The server reads the file per request while a test thread may read counters: wait, not fail.
_BUSY_TIMEOUT_S = 10.0
# Fields the pipeline's queries filter or sort on, indexed as stored (binary collation).
_QUERIED_FIELDS = frozenset({"SystemModstamp", "Email", "AccountId"})

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
    """Open the sandbox database (which must exist) with rows addressable by column name.

    A file written by an earlier version of the sandbox gets the columns of fields defined
    since (see :func:`upgrade_schema`), so an existing ``crm.sqlite`` keeps working.
    """
    if not db_path.exists():
        raise FileNotFoundError(f"sandbox database {db_path} does not exist; seed it first")
    conn = sqlite3.connect(db_path, timeout=_BUSY_TIMEOUT_S)
    conn.row_factory = sqlite3.Row
    try:
        upgrade_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Create one table per sObject, the indexes the pipeline's queries need, and the meta table."""
    for obj in OBJECTS.values():
        conn.execute(
            f"CREATE TABLE {quote_ident(obj.name)} "
            f"({', '.join(_column_sql(f) for f in obj.fields)})"
        )
        _create_indexes(conn, obj)
    conn.execute(f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def upgrade_schema(conn: sqlite3.Connection) -> None:
    """Add the columns (NULL everywhere) and indexes of fields newer than the file.

    Checked on every open because another process may replace the file at any time; the check
    is one read, and the change runs in one immediate transaction so that two processes opening
    an old file at once do not both alter it.
    """
    if not _missing_schema(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for obj, names in _missing_schema(conn).items():
            for f in obj.fields:
                if f.name.lower() in names:
                    conn.execute(f"ALTER TABLE {quote_ident(obj.name)} ADD COLUMN {_column_sql(f)}")
            _create_indexes(conn, obj)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def _missing_schema(conn: sqlite3.Connection) -> dict[ObjectDef, set[str]]:
    """Per object, the lower-cased names of fields without a column or an index they need."""
    rows = conn.execute(
        "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
        "WHERE m.type = 'table'"
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(str(table), set()).add(str(column).lower())
    indexes = {
        str(row[0]) for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    }
    missing: dict[ObjectDef, set[str]] = {}
    for obj in OBJECTS.values():
        present = columns.get(obj.name)
        if present is None:
            continue  # not a sandbox file (or a half-written one): nothing to upgrade
        names = {f.name.lower() for f in obj.fields if f.name.lower() not in present}
        if names or not indexes.issuperset(_indexes(obj)):
            missing[obj] = names
    return missing


def _column_sql(f: FieldDef) -> str:
    column = f"{quote_ident(f.name)} {_SQL_TYPES.get(f.type, 'TEXT')}"
    if f.type is FieldType.ID:
        column += " PRIMARY KEY"
    return column


def _indexes(obj: ObjectDef) -> dict[str, str]:
    """Index name to indexed column: the fields the pipeline's queries filter on, as stored, and
    the fields upserts match on, case-insensitively as Salesforce matches them."""
    out: dict[str, str] = {}
    for f in obj.fields:
        if f.name in _QUERIED_FIELDS:
            out[f"ix_{obj.name}_{f.name}"] = quote_ident(f.name)
        elif f.upsert_key:
            out[f"ix_{obj.name}_{f.name}"] = f"{quote_ident(f.name)} COLLATE NOCASE"
    return out


def _create_indexes(conn: sqlite3.Connection, obj: ObjectDef) -> None:
    for name, column in _indexes(obj).items():
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {quote_ident(name)} ON {quote_ident(obj.name)} ({column})"
        )


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
