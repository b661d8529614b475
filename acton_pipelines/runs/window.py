"""The span of CRM changes one sync reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

SyncMode = Literal["full", "incremental"]


@dataclass(frozen=True)
class SyncWindow:
    """A full sync reads every record and reconciles deletions; an incremental sync reads the
    records whose ``SystemModstamp`` lies in ``[start, end)``.

    With ``since_last_sync`` each object starts instead from its own high-water mark (the
    newest ``SystemModstamp`` its last successful sync read) minus the lookback, when it has
    one: an hourly run then reads the last hour's changes, not the whole day's again.
    ``reason`` says how the window was decided (logged, and kept in ``sync_runs.message``).
    """

    mode: SyncMode = "full"
    start: datetime | None = None
    end: datetime | None = None
    since_last_sync: bool = False
    reason: str = ""

    @property
    def is_full(self) -> bool:
        return self.mode == "full"

    def __post_init__(self) -> None:
        for bound in (self.start, self.end):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("sync window bounds must be timezone-aware (UTC)")


FULL_SYNC = SyncWindow()
