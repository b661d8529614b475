"""Deterministic, realistically dirty demo data for the sandbox CRM.

The same ``seed`` and ``now`` always produce a byte-identical SQLite file: every random choice
comes from streams seeded with ``seed`` in a fixed order, and nothing reads the clock except the
``now`` default. The records come from :mod:`crm_sandbox.generators`: record by record from one
``random.Random(seed)`` and Faker (``RecordGenerator``, shared with the churn) up to
``COLUMNAR_SEED_THRESHOLD`` Leads + Contacts, the size of every test data set; above it, a chunk
of columns at a time from numpy and pools of Faker values (``ColumnarGenerator``), which makes
a million records in about a minute in bounded memory but other records for the same seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from crm_sandbox import deletion_log, store
from crm_sandbox.generators import (
    SIMPLE_EMAIL,
    AccountColumns,
    ColumnarGenerator,
    Columns,
    DirtTally,
    PickedContacts,
    RecordGenerator,
    ascii_slug,
    iso_date,
)
from crm_sandbox.ids import make_id
from crm_sandbox.objects import (
    ACCOUNT,
    CLOSED_WON,
    CONTACT,
    CONVERTED_STATUS,
    GROUP,
    LEAD,
    OPPORTUNITY,
    USER,
    ObjectDef,
)

# The database holds (fake) personal data and the API usage counters: owner-only, like a key.
DB_FILE_MODE = 0o600
# Target shares of the dirt decided here rather than per record (see generators for the rest).
SHARED_EMAIL_RATE = 0.01  # of Leads: same email as an existing Contact
CONVERTED_LEAD_RATE = 0.08
USER_COUNT = 20
INACTIVE_USER_COUNT = 2
_USER_TITLES = ("Sales Representative", "Account Executive", "SDR", "Sales Manager")
# The two generators (see seed_sandbox) and the size above which the columnar one is used.
RECORDS = "records"
COLUMNS = "columns"
COLUMNAR_SEED_THRESHOLD = 50_000
# Records generated and inserted at a time by the columnar generator: bounds its memory.
CHUNK_SIZE = 20_000
# Contacts read back per query (well under SQLite's bound-parameter limit).
_LOOKUP_BATCH = 500
_OBJECTS_BY_NAME = {obj.name: obj for obj in (USER, GROUP, ACCOUNT, OPPORTUNITY, CONTACT, LEAD)}


@dataclass(frozen=True)
class SeedSummary:
    """What :func:`seed_sandbox` wrote: records per object and counts of each kind of dirt.

    ``shared_emails`` counts unconverted Leads carrying the email of an existing Contact
    (converted Leads share their Contact's email as a matter of course and are not counted).
    ``malformed_emails``, ``missing_emails`` and ``opted_out`` cover Leads and Contacts.
    """

    db_path: Path
    seed: int
    now: datetime
    counts: dict[str, int]
    malformed_emails: int
    missing_emails: int
    shared_emails: int
    converted_leads: int
    contacts_without_account: int
    non_ascii_names: int
    opted_out: int
    soft_deleted: dict[str, int]
    queue_owned_leads: int
    inactive_users: int
    accounts_by_type: dict[str, int]
    accounts_with_closed_won: int
    prospects_with_closed_won: int
    contacts_with_renewal_date: int

    def __str__(self) -> str:
        counts = ", ".join(f"{name} {count:,}" for name, count in self.counts.items())
        deleted = ", ".join(f"{name} {count}" for name, count in self.soft_deleted.items())
        return "\n".join(
            [
                f"Seeded {self.db_path} (seed {self.seed}, now {self.now:%Y-%m-%d %H:%M} UTC)",
                f"  records: {counts}",
                f"  emails: {self.malformed_emails} malformed, {self.missing_emails} missing, "
                f"{self.shared_emails} shared by a Lead and a Contact",
                f"  leads: {self.converted_leads} converted, {self.queue_owned_leads} queue-owned",
                f"  contacts: {self.contacts_without_account} without account, "
                f"{self.contacts_with_renewal_date} with a renewal date",
                f"  {self.non_ascii_names} non-ASCII names, {self.opted_out} opted out of email, "
                f"{self.inactive_users} inactive users",
                f"  accounts: {self.prospects_with_closed_won} prospects with Closed Won "
                f"opportunities (of {self.accounts_with_closed_won} accounts with any)",
                f"  soft-deleted: {deleted or 'none'}",
            ]
        )


class _SeedBuilder:
    """Generates every record of the org in a fixed order from one random stream."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.gen = RecordGenerator(self.rng, seed, now, backdate=True)
        self.fakers = self.gen.fakers
        self.tally = self.gen.tally

    def _audit(self, max_age_days: float) -> dict[str, str]:
        return self.gen.audit(max_age_days)

    # --- objects ---------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        rows = []
        faker = self.fakers["en_US"]
        for serial in range(1, USER_COUNT + 1):
            first, last = faker.first_name(), faker.last_name()
            login = f"{ascii_slug(f'{first} {last}')}@acme-sandbox.example.com"
            rows.append(
                {
                    "Id": make_id(USER.key_prefix, serial),
                    "Username": login,
                    "FirstName": first,
                    "LastName": last,
                    "Name": f"{first} {last}",
                    "Email": login,
                    # The last users left the company: deactivated, never deleted.
                    "IsActive": int(serial <= USER_COUNT - INACTIVE_USER_COUNT),
                    "Title": self.rng.choice(_USER_TITLES),
                    **self._audit(900),
                }
            )
        return rows

    def groups(self) -> list[dict[str, Any]]:
        rows = []
        for serial, (name, developer) in enumerate(
            (("Inbound Leads", "Inbound_Leads"), ("Partner Leads", "Partner_Leads")), start=1
        ):
            rows.append(
                {
                    "Id": make_id(GROUP.key_prefix, serial),
                    "Name": name,
                    "DeveloperName": developer,
                    "Type": "Queue",
                    "Email": f"{developer.lower().replace('_', '-')}@acme-sandbox.example.com",
                    **self._audit(900),
                }
            )
        return rows

    def accounts(self, count: int, owners: list[str]) -> list[dict[str, Any]]:
        return [
            self.gen.account(make_id(ACCOUNT.key_prefix, serial), owners, ACCOUNT)
            for serial in range(1, count + 1)
        ]

    def opportunities(
        self, count: int, accounts: list[dict[str, Any]], owners: list[str]
    ) -> list[dict[str, Any]]:
        rows = []
        # Deleting an Account deletes its Opportunities and Contacts in Salesforce, so a
        # deleted Account has no live children: they hang off live Accounts only.
        accounts = [a for a in accounts if not a["IsDeleted"]]
        prospects = [a for a in accounts if a["Type"] == "Prospect"]
        for serial in range(1, count + 1):
            # The first opportunity is a Closed Won one on a Prospect: a classic data
            # inconsistency (the account type was never updated) that segments must handle.
            if serial == 1 and prospects:
                account, stage = prospects[0], CLOSED_WON
            else:
                account = self.rng.choice(accounts)
                stage = self.gen.opportunity_stage()
            record_id = make_id(OPPORTUNITY.key_prefix, serial)
            rows.append(self.gen.opportunity(record_id, account, stage, owners, OPPORTUNITY))
        return rows

    def contacts(
        self, count: int, accounts: list[dict[str, Any]], owners: list[str]
    ) -> list[dict[str, Any]]:
        accounts = [a for a in accounts if not a["IsDeleted"]]  # see opportunities()
        customers = {a["Id"] for a in accounts if (a["Type"] or "").startswith("Customer")}
        return [
            self.gen.contact(
                make_id(CONTACT.key_prefix, serial), accounts, customers, owners, CONTACT
            )
            for serial in range(1, count + 1)
        ]

    def leads(
        self,
        count: int,
        contacts: list[dict[str, Any]],
        opportunities: list[dict[str, Any]],
        owners: list[str],
        queues: list[str],
    ) -> list[dict[str, Any]]:
        rows = []
        emailed = [c for c in contacts if c["Email"] and SIMPLE_EMAIL.match(c["Email"])]
        convertible = [c for c in emailed if c["AccountId"] and not c["IsDeleted"]]
        opps_by_account: dict[str, list[str]] = {}
        for opp in opportunities:
            opps_by_account.setdefault(opp["AccountId"], []).append(opp["Id"])
        for serial in range(1, count + 1):
            # Decide first whether this Lead reuses a Contact's identity, so that the dirt
            # tallies only count what ends up in the file.
            draw = self.rng.random()
            converted_into = shared_with = None
            if draw < CONVERTED_LEAD_RATE and convertible:
                converted_into = self.rng.choice(convertible)
            elif draw < CONVERTED_LEAD_RATE + SHARED_EMAIL_RATE and emailed:
                shared_with = self.rng.choice(emailed)
                self.tally.shared_emails += 1
            if converted_into is not None:
                # A converted Lead keeps the identity its Contact was created from.
                locale, country = self.gen.locale()
                first, last = converted_into["FirstName"], converted_into["LastName"]
                company = self.fakers[locale].company()
                identity = (first, last, locale, country, company, converted_into["Email"])
            elif shared_with is not None:
                person = self.gen.person()
                company = self.fakers[person.locale].company()
                identity = (
                    person.first,
                    person.last,
                    person.locale,
                    person.country,
                    company,
                    shared_with["Email"],
                )
            else:
                identity = self.gen.new_lead_identity()
            row = self.gen.lead(
                make_id(LEAD.key_prefix, serial),
                identity,
                owners,
                queues,
                LEAD,
                may_be_deleted=converted_into is None,
            )
            if converted_into is not None:
                self._convert(row, converted_into, opps_by_account)
            rows.append(row)
        return rows

    def _convert(
        self, lead: dict[str, Any], contact: dict[str, Any], opps: dict[str, list[str]]
    ) -> None:
        """Mark ``lead`` converted into ``contact`` the way Lead conversion does (no delete)."""
        self.tally.converted_leads += 1
        created = store.from_storage_datetime(lead["CreatedDate"])
        stamp = store.from_storage_datetime(lead["SystemModstamp"])
        converted_at = created + (stamp - created) * self.rng.random()
        candidates = opps.get(contact["AccountId"], [])
        lead.update(
            {
                "Status": CONVERTED_STATUS,
                "IsConverted": 1,
                "ConvertedDate": iso_date(converted_at.date()),
                "ConvertedContactId": contact["Id"],
                "ConvertedAccountId": contact["AccountId"],
                "ConvertedOpportunityId": (
                    self.rng.choice(candidates) if candidates and self.rng.random() < 0.5 else None
                ),
            }
        )


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode ``DB_FILE_MODE`` before SQLite writes anything to it.

    ``os.open`` applies the umask, which could leave the owner without write access, so the
    mode is set again with ``fchmod`` (which does not). SQLite gives its journal the
    database's mode, and ``os.replace`` keeps it when the file moves into place.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE)
    try:
        os.fchmod(fd, DB_FILE_MODE)
    finally:
        os.close(fd)


def seed_sandbox(
    db_path: Path,
    *,
    leads: int = 2000,
    contacts: int = 1500,
    seed: int = 42,
    now: datetime | None = None,
    generator: str | None = None,
) -> SeedSummary:
    """Write a fresh sandbox database at ``db_path`` (replacing any existing file).

    Accounts number about ``contacts / 5`` and Opportunities about 1.5 per Account. The file is
    built next to ``db_path`` and moved into place, so a running server never reads a half-seeded
    database. It is readable and writable by its owner only (``DB_FILE_MODE``), whatever the
    umask.

    ``generator`` is ``"records"`` (record by record, as every seed up to
    ``COLUMNAR_SEED_THRESHOLD`` Leads + Contacts is made, so the same seed keeps giving the same
    file) or ``"columns"`` (chunks of columns drawn with numpy and written as they are made:
    a million records in about a minute and in bounded memory, but other records than
    ``"records"`` for the same seed). By default the size decides.
    """
    if leads < 0 or contacts < 0:
        raise ValueError("record counts must not be negative")
    if generator is None:
        generator = RECORDS if leads + contacts <= COLUMNAR_SEED_THRESHOLD else COLUMNS
    if generator not in (RECORDS, COLUMNS):
        raise ValueError(f"generator must be {RECORDS!r} or {COLUMNS!r}, not {generator!r}")
    now = (now or datetime.now(UTC)).astimezone(UTC)

    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = db_path.with_name(db_path.name + ".seeding")
    tmp_path.unlink(missing_ok=True)
    _create_private(tmp_path)
    conn = sqlite3.connect(tmp_path)
    try:
        if generator == COLUMNS:
            # The file is private until os.replace: a crash leaves a .seeding file the next
            # seed removes, so durability mid-seed buys nothing and costs an fsync per page.
            conn.execute("PRAGMA synchronous = OFF")
        with conn:
            store.create_schema(conn)
            if generator == RECORDS:
                facts = _write_records(conn, leads, contacts, seed, now)
            else:
                facts = _write_columns(conn, leads, contacts, seed, now)
            store.set_meta(conn, "seed", str(seed))
            store.set_meta(conn, "seeded_at", store.to_storage_datetime(now))
            store.set_meta(conn, store.API_USAGE_KEY, "0")
            store.set_meta(conn, store.DELETES_REFUSED_KEY, "0")
            # The seed's soft-deleted records were deleted when their SystemModstamp last moved.
            deletion_log.ensure(conn)
    finally:
        conn.close()
    os.replace(tmp_path, db_path)
    return SeedSummary(db_path=db_path, seed=seed, now=now, **facts)


def _write_records(
    conn: sqlite3.Connection, leads: int, contacts: int, seed: int, now: datetime
) -> dict[str, Any]:
    """Build every record as a dict with RecordGenerator, insert them, return the summary's
    facts. The order of draws and of statements is what makes a given seed's file."""
    builder = _SeedBuilder(seed, now)

    users = builder.users()
    groups = builder.groups()
    active_owners = [u["Id"] for u in users if u["IsActive"]]
    all_owners = [u["Id"] for u in users]
    accounts = builder.accounts(max(1, contacts // 5), active_owners)
    opportunities = builder.opportunities(round(len(accounts) * 1.5), accounts, active_owners)
    contact_rows = builder.contacts(contacts, accounts, all_owners)
    lead_rows = builder.leads(
        leads, contact_rows, opportunities, all_owners, [g["Id"] for g in groups]
    )

    tables: list[tuple[ObjectDef, list[dict[str, Any]]]] = [
        (USER, users),
        (GROUP, groups),
        (ACCOUNT, accounts),
        (OPPORTUNITY, opportunities),
        (CONTACT, contact_rows),
        (LEAD, lead_rows),
    ]
    for obj, rows in tables:
        store.insert_rows(conn, obj, rows)
        store.set_meta(conn, store.serial_key(obj), str(len(rows)))

    won_accounts = {
        o["AccountId"] for o in opportunities if o["StageName"] == CLOSED_WON and not o["IsDeleted"]
    }
    accounts_by_type: dict[str, int] = {}
    for account in accounts:
        key = account["Type"] or "(none)"
        accounts_by_type[key] = accounts_by_type.get(key, 0) + 1
    return {
        "counts": {obj.name: len(rows) for obj, rows in tables},
        **_tally_facts(builder.tally),
        "inactive_users": sum(1 for u in users if not u["IsActive"]),
        "accounts_by_type": dict(sorted(accounts_by_type.items())),
        "accounts_with_closed_won": len(won_accounts),
        "prospects_with_closed_won": sum(
            1 for a in accounts if a["Type"] == "Prospect" and a["Id"] in won_accounts
        ),
        "contacts_with_renewal_date": sum(1 for c in contact_rows if c["Renewal_Date__c"]),
    }


def _tally_facts(tally: DirtTally) -> dict[str, Any]:
    return {
        "malformed_emails": tally.malformed_emails,
        "missing_emails": tally.missing_emails,
        "shared_emails": tally.shared_emails,
        "converted_leads": tally.converted_leads,
        "contacts_without_account": tally.contacts_without_account,
        "non_ascii_names": tally.non_ascii_names,
        "opted_out": tally.opted_out,
        "soft_deleted": dict(sorted(tally.soft_deleted.items())),
        "queue_owned_leads": tally.queue_owned_leads,
    }


def _chunks(count: int) -> Iterator[range]:
    """Serials 1..count in chunks of ``CHUNK_SIZE``."""
    for first in range(1, count + 1, CHUNK_SIZE):
        yield range(first, min(first + CHUNK_SIZE, count + 1))


def _insert_columns(conn: sqlite3.Connection, obj: ObjectDef, columns: Columns, n: int) -> None:
    """Insert ``n`` rows given as columns (fields left out are NULL): one executemany of tuples."""
    names = [f.name for f in obj.fields]
    sql = (
        f"INSERT INTO {store.quote_ident(obj.name)} "
        f"({', '.join(store.quote_ident(name) for name in names)}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    conn.executemany(
        sql, zip(*(columns.get(name) or itertools.repeat(None, n) for name in names), strict=False)
    )


@contextlib.contextmanager
def _indexes_built_after(conn: sqlite3.Connection) -> Iterator[None]:
    """Drop the schema's secondary indexes for the block and build them again after it: one
    sort per index instead of a B-tree insert per row."""
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {store.quote_ident(name)}")
    yield
    for _, sql in indexes:
        conn.execute(sql)


class _ContactLookup:
    """The Contacts written so far, as Leads need them: which can be converted into or have
    their email shared, and their names and emails (read back from the file, so that memory
    holds a few bytes per Contact, not its strings)."""

    def __init__(self, conn: sqlite3.Connection, count: int) -> None:
        self.conn = conn
        self.account = np.full(count, -1, dtype=np.int64)
        self.emailed = np.zeros(count, dtype=bool)
        self.convertible = np.zeros(count, dtype=bool)

    def add(
        self, at: range, account: np.ndarray, well_formed: np.ndarray, deleted: list[int]
    ) -> None:
        """Record a written chunk of Contacts (serials ``at``)."""
        where = slice(at.start - 1, at.stop - 1)
        self.account[where] = account
        self.emailed[where] = well_formed
        self.convertible[where] = well_formed & (account >= 0) & (np.array(deleted) == 0)

    def read(self, indexes: np.ndarray) -> PickedContacts:
        """Names, emails, Ids and Account indexes of the Contacts at ``indexes``, in order."""
        ids = [make_id(CONTACT.key_prefix, int(i) + 1) for i in indexes.tolist()]
        found: dict[str, tuple[str, str, str]] = {}
        unique = sorted(set(ids))
        for start in range(0, len(unique), _LOOKUP_BATCH):
            batch = unique[start : start + _LOOKUP_BATCH]
            for row in self.conn.execute(
                'SELECT "Id", "FirstName", "LastName", "Email" FROM "Contact" '
                f'WHERE "Id" IN ({", ".join("?" for _ in batch)})',
                batch,
            ):
                found[row[0]] = (row[1], row[2], row[3])
        rows = [found[i] for i in ids]
        return PickedContacts(
            first=[r[0] for r in rows],
            last=[r[1] for r in rows],
            email=[r[2] for r in rows],
            ids=ids,
            account=self.account[indexes],
        )


class _OpportunityIndex:
    """Opportunities grouped by Account, to pick one of an Account's (as conversion does)."""

    def __init__(self, account_at: np.ndarray, accounts: int) -> None:
        self.order = np.argsort(account_at, kind="stable")
        self.counts = np.bincount(account_at, minlength=accounts)
        self.starts = np.cumsum(self.counts) - self.counts

    def pick(self, account_at: np.ndarray, draw: np.ndarray) -> np.ndarray:
        """An Opportunity Id of each Account in ``account_at`` (None for none)."""
        counts = self.counts[account_at]
        offset = np.minimum((draw * counts).astype(np.int64), np.maximum(counts - 1, 0))
        serial = self.order[np.minimum(self.starts[account_at] + offset, len(self.order) - 1)] + 1
        return _ids_or_none(OPPORTUNITY, serial, counts > 0)


def _ids_or_none(obj: ObjectDef, serials: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = np.full(len(serials), None, dtype=object)
    for i in np.flatnonzero(keep).tolist():
        out[i] = make_id(obj.key_prefix, int(serials[i]))
    return out


def _ids(obj: ObjectDef, serials: range) -> list[str]:
    return [make_id(obj.key_prefix, serial) for serial in serials]


def _write_columns(
    conn: sqlite3.Connection, leads: int, contacts: int, seed: int, now: datetime
) -> dict[str, Any]:
    """Write the org chunk by chunk with ColumnarGenerator; return the summary's facts.

    Memory holds one chunk of rows plus a few numbers per record (Account names and domains,
    each Contact's Account index and email flags, each Opportunity's Account), never the
    records themselves.
    """
    builder = _SeedBuilder(seed, now)  # Users and Groups as the records path makes them
    users = builder.users()
    groups = builder.groups()
    active_owners = [u["Id"] for u in users if u["IsActive"]]
    all_owners = [u["Id"] for u in users]
    queues = [g["Id"] for g in groups]
    gen = ColumnarGenerator(seed, now)
    account_count = max(1, contacts // 5)
    opportunity_count = round(account_count * 1.5)
    renewals = 0
    with _indexes_built_after(conn):
        for obj, rows in ((USER, users), (GROUP, groups)):
            store.insert_rows(conn, obj, rows)

        parts = []
        for at in _chunks(account_count):
            columns, part = gen.accounts(_ids(ACCOUNT, at), active_owners)
            _insert_columns(conn, ACCOUNT, columns, len(at))
            parts.append(part)
        accounts = AccountColumns(
            *(
                np.concatenate([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(AccountColumns)
            )
        )
        live = accounts.live
        prospects = live[accounts.types[live] == "Prospect"]

        opportunity_account = np.zeros(opportunity_count, dtype=np.int64)
        won = np.zeros(opportunity_count, dtype=bool)
        for at in _chunks(opportunity_count):
            n = len(at)
            account_at = live[gen.rng.integers(len(live), size=n)]
            stages = gen.opportunity_stages(n)
            if at.start == 1 and len(prospects):
                # A Closed Won opportunity on a Prospect, as the records path makes its first.
                account_at[0], stages[0] = prospects[0], CLOSED_WON
            columns = gen.opportunities(
                _ids(OPPORTUNITY, at), account_at, accounts, active_owners, stages
            )
            _insert_columns(conn, OPPORTUNITY, columns, n)
            where = slice(at.start - 1, at.stop - 1)
            opportunity_account[where] = account_at
            won[where] = (stages == CLOSED_WON) & (np.array(columns["IsDeleted"]) == 0)
        opportunities = _OpportunityIndex(opportunity_account, account_count)

        customers = np.array([(t or "").startswith("Customer") for t in accounts.types.tolist()])
        lookup = _ContactLookup(conn, contacts)
        for at in _chunks(contacts):
            columns, account_at, well_formed = gen.contacts(
                _ids(CONTACT, at), accounts, customers, all_owners
            )
            _insert_columns(conn, CONTACT, columns, len(at))
            lookup.add(at, account_at, well_formed, columns["IsDeleted"])
            renewals += sum(1 for value in columns["Renewal_Date__c"] if value)

        convertible = np.flatnonzero(lookup.convertible)
        emailed = np.flatnonzero(lookup.emailed)
        for at in _chunks(leads):
            n = len(at)
            draw = gen.rng.random(n)
            converted = (draw < CONVERTED_LEAD_RATE) & (len(convertible) > 0)
            shared = (
                ~converted & (draw < CONVERTED_LEAD_RATE + SHARED_EMAIL_RATE) & (len(emailed) > 0)
            )
            reused = converted | shared
            picked = np.zeros(int(reused.sum()), dtype=np.int64)
            into = converted[reused]
            if into.any():
                picked[into] = convertible[gen.rng.integers(len(convertible), size=int(into.sum()))]
            if (~into).any():
                picked[~into] = emailed[gen.rng.integers(len(emailed), size=int((~into).sum()))]
            columns = gen.leads(
                _ids(LEAD, at),
                converted,
                shared,
                lookup.read(picked),
                accounts,
                opportunities.pick,
                all_owners,
                queues,
            )
            _insert_columns(conn, LEAD, columns, n)

    counts = {
        USER.name: len(users),
        GROUP.name: len(groups),
        ACCOUNT.name: account_count,
        OPPORTUNITY.name: opportunity_count,
        CONTACT.name: contacts,
        LEAD.name: leads,
    }
    for name, count in counts.items():
        store.set_meta(conn, store.serial_key(_OBJECTS_BY_NAME[name]), str(count))
    won_accounts = np.unique(opportunity_account[won])
    types, type_counts = np.unique(
        np.array([t or "(none)" for t in accounts.types.tolist()]), return_counts=True
    )
    return {
        "counts": counts,
        **_tally_facts(gen.tally),
        "inactive_users": sum(1 for u in users if not u["IsActive"]),
        "accounts_by_type": dict(zip(types.tolist(), type_counts.tolist(), strict=True)),
        "accounts_with_closed_won": len(won_accounts),
        "prospects_with_closed_won": int((accounts.types[won_accounts] == "Prospect").sum()),
        "contacts_with_renewal_date": renewals,
    }
