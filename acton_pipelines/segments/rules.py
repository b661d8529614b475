"""Segments: the seven default segments plus the mapping's custom ones, with explainable members.

Every segment is a list of *branches*: a rule and the human text that names it. A contact is a
member when any branch matches, and its ``matched_rule`` is the text of the first branch that
matched, so each membership says which rule put the contact there.

Default rules (the affiliation knobs come from ``mapping.affiliation``):

* All Act-On Contacts: every contact.
* All Leads / Affiliated with Leads: ``record_type = Lead`` (converted Leads are never Act-On
  contacts, so every Lead here is unconverted). All Contacts: ``record_type = Contact``.
* Affiliated with Prospects: a Contact whose ``account_type`` is one of the prospect values.
* Affiliated with Customers: a Contact whose ``account_type`` starts with a customer prefix or,
  with ``closed_won_makes_customer``, whose account has a Closed Won opportunity. A won deal
  makes a Prospect-type account a customer: its Contacts are in Customers, not in Prospects.
* Unaffiliated: no CRM record (no ``external_id``) or, with
  ``contacts_without_account_are_unaffiliated``, a Contact without an account.

Text comparisons are case-insensitive and whitespace-trimmed, as in every rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from acton_pipelines.mapping.conditions import describe_rule, evaluate, rule_fields
from acton_pipelines.mapping.models import (
    DEFAULT_SEGMENTS,
    AllOf,
    AnyOf,
    Condition,
    Mapping,
    Rule,
)

# The names of DEFAULT_SEGMENTS (re-exported from the models, where the mapping validator uses
# them to keep custom segments from reusing a default name), in that order.
ALL_ACTON_CONTACTS = "All Act-On Contacts"
ALL_LEADS = "All Leads"
ALL_CONTACTS = "All Contacts"
AFFILIATED_WITH_LEADS = "Affiliated with Leads"
AFFILIATED_WITH_PROSPECTS = "Affiliated with Prospects"
AFFILIATED_WITH_CUSTOMERS = "Affiliated with Customers"
UNAFFILIATED = "Unaffiliated"

__all__ = [
    "DEFAULT_SEGMENTS",
    "DEFINITION_COLUMNS",
    "MEMBER_COLUMNS",
    "fields_read",
    "segment_definitions",
    "segment_members",
]

DEFINITION_COLUMNS = ["segment", "kind", "description"]
MEMBER_COLUMNS = ["segment", "contact_id", "matched_rule"]

_IS_LEAD = Condition(field="record_type", op="equals", value="Lead")
_IS_CONTACT = Condition(field="record_type", op="equals", value="Contact")


@dataclass(frozen=True)
class _Branch:
    rule: Rule
    text: str
    # Column whose value is appended to the text, e.g. the account type that matched a prefix.
    show: str | None = None


@dataclass(frozen=True)
class _Segment:
    name: str
    kind: Literal["default", "custom"]
    description: str
    branches: tuple[_Branch, ...]


def segment_definitions(mapping: Mapping) -> pd.DataFrame:
    """One row per segment (defaults first, then the mapping's custom segments):
    ``segment, kind, description`` where ``kind`` is ``'default'`` or ``'custom'`` and
    ``description`` is the human text of the rule, with the configured affiliation values."""
    segments = _segments(mapping)
    return pd.DataFrame(
        {
            "segment": [s.name for s in segments],
            "kind": [s.kind for s in segments],
            "description": [s.description for s in segments],
        },
        columns=DEFINITION_COLUMNS,
    )


def fields_read(mapping: Mapping) -> set[str]:
    """The fields (destination names or built-in columns) the default and custom segments read,
    the columns their member explanations show included."""
    fields: set[str] = set()
    for segment in _segments(mapping):
        for branch in segment.branches:
            fields |= rule_fields(branch.rule)
            if branch.show is not None:
                fields.add(branch.show)
    return fields


def segment_members(contacts: pd.DataFrame, mapping: Mapping) -> pd.DataFrame:
    """One row per segment × member contact: ``segment, contact_id, matched_rule``.

    Rows are ordered by segment (as in ``segment_definitions``), then by contact (input order),
    on a fresh RangeIndex. ``matched_rule`` is the first rule of the segment the contact matches.
    """
    contact_ids = contacts["contact_id"].to_numpy()
    frames = []
    for segment in _segments(mapping):
        explanation = _explain(segment, contacts, mapping)
        member = pd.notna(explanation)
        frames.append(
            pd.DataFrame(
                {
                    "segment": segment.name,
                    "contact_id": contact_ids[member],
                    "matched_rule": explanation[member],
                },
                columns=MEMBER_COLUMNS,
            )
        )
    return pd.concat(frames, ignore_index=True)


def _explain(segment: _Segment, contacts: pd.DataFrame, mapping: Mapping) -> np.ndarray:
    """Per contact, the text of the first matching branch, or None for non-members."""
    explanation = np.full(len(contacts), None, dtype=object)
    # Last branch first, so an earlier matching branch overwrites a later one.
    for branch in reversed(segment.branches):
        matched = evaluate(branch.rule, contacts, mapping).to_numpy()
        if not matched.any():
            continue
        texts = np.full(len(contacts), branch.text, dtype=object)
        if branch.show is not None:
            shown = contacts[branch.show].astype("string").str.strip().fillna("")
            texts = (branch.text + " (" + shown + ")").to_numpy(dtype=object)
        explanation[matched] = texts[matched]
    return explanation


def _segments(mapping: Mapping) -> list[_Segment]:
    segments = _default_segments(mapping) + [
        _Segment(
            name=custom.name,
            kind="custom",
            description=describe_rule(custom.when),
            branches=tuple(_Branch(b, describe_rule(b)) for b in _top_branches(custom.when)),
        )
        for custom in mapping.segments
    ]
    seen: set[str] = set()
    for segment in segments:
        if segment.name.casefold() in seen:
            raise ValueError(
                f"Segment name {segment.name!r} is used twice (the default segments are "
                f"{', '.join(DEFAULT_SEGMENTS)}); rename the custom segment."
            )
        seen.add(segment.name.casefold())
    return segments


def _top_branches(rule: Rule) -> list[Rule]:
    """The branches a custom rule's membership is explained by: an ``any``'s alternatives
    (named individually), otherwise the whole rule."""
    if isinstance(rule, AnyOf):
        return list(rule.any)
    return [rule]


def _quoted(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _default_segments(mapping: Mapping) -> list[_Segment]:
    affiliation = mapping.affiliation

    # With closed_won_makes_customer, a won deal outranks a Prospect account type.
    not_won: list[Rule] = []
    not_won_text = ""
    if affiliation.closed_won_makes_customer:
        not_won = [
            AnyOf(
                any=[
                    Condition(field="won_opportunity_count", op="is_empty"),
                    Condition(field="won_opportunity_count", op="less_than", value=1),
                ]
            )
        ]
        not_won_text = " and no Closed Won opportunity"
    prospects = [
        _Branch(
            AllOf(
                all=[
                    _IS_CONTACT,
                    Condition(field="account_type", op="equals", value=value),
                    *not_won,
                ]
            ),
            f"record_type = Contact and account_type = '{value}'",
            show="account_type",
        )
        for value in affiliation.prospect_account_types
    ]
    prospect_values = affiliation.prospect_account_types
    prospects_text = (
        f"record_type = Contact and account_type in {_quoted(prospect_values)}{not_won_text}"
        if prospect_values
        else "never (no prospect account types configured)"
    )

    customers = [
        _Branch(
            AllOf(
                all=[_IS_CONTACT, Condition(field="account_type", op="starts_with", value=prefix)]
            ),
            f"record_type = Contact and account_type starts with '{prefix}'",
            show="account_type",
        )
        for prefix in affiliation.customer_account_type_prefixes
    ]
    customer_tests = [
        f"account_type starts with '{p}'" for p in affiliation.customer_account_type_prefixes
    ]
    if affiliation.closed_won_makes_customer:
        won = Condition(field="won_opportunity_count", op="greater_than", value=0)
        customers.append(
            _Branch(AllOf(all=[_IS_CONTACT, won]), "account has a Closed Won opportunity")
        )
        customer_tests.append("account has a Closed Won opportunity")
    if not customer_tests:
        customers_text = "never (no customer account types configured)"
    elif len(customer_tests) == 1:
        customers_text = f"record_type = Contact and {customer_tests[0]}"
    else:
        customers_text = f"record_type = Contact and ({' or '.join(customer_tests)})"

    unaffiliated = [
        _Branch(
            Condition(field="external_id", op="is_empty"), "external_id is empty (no CRM record)"
        )
    ]
    unaffiliated_text = "external_id is empty (no CRM record)"
    if affiliation.contacts_without_account_are_unaffiliated:
        no_account = AllOf(all=[_IS_CONTACT, Condition(field="account_id", op="is_empty")])
        unaffiliated.append(_Branch(no_account, "record_type = Contact and account_id is empty"))
        unaffiliated_text += " or (record_type = Contact and account_id is empty)"

    return [
        _Segment(
            ALL_ACTON_CONTACTS,
            "default",
            "every Act-On contact",
            (_Branch(AllOf(all=[]), "every Act-On contact"),),
        ),
        _Segment(
            ALL_LEADS, "default", "record_type = Lead", (_Branch(_IS_LEAD, "record_type = Lead"),)
        ),
        _Segment(
            ALL_CONTACTS,
            "default",
            "record_type = Contact",
            (_Branch(_IS_CONTACT, "record_type = Contact"),),
        ),
        _Segment(
            AFFILIATED_WITH_LEADS,
            "default",
            "record_type = Lead (an unconverted CRM Lead)",
            (_Branch(_IS_LEAD, "record_type = Lead (an unconverted CRM Lead)"),),
        ),
        _Segment(AFFILIATED_WITH_PROSPECTS, "default", prospects_text, tuple(prospects)),
        _Segment(AFFILIATED_WITH_CUSTOMERS, "default", customers_text, tuple(customers)),
        _Segment(UNAFFILIATED, "default", unaffiliated_text, tuple(unaffiliated)),
    ]
