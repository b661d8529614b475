"""Realistic, realistically dirty CRM records drawn from one random stream.

Both the seed (a whole org with years of history) and the churn (a day of CRM activity) build
records here, so new records look like the seeded ones. Every choice comes from the generator's
``random.Random`` and its Faker instances in a fixed order: the same stream gives the same
records. The order of draws inside each method is part of that contract (reordering them changes
every seeded file), so keep it when editing.

Large seeds (a million records) use :class:`ColumnarGenerator` instead: the same fields, rates
and kinds of dirt, drawn with numpy a whole chunk of records at a time, with Faker values taken
from pools drawn once (:class:`FakerPools`). It gives other records than RecordGenerator for the
same seed, so small seeds (the tests' data sets) keep RecordGenerator and stay as they were.

Emails use domains under ``example.com`` / ``example.org`` / ``example.net`` (reserved by
RFC 2606) so that demo data can never reach a real mailbox.
"""

from __future__ import annotations

import itertools
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
from faker import Faker

from crm_sandbox import store
from crm_sandbox.objects import (
    CLOSED_LOST,
    CLOSED_WON,
    CONVERTED_STATUS,
    INDUSTRIES,
    INTERESTS,
    LEAD_SOURCES,
    OPPORTUNITY_STAGES,
    ObjectDef,
)

# Target shares of each kind of dirt (of Leads and Contacts unless noted).
MALFORMED_EMAIL_RATE = 0.02
MISSING_EMAIL_RATE = 0.03
CONTACT_WITHOUT_ACCOUNT_RATE = 0.05
OPTED_OUT_RATE = 0.04
SOFT_DELETED_RATE = 0.01
QUEUE_OWNED_LEAD_RATE = 0.05

