"""Mapping rules checked against the CRM's ``describe()``: fields exist and their types fit.

``describes`` maps an object name (``Lead``, ``Contact``, ``Account``, ``User``,
``Opportunity``) to Salesforce describe JSON: ``{"name": ..., "fields": [{"name", "type",
"relationshipName", "referenceTo", "updateable", ...}]}``.

Names are matched case-insensitively, as Salesforce does in SOQL. Records come back keyed by
the canonical spelling, though, so callers that read records should use the names from
``canonical_crm_fields`` / ``with_canonical_crm_fields`` (different casing alone is not a
problem). A relationship hop such as ``Account.Name`` resolves through the reference field
whose ``relationshipName`` is ``Account`` to the ``Name`` field of the object it references.
When that object was not described (a lookup to a custom object, say), the field behind the
hop cannot be checked and is accepted as written.

Which CRM types fit which data type (the article: "The data type should match the field's data
type in the CRM"; a score field "can be a Text or Number field"):

==========  =========================================================
data type   Salesforce field types accepted
==========  =========================================================
Text        any type
Email       email, string
Number      double, int, long, currency, percent, string
Score       double, int, long, currency, percent, string
Date        date, datetime, string
Datetime    datetime, date, string
Boolean     boolean, string
Multi-Text  multipicklist, picklist, string, textarea
==========  =========================================================

``long`` (a 64-bit integer) is accepted wherever ``int`` is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from typing import Any, Literal

from acton_pipelines.mapping.models import DataType, FieldMapping, Mapping
from acton_pipelines.mapping.problems import MappingProblem, did_you_mean
from acton_pipelines.mapping.rules import CRM_NAME, field_problem

RecordType = Literal["Lead", "Contact"]

_NUMBERS = frozenset({"double", "int", "long", "currency", "percent", "string"})

# None: every CRM type fits.
COMPATIBLE_CRM_TYPES: dict[DataType, frozenset[str] | None] = {
    DataType.TEXT: None,
    DataType.EMAIL: frozenset({"email", "string"}),
    DataType.NUMBER: _NUMBERS,
    DataType.SCORE: _NUMBERS,
    DataType.DATE: frozenset({"date", "datetime", "string"}),
    DataType.DATETIME: frozenset({"datetime", "date", "string"}),
    DataType.BOOLEAN: frozenset({"boolean", "string"}),
    DataType.MULTI_TEXT: frozenset({"multipicklist", "picklist", "string", "textarea"}),
}


def crm_type_fits(data_type: DataType, crm_type: str) -> bool:
    """Whether a CRM field of ``crm_type`` can feed an Act-On field of ``data_type``."""
    accepted = COMPATIBLE_CRM_TYPES[data_type]
    return accepted is None or crm_type.lower() in accepted


@dataclass(frozen=True)
class CrmField:
    """A mapped CRM name resolved against ``describe()``.

    ``name`` is the canonical spelling (``Account.Name``); ``type`` and ``updateable`` are
    those of the field itself (``None`` when the field behind a hop could not be described).
    """

    name: str
    type: str | None
    updateable: bool | None


class UnknownCrmField(Exception):
    """A mapped CRM name that does not resolve; the message says why and what to write."""


class CrmDescribes:
    """Case-insensitive lookups over the describe JSON of several objects."""

    def __init__(self, describes: AbcMapping[str, dict[str, Any]]) -> None:
        self._objects: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}
        for key, describe in describes.items():
            name = str(describe.get("name") or key)
            fields = {str(f["name"]).lower(): f for f in describe.get("fields", []) if "name" in f}
            self._objects[name.lower()] = (name, fields)

    def has(self, object_name: str) -> bool:
        """Whether ``object_name`` was described."""
        return object_name.lower() in self._objects

    def fields(self, object_name: str) -> dict[str, dict[str, Any]]:
        """Describe entries of the object's fields, keyed by lowercase name."""
        return self._objects[object_name.lower()][1]

    def canonical_object(self, object_name: str) -> str:
        """The object's name as the describe spells it."""
        return self._objects[object_name.lower()][0]

    def resolve(self, object_name: str, name: str) -> CrmField:
        """Resolve ``Field`` or ``Relationship.Field`` on ``object_name``.

        Raises ``UnknownCrmField`` with a message that names the fix.
        """
        if not self.has(object_name):
            raise UnknownCrmField(
                f"'{name}' cannot be checked: the CRM has no {object_name} object (it was not "
                f"described); remove the {object_name.lower()} column, or give the integration "
                f"user access to {object_name}"
            )
        obj = self.canonical_object(object_name)
        fields = self.fields(obj)
        if "." not in name:
            found = fields.get(name.lower())
            if found is None:
                raise _missing_field(obj, fields, name)
            return CrmField(str(found["name"]), found.get("type"), found.get("updateable"))
        relationship, field_name = name.split(".", 1)
        references = {
            str(f["relationshipName"]).lower(): f
            for f in fields.values()
            if f.get("relationshipName")
        }
        reference = references.get(relationship.lower())
        if reference is None:
            hint = did_you_mean(
                relationship, (str(r["relationshipName"]) for r in references.values())
            )
            raise UnknownCrmField(
                f"'{relationship}' in '{name}' is not a relationship of {obj}{hint}; write the "
                "relationship name of a lookup field (e.g. 'Account' for AccountId) before the dot"
            )
        rel_name = str(reference["relationshipName"])
        targets = [t for t in reference.get("referenceTo") or [] if self.has(t)]
        if not targets:
            # Nothing to check the field against (e.g. a lookup to a custom object).
            return CrmField(f"{rel_name}.{field_name}", None, None)
        for target in targets:  # polymorphic lookups (Owner: User or Group) try each target
            found = self.fields(target).get(field_name.lower())
            if found is not None:
                # Whether it can be written through this record is not the describe's to say:
                # rules.py already keeps score fields off relationship hops.
                return CrmField(f"{rel_name}.{found['name']}", found.get("type"), None)
        target = self.canonical_object(targets[0])
        raise _missing_field(target, self.fields(target), field_name, f" (via {obj}.{rel_name})")


