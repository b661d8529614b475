"""Global and per-object describe, as simple-salesforce reads them."""

from __future__ import annotations

from typing import Any

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceResourceNotFound

from crm_sandbox import SandboxServer


def _fields(describe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in describe["fields"]}


def test_global_describe_lists_the_objects_with_key_prefixes(sf: Salesforce) -> None:
    result = sf.describe()

    assert result is not None
    assert result["encoding"] == "UTF-8"
    assert result["maxBatchSize"] == 200
    prefixes = {o["name"]: o["keyPrefix"] for o in result["sobjects"]}
    assert prefixes == {
        "Account": "001",
        "Contact": "003",
        "Group": "00G",
        "Lead": "00Q",
        "Opportunity": "006",
        "User": "005",
    }
    lead = next(o for o in result["sobjects"] if o["name"] == "Lead")
    assert set(lead) >= {
        "name",
        "label",
        "keyPrefix",
        "queryable",
        "createable",
        "updateable",
        "deletable",
        "custom",
        "urls",
    }
    assert lead["urls"]["describe"] == "/services/data/v59.0/sobjects/Lead/describe"


def test_lead_describe_has_the_field_attributes_and_types(sf: Salesforce) -> None:
    describe = sf.Lead.describe()
    fields = _fields(describe)

    assert describe["name"] == "Lead"
    assert describe["keyPrefix"] == "00Q"
    for key in ("labelPlural", "childRelationships", "recordTypeInfos", "urls"):
        assert key in describe
    expected_types = {
        "Id": "id",
        "Email": "email",
        "Phone": "phone",
        "Status": "picklist",
        "Interests__c": "multipicklist",
        "ConvertedDate": "date",
        "SystemModstamp": "datetime",
        "ActOn_Score__c": "double",
        "AnnualRevenue": "currency",
        "NumberOfEmployees": "int",
        "HasOptedOutOfEmail": "boolean",
        "OwnerId": "reference",
        "Street": "textarea",
        "Lead_Notes__c": "textarea",
    }
    assert {name: fields[name]["type"] for name in expected_types} == expected_types
    for f in fields.values():
        assert set(f) >= {
            "name",
            "label",
            "type",
            "length",
            "nillable",
            "updateable",
            "createable",
            "calculated",
            "custom",
            "externalId",
            "unique",
            "precision",
            "scale",
            "referenceTo",
            "relationshipName",
            "restrictedPicklist",
            "picklistValues",
        }


def test_lead_custom_and_system_fields(sf: Salesforce) -> None:
    fields = _fields(sf.Lead.describe())

    custom = {name for name, f in fields.items() if f["custom"]}
    assert custom == {
        "ActOn_Score__c",
        "Fit_Score__c",
        "Interests__c",
        "Newsletter__c",
        "Last_Event_At__c",
        "ActOn_Contact_Id__c",
        "Lead_Notes__c",
    }
    assert (fields["ActOn_Score__c"]["precision"], fields["ActOn_Score__c"]["scale"]) == (6, 0)
    assert [v["value"] for v in fields["Interests__c"]["picklistValues"]] == [
        "Analytics",
        "Automation",
        "Email",
        "Events",
        "SEO",
        "Social",
    ]
    assert "Closed - Converted" in [v["value"] for v in fields["Status"]["picklistValues"]]
    assert fields["Name"]["calculated"] is True
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["ConvertedContactId"]["referenceTo"] == ["Contact"]
    assert fields["OwnerId"]["relationshipName"] == "Owner"
    assert set(fields["OwnerId"]["referenceTo"]) == {"User", "Group"}


def test_contact_describe_relationships(sf: Salesforce) -> None:
    fields = _fields(sf.Contact.describe())

    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    assert fields["Renewal_Date__c"]["type"] == "date"
    assert fields["Renewal_Date__c"]["custom"] is True


def test_account_describe_lists_child_relationships(sf: Salesforce) -> None:
    describe = sf.Account.describe()

    children = {
        (c["childSObject"], c["field"]): c["relationshipName"]
        for c in describe["childRelationships"]
    }
    assert children[("Contact", "AccountId")] == "Contacts"
    assert children[("Opportunity", "AccountId")] == "Opportunities"
    types = {v["value"] for v in _fields(describe)["Type"]["picklistValues"]}
    assert {"Prospect", "Customer - Direct", "Customer - Channel"} <= types


def test_basic_object_info(sf: Salesforce) -> None:
    info = sf.Opportunity.metadata()

    assert info["objectDescribe"]["name"] == "Opportunity"
    assert info["objectDescribe"]["keyPrefix"] == "006"


def test_unknown_object_is_not_found(sf: Salesforce) -> None:
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Widget__c.describe()

    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "path",
    [
        "sobjects",
        "sobjects/",
        "sobjects/Lead/describe",
        "sobjects/Lead/describe/",
        "sobjects/lead/describe",
        "limits/",
    ],
)
def test_trailing_slash_and_object_name_case_do_not_matter(sf: Salesforce, path: str) -> None:
    assert sf.restful(path) is not None


@pytest.mark.parametrize("version", ["v52.0", "v59.0", "v62.0"])
def test_any_api_version_is_served(server: SandboxServer, sf: Salesforce, version: str) -> None:
    response = server.session().get(
        f"{server.instance_url}/services/data/{version}/sobjects/Lead/describe",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )

    assert response.status_code == 200
    assert response.json()["urls"]["sobject"] == f"/services/data/{version}/sobjects/Lead"


def test_versions_and_resources(server: SandboxServer, sf: Salesforce) -> None:
    http = server.session()
    headers = {"Authorization": f"Bearer {sf.session_id}"}
    versions = http.get(f"{server.instance_url}/services/data", headers=headers, timeout=10)
    resources = http.get(f"{server.instance_url}/services/data/v59.0/", headers=headers, timeout=10)

    assert "59.0" in [v["version"] for v in versions.json()]
    assert resources.json()["query"] == "/services/data/v59.0/query"


def test_unknown_path_is_a_json_not_found(server: SandboxServer, sf: Salesforce) -> None:
    response = server.session().get(
        f"{server.instance_url}/services/data/v59.0/nothing/here",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )

    assert response.status_code == 404
    assert response.json()[0]["errorCode"] == "NOT_FOUND"
