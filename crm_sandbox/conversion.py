"""Lead conversion, as Salesforce performs it.

Converting a Lead never deletes it: the Lead is marked converted (IsConverted, ConvertedDate,
Status "Closed - Converted") and points at the Contact and Account it became, and optionally at
an Opportunity. The Contact is either created from the Lead's data or an existing one (then
linked to the Account when it had none); the Account is the Contact's own or a new one from the
Lead's Company. Every record written moves its SystemModstamp and LastModifiedDate.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_sandbox import store
from crm_sandbox.generators import RecordGenerator
from crm_sandbox.objects import (
    ACCOUNT,
    CONTACT,
    CONVERTED_STATUS,
    LEAD,
    OPPORTUNITY,
    OPPORTUNITY_STAGES,
    USER,
)

# Lead fields copied onto the Contact a conversion creates (Lead field -> Contact field), as
# the standard lead field mapping does, custom Act-On fields included.
_CONTACT_FIELDS = {
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Name": "Name",
    "Title": "Title",
    "Street": "MailingStreet",
    "City": "MailingCity",
    "State": "MailingState",
    "PostalCode": "MailingPostalCode",
    "Country": "MailingCountry",
    "Phone": "Phone",
    "MobilePhone": "MobilePhone",
    "Fax": "Fax",
    "Email": "Email",
    "LeadSource": "LeadSource",
    "HasOptedOutOfEmail": "HasOptedOutOfEmail",
    "ActOn_Score__c": "ActOn_Score__c",
    "Fit_Score__c": "Fit_Score__c",
    "Interests__c": "Interests__c",
    "Newsletter__c": "Newsletter__c",
    "Last_Event_At__c": "Last_Event_At__c",
}
# Lead fields copied onto the Account a conversion creates. Account Type is not mapped.
_ACCOUNT_FIELDS = {
    "Company": "Name",
    "Industry": "Industry",
    "City": "BillingCity",
    "Country": "BillingCountry",
    "AnnualRevenue": "AnnualRevenue",
    "NumberOfEmployees": "NumberOfEmployees",
}


@dataclass(frozen=True)
class Conversion:
    """One converted Lead and the records it became (``new_*``: created by the conversion)."""

    lead_id: str
    contact_id: str
    account_id: str
    opportunity_id: str | None
    new_contact: bool
    new_account: bool


def existing_contact_for(conn: sqlite3.Connection, email: str | None) -> dict[str, Any] | None:
    """The live Contact with ``email`` (case-insensitive; lowest Id first), or None."""
    if not email:
        return None
    row = conn.execute(
        f'SELECT * FROM {store.quote_ident(CONTACT.name)} WHERE "IsDeleted" = 0 '
        'AND lower("Email") = lower(?) ORDER BY "Id" LIMIT 1',
        (email,),
    ).fetchone()
    return None if row is None else dict(row)


def _user_owner(lead: dict[str, Any], gen: RecordGenerator, owners: list[str]) -> str:
    # Queues may own Leads but not Contacts or Accounts: the converting user takes those.
    owner = lead.get("OwnerId")
    if isinstance(owner, str) and owner.startswith(USER.key_prefix):
        return owner
    return str(gen.rng.choice(owners))


def convert_lead(
    conn: sqlite3.Connection,
    lead: dict[str, Any],
    gen: RecordGenerator,
    now: datetime,
    owners: list[str],
    *,
    existing_contact: dict[str, Any] | None,
    with_opportunity: bool,
) -> Conversion:
    """Convert the live, unconverted ``lead`` (a full row) at ``now``.

    ``existing_contact`` (a full row) is the Contact to convert into; None creates one.
    ``owners`` are active User Ids, for records whose Lead was queue-owned.
    """
    stamp = store.to_storage_datetime(now)
    new_stamps = {"CreatedDate": stamp, "LastModifiedDate": stamp, "SystemModstamp": stamp}
    owner = _user_owner(lead, gen, owners)

    account_id = existing_contact["AccountId"] if existing_contact else None
    new_account = account_id is None
    if account_id is None:
        account_id = store.allocate_id(conn, ACCOUNT)
        account = {target: lead.get(source) for source, target in _ACCOUNT_FIELDS.items()}
        account.update({"Id": account_id, "OwnerId": owner, "IsDeleted": 0, **new_stamps})
        store.insert_rows(conn, ACCOUNT, [account])

    if existing_contact is None:
        contact_id = store.allocate_id(conn, CONTACT)
        contact = {target: lead.get(source) for source, target in _CONTACT_FIELDS.items()}
        contact.update(
            {
                "Id": contact_id,
                "AccountId": account_id,
                "OwnerId": owner,
                "IsDeleted": 0,
                **new_stamps,
            }
        )
        store.insert_rows(conn, CONTACT, [contact])
    else:
        contact_id = str(existing_contact["Id"])
        # Conversion fills what the existing Contact lacks and saves it: its stamps move.
        changes: dict[str, Any] = {"AccountId": account_id}
        if existing_contact.get("LeadSource") is None:
            changes["LeadSource"] = lead.get("LeadSource")
        store.update_row(
            conn, CONTACT, contact_id, {**changes, **store.change_stamps(CONTACT, now)}
        )

    opportunity_id = None
    if with_opportunity:
        opportunity_id = store.allocate_id(conn, OPPORTUNITY)
        parent = {"Id": account_id, "Name": lead.get("Company") or lead.get("Name")}
        opportunity = gen.opportunity(
            opportunity_id, parent, OPPORTUNITY_STAGES[0], [owner], OPPORTUNITY
        )
        store.insert_rows(conn, OPPORTUNITY, [opportunity])

    store.update_row(
        conn,
        LEAD,
        str(lead["Id"]),
        {
            "IsConverted": 1,
            "ConvertedDate": now.date().isoformat(),
            "Status": CONVERTED_STATUS,
            "ConvertedContactId": contact_id,
            "ConvertedAccountId": account_id,
            "ConvertedOpportunityId": opportunity_id,
            **store.change_stamps(LEAD, now),
        },
    )
    return Conversion(
        lead_id=str(lead["Id"]),
        contact_id=contact_id,
        account_id=str(account_id),
        opportunity_id=opportunity_id,
        new_contact=existing_contact is None,
        new_account=new_account,
    )
