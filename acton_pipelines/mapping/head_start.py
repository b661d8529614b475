"""The article's "head start": a first ``contact_mapping.yaml`` written from the CRM's describe.

Act-On pre-maps the most commonly used standard fields for you to review. This does the same:
each common standard field is mapped to its usual Lead and Contact fields when the CRM has
them (spelled as the CRM spells them), and the Act-On Primary Score is bound to the ``default``
score sheet on a score-like custom field if the CRM has one. The output is deterministic, so
regenerating it against the same CRM gives the same file.
"""

from __future__ import annotations

from collections.abc import Mapping as AbcMapping
from typing import Any

from acton_pipelines.mapping.crm_rules import CrmDescribes, UnknownCrmField, crm_type_fits
from acton_pipelines.mapping.models import (
    DEFAULT_SCORE_SHEET,
    PRIMARY_SCORE_FIELD,
    STANDARD_FIELDS,
)
from acton_pipelines.mapping.rules import CRM_NAME

# (destination, usual Lead field, usual Contact field): the commonly used standard fields.
COMMON_STANDARD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("Email", "Email", "Email"),
    ("First Name", "FirstName", "FirstName"),
    ("Last Name", "LastName", "LastName"),
    ("Company", "Company", "Account.Name"),
    ("Job Title", "Title", "Title"),
    ("Phone", "Phone", "Phone"),
    ("Mobile Phone", "MobilePhone", "MobilePhone"),
    ("Mailing Street", "Street", "MailingStreet"),
    ("Mailing City", "City", "MailingCity"),
    ("Mailing State/Province", "State", "MailingState"),
    ("Mailing Zip/Postal Code", "PostalCode", "MailingPostalCode"),
    ("Mailing Country", "Country", "MailingCountry"),
    ("Industry", "Industry", "Account.Industry"),
    ("Lead Source", "LeadSource", "LeadSource"),
    ("Status", "Status", "Status"),
)

# The article: a score field "can be a Text or Number field" (Number is 'double' in describe).
SCORE_CRM_TYPES = frozenset({"double", "string"})

_HEADER = """\
# Contact mapping generated as a head start from your CRM's fields. Review every entry:
# delete what you don't want in Act-On Contacts, add the standard fields you use in scores or
# personalization, and create custom fields under custom_fields.
# Each entry maps an Act-On 'destination' field from a Lead field ('lead') and a Contact
# field ('contact'); either may be left out. See the repository's mapping_config/ for a
# fully commented example.

# keep_both, prefer_contact or most_recent: what to do when a Lead and a Contact share an email.
duplicate_email_policy: keep_both

# two_way (Act-On changes are pushed to the CRM) or pull_only.
push_policy: two_way

standard_fields:
"""

_FOOTER = """\
# Custom fields: {destination, type, lead, contact, score_sheet, allow_push}, where type is
# one of Boolean, Date, Datetime, Text, Number, Score, Email, Multi-Text.
custom_fields: []
"""


def head_start_mapping(describes: AbcMapping[str, dict[str, Any]]) -> str:
    """YAML text for a starting ``contact_mapping.yaml``, pre-mapping the common standard
    fields found in ``describes`` (object name -> Salesforce describe JSON)."""
    crm = CrmDescribes(describes)
    lines: list[str] = []
    for destination, lead_name, contact_name in COMMON_STANDARD_FIELDS:
        lead = _existing(crm, "Lead", lead_name, destination)
        contact = _existing(crm, "Contact", contact_name, destination)
        if lead is None and contact is None:
            lines.append(
                f"  # {destination}: neither Lead.{lead_name} nor Contact.{contact_name} "
                "exists in the CRM"
            )
            if destination == "Email":
                lines.append(
                    "  # You must map an email field: add an entry for Email with the CRM's "
                    "email fields."
                )
            continue
        lines.extend(_entry(destination, lead, contact, lead_name, contact_name))
    lines.extend(_primary_score(crm))
    others = sorted(
        name
        for name in STANDARD_FIELDS
        if name not in {d for d, _, _ in COMMON_STANDARD_FIELDS} | {PRIMARY_SCORE_FIELD}
    )
    lines.append(f"  # Other standard fields you may add: {', '.join(others)}.")
    return _HEADER + "\n".join(lines) + "\n\n" + _FOOTER


def _existing(crm: CrmDescribes, record_type: str, name: str, destination: str) -> str | None:
    """The CRM's spelling of ``name`` on ``record_type`` if it exists and its type fits."""
    try:
        found = crm.resolve(record_type, name)
    except UnknownCrmField:
        return None
    if found.type is not None and not crm_type_fits(STANDARD_FIELDS[destination], found.type):
        return None
    return found.name if CRM_NAME.match(found.name) else None


def _entry(
    destination: str,
    lead: str | None,
    contact: str | None,
    lead_name: str,
    contact_name: str,
) -> list[str]:
    lines = [f"  - destination: {destination}"]
    if lead is not None:
        lines.append(f"    lead: {lead}")
    else:
        lines.append(f"    # lead: not mapped (Lead has no {lead_name} field)")
    if contact is not None:
        lines.append(f"    contact: {contact}")
    else:
        lines.append(f"    # contact: not mapped (Contact has no {contact_name} field)")
    return lines


def _primary_score(crm: CrmDescribes) -> list[str]:
    """The Act-On Primary Score entry, or a placeholder saying one must be mapped."""
    lead_scores = _score_like(crm, "Lead")
    contact_scores = _score_like(crm, "Contact")
    names = set(lead_scores) | set(contact_scores)
    if not names:
        return [
            f"  # {PRIMARY_SCORE_FIELD}: no score-like field (a Number or Text custom field whose",
            "  # name contains 'score') was found on Lead or Contact. You must map at least one",
            "  # score field to the CRM: ask your CRM administrator to create one with the same",
            "  # API name on Lead and Contact (e.g. ActOn_Score__c, Number(6, 0)), then uncomment:",
            f"  # - destination: {PRIMARY_SCORE_FIELD}",
            "  #   lead: ActOn_Score__c",
            "  #   contact: ActOn_Score__c",
            f"  #   score_sheet: {DEFAULT_SCORE_SHEET}",
        ]

    # Prefer a field on both objects (a score field must use one name on both), then one
    # named for Act-On, then the alphabetically first, so the choice is stable.
    def preference(key: str) -> tuple[bool, bool, str]:
        on_both = key in lead_scores and key in contact_scores
        return (not on_both, "acton" not in key.replace("_", "").replace("-", ""), key)

    chosen = min(names, key=preference)
    return [
        f"  # Scored by the '{DEFAULT_SCORE_SHEET}' sheet of score_sheets.yaml and always pushed "
        "to the CRM.",
        *_entry(
            PRIMARY_SCORE_FIELD,
            lead_scores.get(chosen),
            contact_scores.get(chosen),
            chosen,
            chosen,
        ),
        f"    score_sheet: {DEFAULT_SCORE_SHEET}",
    ]


def _score_like(crm: CrmDescribes, record_type: str) -> dict[str, str]:
    """Writable custom Number/Text fields whose name contains 'score': lowercase -> name."""
    if not crm.has(record_type):
        return {}
    return {
        key: str(field["name"])
        for key, field in crm.fields(record_type).items()
        if "score" in key
        and key.endswith("__c")
        and str(field.get("type", "")).lower() in SCORE_CRM_TYPES
        and field.get("updateable") is not False
        and CRM_NAME.match(str(field["name"]))
    }
