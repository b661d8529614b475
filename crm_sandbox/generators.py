"""Realistic, realistically dirty CRM records drawn from one random stream.

Both the seed (a whole org with years of history) and the churn (a day of CRM activity) build
records here, so new records look like the seeded ones. Every choice comes from the generator's
``random.Random`` and its Faker instances in a fixed order: the same stream gives the same
records. The order of draws inside each method is part of that contract (reordering them changes
every seeded file), so keep it when editing.

Emails use domains under ``example.com`` / ``example.org`` / ``example.net`` (reserved by
RFC 2606) so that demo data can never reach a real mailbox.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from faker import Faker

from crm_sandbox import store
from crm_sandbox.objects import (
    CLOSED_LOST,
    CLOSED_WON,
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
