"""Each build reports the addresses several CRM records share in ``duplicate_emails``: every such
record once, whether it was kept as an Act-On contact, which contact was kept instead, and why;
the duplicate-email check counts those addresses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crm_sandbox import SeedSummary
from crm_sandbox.store import from_storage_datetime
from tests.conftest import REPO_CONFIG, ActonHome, make_home, run_full_sync
from tests.contacts.test_opt_outs_at_pull import crm_rows, rows

POLICY_LINE = "duplicate_email_policy: keep_both"
COLUMNS = (
    "email",
    "contact_id",
    "object",
    "record_id",
    "kept",
    "kept_contact_id",
    "reason",
    "policy",
)


def mapping_with_policy(root: Path, policy: str) -> Path:
    """A copy of the repository's mapping with ``policy`` as its duplicate email policy."""
    mapping_dir = root / "mapping_config"
    shutil.copytree(REPO_CONFIG, mapping_dir)
    mapping_file = mapping_dir / "contact_mapping.yaml"
    original = mapping_file.read_text()
    assert POLICY_LINE in original
    mapping_file.write_text(original.replace(POLICY_LINE, f"duplicate_email_policy: {policy}"))
    return mapping_dir


def shared_addresses(home: ActonHome) -> dict[str, list[tuple[str, str, str]]]:
    """From the sandbox's own file: per address (lower case) that several live Act-On-bound
    records carry, its records as (object, Id, SystemModstamp). Only valid addresses count
    (a malformed one is quarantined, so it is no address); every shared address keeps at
    least one contact whatever the policy, so acton_contacts tells which are valid."""
    valid = {r[0] for r in rows(home, "SELECT email FROM acton_contacts WHERE email IS NOT NULL")}
    records: dict[str, list[tuple[str, str, str]]] = {}
    for obj, record_id, email, stamp in crm_rows(
        home,
        "SELECT 'Lead', Id, lower(Email), SystemModstamp FROM Lead WHERE IsDeleted = 0 "
        "AND IsConverted = 0 AND Email IS NOT NULL UNION ALL "
        "SELECT 'Contact', Id, lower(Email), SystemModstamp FROM Contact WHERE IsDeleted = 0 "
        "AND Email IS NOT NULL",
    ):
        if email in valid:
            records.setdefault(email, []).append((obj, record_id, stamp))
    return {email: found for email, found in records.items() if len(found) > 1}


def winners_by_policy(policy: str, group: list[tuple[str, str, str]]) -> set[str]:
    """The Ids of the records the policy keeps over the others of a shared address: every
    Contact (prefer_contact), the records modified last, Contacts first on a tie (most_recent,
    which keeps one of them); empty when nothing is dropped."""
    contacts = {record_id for obj, record_id, _ in group if obj == "Contact"}
    if policy == "prefer_contact":
        return contacts
    if policy == "most_recent":
        latest = max(from_storage_datetime(stamp) for _, _, stamp in group)
        at_latest = {i for _, i, s in group if from_storage_datetime(s) == latest}
        return (at_latest & contacts) or at_latest
    return set()


def assert_reported(
    policy: str, group: list[tuple[str, str, str]], reported: dict, contact_of: dict
) -> None:
    """One shared address's records as ``duplicate_emails`` should hold them."""
    winners = winners_by_policy(policy, group)
    kept = {i for _, i, _ in group if reported[i]["kept"]}
    if not winners:
        assert kept == {i for _, i, _ in group}
    elif policy == "prefer_contact":
        assert kept == winners
    else:
        assert len(kept) == 1 and kept <= winners
    for _, record_id, _ in group:
        row = reported[record_id]
        assert row["policy"] == policy and row["reason"].startswith(f"{policy}: ")
        if row["kept"]:
            assert contact_of[record_id] == row["contact_id"] == row["kept_contact_id"]
        else:
            # Not an Act-On contact: the contact kept for the address is named instead.
            assert record_id not in contact_of
            assert row["kept_contact_id"] in {contact_of[w] for w in winners & kept}


@pytest.mark.parametrize("policy", ["keep_both", "prefer_contact", "most_recent"])
def test_every_record_of_a_shared_address_is_reported_with_the_contact_kept(
    tmp_path: Path,
    small_crm: SeedSummary,
    warehouse_url: str,
    monkeypatch: pytest.MonkeyPatch,
    policy: str,
) -> None:
    mapping_dir = mapping_with_policy(tmp_path, policy)
    home = make_home(tmp_path / "home", small_crm, monkeypatch, warehouse_url)
    result = run_full_sync(home, mapping_dir)
    assert result.success
    shared = shared_addresses(home)
    assert any({obj for obj, _, _ in group} == {"Lead", "Contact"} for group in shared.values()), (
        "the seed should have a Lead and a Contact sharing an address"
    )

    reported = [
        dict(zip(COLUMNS, r, strict=True))
        for r in rows(home, f"SELECT {', '.join(COLUMNS)} FROM duplicate_emails")
    ]
    by_record = {r["record_id"]: r for r in reported}
    assert len(by_record) == len(reported)
    assert set(by_record) == {i for group in shared.values() for _, i, _ in group}
    assert all(by_record[i]["email"] == e for e, group in shared.items() for _, i, _ in group)
    contact_of = dict(rows(home, "SELECT external_id, contact_id FROM acton_contacts"))
    for group in shared.values():
        assert_reported(policy, group, by_record, contact_of)
    dropped_leads = [r for r in reported if not r["kept"] and r["object"] == "Lead"]
    assert bool(dropped_leads) == (policy != "keep_both")

    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "acton_contacts_duplicate_emails"
    ]
    metadata = {key: value.value for key, value in check.metadata.items()}
    assert metadata["shared_emails"] == len(shared)
    assert metadata["kept"] == sum(1 for r in reported if r["kept"])
    assert metadata["not_kept"] == sum(1 for r in reported if not r["kept"])
    assert metadata["policy"] == policy
    assert check.passed is False
