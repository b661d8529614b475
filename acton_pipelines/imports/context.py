"""What applying one import file needs besides its records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table

from acton_pipelines.mapping.models import Mapping


@dataclass(frozen=True)
class ApplyContext:
    """The file being applied (``file_name``, ``sha256``), the run applying it, its import time
    (``now``: the default time of a change the file does not date) and the mapping with its
    ``acton_contacts`` table."""

    file_name: str
    sha256: str
    run_id: str
    now: datetime
    mapping: Mapping
    contacts: Table
