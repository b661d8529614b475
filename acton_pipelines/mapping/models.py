"""Typed models of the mapping in ``mapping_config/``.

These models hold *what* the user configured. Loading (YAML with line numbers) and the
cross-entry rules (email mapped, score sheets exist, CRM fields exist, ...) live in
``loader.py`` and ``rules.py`` so every problem can be reported with its file, entry and fix.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DataType(StrEnum):
    """Act-On data types, as listed in the article's Data Type drop-down."""

    BOOLEAN = "Boolean"
    DATE = "Date"
    DATETIME = "Datetime"
    TEXT = "Text"
    NUMBER = "Number"
    SCORE = "Score"
    EMAIL = "Email"
    MULTI_TEXT = "Multi-Text"


# Act-On standard fields and their data types (alphabetical, as the article lists them).
STANDARD_FIELDS: dict[str, DataType] = {
    "Act-On Primary Score": DataType.SCORE,
    "Company": DataType.TEXT,
    "Email": DataType.EMAIL,
    "Fax": DataType.TEXT,
    "First Name": DataType.TEXT,
    "Industry": DataType.TEXT,
    "Job Title": DataType.TEXT,
    "Last Name": DataType.TEXT,
    "Lead Source": DataType.TEXT,
    "Mailing City": DataType.TEXT,
    "Mailing Country": DataType.TEXT,
    "Mailing State/Province": DataType.TEXT,
    "Mailing Street": DataType.TEXT,
    "Mailing Zip/Postal Code": DataType.TEXT,
    "Mobile Phone": DataType.TEXT,
    "Phone": DataType.TEXT,
    "Product": DataType.TEXT,
    "Segment": DataType.TEXT,
    "Status": DataType.TEXT,
    "Subsegment": DataType.TEXT,
    "Time Zone": DataType.TEXT,
}

# Columns every Act-On contact gets without being mapped (article: "all CRM contacts will get
# the External ID and Type automatically"; Account, Owner and Opportunities are linked).
# Score and segment rules may use them by these names.
BUILTIN_COLUMNS: dict[str, DataType] = {
    "contact_id": DataType.TEXT,
    "external_id": DataType.TEXT,
    "record_type": DataType.TEXT,
    "account_id": DataType.TEXT,
    "account_name": DataType.TEXT,
    "account_type": DataType.TEXT,
    "owner_id": DataType.TEXT,
    "owner_name": DataType.TEXT,
    "owner_email": DataType.TEXT,
    "opportunity_count": DataType.NUMBER,
    "open_opportunity_amount": DataType.NUMBER,
    "won_opportunity_count": DataType.NUMBER,
    "won_opportunity_amount": DataType.NUMBER,
    "opted_out": DataType.BOOLEAN,
    "source": DataType.TEXT,
    "crm_modified_at": DataType.DATETIME,
}

PRIMARY_SCORE_FIELD = "Act-On Primary Score"
DEFAULT_SCORE_SHEET = "default"
MAX_SCORE = 999_999


def column_name(destination: str) -> str:
    """The warehouse column of a destination field: ``"Mailing State/Province"`` ->
    ``mailing_state_province``."""
    return re.sub(r"[^a-z0-9]+", "_", destination.lower()).strip("_")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMapping(_Strict):
    """One Act-On destination field and its CRM source columns.

    ``lead`` / ``contact`` are CRM API names (``Email``, ``Renewal_Date__c``) or one
    relationship hop (``Account.Name``); ``None`` means the field is not synced for that entity
    (an Act-On-only field when both are ``None``).
    """

    destination: str
    type: DataType
    lead: str | None = None
    contact: str | None = None
    score_sheet: str | None = None
    # None = follow the mapping's push policy default (issue 5 uses it).
    allow_push: bool | None = None
    standard: bool = True
    # Where the entry came from, for messages: ("contact_mapping.yaml", "custom_fields[2]", 14).
    origin: tuple[str, str, int | None] = Field(default=("", "", None), exclude=True)

    @property
    def column(self) -> str:
        return column_name(self.destination)

    def source(self, record_type: Literal["Lead", "Contact"]) -> str | None:
        return self.lead if record_type == "Lead" else self.contact


