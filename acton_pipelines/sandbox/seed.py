"""Deterministic, realistically dirty demo data for the sandbox CRM.

The same ``seed`` and ``now`` always produce a byte-identical SQLite file: every random choice
comes from one ``random.Random(seed)`` (plus Faker instances seeded from it) in a fixed order,
and nothing reads the clock except the ``now`` default.

Emails use domains under ``example.com`` / ``example.org`` / ``example.net`` (reserved by
RFC 2606) so that demo data can never reach a real mailbox.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from faker import Faker

from acton_pipelines.sandbox import store
from acton_pipelines.sandbox.ids import make_id
from acton_pipelines.sandbox.objects import (
    ACCOUNT,
    CLOSED_LOST,
    CLOSED_WON,
    CONTACT,
    CONVERTED_STATUS,
    GROUP,
    INDUSTRIES,
    INTERESTS,
    LEAD,
    LEAD_SOURCES,
    OPPORTUNITY,
    OPPORTUNITY_STAGES,
    USER,
    ObjectDef,
)

# Target shares of each kind of dirt (of Leads and Contacts unless noted).
MALFORMED_EMAIL_RATE = 0.02
MISSING_EMAIL_RATE = 0.03
SHARED_EMAIL_RATE = 0.01  # of Leads: same email as an existing Contact
CONVERTED_LEAD_RATE = 0.08
CONTACT_WITHOUT_ACCOUNT_RATE = 0.05
OPTED_OUT_RATE = 0.04
SOFT_DELETED_RATE = 0.01
QUEUE_OWNED_LEAD_RATE = 0.05
USER_COUNT = 20
INACTIVE_USER_COUNT = 2

# (Faker locale, weight, country as stored in address fields)
_LOCALES: tuple[tuple[str, float, str], ...] = (
    ("en_US", 0.70, "United States"),
    ("de_DE", 0.08, "Germany"),
    ("fr_FR", 0.08, "France"),
    ("es_ES", 0.07, "Spain"),
    ("ja_JP", 0.07, "Japan"),
)
_TITLES = (
    "Marketing Manager",
    "VP Marketing",
    "Chief Marketing Officer",
    "Director of Demand Generation",
    "Marketing Operations Specialist",
    "Sales Director",
    "Account Manager",
    "CEO",
    "CTO",
    "Head of IT",
    "Operations Manager",
    "Product Manager",
    "Content Strategist",
)
_DEPARTMENTS = ("Marketing", "Sales", "IT", "Operations", "Finance", "Executive", "Product")
_USER_TITLES = ("Sales Representative", "Account Executive", "SDR", "Sales Manager")
_ACCOUNT_TYPES: tuple[tuple[str | None, float], ...] = (
    ("Prospect", 0.34),
    ("Customer - Direct", 0.30),
    ("Customer - Channel", 0.15),
    ("Channel Partner / Reseller", 0.04),
    ("Installation Partner", 0.02),
    ("Technology Partner", 0.03),
    ("Other", 0.04),
    (None, 0.08),
)
_OPEN_LEAD_STATUSES: tuple[tuple[str, float], ...] = (
    ("Open - Not Contacted", 0.5),
    ("Working - Contacted", 0.35),
    ("Closed - Not Converted", 0.15),
)
_EMAIL_SUFFIXES = ("example.com", "example.org", "example.net")
_SIMPLE_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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


@dataclass
class _Person:
    first: str
    last: str
    email_local: str
    locale: str
    country: str

    @property
    def non_ascii(self) -> bool:
        return not (self.first + self.last).isascii()


@dataclass
class _Tally:
    malformed_emails: int = 0
    missing_emails: int = 0
    shared_emails: int = 0
    converted_leads: int = 0
    contacts_without_account: int = 0
    non_ascii_names: int = 0
    opted_out: int = 0
    queue_owned_leads: int = 0
    soft_deleted: dict[str, int] = field(default_factory=dict)


def _ascii_slug(text: str, sep: str = ".") -> str:
    """Lower-case ASCII rendering of a name, for email local parts and domains."""
    decomposed = unicodedata.normalize("NFKD", text).replace("ß", "ss")
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", sep, ascii_text).strip(sep)


def _iso_date(value: date) -> str:
    return value.isoformat()


class _SeedBuilder:
    """Generates every record in a fixed order from one random stream."""

    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.fakers: dict[str, Faker] = {}
        for index, (locale, _, _) in enumerate(_LOCALES):
            faker = Faker(locale)
            faker.seed_instance(seed * 101 + index)
            self.fakers[locale] = faker
        self.tally = _Tally()

    # --- primitive draws ---------------------------------------------------------------

    def _weighted(self, options: tuple[tuple[Any, float], ...]) -> Any:
        values = [value for value, _ in options]
        weights = [weight for _, weight in options]
        return self.rng.choices(values, weights)[0]

    def _locale(self) -> tuple[str, str]:
        locale, country = self._weighted(
            tuple(((name, country), weight) for name, weight, country in _LOCALES)
        )
        return locale, country

    def _ago(self, min_days: float, max_days: float) -> datetime:
        return self.now - timedelta(days=self.rng.uniform(min_days, max_days))

    def _audit(self, max_age_days: float) -> dict[str, str]:
        """Created/modified stamps: SystemModstamp within ~90 days, never after ``now``."""
        created = self._ago(1.0, max_age_days)
        age_days = (self.now - created).total_seconds() / 86400
        stamp = self._ago(0.001, min(90.0, age_days))
        # Automation moves SystemModstamp without touching LastModifiedDate.
        if self.rng.random() < 0.7:
            modified = stamp
        else:
            modified = created + (stamp - created) * self.rng.random()
        return {
            "CreatedDate": store.to_storage_datetime(created),
            "LastModifiedDate": store.to_storage_datetime(modified),
            "SystemModstamp": store.to_storage_datetime(stamp),
        }

    def _person(self) -> _Person:
        locale, country = self._locale()
        faker = self.fakers[locale]
        if locale == "ja_JP":
            first, _, first_roman = faker.first_name_pair()
            last, _, last_roman = faker.last_name_pair()
            local = _ascii_slug(f"{first_roman} {last_roman}")
        else:
            first, last = faker.first_name(), faker.last_name()
            local = _ascii_slug(f"{first} {last}")
        person = _Person(first, last, local or "contact", locale, country)
        if person.non_ascii:
            self.tally.non_ascii_names += 1
        return person

    def _email(self, local: str, domain: str) -> str | None:
        """An email, possibly missing or malformed (the dirt a real org accumulates)."""
        draw = self.rng.random()
        if draw < MISSING_EMAIL_RATE:
            self.tally.missing_emails += 1
            return None
        if draw < MISSING_EMAIL_RATE + MALFORMED_EMAIL_RATE:
            self.tally.malformed_emails += 1
            name_only = domain.split(".")[0]
            variants = (
                f"{local}@",
                f"{local} at {domain}",
                f"{local}@@{domain}",
                f"{local.replace('.', ' ')}@{domain}",
                f"{local}@{name_only}",
                f"{local}@{domain.replace('.', ',')}",
            )
            return self.rng.choice(variants)
        email = f"{local}@{domain}"
        if not _SIMPLE_EMAIL.match(email):
            raise AssertionError(f"generated a malformed email by accident: {email!r}")
        return email

    def _company_domain(self, company: str) -> str:
        slug = _ascii_slug(company, "-")[:40].strip("-") or "company"
        return f"{slug}.{self.rng.choice(_EMAIL_SUFFIXES)}"

    def _interests(self) -> str | None:
        count = self._weighted(((0, 0.35), (1, 0.3), (2, 0.2), (3, 0.15)))
        if not count:
            return None
        chosen = set(self.rng.sample(INTERESTS, count))
        # Salesforce stores multi-select values in picklist order.
        return ";".join(value for value in INTERESTS if value in chosen)

    def _score(self, null_rate: float) -> float | None:
        return None if self.rng.random() < null_rate else float(self.rng.randint(0, 100))

    def _marketing(self, opted_out: bool) -> dict[str, Any]:
        last_event = self._ago(0.01, 60) if self.rng.random() < 0.3 else None
        return {
            "ActOn_Score__c": self._score(0.4),
            "Fit_Score__c": self._score(0.5),
            "Interests__c": self._interests(),
            "Newsletter__c": 0 if opted_out else int(self.rng.random() < 0.35),
            "Last_Event_At__c": store.to_storage_datetime(last_event) if last_event else None,
        }

    def _deleted(self, obj: ObjectDef) -> int:
        if self.rng.random() < SOFT_DELETED_RATE:
            self.tally.soft_deleted[obj.name] = self.tally.soft_deleted.get(obj.name, 0) + 1
            return 1
        return 0

    def _opted_out(self) -> bool:
        if self.rng.random() < OPTED_OUT_RATE:
            self.tally.opted_out += 1
            return True
        return False

    # --- objects ---------------------------------------------------------------------------

    def users(self) -> list[dict[str, Any]]:
        rows = []
        faker = self.fakers["en_US"]
        for serial in range(1, USER_COUNT + 1):
            first, last = faker.first_name(), faker.last_name()
            login = f"{_ascii_slug(f'{first} {last}')}@acme-sandbox.example.com"
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
        rows = []
        for serial in range(1, count + 1):
            locale, country = self._locale()
            faker = self.fakers[locale]
            rows.append(
                {
                    "Id": make_id(ACCOUNT.key_prefix, serial),
                    "Name": faker.company(),
                    "Type": self._weighted(_ACCOUNT_TYPES),
                    "Industry": self.rng.choice(INDUSTRIES) if self.rng.random() < 0.85 else None,
                    "BillingCity": faker.city(),
                    "BillingCountry": country,
                    "AnnualRevenue": float(self.rng.randrange(100_000, 500_000_000, 1000)),
                    "NumberOfEmployees": self.rng.randint(1, 20_000),
                    "OwnerId": self.rng.choice(owners),
                    "IsDeleted": self._deleted(ACCOUNT),
                    **self._audit(1000),
                }
            )
        return rows

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
                stage = self._weighted(
                    ((CLOSED_WON, 0.25), (CLOSED_LOST, 0.15))
                    + tuple((s, 0.075) for s in OPPORTUNITY_STAGES[:8])
                )
            closed = stage in (CLOSED_WON, CLOSED_LOST)
            audit = self._audit(700)
            if closed:
                close_date = self._ago(1, 700).date()
            else:
                close_date = (self.now + timedelta(days=self.rng.randint(1, 180))).date()
            rows.append(
                {
                    "Id": make_id(OPPORTUNITY.key_prefix, serial),
                    "AccountId": account["Id"],
                    "Name": f"{account['Name']} - {self.rng.choice(('New', 'Renewal', 'Upsell'))}",
                    "StageName": stage,
                    "Amount": round(self.rng.uniform(1_000, 250_000), 2),
                    "CloseDate": _iso_date(close_date),
                    "IsClosed": int(closed),
                    "IsWon": int(stage == CLOSED_WON),
                    "OwnerId": self.rng.choice(owners),
                    "IsDeleted": self._deleted(OPPORTUNITY),
                    **audit,
                }
            )
        return rows

    def contacts(
        self, count: int, accounts: list[dict[str, Any]], owners: list[str]
    ) -> list[dict[str, Any]]:
        rows = []
        accounts = [a for a in accounts if not a["IsDeleted"]]  # see opportunities()
        customers = {a["Id"] for a in accounts if (a["Type"] or "").startswith("Customer")}
        for serial in range(1, count + 1):
            person = self._person()
            faker = self.fakers[person.locale]
            if self.rng.random() < CONTACT_WITHOUT_ACCOUNT_RATE or not accounts:
                account = None
                self.tally.contacts_without_account += 1
                domain = self._company_domain(faker.company())
            else:
                account = self.rng.choice(accounts)
                domain = self._company_domain(account["Name"])
            opted_out = self._opted_out()
            renewal = None
            if account is not None and account["Id"] in customers and self.rng.random() < 0.5:
                renewal = (self.now + timedelta(days=self.rng.randint(-30, 365))).date()
            birthdate = None
            if self.rng.random() < 0.25:
                birthdate = (self.now - timedelta(days=self.rng.randint(22 * 365, 65 * 365))).date()
            rows.append(
                {
                    "Id": make_id(CONTACT.key_prefix, serial),
                    "AccountId": account["Id"] if account else None,
                    "FirstName": person.first,
                    "LastName": person.last,
                    "Name": f"{person.first} {person.last}",
                    "MailingStreet": faker.street_address(),
                    "MailingCity": faker.city(),
                    "MailingState": faker.state_abbr() if person.locale == "en_US" else None,
                    "MailingPostalCode": faker.postcode(),
                    "MailingCountry": person.country,
                    "Phone": faker.phone_number(),
                    "Fax": None,
                    "MobilePhone": faker.phone_number() if self.rng.random() < 0.4 else None,
                    "Email": self._email(person.email_local, domain),
                    "Title": self.rng.choice(_TITLES) if self.rng.random() < 0.9 else None,
                    "Department": self.rng.choice(_DEPARTMENTS),
                    "LeadSource": self.rng.choice(LEAD_SOURCES),
                    "Birthdate": _iso_date(birthdate) if birthdate else None,
                    "HasOptedOutOfEmail": int(opted_out),
                    "OwnerId": self.rng.choice(owners),
                    "IsDeleted": self._deleted(CONTACT),
                    **self._audit(1000),
                    **self._marketing(opted_out),
                    "Renewal_Date__c": _iso_date(renewal) if renewal else None,
                }
            )
        return rows

    def leads(
        self,
        count: int,
        contacts: list[dict[str, Any]],
        opportunities: list[dict[str, Any]],
        owners: list[str],
        queues: list[str],
    ) -> list[dict[str, Any]]:
        rows = []
        emailed = [c for c in contacts if c["Email"] and _SIMPLE_EMAIL.match(c["Email"])]
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
                locale, country = self._locale()
                first, last = converted_into["FirstName"], converted_into["LastName"]
                company = self.fakers[locale].company()
                email = converted_into["Email"]
            else:
                person = self._person()
                locale, country = person.locale, person.country
                first, last = person.first, person.last
                company = self.fakers[locale].company()
                if shared_with is not None:
                    email = shared_with["Email"]
                else:
                    email = self._email(person.email_local, self._company_domain(company))
            faker = self.fakers[locale]
            audit = self._audit(700)
            opted_out = self._opted_out()
            row: dict[str, Any] = {
                "Id": make_id(LEAD.key_prefix, serial),
                "FirstName": first,
                "LastName": last,
                "Name": f"{first} {last}",
                "Title": self.rng.choice(_TITLES) if self.rng.random() < 0.8 else None,
                "Company": company,
                "Street": faker.street_address(),
                "City": faker.city(),
                "State": faker.state_abbr() if locale == "en_US" else None,
                "PostalCode": faker.postcode(),
                "Country": country,
                "Phone": faker.phone_number() if self.rng.random() < 0.8 else None,
                "MobilePhone": faker.phone_number() if self.rng.random() < 0.3 else None,
                "Fax": faker.phone_number() if self.rng.random() < 0.05 else None,
                "Email": email,
                "LeadSource": self.rng.choice(LEAD_SOURCES) if self.rng.random() < 0.9 else None,
                "Status": self._weighted(_OPEN_LEAD_STATUSES),
                "Industry": self.rng.choice(INDUSTRIES) if self.rng.random() < 0.7 else None,
                "AnnualRevenue": (
                    float(self.rng.randrange(50_000, 100_000_000, 1000))
                    if self.rng.random() < 0.5
                    else None
                ),
                "NumberOfEmployees": self.rng.randint(1, 5000) if self.rng.random() < 0.6 else None,
                "HasOptedOutOfEmail": int(opted_out),
                "IsConverted": 0,
                "IsDeleted": 0 if converted_into else self._deleted(LEAD),
                **audit,
                **self._marketing(opted_out),
                "Lead_Notes__c": (
                    "\n".join(faker.sentences(self.rng.randint(1, 3)))
                    if self.rng.random() < 0.2
                    else None
                ),
            }
            if queues and self.rng.random() < QUEUE_OWNED_LEAD_RATE:
                row["OwnerId"] = self.rng.choice(queues)
                self.tally.queue_owned_leads += 1
            else:
                row["OwnerId"] = self.rng.choice(owners)
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
                "ConvertedDate": _iso_date(converted_at.date()),
                "ConvertedContactId": contact["Id"],
                "ConvertedAccountId": contact["AccountId"],
                "ConvertedOpportunityId": (
                    self.rng.choice(candidates) if candidates and self.rng.random() < 0.5 else None
                ),
            }
        )


def seed_sandbox(
    db_path: Path,
    *,
    leads: int = 2000,
    contacts: int = 1500,
    seed: int = 42,
    now: datetime | None = None,
) -> SeedSummary:
    """Write a fresh sandbox database at ``db_path`` (replacing any existing file).

    Accounts number about ``contacts / 5`` and Opportunities about 1.5 per Account. The file is
    built next to ``db_path`` and moved into place, so a running server never reads a half-seeded
    database.
    """
    if leads < 0 or contacts < 0:
        raise ValueError("record counts must not be negative")
    now = (now or datetime.now(UTC)).astimezone(UTC)
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
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = db_path.with_name(db_path.name + ".seeding")
    tmp_path.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp_path)
    try:
        with conn:
            store.create_schema(conn)
            for obj, rows in tables:
                store.insert_rows(conn, obj, rows)
                store.set_meta(conn, store.serial_key(obj), str(len(rows)))
            store.set_meta(conn, "seed", str(seed))
            store.set_meta(conn, "seeded_at", store.to_storage_datetime(now))
            store.set_meta(conn, store.API_USAGE_KEY, "0")
            store.set_meta(conn, store.DELETES_REFUSED_KEY, "0")
    finally:
        conn.close()
    os.replace(tmp_path, db_path)

    won_accounts = {
        o["AccountId"] for o in opportunities if o["StageName"] == CLOSED_WON and not o["IsDeleted"]
    }
    accounts_by_type: dict[str, int] = {}
    for account in accounts:
        key = account["Type"] or "(none)"
        accounts_by_type[key] = accounts_by_type.get(key, 0) + 1
    tally = builder.tally
    return SeedSummary(
        db_path=db_path,
        seed=seed,
        now=now,
        counts={obj.name: len(rows) for obj, rows in tables},
        malformed_emails=tally.malformed_emails,
        missing_emails=tally.missing_emails,
        shared_emails=tally.shared_emails,
        converted_leads=tally.converted_leads,
        contacts_without_account=tally.contacts_without_account,
        non_ascii_names=tally.non_ascii_names,
        opted_out=tally.opted_out,
        soft_deleted=dict(sorted(tally.soft_deleted.items())),
        queue_owned_leads=tally.queue_owned_leads,
        inactive_users=sum(1 for u in users if not u["IsActive"]),
        accounts_by_type=dict(sorted(accounts_by_type.items())),
        accounts_with_closed_won=len(won_accounts),
        prospects_with_closed_won=sum(
            1 for a in accounts if a["Type"] == "Prospect" and a["Id"] in won_accounts
        ),
        contacts_with_renewal_date=sum(1 for c in contact_rows if c["Renewal_Date__c"]),
    )
