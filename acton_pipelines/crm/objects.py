"""The CRM objects we mirror, and which of their fields each sync reads.

A field list is the object's base fields (what linking, conversion, opt-outs and deletions
need) plus what the mapping reads from it. A mapped relationship hop on a Contact such as
``Account.Name`` is read from the mirrored Account (so an Account renamed in the CRM shows on
its Contacts at the next sync); ``Owner.X`` likewise from the mirrored User; any other hop is
selected in the SOQL and stored on the record's own row. A Lead's base fields include its
``Owner.Name`` all the same, for Leads owned by a queue, which is not a User.
"""

from __future__ import annotations

from dataclasses import dataclass

from acton_pipelines.mapping.models import Mapping


@dataclass(frozen=True)
class CrmObject:
    """A mirrored CRM object and its warehouse table."""

    name: str
    table: str
    base_fields: tuple[str, ...]
    # Objects without IsDeleted (Users are deactivated, never deleted).
    has_is_deleted: bool = True


LEAD = CrmObject(
    "Lead",
    "crm_leads",
    (
        "Id",
        "Email",
        "IsConverted",
        "ConvertedContactId",
        "ConvertedAccountId",
        "ConvertedDate",
        "OwnerId",
        # A queue (Group) can own a Lead, and the User mirror has no row for it: its name
        # comes with the Lead (mirror column owner__name).
        "Owner.Name",
        "HasOptedOutOfEmail",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
    ),
)
CONTACT = CrmObject(
    "Contact",
    "crm_contacts",
    (
        "Id",
        "Email",
        "AccountId",
        "OwnerId",
        "HasOptedOutOfEmail",
        "CreatedDate",
        "LastModifiedDate",
        "SystemModstamp",
    ),
)
ACCOUNT = CrmObject(
    "Account", "crm_accounts", ("Id", "Name", "Type", "Industry", "OwnerId", "SystemModstamp")
)
USER = CrmObject(
    "User", "crm_users", ("Id", "Name", "Email", "IsActive", "SystemModstamp"), has_is_deleted=False
)
OPPORTUNITY = CrmObject(
    "Opportunity",
    "crm_opportunities",
    (
        "Id",
        "Name",
        "AccountId",
        "StageName",
        "Amount",
        "CloseDate",
        "IsClosed",
        "IsWon",
        "OwnerId",
        "SystemModstamp",
    ),
)

CRM_OBJECTS: tuple[CrmObject, ...] = (LEAD, CONTACT, ACCOUNT, USER, OPPORTUNITY)
# Their warehouse tables: what acton_contacts is built from, and what a day counts as synced by.
CRM_TABLES: tuple[str, ...] = tuple(o.table for o in CRM_OBJECTS)

# Relationship names resolved through a mirrored object, per source object.
JOINED_RELATIONSHIPS: dict[str, dict[str, CrmObject]] = {
    "Lead": {"Owner": USER},
    "Contact": {"Account": ACCOUNT, "Owner": USER},
}


def split_hop(source: str) -> tuple[str | None, str]:
    """``"Account.Name"`` -> ``("Account", "Name")``; ``"Email"`` -> ``(None, "Email")``."""
    relationship, _, name = source.rpartition(".")
    return (relationship or None), name


def fields_to_read(crm_object: CrmObject, mapping: Mapping) -> list[str]:
    """The CRM fields one sync of ``crm_object`` selects, base fields first, no repeats."""
    wanted = list(crm_object.base_fields)
    for record_type, joined in JOINED_RELATIONSHIPS.items():
        for source in mapping.crm_fields(record_type):  # type: ignore[arg-type]
            relationship, name = split_hop(source)
            if relationship is None:
                if record_type == crm_object.name:
                    wanted.append(source)
            elif joined.get(relationship) == crm_object:
                wanted.append(name)
            elif record_type == crm_object.name and relationship not in joined:
                wanted.append(source)
    # Salesforce field names are case-insensitive: keep the first spelling.
    seen: dict[str, str] = {}
    for name in wanted:
        seen.setdefault(name.lower(), name)
    return list(seen.values())
