"""Describe responses (global, basic info, full describe) rendered from the object metadata."""

from __future__ import annotations

from typing import Any

from crm_sandbox.objects import (
    OBJECTS,
    FieldDef,
    FieldType,
    ObjectDef,
    child_relationships,
)

_SOAP_TYPES = {
    FieldType.ID: "tns:ID",
    FieldType.REFERENCE: "tns:ID",
    FieldType.BOOLEAN: "xsd:boolean",
    FieldType.INT: "xsd:int",
    FieldType.DOUBLE: "xsd:double",
    FieldType.CURRENCY: "xsd:double",
    FieldType.DATE: "xsd:date",
    FieldType.DATETIME: "xsd:dateTime",
}


def _urls(obj: ObjectDef, version: str) -> dict[str, str]:
    base = f"/services/data/{version}/sobjects/{obj.name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
    }


def _summary(obj: ObjectDef, version: str) -> dict[str, Any]:
    return {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": obj.custom,
        "queryable": True,
        "retrieveable": True,
        "searchable": True,
        "createable": obj.createable,
        "updateable": obj.updateable,
        # Deletes exist in Salesforce, but this integration must never issue one.
        "deletable": False,
        "layoutable": True,
        "replicateable": True,
        "urls": _urls(obj, version),
    }


def global_describe(version: str) -> dict[str, Any]:
    """``GET sobjects``: every object, in name order."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [_summary(obj, version) for obj in sorted(OBJECTS.values(), key=_name)],
    }


def _name(obj: ObjectDef) -> str:
    return obj.name


def basic_info(obj: ObjectDef, version: str) -> dict[str, Any]:
    """``GET sobjects/{obj}``: the object summary (recent items are not tracked)."""
    return {"objectDescribe": _summary(obj, version), "recentItems": []}


def describe_field(f: FieldDef) -> dict[str, Any]:
    """One entry of a describe's ``fields`` list."""
    text = f.is_text
    return {
        "name": f.name,
        "label": f.label,
        "type": f.type.value,
        "soapType": _SOAP_TYPES.get(f.type, "xsd:string"),
        "length": f.length if text else 0,
        "byteLength": f.length * 3 if text else 0,
        "digits": f.precision if f.type is FieldType.INT else 0,
        "precision": 0 if f.type is FieldType.INT else f.precision,
        "scale": f.scale,
        "nillable": f.nillable,
        "updateable": f.updateable,
        "createable": f.createable,
        "calculated": f.calculated,
        "custom": f.custom,
        "externalId": f.external_id,
        "unique": f.unique,
        "idLookup": f.id_lookup,
        "nameField": f.name == "Name",
        "filterable": not (f.type is FieldType.TEXTAREA and f.length > 255),
        "sortable": f.type not in (FieldType.MULTIPICKLIST, FieldType.TEXTAREA),
        "defaultedOnCreate": f.type is FieldType.BOOLEAN or f.default_value is not None,
        "defaultValue": f.default_value,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "polymorphicForeignKey": len(f.reference_to) > 1,
        "restrictedPicklist": f.restricted_picklist,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": value == f.default_value,
                "label": value,
                "validFor": None,
                "value": value,
            }
            for value in f.picklist_values
        ],
    }


def describe_object(obj: ObjectDef, version: str) -> dict[str, Any]:
    """``GET sobjects/{obj}/describe``: the object with its fields and child relationships."""
    return {
        **_summary(obj, version),
        "fields": [describe_field(f) for f in obj.fields],
        "childRelationships": [
            {
                "childSObject": child.name,
                "field": ref.name,
                "relationshipName": ref.child_relationship,
                "cascadeDelete": False,
                "restrictedDelete": False,
            }
            for child, ref in child_relationships(obj)
        ],
        "recordTypeInfos": [
            {
                "available": True,
                "defaultRecordTypeMapping": True,
                "master": True,
                "name": "Master",
                "recordTypeId": "012000000000000AAA",
            }
        ],
    }
