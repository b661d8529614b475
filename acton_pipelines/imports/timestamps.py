"""Timestamps in import files (ISO 8601) and from the warehouse, as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

TIMESTAMP_REASON = "not a datetime (expected ISO 8601, e.g. 2026-11-26T10:00:00Z)"


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken as UTC (SQLite hands timestamps back without
    their zone, and the CRM's own timestamps are UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 date or datetime (``2026-11-26``, ``2026-11-26T10:00:00Z``, with an offset,
    or naive: UTC). Raises ``ValueError`` with :data:`TIMESTAMP_REASON` otherwise."""
    try:
        # Strict ISO only: no locale formats, no bare numbers read as epochs.
        return as_utc(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ValueError(TIMESTAMP_REASON) from None
