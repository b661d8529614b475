"""Reading a sandbox database file directly, so write tests check the stored truth, not the API."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def fetch_all(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Every row of ``sql`` as a dict keyed by column name."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def fetch_record(db_path: Path, table: str, record_id: str) -> dict[str, Any]:
    """The stored row of ``record_id`` in ``table`` (an sObject name), which must exist."""
    rows = fetch_all(db_path, f'SELECT * FROM "{table}" WHERE "Id" = ?', (record_id,))
    assert rows, f"no {table} row {record_id}"
    return rows[0]


def fetch_ids(db_path: Path, table: str, where: str, limit: int) -> list[str]:
    """Up to ``limit`` Ids of ``table`` matching the SQL condition ``where``, in Id order."""
    rows = fetch_all(
        db_path, f'SELECT "Id" FROM "{table}" WHERE {where} ORDER BY "Id" LIMIT ?', (limit,)
    )
    return [row["Id"] for row in rows]


def count(db_path: Path, table: str, where: str = "1 = 1") -> int:
    """How many rows of ``table`` match ``where``."""
    return int(fetch_all(db_path, f'SELECT COUNT(*) AS n FROM "{table}" WHERE {where}')[0]["n"])


class IdPool:
    """Hands out Ids no other test of the module has written to."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self._taken: set[str] = set()

    def take(self, table: str, where: str, n: int = 1) -> list[str]:
        """``n`` untouched Ids of ``table`` matching ``where``."""
        candidates = fetch_ids(self.db_path, table, where, len(self._taken) + n)
        fresh = [i for i in candidates if i not in self._taken][:n]
        assert len(fresh) == n, f"not enough {table} rows where {where}"
        self._taken.update(fresh)
        return fresh
