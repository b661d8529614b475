"""A day of CRM activity on the sandbox: updates, new records, conversions, deletes, purges.

A real org changes between two syncs: users edit records, forms and imports create them, Leads
get converted, records are deleted, and the Recycle Bin purges old deletions. ``churn_sandbox``
applies such a batch of changes to the sandbox file, the way the platform records them: every
change moves SystemModstamp (and LastModifiedDate) to ``now``, deletes are soft (IsDeleted) and
logged for ``getDeleted``, deleting an Account deletes its Contacts and Opportunities, and
deletions older than the retention period are purged.

The result is deterministic for (database contents, ``seed``, ``now``): every choice comes from
one random stream seeded with both, and records are always considered in Id order. Kinds never
overlap within one churn (a record is deleted, updated, converted or created, at most one of
them), so each changed record's state tells which kind touched it.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crm_sandbox import deletion_log, store
from crm_sandbox.conversion import Conversion, convert_lead, existing_contact_for
from crm_sandbox.generators import TITLES, RecordGenerator, ascii_slug
from crm_sandbox.objects import (
    ACCOUNT,
    ACCOUNT_TYPES,
    CLOSED_LOST,
    CLOSED_WON,
    CONTACT,
    GROUP,
    INDUSTRIES,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_STAGES,
    USER,
    ObjectDef,
)

# Purge deletions once they leave the Recycle Bin, as Salesforce does.
DEFAULT_RETENTION_DAYS = deletion_log.RECYCLE_BIN_RETENTION.days
# How each kind of change spreads over the objects (users touch Leads and Contacts most).
_UPDATE_MIX: tuple[tuple[ObjectDef, float], ...] = (
    (LEAD, 0.40),
    (CONTACT, 0.35),
    (ACCOUNT, 0.15),
    (OPPORTUNITY, 0.10),
)
_CREATE_MIX: tuple[tuple[ObjectDef, float], ...] = (
    (LEAD, 0.40),
    (CONTACT, 0.30),
    (ACCOUNT, 0.15),
    (OPPORTUNITY, 0.15),
)
_DELETE_MIX: tuple[tuple[ObjectDef, float], ...] = (
    (LEAD, 0.45),
    (CONTACT, 0.30),
    (OPPORTUNITY, 0.15),
    (ACCOUNT, 0.10),
)
# Which person fields a user edits on a Lead or Contact, and how often.
_PERSON_EDITS: tuple[tuple[str, float], ...] = (
    ("Title", 0.25),
    ("Phone", 0.20),
    ("Email", 0.20),
    ("Interests__c", 0.20),
    ("HasOptedOutOfEmail", 0.10),
    ("ActOn_Score__c", 0.05),
)
# Share of email edits that introduce a typo (the dirt a pipeline must keep quarantining).
_MALFORMED_EDIT_RATE = 0.2
_NEW_CONTACT_ON_CONVERSION_RATE = 0.5
_OPPORTUNITY_ON_CONVERSION_RATE = 0.3
_KINDS = ("updated", "created", "converted", "deleted", "purged")


@dataclass(frozen=True)
class ChurnSummary:
    """What :func:`churn_sandbox` changed: the Ids per kind of change and object.

    - ``updated``: records edited in place.
    - ``created``: new records (not those a conversion created).
    - ``converted``: the converted Leads and every Contact, Account and Opportunity the
      conversions created or saved; ``conversions`` details each one.
    - ``deleted``: soft-deleted records, Contacts and Opportunities of deleted Accounts included.
    - ``purged``: records deleted more than ``retention_days`` before ``now``, now gone.
    - ``cascaded``: the part of ``deleted`` that went with a deleted Account.

    All but ``purged`` have ``SystemModstamp == now``.
    """

    db_path: Path
    seed: int
    now: datetime
    retention_days: int
    updated: dict[str, list[str]]
    created: dict[str, list[str]]
    converted: dict[str, list[str]]
    deleted: dict[str, list[str]]
    purged: dict[str, list[str]]
    conversions: list[Conversion]
    cascaded: dict[str, list[str]] = field(default_factory=dict)

    def ids(self, kind: str) -> dict[str, list[str]]:
        """The Ids per object of one kind (``updated``, ``created``, ...)."""
        if kind not in _KINDS:
            raise ValueError(f"unknown kind of change {kind!r}; expected one of {_KINDS}")
        ids: dict[str, list[str]] = getattr(self, kind)
        return ids

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        """Records per kind of change and object."""
        return {
            kind: {name: len(ids) for name, ids in self.ids(kind).items() if ids} for kind in _KINDS
        }

    def live_changed(self, object_name: str) -> set[str]:
        """Ids of ``object_name`` this churn changed and left live (what getUpdated reports)."""
        return {
            record_id
            for kind in ("updated", "created", "converted")
            for record_id in self.ids(kind).get(object_name, [])
        }

    def __str__(self) -> str:
        def line(kind: str) -> str:
            counts = self.counts[kind]
            return ", ".join(f"{name} {count}" for name, count in counts.items()) or "none"

        into_new = sum(1 for c in self.conversions if c.new_contact)
        cascaded = sum(len(ids) for ids in self.cascaded.values())
        return "\n".join(
            [
                f"Churned {self.db_path} (seed {self.seed}, now {self.now:%Y-%m-%d %H:%M} UTC)",
                f"  updated: {line('updated')}",
                f"  created: {line('created')}",
                f"  converted: {len(self.conversions)} Leads ({into_new} into new Contacts, "
                f"{len(self.conversions) - into_new} into existing ones); records: "
                f"{line('converted')}",
                f"  deleted: {line('deleted')} ({cascaded} with their Account)",
                f"  purged (deleted over {self.retention_days} days ago): {line('purged')}",
            ]
        )


def _split(
    rng: random.Random, total: int, mix: tuple[tuple[ObjectDef, float], ...]
) -> dict[str, int]:
    """How many of ``total`` changes go to each object of ``mix``, by object name."""
    drawn = rng.choices([obj.name for obj, _ in mix], [weight for _, weight in mix], k=total)
    return {obj.name: drawn.count(obj.name) for obj, _ in mix}


class _Churn:
    """One churn run over an open connection (the caller commits)."""

    def __init__(self, conn: sqlite3.Connection, seed: int, now: datetime) -> None:
        self.conn = conn
        self.now = now
        # Seeding with ``now`` too: churning the same file twice at different times must not
        # repeat the same edits.
        self.rng = random.Random(f"churn:{seed}:{store.to_storage_datetime(now)}")
        self.gen = RecordGenerator(self.rng, self.rng.randrange(2**31), now, backdate=False)
        self.changed: set[str] = set()
        self.owners = self._ids(USER, '"IsActive" = 1')
        self.queues = self._ids(GROUP, "\"Type\" = 'Queue'")
        if not self.owners:
            raise ValueError("the sandbox has no active user to own new records")

    # --- reading -------------------------------------------------------------------------------

    def _ids(self, obj: ObjectDef, where: str = "1 = 1") -> list[str]:
        """Ids of ``obj`` rows matching ``where`` (live ones only), in Id order."""
        live = '"IsDeleted" = 0 AND ' if obj.has_field("IsDeleted") else ""
        rows = self.conn.execute(
            f'SELECT "Id" FROM {store.quote_ident(obj.name)} WHERE {live}({where}) ORDER BY "Id"'
        )
        return [str(r[0]) for r in rows]

    def _row(self, obj: ObjectDef, record_id: str) -> dict[str, Any]:
        row = self.conn.execute(
            f'SELECT * FROM {store.quote_ident(obj.name)} WHERE "Id" = ?', (record_id,)
        ).fetchone()
        return dict(row)

    def _pick(self, obj: ObjectDef, count: int, where: str = "1 = 1") -> list[str]:
        """Up to ``count`` distinct live records this churn has not changed yet."""
        candidates = [i for i in self._ids(obj, where) if i not in self.changed]
        return sorted(self.rng.sample(candidates, min(count, len(candidates))))

    # --- deletes -------------------------------------------------------------------------------

    def delete(self, count: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """Soft-delete ``count`` records; return (all deleted, deleted with their Account)."""
        wanted = _split(self.rng, count, _DELETE_MIX)
        deleted: dict[str, list[str]] = {}
        cascaded: dict[str, list[str]] = {}
        # Accounts first, so their Contacts and Opportunities go with them before the others
        # are picked. Salesforce refuses to delete an Account with Closed Won Opportunities.
        won = (
            f'SELECT "AccountId" FROM {store.quote_ident(OPPORTUNITY.name)} '
            'WHERE "IsDeleted" = 0 AND "IsWon" = 1 AND "AccountId" IS NOT NULL'
        )
        accounts = self._pick(ACCOUNT, wanted[ACCOUNT.name], f'"Id" NOT IN ({won})')
        self._soft_delete(ACCOUNT, accounts, deleted)
        for child in (CONTACT, OPPORTUNITY):
            children = sorted(
                str(r[0])
                for account_id in accounts
                for r in self.conn.execute(
                    f'SELECT "Id" FROM {store.quote_ident(child.name)} '
                    'WHERE "IsDeleted" = 0 AND "AccountId" = ?',
                    (account_id,),
                )
            )
            cascaded[child.name] = children
            self._soft_delete(child, children, deleted)
        self._soft_delete(OPPORTUNITY, self._pick(OPPORTUNITY, wanted[OPPORTUNITY.name]), deleted)
        self._soft_delete(CONTACT, self._pick(CONTACT, wanted[CONTACT.name]), deleted)
        # Converted Leads stay as the record of the conversion.
        self._soft_delete(LEAD, self._pick(LEAD, wanted[LEAD.name], '"IsConverted" = 0'), deleted)
        return deleted, {name: ids for name, ids in cascaded.items() if ids}

    def _soft_delete(self, obj: ObjectDef, ids: list[str], into: dict[str, list[str]]) -> None:
        if not ids:
            return
        changes = {"IsDeleted": 1, **store.change_stamps(obj, self.now)}
        for record_id in ids:
            store.update_row(self.conn, obj, record_id, changes)
        deletion_log.record(self.conn, obj, ids, self.now)
        self.changed.update(ids)
        into[obj.name] = sorted(into.get(obj.name, []) + ids)

    # --- updates -------------------------------------------------------------------------------

    def update(self, count: int) -> dict[str, list[str]]:
        """Edit ``count`` live records the way users and automation do."""
        editors: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
            # Converted Leads are read-only; closed deals rarely change.
            LEAD.name: ('"IsConverted" = 0', self._person_edit),
            CONTACT.name: ("1 = 1", self._person_edit),
            ACCOUNT.name: ("1 = 1", self._account_edit),
            OPPORTUNITY.name: ('"IsClosed" = 0', self._opportunity_edit),
        }
        updated: dict[str, list[str]] = {}
        wanted = _split(self.rng, count, _UPDATE_MIX)
        for obj, _ in _UPDATE_MIX:
            where, edit = editors[obj.name]
            ids = self._pick(obj, wanted[obj.name], where)
            for record_id in ids:
                row = self._row(obj, record_id)
                changes = {**edit(row), **store.change_stamps(obj, self.now)}
                store.update_row(self.conn, obj, record_id, changes)
            self.changed.update(ids)
            if ids:
                updated[obj.name] = ids
        return updated

    def _person_edit(self, row: dict[str, Any]) -> dict[str, Any]:
        """One to three edits of a Lead or Contact."""
        count = self.gen.weighted(((1, 0.6), (2, 0.3), (3, 0.1)))
        names = [name for name, _ in _PERSON_EDITS]
        weights = [weight for _, weight in _PERSON_EDITS]
        fields: list[str] = []
        while len(fields) < count:
            candidate = self.rng.choices(names, weights)[0]
            if candidate not in fields:
                fields.append(candidate)
        country = row.get("Country", row.get("MailingCountry"))
        changes: dict[str, Any] = {}
        for name in fields:
            if name == "Title":
                changes["Title"] = self.rng.choice([t for t in TITLES if t != row["Title"]])
            elif name == "Phone":
                changes["Phone"] = self.gen.faker_for_country(country).phone_number()
            elif name == "Email":
                changes["Email"] = self._new_email(row)
            elif name == "Interests__c":
                changes["Interests__c"] = self.gen.interests()
            elif name == "HasOptedOutOfEmail":
                opted_out = not row["HasOptedOutOfEmail"]
                changes["HasOptedOutOfEmail"] = int(opted_out)
                if opted_out:
                    changes["Newsletter__c"] = 0
            else:
                changes["ActOn_Score__c"] = self.gen.score(0.0)
        return changes

    def _new_email(self, row: dict[str, Any]) -> str:
        """A new address at the person's current domain (or company's), sometimes mistyped."""
        local = ascii_slug(f"{row.get('FirstName') or ''} {row['LastName']}") or "contact"
        current = row.get("Email") or ""
        _, _, domain = current.rpartition("@")
        if "." not in domain or " " in domain:
            domain = self.gen.company_domain(row.get("Company") or row["LastName"])
        if self.rng.random() < _MALFORMED_EDIT_RATE:
            return self.gen.malformed_email(local, domain)
        # A job change or alias: a new local part at the same domain.
        return f"{local}{self.rng.randint(1, 99)}@{domain}"

    def _account_edit(self, row: dict[str, Any]) -> dict[str, Any]:
        edit = self.gen.weighted((("Type", 0.5), ("Industry", 0.3), ("Name", 0.2)))
        if edit == "Type":
            # Prospects become customers when a deal closes; others drift between types.
            if row["Type"] == "Prospect":
                return {"Type": "Customer - Direct"}
            return {"Type": self.rng.choice([t for t in ACCOUNT_TYPES if t != row["Type"]])}
        if edit == "Industry":
            return {"Industry": self.rng.choice([i for i in INDUSTRIES if i != row["Industry"]])}
        return {"Name": self.gen.faker_for_country(row["BillingCountry"]).company()}

    def _opportunity_edit(self, row: dict[str, Any]) -> dict[str, Any]:
        stage = self.gen.weighted(((CLOSED_WON, 0.5), (CLOSED_LOST, 0.2), (None, 0.3)))
        if stage is None:
            # Moves one step down the sales process (open stages only).
            open_stages = OPPORTUNITY_STAGES[:8]
            current = open_stages.index(row["StageName"]) if row["StageName"] in open_stages else 0
            stage = open_stages[min(current + 1, len(open_stages) - 1)]
            return {"StageName": stage}
        return {
            "StageName": stage,
            "IsClosed": 1,
            "IsWon": int(stage == CLOSED_WON),
            "CloseDate": self.now.date().isoformat(),
        }

    # --- conversions ---------------------------------------------------------------------------

    def convert(self, count: int) -> tuple[dict[str, list[str]], list[Conversion]]:
        """Convert ``count`` unconverted live Leads."""
        conversions = []
        for lead_id in self._pick(LEAD, count, '"IsConverted" = 0'):
            lead = self._row(LEAD, lead_id)
            existing = None
            if self.rng.random() >= _NEW_CONTACT_ON_CONVERSION_RATE:
                existing = existing_contact_for(self.conn, lead["Email"])
                if existing is not None and existing["Id"] in self.changed:
                    existing = None  # keep the kinds of change apart (see the module docstring)
            conversion = convert_lead(
                self.conn,
                lead,
                self.gen,
                self.now,
                self.owners,
                existing_contact=existing,
                with_opportunity=self.rng.random() < _OPPORTUNITY_ON_CONVERSION_RATE,
            )
            conversions.append(conversion)
        touched: dict[str, set[str]] = {}
        for c in conversions:
            touched.setdefault(LEAD.name, set()).add(c.lead_id)
            touched.setdefault(CONTACT.name, set()).add(c.contact_id)
            if c.new_account:
                touched.setdefault(ACCOUNT.name, set()).add(c.account_id)
            if c.opportunity_id:
                touched.setdefault(OPPORTUNITY.name, set()).add(c.opportunity_id)
        for ids in touched.values():
            self.changed.update(ids)
        return {name: sorted(ids) for name, ids in touched.items()}, conversions

    # --- creates -------------------------------------------------------------------------------

    def create(self, count: int) -> dict[str, list[str]]:
        """Create ``count`` records: Accounts first, so new Contacts and deals may use them."""
        wanted = _split(self.rng, count, _CREATE_MIX)
        created: dict[str, list[str]] = {}

        def insert(obj: ObjectDef, rows: list[dict[str, Any]]) -> None:
            if rows:
                store.insert_rows(self.conn, obj, rows)
                created[obj.name] = [str(r["Id"]) for r in rows]
                self.changed.update(created[obj.name])

        gen = self.gen
        insert(
            ACCOUNT,
            [
                gen.account(store.allocate_id(self.conn, ACCOUNT), self.owners, ACCOUNT)
                for _ in range(wanted[ACCOUNT.name])
            ],
        )
        accounts = [self._row(ACCOUNT, i) for i in self._ids(ACCOUNT)]
        customers = {a["Id"] for a in accounts if (a["Type"] or "").startswith("Customer")}
        insert(
            CONTACT,
            [
                gen.contact(
                    store.allocate_id(self.conn, CONTACT), accounts, customers, self.owners, CONTACT
                )
                for _ in range(wanted[CONTACT.name])
            ],
        )
        opportunities = []
        for _ in range(wanted[OPPORTUNITY.name] if accounts else 0):
            record_id = store.allocate_id(self.conn, OPPORTUNITY)
            account = self.rng.choice(accounts)
            stage = gen.opportunity_stage()
            opportunities.append(
                gen.opportunity(record_id, account, stage, self.owners, OPPORTUNITY)
            )
        insert(OPPORTUNITY, opportunities)
        insert(
            LEAD,
            [
                gen.lead(
                    store.allocate_id(self.conn, LEAD),
                    gen.new_lead_identity(),
                    self.owners,
                    self.queues,
                    LEAD,
                )
                for _ in range(wanted[LEAD.name])
            ],
        )
        return created


def churn_sandbox(
    db_path: Path,
    *,
    updates: int = 50,
    creates: int = 20,
    deletes: int = 10,
    converts: int = 5,
    seed: int = 1,
    now: datetime | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> ChurnSummary:
    """Apply a batch of realistic CRM changes to the sandbox file at ``db_path``, at ``now``.

    In order: purge deletions older than ``retention_days``, then ``deletes`` soft deletes
    (Account deletes cascade, so more records may be deleted), ``updates`` edits, ``converts``
    Lead conversions and ``creates`` new records, each on distinct records. Fewer happen when the
    file has too few candidates. All of it is one transaction: a running server sees the file
    before or after the churn, never halfway.
    """
    if min(updates, creates, deletes, converts) < 0:
        raise ValueError("change counts must not be negative")
    if retention_days < 0:
        raise ValueError("retention_days must not be negative")
    if now is not None and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    conn = store.connect(db_path)
    try:
        with conn:
            deletion_log.ensure(conn)
            purged = deletion_log.purge(conn, now - timedelta(days=retention_days))
            churn = _Churn(conn, seed, now)
            deleted, cascaded = churn.delete(deletes)
            updated = churn.update(updates)
            converted, conversions = churn.convert(converts)
            created = churn.create(creates)
    finally:
        conn.close()
    return ChurnSummary(
        db_path=db_path,
        seed=seed,
        now=now,
        retention_days=retention_days,
        updated=updated,
        created=created,
        converted=converted,
        deleted=deleted,
        purged=purged,
        conversions=conversions,
        cascaded=cascaded,
    )