# (Faker locale, weight, country as stored in address fields)
LOCALES: tuple[tuple[str, float, str], ...] = (
    ("en_US", 0.70, "United States"),
    ("de_DE", 0.08, "Germany"),
    ("fr_FR", 0.08, "France"),
    ("es_ES", 0.07, "Spain"),
    ("ja_JP", 0.07, "Japan"),
)
TITLES: tuple[str, ...] = (
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
DEPARTMENTS: tuple[str, ...] = (
    "Marketing",
    "Sales",
    "IT",
    "Operations",
    "Finance",
    "Executive",
    "Product",
)
ACCOUNT_TYPE_WEIGHTS: tuple[tuple[str | None, float], ...] = (
    ("Prospect", 0.34),
    ("Customer - Direct", 0.30),
    ("Customer - Channel", 0.15),
    ("Channel Partner / Reseller", 0.04),
    ("Installation Partner", 0.02),
    ("Technology Partner", 0.03),
    ("Other", 0.04),
    (None, 0.08),
)
OPEN_LEAD_STATUSES: tuple[tuple[str, float], ...] = (
    ("Open - Not Contacted", 0.5),
    ("Working - Contacted", 0.35),
    ("Closed - Not Converted", 0.15),
)
EMAIL_SUFFIXES = ("example.com", "example.org", "example.net")
SIMPLE_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass
class Person:
    """A generated person: names in their locale's script, an ASCII email local part."""

    first: str
    last: str
    email_local: str
    locale: str
    country: str

    @property
    def non_ascii(self) -> bool:
        """Whether the name needs more than ASCII (accents, kana, ...)."""
        return not (self.first + self.last).isascii()


@dataclass
class DirtTally:
    """How much of each kind of dirt the generator has produced so far."""

    malformed_emails: int = 0
    missing_emails: int = 0
    shared_emails: int = 0
    converted_leads: int = 0
    contacts_without_account: int = 0
    non_ascii_names: int = 0
    opted_out: int = 0
    queue_owned_leads: int = 0
    soft_deleted: dict[str, int] = field(default_factory=dict)


def ascii_slug(text: str, sep: str = ".") -> str:
    """Lower-case ASCII rendering of a name, for email local parts and domains."""
    decomposed = unicodedata.normalize("NFKD", text).replace("ß", "ss")
    ascii_text = decomposed.encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", sep, ascii_text).strip(sep)


def iso_date(value: date) -> str:
    """A date as stored (``YYYY-MM-DD``)."""
    return value.isoformat()


class RecordGenerator:
    """Draws people, emails and whole Account, Contact, Lead and Opportunity rows.

    ``backdate`` picks the two uses. The seed backdates: records get a random history (created
    up to years before ``now``, modified since) and a few are soft-deleted. The churn does not:
    records are created at ``now`` and live.
    """

    def __init__(self, rng: random.Random, faker_seed: int, now: datetime, *, backdate: bool):
        self.rng = rng
        self.now = now
        self.backdate = backdate
        self.fakers: dict[str, Faker] = {}
        for index, (locale, _, _) in enumerate(LOCALES):
            faker = Faker(locale)
            faker.seed_instance(faker_seed * 101 + index)
            self.fakers[locale] = faker
        self.tally = DirtTally()

    # --- primitive draws -----------------------------------------------------------------------

    def weighted(self, options: tuple[tuple[Any, float], ...]) -> Any:
        """One value of ``(value, weight)`` options."""
        values = [value for value, _ in options]
        weights = [weight for _, weight in options]
        return self.rng.choices(values, weights)[0]

    def locale(self) -> tuple[str, str]:
        """A Faker locale and the country stored with it."""
        locale, country = self.weighted(
            tuple(((name, country), weight) for name, weight, country in LOCALES)
        )
        return locale, country

    def faker_for_country(self, country: str | None) -> Faker:
        """The Faker of the locale whose records carry ``country`` (US English otherwise)."""
        for locale, _, locale_country in LOCALES:
            if locale_country == country:
                return self.fakers[locale]
        return self.fakers["en_US"]

    def ago(self, min_days: float, max_days: float) -> datetime:
        """A random moment between ``max_days`` and ``min_days`` before ``now``."""
        return self.now - timedelta(days=self.rng.uniform(min_days, max_days))

    def audit(self, max_age_days: float) -> dict[str, str]:
        """CreatedDate, LastModifiedDate and SystemModstamp of a new record.

        Backdated: SystemModstamp within ~90 days, never after ``now``. Otherwise all ``now``.
        """
        if not self.backdate:
            stamp = store.to_storage_datetime(self.now)
            return {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}
        created = self.ago(1.0, max_age_days)
        age_days = (self.now - created).total_seconds() / 86400
        stamp = self.ago(0.001, min(90.0, age_days))
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

    def person(self) -> Person:
        """A person from a weighted locale, with an ASCII email local part."""
        locale, country = self.locale()
        faker = self.fakers[locale]
        if locale == "ja_JP":
            first, _, first_roman = faker.first_name_pair()
            last, _, last_roman = faker.last_name_pair()
            local = ascii_slug(f"{first_roman} {last_roman}")
        else:
            first, last = faker.first_name(), faker.last_name()
            local = ascii_slug(f"{first} {last}")
        person = Person(first, last, local or "contact", locale, country)
        if person.non_ascii:
            self.tally.non_ascii_names += 1
        return person

    def email(self, local: str, domain: str) -> str | None:
        """An email, possibly missing or malformed (the dirt a real org accumulates)."""
        draw = self.rng.random()
        if draw < MISSING_EMAIL_RATE:
            self.tally.missing_emails += 1
            return None
        if draw < MISSING_EMAIL_RATE + MALFORMED_EMAIL_RATE:
            self.tally.malformed_emails += 1
            return self.malformed_email(local, domain)
        email = f"{local}@{domain}"
        if not SIMPLE_EMAIL.match(email):
            raise AssertionError(f"generated a malformed email by accident: {email!r}")
        return email

    def malformed_email(self, local: str, domain: str) -> str:
        """One of the ways people mistype an email address."""
        name_only = domain.split(".")[0]
        variants = (
            f"{local}@",
            f"{local} at {domain}",
            f"{local}@@{domain}",
            f"{local.replace('.', ' ')}@{domain}",
            f"{local}@{name_only}",
            f"{local}@{domain.replace('.', ',')}",
        )
        return str(self.rng.choice(variants))

    def company_domain(self, company: str) -> str:
        """An email domain for ``company`` under a reserved example suffix."""
        slug = ascii_slug(company, "-")[:40].strip("-") or "company"
        return f"{slug}.{self.rng.choice(EMAIL_SUFFIXES)}"

    def interests(self) -> str | None:
        """A multi-select Interests__c value (``None`` for no interest)."""
        count = self.weighted(((0, 0.35), (1, 0.3), (2, 0.2), (3, 0.15)))
        if not count:
            return None
        chosen = set(self.rng.sample(INTERESTS, count))
        # Salesforce stores multi-select values in picklist order.
        return ";".join(value for value in INTERESTS if value in chosen)

    def score(self, null_rate: float) -> float | None:
        """A 0..100 score, missing at ``null_rate``."""
        return None if self.rng.random() < null_rate else float(self.rng.randint(0, 100))

    def marketing(self, opted_out: bool) -> dict[str, Any]:
        """The Act-On custom fields shared by Leads and Contacts."""
        last_event = self.ago(0.01, 60) if self.rng.random() < 0.3 else None
        return {
            "ActOn_Score__c": self.score(0.4),
            "Fit_Score__c": self.score(0.5),
            "Interests__c": self.interests(),
            "Newsletter__c": 0 if opted_out else int(self.rng.random() < 0.35),
            "Last_Event_At__c": store.to_storage_datetime(last_event) if last_event else None,
        }

    def deleted(self, obj: ObjectDef) -> int:
        """IsDeleted of a new row: a few backdated records were deleted since; fresh ones not."""
        if not self.backdate:
            return 0
        if self.rng.random() < SOFT_DELETED_RATE:
            self.tally.soft_deleted[obj.name] = self.tally.soft_deleted.get(obj.name, 0) + 1
            return 1
        return 0

    def opted_out(self) -> bool:
        """Whether a person opted out of email."""
        if self.rng.random() < OPTED_OUT_RATE:
            self.tally.opted_out += 1
            return True
        return False

    def opportunity_stage(self) -> str:
        """A stage, weighted like a pipeline's mix of open and closed deals."""
        stage: str = self.weighted(
            ((CLOSED_WON, 0.25), (CLOSED_LOST, 0.15))
            + tuple((s, 0.075) for s in OPPORTUNITY_STAGES[:8])
        )
        return stage

    # --- whole records ---------------------------------------------------------------------------

    def account(self, record_id: str, owners: list[str], obj: ObjectDef) -> dict[str, Any]:
        """An Account row."""
        locale, country = self.locale()
        faker = self.fakers[locale]
        return {
            "Id": record_id,
            "Name": faker.company(),
            "Type": self.weighted(ACCOUNT_TYPE_WEIGHTS),
            "Industry": self.rng.choice(INDUSTRIES) if self.rng.random() < 0.85 else None,
            "BillingCity": faker.city(),
            "BillingCountry": country,
            "AnnualRevenue": float(self.rng.randrange(100_000, 500_000_000, 1000)),
            "NumberOfEmployees": self.rng.randint(1, 20_000),
            "OwnerId": self.rng.choice(owners),
            "IsDeleted": self.deleted(obj),
            **self.audit(1000),
        }

    def opportunity(
        self,
        record_id: str,
        account: dict[str, Any],
        stage: str,
        owners: list[str],
        obj: ObjectDef,
    ) -> dict[str, Any]:
        """An Opportunity row on ``account`` (which needs ``Id`` and ``Name``) at ``stage``."""
        closed = stage in (CLOSED_WON, CLOSED_LOST)
        audit = self.audit(700)
        if closed:
            close_date = self.ago(1, 700).date() if self.backdate else self.now.date()
        else:
            close_date = (self.now + timedelta(days=self.rng.randint(1, 180))).date()
        return {
            "Id": record_id,
            "AccountId": account["Id"],
            "Name": f"{account['Name']} - {self.rng.choice(('New', 'Renewal', 'Upsell'))}",
            "StageName": stage,
            "Amount": round(self.rng.uniform(1_000, 250_000), 2),
            "CloseDate": iso_date(close_date),
            "IsClosed": int(closed),
            "IsWon": int(stage == CLOSED_WON),
            "OwnerId": self.rng.choice(owners),
            "IsDeleted": self.deleted(obj),
            **audit,
        }

    def contact(
        self,
        record_id: str,
        accounts: list[dict[str, Any]],
        customers: set[str],
        owners: list[str],
        obj: ObjectDef,
    ) -> dict[str, Any]:
        """A Contact row, usually on one of ``accounts`` (live rows with ``Id`` and ``Name``).

        ``customers`` holds the Ids of customer Accounts, whose Contacts may carry a renewal date.
        """
        person = self.person()
        faker = self.fakers[person.locale]
        if self.rng.random() < CONTACT_WITHOUT_ACCOUNT_RATE or not accounts:
            account = None
            self.tally.contacts_without_account += 1
            domain = self.company_domain(faker.company())
        else:
            account = self.rng.choice(accounts)
            domain = self.company_domain(account["Name"])
        opted_out = self.opted_out()
        renewal = None
        if account is not None and account["Id"] in customers and self.rng.random() < 0.5:
            renewal = (self.now + timedelta(days=self.rng.randint(-30, 365))).date()
        birthdate = None
        if self.rng.random() < 0.25:
            birthdate = (self.now - timedelta(days=self.rng.randint(22 * 365, 65 * 365))).date()
        return {
            "Id": record_id,
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
            "Email": self.email(person.email_local, domain),
            "Title": self.rng.choice(TITLES) if self.rng.random() < 0.9 else None,
            "Department": self.rng.choice(DEPARTMENTS),
            "LeadSource": self.rng.choice(LEAD_SOURCES),
            "Birthdate": iso_date(birthdate) if birthdate else None,
            "HasOptedOutOfEmail": int(opted_out),
            "OwnerId": self.rng.choice(owners),
            "IsDeleted": self.deleted(obj),
            **self.audit(1000),
            **self.marketing(opted_out),
            "Renewal_Date__c": iso_date(renewal) if renewal else None,
        }

    def new_lead_identity(self) -> tuple[str, str, str, str, str, str | None]:
        """(first, last, locale, country, company, email) of a Lead from nowhere in the CRM."""
        person = self.person()
        company = self.fakers[person.locale].company()
        email = self.email(person.email_local, self.company_domain(company))
        return person.first, person.last, person.locale, person.country, company, email

    def lead(
        self,
        record_id: str,
        identity: tuple[str, str, str, str, str, str | None],
        owners: list[str],
        queues: list[str],
        obj: ObjectDef,
        *,
        may_be_deleted: bool = True,
    ) -> dict[str, Any]:
        """An unconverted Lead row for ``identity`` (see :meth:`new_lead_identity`).

        A few Leads sit in a queue (``queues``) rather than with a user.
        """
        first, last, locale, country, company, email = identity
        faker = self.fakers[locale]
        audit = self.audit(700)
        opted_out = self.opted_out()
        row: dict[str, Any] = {
            "Id": record_id,
            "FirstName": first,
            "LastName": last,
            "Name": f"{first} {last}",
            "Title": self.rng.choice(TITLES) if self.rng.random() < 0.8 else None,
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
            "Status": self.weighted(OPEN_LEAD_STATUSES),
            "Industry": self.rng.choice(INDUSTRIES) if self.rng.random() < 0.7 else None,
            "AnnualRevenue": (
                float(self.rng.randrange(50_000, 100_000_000, 1000))
                if self.rng.random() < 0.5
                else None
            ),
            "NumberOfEmployees": self.rng.randint(1, 5000) if self.rng.random() < 0.6 else None,
            "HasOptedOutOfEmail": int(opted_out),
            "IsConverted": 0,
            "IsDeleted": self.deleted(obj) if may_be_deleted else 0,
            **audit,
            **self.marketing(opted_out),
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
        return row


# --- the columnar generator (large seeds) ----------------------------------------------------

# Faker values drawn per locale and kind for the columnar generator, then reused by index.
POOL_SIZE = 1000
_NOTE_POOL_SIZE = 200
_MS_PER_DAY = 86_400_000.0
# Interests__c values by number of interests: every combination, in picklist order.
_INTEREST_SETS: tuple[tuple[str, ...], ...] = tuple(
    tuple(";".join(combo) for combo in itertools.combinations(INTERESTS, count))
    for count in range(4)
)
_INTEREST_COUNTS: tuple[tuple[int, float], ...] = ((0, 0.35), (1, 0.3), (2, 0.2), (3, 0.15))

Columns = dict[str, list[Any]]


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-D object array of ``values`` (strings stay Python strings, None stays None)."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


class FakerPools:
    """Faker's output drawn once, ``size`` values per locale and kind, then reused by index.

    Faker costs 30-300 µs a value; at a million records, one call per field per record would be
    most of the seeding. A pool keeps values one Faker made for its locale (names in their
    script, addresses of their country) at the price of repeats, which real CRMs have too.
    Entry ``locale * size + k`` is value ``k`` of the locale numbered ``locale`` in LOCALES.
    Deterministic for ``faker_seed`` (the Fakers are seeded as RecordGenerator seeds its own).
    """

    def __init__(self, faker_seed: int, size: int = POOL_SIZE) -> None:
        self.size = size
        values: dict[str, list[Any]] = {}

        def add(kind: str, value: Any) -> None:
            values.setdefault(kind, []).append(value)

        for index, (locale, _, _) in enumerate(LOCALES):
            faker = Faker(locale)
            faker.seed_instance(faker_seed * 101 + index)
            for k in range(size):
                if locale == "ja_JP":
                    first, _, first_roman = faker.first_name_pair()
                    last, _, last_roman = faker.last_name_pair()
                else:
                    first = first_roman = faker.first_name()
                    last = last_roman = faker.last_name()
                company = faker.company()
                add("first", first)
                add("last", last)
                add("first_slug", ascii_slug(first_roman))
                add("last_slug", ascii_slug(last_roman))
                add("first_ascii", first.isascii())
                add("last_ascii", last.isascii())
                add("company", company)
                # A company name with no Latin letters (all of ja_JP's) has an empty slug: a
                # numbered domain keeps a million Japanese Leads off three shared domains.
                slug = ascii_slug(company, "-")[:40].strip("-") or f"company-{k}"
                add("company_slug", slug)
                add("city", faker.city())
                add("street", faker.street_address())
                add("postcode", faker.postcode())
                add("phone", faker.phone_number())
                add("state", faker.state_abbr() if locale == "en_US" else None)
            for k in range(_NOTE_POOL_SIZE):
                add("note", "\n".join(faker.sentences(1 + k % 3)))
        self.first = _objects(values["first"])
        self.last = _objects(values["last"])
        self.first_slug = _objects(values["first_slug"])
        self.last_slug = _objects(values["last_slug"])
        self.first_ascii = np.array(values["first_ascii"], dtype=bool)
        self.last_ascii = np.array(values["last_ascii"], dtype=bool)
        self.company = _objects(values["company"])
        self.company_slug = _objects(values["company_slug"])
        self.city = _objects(values["city"])
        self.street = _objects(values["street"])
        self.postcode = _objects(values["postcode"])
        self.phone = _objects(values["phone"])
        self.state = _objects(values["state"])
        self.note = _objects(values["note"])


@dataclass
class AccountColumns:
    """What Contacts, Opportunities and conversions need of every Account, by Account index."""

    ids: np.ndarray
    names: np.ndarray
    types: np.ndarray
    deleted: np.ndarray
    domains: np.ndarray

    @property
    def live(self) -> np.ndarray:
        """Indexes of the Accounts not deleted: the only ones that get children."""
        return np.flatnonzero(~self.deleted)


@dataclass
class PickedContacts:
    """The Contacts a chunk of Leads reuses (converted into, or sharing the email of)."""

    first: list[str]
    last: list[str]
    email: list[str]
    ids: list[str]
    account: np.ndarray  # Account index of each (converted Leads' Contacts always have one)


class ColumnarGenerator:
    """Whole columns of Account, Opportunity, Contact and Lead fields, a chunk at a time.

    The large-seed twin of :class:`RecordGenerator`: the same fields, rates and kinds of dirt,
    counted in the same ``DirtTally``, but drawn for a whole chunk at once with numpy from one
    ``numpy.random.Generator`` and values picked from :class:`FakerPools`, so that a million
    records cost seconds, not a Python call per field. Columns come back as lists of Python
    values (what sqlite3 binds), keyed by field name; fields left out are NULL. The same seed,
    ``now`` and chunk sequence give the same columns (for one numpy version).
    """

    def __init__(self, seed: int, now: datetime, pools: FakerPools | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.pools = pools or FakerPools(seed)
        self.now = now
        self.tally = DirtTally()
        self._now_ms = now.timestamp() * 1000.0
        self._today = np.datetime64(now.date(), "D")
        self._countries = _objects([country for _, _, country in LOCALES])
        self._locale_weights = np.array([weight for _, weight, _ in LOCALES]) / sum(
            weight for _, weight, _ in LOCALES
        )
        self._en_us = next(i for i, (name, _, _) in enumerate(LOCALES) if name == "en_US")

    # --- primitive draws (n values at once) -------------------------------------------------

    def chance(self, n: int, rate: float) -> np.ndarray:
        """``n`` booleans, each true with probability ``rate``."""
        return self.rng.random(n) < rate

    def pick(self, options: Sequence[Any], n: int) -> np.ndarray:
        """``n`` values drawn uniformly from ``options``."""
        return _objects(options)[self.rng.integers(len(options), size=n)]

    def weighted(self, options: tuple[tuple[Any, float], ...], n: int) -> np.ndarray:
        """``n`` values of ``(value, weight)`` options."""
        weights = np.array([weight for _, weight in options])
        index = self.rng.choice(len(options), size=n, p=weights / weights.sum())
        return _objects([value for value, _ in options])[index]

    def locales(self, n: int) -> np.ndarray:
        """Locale numbers (indexes into LOCALES), weighted like RecordGenerator's."""
        return self.rng.choice(len(LOCALES), size=n, p=self._locale_weights)

    def pooled(self, pool: np.ndarray, locale: np.ndarray) -> np.ndarray:
        """One value of ``pool`` per record, from the record's locale."""
        size = len(pool) // len(LOCALES)  # values per locale
        return pool[locale * size + self.rng.integers(size, size=len(locale))]

    def days_ago(self, low: float, high: float | np.ndarray, n: int) -> np.ndarray:
        """Moments between ``high`` and ``low`` days before ``now``, as epoch milliseconds."""
        ago = self.rng.uniform(low, high, n)
        return np.floor(self._now_ms - ago * _MS_PER_DAY).astype(np.int64)

    def dates_from_today(self, low: int, high: int, n: int) -> np.ndarray:
        """Dates ``low``..``high`` days (inclusive) from ``now``'s date."""
        return self._today + self.rng.integers(low, high + 1, size=n).astype("timedelta64[D]")

    def owners(self, owners: Sequence[str], n: int) -> np.ndarray:
        """An owner Id per record."""
        return self.pick(owners, n)

    def deleted(self, object_name: str, n: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """IsDeleted (0/1) of ``n`` backdated records (only where ``allowed``)."""
        deleted = self.chance(n, SOFT_DELETED_RATE)
        if allowed is not None:
            deleted &= allowed
        count = int(deleted.sum())
        if count:
            self.tally.soft_deleted[object_name] = (
                self.tally.soft_deleted.get(object_name, 0) + count
            )
        return deleted

    def audit(self, n: int, max_age_days: float) -> tuple[Columns, np.ndarray, np.ndarray]:
        """CreatedDate, LastModifiedDate, SystemModstamp as RecordGenerator.audit backdates them;
        also the created and stamp moments (epoch ms)."""
        created_ago = self.rng.uniform(1.0, max_age_days, n)
        # 89.99 rather than 90: milliseconds are floored, and a stamp must stay within 90 days.
        stamp_ago = self.rng.uniform(0.001, np.minimum(89.99, created_ago), n)
        modified_ago = np.where(
            self.chance(n, 0.7),
            stamp_ago,
            created_ago - (created_ago - stamp_ago) * self.rng.random(n),
        )
        created, modified, stamp = (
            np.floor(self._now_ms - ago * _MS_PER_DAY).astype(np.int64)
            for ago in (created_ago, modified_ago, stamp_ago)
        )
        columns = {
            "CreatedDate": datetime_texts(created),
            "LastModifiedDate": datetime_texts(modified),
            "SystemModstamp": datetime_texts(stamp),
        }
        return columns, created, stamp

    def opted_out(self, n: int) -> np.ndarray:
        """Whether each person opted out of email."""
        out = self.chance(n, OPTED_OUT_RATE)
        self.tally.opted_out += int(out.sum())
        return out

    def persons(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
        """(locale, first, last, email local part, non-ASCII) of ``n`` new people."""
        pools = self.pools
        locale = self.locales(n)
        first_at = locale * pools.size + self.rng.integers(pools.size, size=n)
        last_at = locale * pools.size + self.rng.integers(pools.size, size=n)
        local = [
            f"{a}.{b}" if a and b else (a or b or "contact")
            for a, b in zip(
                pools.first_slug[first_at].tolist(), pools.last_slug[last_at].tolist(), strict=True
            )
        ]
        non_ascii = ~(pools.first_ascii[first_at] & pools.last_ascii[last_at])
        return locale, pools.first[first_at], pools.last[last_at], local, non_ascii

    def company_domains(self, slugs: np.ndarray) -> list[str]:
        """An email domain per company slug under a reserved example suffix."""
        suffixes = self.pick(EMAIL_SUFFIXES, len(slugs)).tolist()
        return [f"{slug}.{suffix}" for slug, suffix in zip(slugs.tolist(), suffixes, strict=True)]

    def emails(self, local: list[str], domains: list[str]) -> tuple[list[str | None], np.ndarray]:
        """Emails with the missing and malformed ones a real org has; also which are well-formed
        (``SIMPLE_EMAIL``)."""
        n = len(local)
        draw = self.rng.random(n)
        missing = draw < MISSING_EMAIL_RATE
        malformed = ~missing & (draw < MISSING_EMAIL_RATE + MALFORMED_EMAIL_RATE)
        variants = self.rng.integers(6, size=n)
        self.tally.missing_emails += int(missing.sum())
        self.tally.malformed_emails += int(malformed.sum())
        out: list[str | None] = [f"{a}@{d}" for a, d in zip(local, domains, strict=True)]
        for i in np.flatnonzero(malformed).tolist():
            out[i] = _malformed_email(local[i], domains[i], int(variants[i]))
        for i in np.flatnonzero(missing).tolist():
            out[i] = None
        return out, ~(missing | malformed)

    def interests(self, n: int) -> list[str | None]:
        """Interests__c values (None for no interest), each combination equally likely per
        number of interests, as ``random.sample`` gives."""
        counts = self.weighted(_INTEREST_COUNTS, n).astype(np.int64)
        out = np.full(n, None, dtype=object)
        for count in (1, 2, 3):
            where = counts == count
            out[where] = self.pick(_INTEREST_SETS[count], int(where.sum()))
        return out.tolist()

    def scores(self, n: int, null_rate: float) -> list[float | None]:
        """0..100 scores stored as REAL, missing at ``null_rate``."""
        values = self.rng.integers(0, 101, size=n).astype(np.float64)
        return nullable(values, ~self.chance(n, null_rate))

    def marketing(self, opted_out: np.ndarray) -> Columns:
        """The Act-On custom fields shared by Leads and Contacts."""
        n = len(opted_out)
        last_event = self.days_ago(0.01, 60, n)
        return {
            "ActOn_Score__c": self.scores(n, 0.4),
            "Fit_Score__c": self.scores(n, 0.5),
            "Interests__c": self.interests(n),
            "Newsletter__c": (~opted_out & self.chance(n, 0.35)).astype(np.int64).tolist(),
            "Last_Event_At__c": nullable(_objects(datetime_texts(last_event)), self.chance(n, 0.3)),
        }

    # --- whole objects ---------------------------------------------------------------------------

    def accounts(self, ids: list[str], owners: Sequence[str]) -> tuple[Columns, AccountColumns]:
        """Account columns, and what their children need of them."""
        n = len(ids)
        locale = self.locales(n)
        company_at = locale * self.pools.size + self.rng.integers(self.pools.size, size=n)
        names = self.pools.company[company_at]
        types = self.weighted(ACCOUNT_TYPE_WEIGHTS, n)
        deleted = self.deleted("Account", n)
        audit, _, _ = self.audit(n, 1000)
        revenue = 100_000 + 1000 * self.rng.integers(0, (500_000_000 - 100_000) // 1000, size=n)
        columns: Columns = {
            "Id": ids,
            "Name": names.tolist(),
            "Type": types.tolist(),
            "Industry": nullable(self.pick(INDUSTRIES, n), self.chance(n, 0.85)),
            "BillingCity": self.pooled(self.pools.city, locale).tolist(),
            "BillingCountry": self._countries[locale].tolist(),
            "AnnualRevenue": revenue.astype(np.float64).tolist(),
            "NumberOfEmployees": self.rng.integers(1, 20_001, size=n).tolist(),
            "OwnerId": self.owners(owners, n).tolist(),
            "IsDeleted": deleted.astype(np.int64).tolist(),
            **audit,
        }
        domains = _objects(self.company_domains(self.pools.company_slug[company_at]))
        return columns, AccountColumns(_objects(ids), names, types, deleted, domains)

    def opportunities(
        self,
        ids: list[str],
        account_at: np.ndarray,
        accounts: AccountColumns,
        owners: Sequence[str],
        stages: np.ndarray,
    ) -> Columns:
        """Opportunity columns on the Accounts at ``account_at`` (live ones), at ``stages``."""
        n = len(ids)
        closed = (stages == CLOSED_WON) | (stages == CLOSED_LOST)
        audit, _, _ = self.audit(n, 700)
        closed_on = self.days_ago(1, 700, n).astype("datetime64[ms]").astype("datetime64[D]")
        open_until = self.dates_from_today(1, 180, n)
        kinds = self.pick(("New", "Renewal", "Upsell"), n).tolist()
        return {
            "Id": ids,
            "AccountId": accounts.ids[account_at].tolist(),
            "Name": [
                f"{name} - {kind}"
                for name, kind in zip(accounts.names[account_at].tolist(), kinds, strict=True)
            ],
            "StageName": stages.tolist(),
            "Amount": np.round(self.rng.uniform(1_000, 250_000, n), 2).tolist(),
            "CloseDate": date_texts(np.where(closed, closed_on, open_until)),
            "IsClosed": closed.astype(np.int64).tolist(),
            "IsWon": (stages == CLOSED_WON).astype(np.int64).tolist(),
            "OwnerId": self.owners(owners, n).tolist(),
            "IsDeleted": self.deleted("Opportunity", n).astype(np.int64).tolist(),
            **audit,
        }

    def opportunity_stages(self, n: int) -> np.ndarray:
        """Stages, weighted like RecordGenerator.opportunity_stage."""
        return self.weighted(
            ((CLOSED_WON, 0.25), (CLOSED_LOST, 0.15))
            + tuple((s, 0.075) for s in OPPORTUNITY_STAGES[:8]),
            n,
        )

    def contacts(
        self, ids: list[str], accounts: AccountColumns, customers: np.ndarray, owners: Sequence[str]
    ) -> tuple[Columns, np.ndarray, np.ndarray]:
        """Contact columns; also each one's Account index (-1 for none) and whether its email is
        well-formed. ``customers`` flags customer Accounts (by index), whose Contacts may carry
        a renewal date."""
        n = len(ids)
        live = accounts.live
        locale, first, last, local, non_ascii = self.persons(n)
        self.tally.non_ascii_names += int(non_ascii.sum())
        orphan = self.chance(n, CONTACT_WITHOUT_ACCOUNT_RATE) | (len(live) == 0)
        self.tally.contacts_without_account += int(orphan.sum())
        account_at = np.full(n, -1, dtype=np.int64)
        if len(live):
            account_at = np.where(orphan, -1, live[self.rng.integers(len(live), size=n)])
        orphan_domains = self.company_domains(self.pooled(self.pools.company_slug, locale))
        account_domains = accounts.domains[np.maximum(account_at, 0)].tolist()
        domains = [
            own if at < 0 else theirs
            for at, own, theirs in zip(
                account_at.tolist(), orphan_domains, account_domains, strict=True
            )
        ]
        opted_out = self.opted_out(n)
        is_customer = (account_at >= 0) & customers[np.maximum(account_at, 0)]
        renewal = self.dates_from_today(-30, 365, n)
        birthdate = self.dates_from_today(-65 * 365, -22 * 365, n)
        email, well_formed = self.emails(local, domains)
        en_us = locale == self._en_us
        audit, _, _ = self.audit(n, 1000)
        columns: Columns = {
            "Id": ids,
            "AccountId": nullable(accounts.ids[np.maximum(account_at, 0)], account_at >= 0),
            "FirstName": first.tolist(),
            "LastName": last.tolist(),
            "Name": [f"{a} {b}" for a, b in zip(first.tolist(), last.tolist(), strict=True)],
            "MailingStreet": self.pooled(self.pools.street, locale).tolist(),
            "MailingCity": self.pooled(self.pools.city, locale).tolist(),
            "MailingState": nullable(self.pooled(self.pools.state, locale), en_us),
            "MailingPostalCode": self.pooled(self.pools.postcode, locale).tolist(),
            "MailingCountry": self._countries[locale].tolist(),
            "Phone": self.pooled(self.pools.phone, locale).tolist(),
            "MobilePhone": nullable(self.pooled(self.pools.phone, locale), self.chance(n, 0.4)),
            "Email": email,
            "Title": nullable(self.pick(TITLES, n), self.chance(n, 0.9)),
            "Department": self.pick(DEPARTMENTS, n).tolist(),
            "LeadSource": self.pick(LEAD_SOURCES, n).tolist(),
            "Birthdate": nullable(_objects(date_texts(birthdate)), self.chance(n, 0.25)),
            "HasOptedOutOfEmail": opted_out.astype(np.int64).tolist(),
            "OwnerId": self.owners(owners, n).tolist(),
            "IsDeleted": self.deleted("Contact", n).astype(np.int64).tolist(),
            **audit,
            **self.marketing(opted_out),
            "Renewal_Date__c": nullable(
                _objects(date_texts(renewal)), is_customer & self.chance(n, 0.5)
            ),
        }
        return columns, account_at, well_formed

    def leads(
        self,
        ids: list[str],
        converted: np.ndarray,
        shared: np.ndarray,
        contacts: PickedContacts,
        accounts: AccountColumns,
        opportunities: Callable[[np.ndarray, np.ndarray], np.ndarray],
        owners: Sequence[str],
        queues: Sequence[str],
    ) -> Columns:
        """Lead columns. ``converted`` and ``shared`` flag the Leads that were converted into,
        or carry the email of, the Contacts ``contacts`` (in order, converted and shared alike).
        ``opportunities(account_at, draw)`` picks an Opportunity Id of each Account (or None),
        ``draw`` being uniform in [0, 1)."""
        n = len(ids)
        reused = converted | shared
        self.tally.converted_leads += int(converted.sum())
        self.tally.shared_emails += int(shared.sum())
        locale, first, last, local, non_ascii = self.persons(n)
        self.tally.non_ascii_names += int((non_ascii & ~converted).sum())
        first, last = first.tolist(), last.tolist()
        company_at = locale * self.pools.size + self.rng.integers(self.pools.size, size=n)
        fresh_email, _ = self.emails(
            [local[i] for i in np.flatnonzero(~reused).tolist()],
            self.company_domains(self.pools.company_slug[company_at[~reused]]),
        )
        email: list[str | None] = [None] * n
        for i, value in zip(np.flatnonzero(~reused).tolist(), fresh_email, strict=True):
            email[i] = value
        for k, i in enumerate(np.flatnonzero(reused).tolist()):
            email[i] = contacts.email[k]
            if converted[i]:
                # A converted Lead keeps the identity its Contact was created from.
                first[i], last[i] = contacts.first[k], contacts.last[k]
        en_us = locale == self._en_us
        opted_out = self.opted_out(n)
        audit, created, stamp = self.audit(n, 700)
        revenue = 50_000 + 1000 * self.rng.integers(0, (100_000_000 - 50_000) // 1000, size=n)
        status = self.weighted(OPEN_LEAD_STATUSES, n)
        status[converted] = CONVERTED_STATUS
        in_queue = self.chance(n, QUEUE_OWNED_LEAD_RATE) & (len(queues) > 0)
        self.tally.queue_owned_leads += int(in_queue.sum())
        owner = np.where(in_queue, self.pick(queues or ("",), n), self.owners(owners, n))
        columns: Columns = {
            "Id": ids,
            "FirstName": first,
            "LastName": last,
            "Name": [f"{a} {b}" for a, b in zip(first, last, strict=True)],
            "Title": nullable(self.pick(TITLES, n), self.chance(n, 0.8)),
            "Company": self.pools.company[company_at].tolist(),
            "Street": self.pooled(self.pools.street, locale).tolist(),
            "City": self.pooled(self.pools.city, locale).tolist(),
            "State": nullable(self.pooled(self.pools.state, locale), en_us),
            "PostalCode": self.pooled(self.pools.postcode, locale).tolist(),
            "Country": self._countries[locale].tolist(),
            "Phone": nullable(self.pooled(self.pools.phone, locale), self.chance(n, 0.8)),
            "MobilePhone": nullable(self.pooled(self.pools.phone, locale), self.chance(n, 0.3)),
            "Fax": nullable(self.pooled(self.pools.phone, locale), self.chance(n, 0.05)),
            "Email": email,
            "LeadSource": nullable(self.pick(LEAD_SOURCES, n), self.chance(n, 0.9)),
            "Status": status.tolist(),
            "Industry": nullable(self.pick(INDUSTRIES, n), self.chance(n, 0.7)),
            "AnnualRevenue": nullable(revenue.astype(np.float64), self.chance(n, 0.5)),
            "NumberOfEmployees": nullable(self.rng.integers(1, 5001, size=n), self.chance(n, 0.6)),
            "HasOptedOutOfEmail": opted_out.astype(np.int64).tolist(),
            "IsConverted": converted.astype(np.int64).tolist(),
            "IsDeleted": self.deleted("Lead", n, allowed=~converted).astype(np.int64).tolist(),
            "OwnerId": owner.tolist(),
            **audit,
            **self.marketing(opted_out),
            "Lead_Notes__c": nullable(self.pooled(self.pools.note, locale), self.chance(n, 0.2)),
        }
        self._convert(columns, converted, reused, contacts, accounts, opportunities, created, stamp)
        return columns

    def _convert(
        self,
        columns: Columns,
        converted: np.ndarray,
        reused: np.ndarray,
        contacts: PickedContacts,
        accounts: AccountColumns,
        opportunities: Callable[[np.ndarray, np.ndarray], np.ndarray],
        created: np.ndarray,
        stamp: np.ndarray,
    ) -> None:
        """Fill the conversion fields of the converted Leads, as Lead conversion sets them."""
        n = len(converted)
        at = np.flatnonzero(converted)
        # Converted Leads' Contacts, among the reused ones (in the same order).
        picked = converted[reused]
        account_at = contacts.account[picked]
        converted_ms = created[at] + (stamp[at] - created[at]) * self.rng.random(len(at))
        converted_on = date_texts(
            np.floor(converted_ms).astype(np.int64).astype("datetime64[ms]").astype("datetime64[D]")
        )
        with_opportunity = self.rng.random(len(at)) < 0.5
        opportunity = opportunities(account_at, self.rng.random(len(at)))
        opportunity = np.where(with_opportunity, opportunity, None)
        contact_ids = [contact for contact, keep in zip(contacts.ids, picked, strict=True) if keep]
        fields = {
            "ConvertedDate": converted_on,
            "ConvertedContactId": contact_ids,
            "ConvertedAccountId": accounts.ids[account_at].tolist(),
            "ConvertedOpportunityId": opportunity.tolist(),
        }
        for name, values in fields.items():
            column: list[Any] = [None] * n
            for i, value in zip(at.tolist(), values, strict=True):
                column[i] = value
            columns[name] = column


def nullable(values: np.ndarray, keep: np.ndarray) -> list[Any]:
    """``values`` as Python values, None where ``keep`` is false."""
    out = values.astype(object)
    out[~keep] = None
    return out.tolist()


def datetime_texts(epoch_ms: np.ndarray) -> list[str]:
    """Stored datetime texts (as ``store.to_storage_datetime`` writes them) of epoch ms."""
    texts = np.datetime_as_string(epoch_ms.astype("datetime64[ms]"), unit="ms")
    return [text + "Z" for text in texts.tolist()]


def date_texts(days: np.ndarray) -> list[str]:
    """Stored date texts (``YYYY-MM-DD``)."""
    return np.datetime_as_string(days.astype("datetime64[D]"), unit="D").tolist()


def _malformed_email(local: str, domain: str, variant: int) -> str:
    """Variant ``variant`` of the ways people mistype an email (see RecordGenerator)."""
    name_only = domain.split(".")[0]
    if variant == 3 and "." in local:
        return f"{local.replace('.', ' ')}@{domain}"
    if variant == 1:
        return f"{local} at {domain}"
    if variant == 2:
        return f"{local}@@{domain}"
    if variant == 4:
        return f"{local}@{name_only}"
    if variant == 5:
        return f"{local}@{domain.replace('.', ',')}"
    # Variant 0, and 3 for a one-word local part (no dot to turn into a space).
    return f"{local}@"
