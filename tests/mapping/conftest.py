"""Fixtures for the mapping tests: a copy of mapping_config/ to break, and CRM describes."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from acton_pipelines.mapping import MappingError, MappingProblem, load_mapping
from tests.conftest import REPO_CONFIG


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A private copy of the default mapping_config/, safe to edit."""
    target = tmp_path / "mapping_config"
    shutil.copytree(REPO_CONFIG, target)
    return target


@pytest.fixture
def edit(config_dir: Path) -> Callable[[str, str, str], int]:
    """Replace ``old`` (which must occur exactly once) by ``new`` in a config file; return the
    1-based line where the replacement starts."""

    def _edit(file: str, old: str, new: str) -> int:
        path = config_dir / file
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
        start = text.index(old)
        path.write_text(text.replace(old, new))
        return text[:start].count("\n") + 1

    return _edit


@pytest.fixture
def problems(config_dir: Path) -> Callable[[], list[MappingProblem]]:
    """Load the edited copy and return the problems it raised (fails if it loaded)."""

    def _problems() -> list[MappingProblem]:
        with pytest.raises(MappingError) as caught:
            load_mapping(config_dir)
        return caught.value.problems

    return _problems


def line_of(path: Path, text: str) -> int:
    """1-based line of the only occurrence of ``text`` in ``path``."""
    content = path.read_text()
    assert content.count(text) == 1, f"{text!r} occurs {content.count(text)} times"
    return content[: content.index(text)].count("\n") + 1


def _field(name: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "updateable": type_ not in ("id",), **extra}


def _reference(name: str, relationship: str, *targets: str) -> dict[str, Any]:
    return _field(name, "reference", relationshipName=relationship, referenceTo=list(targets))


def sandbox_describes() -> dict[str, dict[str, Any]]:
    """Describes shaped like the sandbox CRM's Lead, Contact, Account and User."""

    def common() -> list[dict[str, Any]]:  # fresh dicts per object, so tests can edit one
        return [
            _field("Id", "id"),
            _field("FirstName", "string"),
            _field("LastName", "string"),
            _field("Email", "email"),
            _field("Title", "string"),
            _field("Phone", "phone"),
            _field("MobilePhone", "phone"),
            _field("Fax", "phone"),
            _field("LeadSource", "picklist"),
            _field("HasOptedOutOfEmail", "boolean"),
            _reference("OwnerId", "Owner", "Group", "User"),
            _field("SystemModstamp", "datetime", updateable=False),
            _field("ActOn_Score__c", "double"),
            _field("Fit_Score__c", "double"),
            _field("Interests__c", "multipicklist"),
            _field("Newsletter__c", "boolean"),
            _field("Last_Event_At__c", "datetime"),
        ]

    lead = [
        *common(),
        _field("Name", "string", updateable=False),
        _field("Company", "string"),
        _field("Street", "textarea"),
        _field("City", "string"),
        _field("State", "string"),
        _field("PostalCode", "string"),
        _field("Country", "string"),
        _field("Industry", "picklist"),
        _field("Status", "picklist"),
        _field("AnnualRevenue", "currency"),
        _field("NumberOfEmployees", "int"),
        _field("IsConverted", "boolean", updateable=False),
        _field("ConvertedDate", "date", updateable=False),
        _reference("ConvertedContactId", "ConvertedContact", "Contact"),
        _field("Lead_Notes__c", "textarea"),
    ]
    contact = [
        *common(),
        _reference("AccountId", "Account", "Account"),
        _field("Department", "string"),
        _field("MailingStreet", "textarea"),
        _field("MailingCity", "string"),
        _field("MailingState", "string"),
        _field("MailingPostalCode", "string"),
        _field("MailingCountry", "string"),
        _field("Birthdate", "date"),
        _field("Renewal_Date__c", "date"),
    ]
    account = [
        _field("Id", "id"),
        _field("Name", "string"),
        _field("Type", "picklist"),
        _field("Industry", "picklist"),
        _field("AnnualRevenue", "currency"),
        _field("BillingCountry", "string"),
        _reference("OwnerId", "Owner", "User"),
    ]
    user = [_field("Id", "id"), _field("Name", "string"), _field("Email", "email")]
    return {
        "Lead": {"name": "Lead", "fields": lead},
        "Contact": {"name": "Contact", "fields": contact},
        "Account": {"name": "Account", "fields": account},
        "User": {"name": "User", "fields": user},
    }


@pytest.fixture
def describes() -> dict[str, dict[str, Any]]:
    """A fresh copy of the sandbox-shaped describes, safe to edit."""
    return sandbox_describes()
