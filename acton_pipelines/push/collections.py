"""Sending planned writes to the CRM: sObject Collections (200 records a call), Bulk API 2.0
above a threshold; per-record results either way."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from simple_salesforce.exceptions import SalesforceError

from acton_pipelines.crm.client import CrmClient, CrmUnavailable, describe_error
from acton_pipelines.crm.extract import check_record_id
from acton_pipelines.push.plan import PlannedWrite

COLLECTION_SIZE = 200
# Above this many records a push uses Bulk API 2.0: one job per object instead of a call per
# 200 records (Salesforce's own advice; API calls are budgeted per org per day).
BULK_THRESHOLD = 2_000
BULK_POLL_SECONDS = 2


@dataclass(frozen=True)
class WriteOutcome:
    """What the CRM answered for one planned write."""

    write: PlannedWrite
    success: bool
    error: str | None = None


def _records(writes: list[PlannedWrite]) -> list[tuple[tuple[str, str], list[PlannedWrite]]]:
    # One record per CRM row: several fields of the same record go in one update.
    grouped: dict[tuple[str, str], list[PlannedWrite]] = {}
    for write in writes:
        grouped.setdefault((write.object, write.record_id), []).append(write)
    return list(grouped.items())


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}" for e in errors)


CONVERTED_LEAD = "CANNOT_UPDATE_CONVERTED_LEAD"


def _converted_contacts(client: CrmClient, lead_ids: list[str]) -> dict[str, str]:
    """The Contact each converted Lead became (Lead Id -> ConvertedContactId)."""
    if not lead_ids:
        return {}
    quoted = ", ".join(f"'{check_record_id(i)}'" for i in lead_ids)
    soql = f"SELECT Id, ConvertedContactId FROM Lead WHERE Id IN ({quoted})"
    return {
        r["Id"]: r["ConvertedContactId"]
        for page in client.query_pages(soql)
        for r in page.records
        if r.get("ConvertedContactId")
    }


def send_updates(client: CrmClient, writes: list[PlannedWrite]) -> list[WriteOutcome]:
    """Update the records; a write refused because its Lead has converted since the last pull
    goes to the Contact the Lead became (converted Leads cannot be updated)."""
    outcomes = _send_updates(client, writes)
    refused = [o.write for o in outcomes if not o.success and CONVERTED_LEAD in (o.error or "")]
    if not refused:
        return outcomes
    contacts = _converted_contacts(client, sorted({w.record_id for w in refused}))
    redirected = [
        replace(w, object="Contact", record_id=contacts[w.record_id])
        for w in refused
        if w.record_id in contacts
    ]
    kept = [o for o in outcomes if o.write not in refused or o.write.record_id not in contacts]
    return kept + _send_updates(client, redirected)


def _failure_text(error: Exception) -> str:
    """Why a call failed, for the push log: the CRM's error code and message, or the reason the
    CRM could not be reached (it stayed down past the retries, the daily API limit, ...). The
    records stay planned and the next push tries again."""
    return describe_error(error) if isinstance(error, SalesforceError) else str(error)


def send_creates(
    client: CrmClient, leads: list[tuple[str, dict[str, Any]]]
) -> dict[str, tuple[str | None, str | None]]:
    """Create Leads (``allOrNone: false``); per key: the new Id, or None and the error."""
    created: dict[str, tuple[str | None, str | None]] = {}
    for chunk in _chunks(leads, COLLECTION_SIZE):
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": "Lead"}} | fields for _, fields in chunk],
        }
        try:
            # Not repeated when the answer is lost: the CRM may have made the Leads already.
            results = client.call(
                lambda sf, body=body: sf.restful("composite/sobjects", method="POST", json=body),
                idempotent=False,
            )
        except (SalesforceError, CrmUnavailable) as error:
            created |= {key: (None, _failure_text(error)) for key, _ in chunk}
            continue
        for (key, _), result in zip(chunk, results, strict=True):
            if result.get("success"):
                created[key] = (result["id"], None)
            else:
                created[key] = (None, _error_text(result.get("errors", [])))
    return created


def _bulk_cell(value: Any) -> str:
    # In Bulk CSV an empty cell leaves a field unchanged; #N/A clears it.
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _send_updates_bulk(
    client: CrmClient, grouped: list[tuple[tuple[str, str], list[PlannedWrite]]]
) -> list[WriteOutcome]:
    """One Bulk API 2.0 update job per object; failed rows come back from ``failedResults``."""
    outcomes: list[WriteOutcome] = []
    by_object: dict[str, list[tuple[str, list[PlannedWrite]]]] = {}
    for (obj, record_id), fields in grouped:
        by_object.setdefault(obj, []).append((record_id, fields))
    for obj, records in by_object.items():
        rows = [{"Id": rid} | {w.field: _bulk_cell(w.new_value) for w in ws} for rid, ws in records]
        columns = sorted({c for row in rows for c in row} - {"Id"})
        rows = [{"Id": row["Id"]} | {c: row.get(c, "") for c in columns} for row in rows]
        try:
            jobs = client.call(
                lambda sf, obj=obj, rows=rows: getattr(sf.bulk2, obj).update(
                    records=rows, wait=BULK_POLL_SECONDS
                )
            )
            failed: dict[str, str] = {}
            for job in jobs:
                text = client.call(
                    lambda sf, obj=obj, job=job: getattr(sf.bulk2, obj).get_failed_records(
                        job["job_id"]
                    )
                )
                for row in csv.DictReader(io.StringIO(text)):
                    failed[row["sf__Id"]] = row.get("sf__Error") or "failed"
        except (SalesforceError, CrmUnavailable) as error:
            reason = _failure_text(error)
            outcomes += [WriteOutcome(w, False, reason) for _, ws in records for w in ws]
            continue
        for record_id, fields in records:
            error = failed.get(record_id)
            outcomes += [WriteOutcome(w, error is None, error) for w in fields]
    return outcomes


def _send_updates(client: CrmClient, writes: list[PlannedWrite]) -> list[WriteOutcome]:
    """Update the records (``allOrNone: false``): one record's failure never blocks another.

    A call that fails as a whole (after the client's retries) fails each of its records, with
    the reason; nothing is lost, the next push plans them again. Never sends a DELETE.
    """
    grouped = _records(writes)
    if len(grouped) > BULK_THRESHOLD:
        return _send_updates_bulk(client, grouped)
    outcomes: list[WriteOutcome] = []
    for chunk in _chunks(grouped, COLLECTION_SIZE):
        body = {
            "allOrNone": False,
            "records": [
                {"attributes": {"type": obj}, "id": record_id}
                | {w.field: w.new_value for w in fields}
                for (obj, record_id), fields in chunk
            ],
        }
        try:
            results = client.call(
                lambda sf, body=body: sf.restful("composite/sobjects", method="PATCH", json=body)
            )
        except (SalesforceError, CrmUnavailable) as error:
            reason = _failure_text(error)
            outcomes += [WriteOutcome(w, False, reason) for _, fields in chunk for w in fields]
            continue
        for (_, fields), result in zip(chunk, results, strict=True):
            error = None if result.get("success") else _error_text(result.get("errors", []))
            outcomes += [WriteOutcome(w, error is None, error) for w in fields]
    return outcomes