def _missing_field(
    obj: str, fields: dict[str, dict[str, Any]], name: str, via: str = ""
) -> UnknownCrmField:
    hint = did_you_mean(name, (str(f["name"]) for f in fields.values()))
    return UnknownCrmField(
        f"CRM field '{name}' does not exist on {obj}{via}{hint}; correct the API name "
        f"(the CRM's Setup > Object Manager > {obj} > Fields lists them)"
    )


def _sources(field: FieldMapping) -> Iterator[tuple[RecordType, str]]:
    """The field's CRM names that can be resolved (invalid ones are reported by rules.py)."""
    for record_type in ("Lead", "Contact"):
        name = field.source(record_type)
        if name and CRM_NAME.match(name):
            yield record_type, name


def check_against_crm(
    mapping: Mapping, describes: AbcMapping[str, dict[str, Any]]
) -> list[MappingProblem]:
    """Problems with the mapping's CRM fields: missing fields or relationships, types that
    do not fit the data type, score fields that cannot be written."""
    crm = CrmDescribes(describes)
    problems: list[MappingProblem] = []
    for field in mapping.fields:
        for record_type, name in _sources(field):
            entity = record_type.lower()
            try:
                resolved = crm.resolve(record_type, name)
            except UnknownCrmField as exc:
                problems.append(field_problem(field, f"{entity}: {exc}"))
                continue
            problems.extend(_type_problems(field, record_type, resolved))
    return problems


def _type_problems(
    field: FieldMapping, record_type: RecordType, crm_field: CrmField
) -> Iterable[MappingProblem]:
    entity = record_type.lower()
    if crm_field.type is not None and not crm_type_fits(field.type, crm_field.type):
        accepted = sorted(COMPATIBLE_CRM_TYPES[field.type] or ())
        fitting = [str(t) for t in DataType if crm_type_fits(t, crm_field.type)]
        fix = (
            f"change 'type' to one of {', '.join(fitting)}, or map a CRM field of type "
            f"{', '.join(accepted)}"
            if not field.standard and field.type is not DataType.SCORE
            else f"map a CRM field of type {', '.join(accepted)}"
        )
        yield field_problem(
            field,
            f"{entity}: CRM field '{crm_field.name}' on {record_type} is a {crm_field.type} "
            f"field, which does not fit data type {field.type}; {fix}",
        )
    if field.type is DataType.SCORE and crm_field.updateable is False:
        yield field_problem(
            field,
            f"{entity}: CRM field '{crm_field.name}' on {record_type} is read-only, but score "
            "fields always push to the CRM; map a writable Number or Text field",
        )


def canonical_crm_fields(
    mapping: Mapping, describes: AbcMapping[str, dict[str, Any]]
) -> dict[tuple[RecordType, str], str]:
    """``{("Contact", "account.name"): "Account.Name", ...}``: every mapped CRM name that
    resolves, with the spelling the CRM uses (names that do not resolve are left out)."""
    crm = CrmDescribes(describes)
    canonical: dict[tuple[RecordType, str], str] = {}
    for field in mapping.fields:
        for record_type, name in _sources(field):
            try:
                canonical[(record_type, name)] = crm.resolve(record_type, name).name
            except UnknownCrmField:
                continue
    return canonical


def with_canonical_crm_fields(
    mapping: Mapping, describes: AbcMapping[str, dict[str, Any]]
) -> Mapping:
    """A copy of ``mapping`` whose lead/contact names use the CRM's spelling."""
    canonical = canonical_crm_fields(mapping, describes)
    fields = [
        field.model_copy(
            update={
                "lead": canonical.get(("Lead", field.lead or ""), field.lead),
                "contact": canonical.get(("Contact", field.contact or ""), field.contact),
            }
        )
        for field in mapping.fields
    ]
    return mapping.model_copy(update={"fields": fields})