ConditionOp = Literal[
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "starts_with",
    "greater_than",
    "less_than",
    "is_empty",
    "is_not_empty",
]


class Condition(_Strict):
    """A test on one field of an Act-On contact.

    ``field`` is a destination name (``"Job Title"``) or a built-in column (``record_type``,
    ``account_type``, ...). For Multi-Text fields ``contains`` / ``equals`` / ``in`` /
    ``starts_with`` test the individual ``;``-separated values. Which operators fit which
    data types is the one table ``conditions.OPERATORS``.
    """

    field: str
    op: ConditionOp
    value: Any = None


class AllOf(_Strict):
    all: list[Rule]


class AnyOf(_Strict):
    any: list[Rule]


Rule = Annotated[Condition | AllOf | AnyOf, Field(union_mode="left_to_right")]
AllOf.model_rebuild()
AnyOf.model_rebuild()


class ProfileRule(_Strict):
    """Points given to a contact whose mapped fields match ``when``."""

    name: str
    when: Rule
    points: int
    origin: tuple[str, str, int | None] = Field(default=("", "", None), exclude=True)


ActivityType = Literal["email_open", "email_click", "web_visit", "form_submit"]


class BehaviorRule(_Strict):
    """Points per activity within a time window (scored from imported activity, issue 5)."""

    name: str
    activity: ActivityType
    points: int
    within_days: int | None = None
    once_per_asset: bool = False
    origin: tuple[str, str, int | None] = Field(default=("", "", None), exclude=True)


class ScoreSheet(_Strict):
    name: str
    description: str = ""
    profile_rules: list[ProfileRule] = []
    behavior_rules: list[BehaviorRule] = []
    origin: tuple[str, str, int | None] = Field(default=("", "", None), exclude=True)


class Affiliation(_Strict):
    """How the default 'Affiliated with ...' and 'Unaffiliated' segments decide."""

    prospect_account_types: list[str] = ["Prospect"]
    customer_account_type_prefixes: list[str] = ["Customer"]
    closed_won_makes_customer: bool = True
    # A CRM Contact with no Account belongs to no company: count it as unaffiliated.
    contacts_without_account_are_unaffiliated: bool = True


# Segments Act-On creates itself when the mapping is saved (article, Step 4); user segments
# in segments.yaml may not reuse these names.
DEFAULT_SEGMENTS: tuple[str, ...] = (
    "All Act-On Contacts",
    "All Leads",
    "All Contacts",
    "Affiliated with Leads",
    "Affiliated with Prospects",
    "Affiliated with Customers",
    "Unaffiliated",
)


class SegmentRule(_Strict):
    """A user-defined segment: contacts matching ``when``."""

    name: str
    description: str = ""
    when: Rule
    origin: tuple[str, str, int | None] = Field(default=("", "", None), exclude=True)


DuplicateEmailPolicy = Literal["keep_both", "prefer_contact", "most_recent"]
PushPolicy = Literal["two_way", "pull_only"]


class Mapping(_Strict):
    """The whole mapping: fields, score sheets, segments and policies."""

    fields: list[FieldMapping]
    score_sheets: list[ScoreSheet]
    affiliation: Affiliation = Affiliation()
    segments: list[SegmentRule] = []
    duplicate_email_policy: DuplicateEmailPolicy = "keep_both"
    push_policy: PushPolicy = "two_way"
    # Folder the mapping was loaded from, for messages.
    source_dir: str = ""

    def field(self, destination: str) -> FieldMapping | None:
        return next((f for f in self.fields if f.destination == destination), None)

    @property
    def email_field(self) -> FieldMapping:
        return next(f for f in self.fields if f.type is DataType.EMAIL and f.destination == "Email")

    @property
    def score_fields(self) -> list[FieldMapping]:
        return [f for f in self.fields if f.type is DataType.SCORE]

    def crm_fields(self, record_type: Literal["Lead", "Contact"]) -> list[str]:
        """CRM API names the mapping reads from that object, in mapping order, no repeats."""
        names = [f.source(record_type) for f in self.fields]
        return list(dict.fromkeys(n for n in names if n))

    def sheet(self, name: str) -> ScoreSheet | None:
        return next((s for s in self.score_sheets if s.name == name), None)
