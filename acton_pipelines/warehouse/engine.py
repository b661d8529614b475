"""Engines for the warehouse URL, with the settings each backend needs."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

_ENGINES: dict[str, Engine] = {}


def warehouse_engine(url: str) -> Engine:
    """One engine per URL per process.

    SQLite gets WAL (analysts can read while a sync writes) and a long busy timeout, because
    Dagster runs the extraction steps in parallel processes that take turns writing.
    """
    if url not in _ENGINES:
        _ENGINES[url] = _create(url)
    return _ENGINES[url]


def dispose_engines() -> None:
    """Close every pooled warehouse connection (before dropping a database, say)."""
    while _ENGINES:
        _ENGINES.popitem()[1].dispose()


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 120})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        # Loads use COPY through psycopg 3, whatever driver the URL named.
        return create_engine(parsed.set(drivername="postgresql+psycopg"), pool_pre_ping=True)
    raise ValueError(
        f"warehouse URL {display_url(url)} is neither SQLite nor PostgreSQL; set "
        "ACTON_WAREHOUSE_URL to sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host/db"
    )


def display_url(url: str) -> str:
    """The URL with any password masked, safe for logs and metadata."""
    return make_url(url).render_as_string(hide_password=True)
