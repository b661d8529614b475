"""Metadata of the sObjects the sandbox CRM serves.

The definitions mirror what a real org's describe returns for the fields the pipeline uses, so
that code reading describe (types, custom fields, relationships) behaves the same against the
sandbox and against Salesforce. Everything else in the sandbox (storage, SOQL, record writes) is
driven by these definitions; a field unknown here does not exist anywhere.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    """Salesforce field types used by the sandbox objects."""

    ID = "id"
    STRING = "string"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    TEXTAREA = "textarea"
    PICKLIST = "picklist"
    MULTIPICKLIST = "multipicklist"
    REFERENCE = "reference"
    BOOLEAN = "boolean"
    INT = "int"
    DOUBLE = "double"
    CURRENCY = "currency"
    DATE = "date"
    DATETIME = "datetime"


# Types whose values are text (quoted in SOQL, compared case-insensitively).
TEXT_TYPES = frozenset(
    {
        FieldType.ID,
        FieldType.STRING,
        FieldType.EMAIL,
        FieldType.PHONE,
        FieldType.URL,
        FieldType.TEXTAREA,
        FieldType.PICKLIST,
        FieldType.MULTIPICKLIST,
        FieldType.REFERENCE,
    }
)
NUMBER_TYPES = frozenset({FieldType.INT, FieldType.DOUBLE, FieldType.CURRENCY})


@dataclass(frozen=True)
class FieldDef:
    """One field of an sObject, with the attributes describe reports."""

    name: str
    label: str
    type: FieldType
    length: int = 0
    nillable: bool = True
    updateable: bool = True
    createable: bool = True
    calculated: bool = False
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    precision: int = 0
    scale: int = 0
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    restricted_picklist: bool = False
    picklist_values: tuple[str, ...] = ()
    default_value: str | bool | None = None
    # Name of the parent's child relationship pointing back here (e.g. Account.Contacts);
    # describe of the parent lists it under childRelationships.
    child_relationship: str | None = None

    @property
    def is_text(self) -> bool:
        """Whether values of this field are strings."""
        return self.type in TEXT_TYPES

    @property
    def is_number(self) -> bool:
        """Whether values of this field are numbers."""
        return self.type in NUMBER_TYPES

    @property
    def id_lookup(self) -> bool:
        """Whether a value of this field names one record (describe's ``idLookup``).

        The Id, unique fields and external IDs: what an upsert may match records on.
        """
        return self.type is FieldType.ID or self.unique or self.external_id

    @property
    def upsert_key(self) -> bool:
        """Whether an upsert may match records on this field (any idLookup field but the Id)."""
        return self.id_lookup and self.type is not FieldType.ID


@dataclass(frozen=True)
class ObjectDef:
    """One sObject: its name, key prefix and fields (in describe order)."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: tuple[FieldDef, ...]
    createable: bool = True
    updateable: bool = True
    custom: bool = False
    _by_lower: dict[str, FieldDef] = dataclasses.field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        self._by_lower.update({f.name.lower(): f for f in self.fields})

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (case-insensitive), or None."""
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationshipName is ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        for candidate in self.fields:
            if candidate.relationship_name and candidate.relationship_name.lower() == lowered:
                return candidate
        return None

    def has_field(self, name: str) -> bool:
        """Whether the object has a field called ``name`` (case-insensitive)."""
        return name.lower() in self._by_lower


# --- field builders: keep the object definitions below short and readable -------------------


def _label(name: str) -> str:
    base = name.removesuffix("__c").replace("_", " ")
    out: list[str] = []
    for i, ch in enumerate(base):
        if i and ch.isupper() and base[i - 1].islower():
            out.append(" ")
        out.append(ch)
    return "".join(out)


def _id() -> FieldDef:
    return FieldDef(
        "Id", "Record ID", FieldType.ID, 18, nillable=False, updateable=False, createable=False
    )


def _text(
    name: str,
    length: int = 255,
    *,
    type_: FieldType = FieldType.STRING,
    label: str | None = None,
    nillable: bool = True,
    custom: bool = False,
    unique: bool = False,
) -> FieldDef:
    return FieldDef(
        name,
        label or _label(name),
        type_,
        length,
        nillable=nillable,
        custom=custom,
        unique=unique,
    )


def _external_id(name: str, label: str) -> FieldDef:
    """A custom Text(255) External ID, unique (case-insensitively), as a setup admin makes one."""
    return FieldDef(name, label, FieldType.STRING, 255, custom=True, external_id=True, unique=True)


def _calculated_name(length: int = 121) -> FieldDef:
    return FieldDef(
        "Name",
        "Full Name",
        FieldType.STRING,
        length,
        nillable=False,
        updateable=False,
        createable=False,
        calculated=True,
    )


def _picklist(
    name: str,
    values: tuple[str, ...],
    *,
    multi: bool = False,
    nillable: bool = True,
    restricted: bool = False,
    default: str | None = None,
    custom: bool = False,
    label: str | None = None,
) -> FieldDef:
    return FieldDef(
        name,
        label or _label(name),
        FieldType.MULTIPICKLIST if multi else FieldType.PICKLIST,
        4099 if multi else 255,
        nillable=nillable,
        custom=custom,
        restricted_picklist=restricted,
        picklist_values=values,
        default_value=default,
    )


def _reference(
    name: str,
    to: tuple[str, ...],
    relationship: str,
    *,
    writable: bool = True,
    label: str | None = None,
    child_relationship: str | None = None,
) -> FieldDef:
    return FieldDef(
        name,
        label or _label(name.removesuffix("Id")) + " ID",
        FieldType.REFERENCE,
        18,
        updateable=writable,
        createable=writable,
        reference_to=to,
        relationship_name=relationship,
        child_relationship=child_relationship,
    )


def _boolean(
    name: str, *, writable: bool = True, custom: bool = False, label: str | None = None
) -> FieldDef:
    return FieldDef(
        name,
        label or _label(name),
        FieldType.BOOLEAN,
        nillable=False,
        updateable=writable,
        createable=writable,
        custom=custom,
        default_value=False,
    )


def _number(
    name: str,
    type_: FieldType,
    precision: int,
    scale: int = 0,
    *,
    custom: bool = False,
    label: str | None = None,
) -> FieldDef:
    return FieldDef(
        name,
        label or _label(name),
        type_,
        precision=precision,
        scale=scale,
        custom=custom,
    )


def _date(
    name: str,
    *,
    datetime_: bool = False,
    writable: bool = True,
    custom: bool = False,
    label: str | None = None,
) -> FieldDef:
    return FieldDef(
        name,
        label or _label(name),
        FieldType.DATETIME if datetime_ else FieldType.DATE,
        updateable=writable,
        createable=writable,
        custom=custom,
    )


def _system_fields(*, last_modified: bool = True, deletable: bool = True) -> tuple[FieldDef, ...]:
    """Audit fields: written only by the platform, never by API callers."""
    out = [
        FieldDef(
            "CreatedDate",
            "Created Date",
            FieldType.DATETIME,
            nillable=False,
            updateable=False,
            createable=False,
        ),
    ]
    if last_modified:
        out.append(
            FieldDef(
                "LastModifiedDate",
                "Last Modified Date",
                FieldType.DATETIME,
                nillable=False,
                updateable=False,
                createable=False,
            )
        )
    out.append(
        FieldDef(
            "SystemModstamp",
            "System Modstamp",
            FieldType.DATETIME,
            nillable=False,
            updateable=False,
            createable=False,
        )
    )
    if deletable:
        out.append(
            FieldDef(
                "IsDeleted",
                "Deleted",
                FieldType.BOOLEAN,
                nillable=False,
                updateable=False,
                createable=False,
                default_value=False,
            )
        )
    return tuple(out)


# --- picklist values (the standard values of a fresh org) -----------------------------------

INDUSTRIES: tuple[str, ...] = (
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
    "Other",
)
LEAD_SOURCES: tuple[str, ...] = (
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
)
LEAD_STATUSES: tuple[str, ...] = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
CONVERTED_STATUS = "Closed - Converted"
ACCOUNT_TYPES: tuple[str, ...] = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
)
OPPORTUNITY_STAGES: tuple[str, ...] = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Id. Decision Makers",
    "Perception Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
CLOSED_WON = "Closed Won"
CLOSED_LOST = "Closed Lost"
INTERESTS: tuple[str, ...] = ("Analytics", "Automation", "Email", "Events", "SEO", "Social")
GROUP_TYPES: tuple[str, ...] = ("Queue", "Regular")


def _marketing_fields() -> tuple[FieldDef, ...]:
    """Custom fields the Act-On integration reads and writes on both Leads and Contacts."""
    return (
        _number("ActOn_Score__c", FieldType.DOUBLE, 6, 0, custom=True, label="Act-On Score"),
        _number("Fit_Score__c", FieldType.DOUBLE, 6, 0, custom=True, label="Fit Score"),
        _picklist("Interests__c", INTERESTS, multi=True, restricted=True, custom=True),
        _boolean("Newsletter__c", custom=True),
        _date("Last_Event_At__c", datetime_=True, custom=True, label="Last Event At"),
        # The Act-On contact a record was created from: creates upsert on it, so a retried
        # create whose answer was lost finds its record instead of making a second one.
        _external_id("ActOn_Contact_Id__c", "Act-On Contact Id"),
    )


LEAD = ObjectDef(
    name="Lead",
    label="Lead",
    label_plural="Leads",
    key_prefix="00Q",
    fields=(
        _id(),
        _text("LastName", 80, nillable=False),
        _text("FirstName", 40),
        _calculated_name(),
        _text("Title", 128),
        _text("Company", 255, nillable=False),
        _text("Street", 255, type_=FieldType.TEXTAREA),
        _text("City", 40),
        _text("State", 80, label="State/Province"),
        _text("PostalCode", 20, label="Zip/Postal Code"),
        _text("Country", 80),
        _text("Phone", 40, type_=FieldType.PHONE),
        _text("MobilePhone", 40, type_=FieldType.PHONE),
        _text("Fax", 40, type_=FieldType.PHONE),
        _text("Email", 80, type_=FieldType.EMAIL),
        _picklist("LeadSource", LEAD_SOURCES),
        _picklist("Status", LEAD_STATUSES, nillable=False, default="Open - Not Contacted"),
        _picklist("Industry", INDUSTRIES),
        _number("AnnualRevenue", FieldType.CURRENCY, 18, 0),
        _number("NumberOfEmployees", FieldType.INT, 8, label="Employees"),
        _boolean("HasOptedOutOfEmail", label="Email Opt Out"),
        _boolean("IsConverted", writable=False, label="Converted"),
        _date("ConvertedDate", writable=False),
        _reference("ConvertedAccountId", ("Account",), "ConvertedAccount", writable=False),
        _reference("ConvertedContactId", ("Contact",), "ConvertedContact", writable=False),
        _reference(
            "ConvertedOpportunityId", ("Opportunity",), "ConvertedOpportunity", writable=False
        ),
        # Lead owners may be users or queues: the reference is polymorphic.
        _reference("OwnerId", ("Group", "User"), "Owner"),
        *_system_fields(),
        *_marketing_fields(),
        _text("Lead_Notes__c", 32768, type_=FieldType.TEXTAREA, custom=True, label="Lead Notes"),
    ),
)

CONTACT = ObjectDef(
    name="Contact",
    label="Contact",
    label_plural="Contacts",
    key_prefix="003",
    fields=(
        _id(),
        _reference("AccountId", ("Account",), "Account", child_relationship="Contacts"),
        _text("LastName", 80, nillable=False),
        _text("FirstName", 40),
        _calculated_name(),
        _text("MailingStreet", 255, type_=FieldType.TEXTAREA),
        _text("MailingCity", 40),
        _text("MailingState", 80, label="Mailing State/Province"),
        _text("MailingPostalCode", 20, label="Mailing Zip/Postal Code"),
        _text("MailingCountry", 80),
        _text("Phone", 40, type_=FieldType.PHONE, label="Business Phone"),
        _text("Fax", 40, type_=FieldType.PHONE, label="Business Fax"),
        _text("MobilePhone", 40, type_=FieldType.PHONE),
        _text("Email", 80, type_=FieldType.EMAIL),
        _text("Title", 128),
        _text("Department", 80),
        _picklist("LeadSource", LEAD_SOURCES),
        _date("Birthdate"),
        _boolean("HasOptedOutOfEmail", label="Email Opt Out"),
        _reference("OwnerId", ("User",), "Owner"),
        *_system_fields(),
        *_marketing_fields(),
        _date("Renewal_Date__c", custom=True, label="Renewal Date"),
    ),
)

ACCOUNT = ObjectDef(
    name="Account",
    label="Account",
    label_plural="Accounts",
    key_prefix="001",
    fields=(
        _id(),
        _text("Name", 255, nillable=False, label="Account Name"),
        _picklist("Type", ACCOUNT_TYPES, label="Account Type"),
        _picklist("Industry", INDUSTRIES),
        _text("BillingCity", 40),
        _text("BillingCountry", 80),
        _number("AnnualRevenue", FieldType.CURRENCY, 18, 0),
        _number("NumberOfEmployees", FieldType.INT, 8, label="Employees"),
        _reference("OwnerId", ("User",), "Owner"),
        *_system_fields(),
    ),
)

USER = ObjectDef(
    name="User",
    label="User",
    label_plural="Users",
    key_prefix="005",
    createable=False,
    fields=(
        _id(),
        _text("Username", 80, nillable=False, unique=True),
        _text("LastName", 80, nillable=False),
        _text("FirstName", 40),
        _calculated_name(),
        _text("Email", 128, type_=FieldType.EMAIL, nillable=False),
        _boolean("IsActive", label="Active"),
        _text("Title", 80),
        *_system_fields(deletable=False),
    ),
)

OPPORTUNITY = ObjectDef(
    name="Opportunity",
    label="Opportunity",
    label_plural="Opportunities",
    key_prefix="006",
    fields=(
        _id(),
        _reference("AccountId", ("Account",), "Account", child_relationship="Opportunities"),
        _text("Name", 120, nillable=False),
        _picklist("StageName", OPPORTUNITY_STAGES, nillable=False, label="Stage"),
        _number("Amount", FieldType.CURRENCY, 18, 2),
        _date("CloseDate"),
        # Derived from StageName by the platform, so callers cannot write them.
        _boolean("IsClosed", writable=False, label="Closed"),
        _boolean("IsWon", writable=False, label="Won"),
        _reference("OwnerId", ("User",), "Owner"),
        *_system_fields(),
    ),
)

GROUP = ObjectDef(
    name="Group",
    label="Group",
    label_plural="Groups",
    key_prefix="00G",
    createable=False,
    updateable=False,
    fields=(
        _id(),
        _text("Name", 40, nillable=False),
        _text("DeveloperName", 80),
        _picklist("Type", GROUP_TYPES, nillable=False, restricted=True),
        _text("Email", 255, type_=FieldType.EMAIL),
        *_system_fields(deletable=False),
    ),
)

OBJECTS: dict[str, ObjectDef] = {
    obj.name: obj for obj in (ACCOUNT, CONTACT, GROUP, LEAD, OPPORTUNITY, USER)
}
_BY_LOWER = {name.lower(): obj for name, obj in OBJECTS.items()}
_BY_PREFIX = {obj.key_prefix: obj for obj in OBJECTS.values()}


def get_object(name: str) -> ObjectDef | None:
    """The sObject called ``name`` (case-insensitive), or None."""
    return _BY_LOWER.get(name.lower())


def object_for_id(record_id: str) -> ObjectDef | None:
    """The sObject whose key prefix starts ``record_id``, or None."""
    return _BY_PREFIX.get(record_id[:3])


def child_relationships(parent: ObjectDef) -> list[tuple[ObjectDef, FieldDef]]:
    """Reference fields of other objects pointing at ``parent``, as (child object, field)."""
    return [
        (child, ref)
        for child in OBJECTS.values()
        for ref in child.fields
        if ref.type is FieldType.REFERENCE and parent.name in ref.reference_to
    ]
