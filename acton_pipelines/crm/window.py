"""The span of CRM changes one sync reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

SyncMode = Literal["full", "incremental"]


@dataclass(frozen=True)
class SyncWindow:
    """A full sync reads every record and reconciles deletions; an incremental sync reads the
    records whose ``SystemModstamp`` lies in ``[start, end)``."""

    mode: SyncMode = "full"
    start: datetime | None = None
    end: datetime | None = None

    @property
    def is_full(self) -> bool:
        return self.mode == "full"

    def __post_init__(self) -> None:
        for bound in (self.start, self.end):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("sync window bounds must be timezone-aware (UTC)")


FULL_SYNC = SyncWindow()
