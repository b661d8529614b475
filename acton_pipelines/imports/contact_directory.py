"""The Act-On contacts an import file names, looked up by email address."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Table, select

from acton_pipelines.imports.timestamps import as_utc

# Emails per IN (...) query: well below every backend's limit on bound parameters.
LOOKUP_BATCH = 1_000


@dataclass(frozen=True)
class ContactRef:
    """What applying an import needs to know of an existing Act-On contact."""

    contact_id: str
    email: str
    external_id: str | None
    record_type: str | None
    crm_modified_at: datetime | None
    # The acton_contacts columns that hold a value (what a CRM create would send).
    filled: frozenset[str] = frozenset()

    @property
    def in_crm(self) -> bool:
        """Whether the contact is a CRM record (a Lead or Contact), not an Act-On-only one."""
        return self.external_id is not None


class ContactDirectory:
    """Existing Act-On contacts by (lower-case) email; an address may have several (a Lead
    and a Contact sharing it, say)."""

    def __init__(self, contacts: Iterable[ContactRef] = ()) -> None:
        self._by_email: dict[str, list[ContactRef]] = {}
        for contact in contacts:
            self._by_email.setdefault(contact.email, []).append(contact)

    def __getitem__(self, email: str) -> list[ContactRef]:
        """The contacts with ``email`` (lower case), sorted by ``contact_id``; none: ``[]``."""
        return sorted(self._by_email.get(email, []), key=lambda c: c.contact_id)

    def __contains__(self, email: object) -> bool:
        return email in self._by_email

    @classmethod
    def load(cls, conn: Connection, contacts: Table, emails: Iterable[str]) -> ContactDirectory:
        """The contacts of ``acton_contacts`` whose email is one of ``emails`` (lower case:
        the sync stores emails lower-cased)."""
        wanted = sorted(set(emails))
        refs: list[ContactRef] = []
        for start in range(0, len(wanted), LOOKUP_BATCH):
            batch = wanted[start : start + LOOKUP_BATCH]
            for row in conn.execute(select(contacts).where(contacts.c.email.in_(batch))).mappings():
                modified = row["crm_modified_at"]
                refs.append(
                    ContactRef(
                        contact_id=row["contact_id"],
                        email=row["email"],
                        external_id=row["external_id"],
                        record_type=row["record_type"],
                        crm_modified_at=as_utc(modified) if modified is not None else None,
                        filled=frozenset(name for name, value in row.items() if value is not None),
                    )
                )
        return cls(refs)
