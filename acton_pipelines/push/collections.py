"""Sending planned writes to the CRM, one batch at a time: sObject Collections (200 records a
call), Bulk API 2.0 above a threshold (one job per object); per-record results either way.
New Leads are Collections upserts on an external-ID field, so a repeated create finds the Lead
it made instead of making another.

Every function here sends one batch and returns its answer; what is logged and recorded
around each batch is :mod:`acton_pipelines.push.build`'s to do.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from simple_salesforce.exceptions import SalesforceError

from acton_pipelines.crm.client import CrmClient, CrmUnavailable, describe_error
from acton_pipelines.crm.extract import check_identifier, check_record_id
from acton_pipelines.crm.objects import LEAD
from acton_pipelines.push.plan import PlannedWrite

COLLECTION_SIZE = 200
# Above this many records a push uses Bulk API 2.0: one job per object instead of a call per
# 200 records (Salesforce's own advice; API calls are budgeted per org per day).
BULK_THRESHOLD = 2_000
BULK_POLL_SECONDS = 2
# Lead Ids per SOQL lookup: 200 quoted Ids make a URL of about 5 KB, well inside the 16 KB
# Salesforce accepts (longer ones are refused with 414 URI_TOO_LONG).
LOOKUP_SIZE = 200
CONVERTED_LEAD = "CANNOT_UPDATE_CONVERTED_LEAD"

T = TypeVar("T")


@dataclass(frozen=True)
class WriteOutcome:
    """What the CRM answered for one planned write."""

    write: PlannedWrite
    success: bool
    error: str | None = None

    @property
    def converted_lead(self) -> bool:
        """Whether the CRM refused the write because its Lead has converted since the pull."""
        return not self.success and CONVERTED_LEAD in (self.error or "")


@dataclass(frozen=True)
class UpdateBatch:
    """The writes of one call: a Collections chunk (up to 200 records) or a Bulk job (one
    object). ``log_ids`` (parallel to ``writes``) are their ``crm_push_log`` rows, once
    logged."""

    writes: list[PlannedWrite]
    bulk: bool = False
    log_ids: list[int] | None = None

    @property
    def records(self) -> int:
        """How many CRM records the batch updates."""
        return len({(w.object, w.record_id) for w in self.writes})


@dataclass(frozen=True)
class CreateOutcome:
    """What the CRM answered for one Lead upsert: the Lead's Id (``created`` false when an
    earlier attempt had made it already), or the error."""

    record_id: str | None
    created: bool = False
    error: str | None = None
    # The CRM answered and said no (not: could not be reached, or its answer was lost).
    refused: bool = False


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def update_batches(
    writes: Sequence[PlannedWrite], log_ids: Sequence[int] | None = None
) -> list[UpdateBatch]:
    """The calls that send ``writes``: several fields of one record go in one record update,
    200 records a Collections call, or one Bulk job per object above ``BULK_THRESHOLD``
    records. ``log_ids`` (parallel to ``writes``) follow their writes into the batches."""
    by_record: dict[tuple[str, str], list[int]] = {}
    for index, write in enumerate(writes):
        by_record.setdefault((write.object, write.record_id), []).append(index)
    if len(by_record) > BULK_THRESHOLD:
        by_object: dict[str, list[int]] = {}
        for (obj, _), indexes in by_record.items():
            by_object.setdefault(obj, []).extend(indexes)
        groups = [(indexes, True) for indexes in by_object.values()]
    else:
        groups = [
            ([i for indexes in chunk for i in indexes], False)
            for chunk in chunks(list(by_record.values()), COLLECTION_SIZE)
        ]
    return [
        UpdateBatch(
            writes=[writes[i] for i in indexes],
            bulk=bulk,
            log_ids=None if log_ids is None else [log_ids[i] for i in indexes],
        )
        for indexes, bulk in groups
    ]


def _error_text(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('statusCode', 'ERROR')}: {e.get('message', '')}" for e in errors)


def _failure_text(error: Exception) -> str:
    """Why a call failed, for the push log: the CRM's error code and message, or the reason the
    CRM could not be reached (it stayed down past the retries, the daily API limit, ...). The
    records stay planned and the next push tries again."""
    return describe_error(error) if isinstance(error, SalesforceError) else str(error)


def converted_contacts(client: CrmClient, lead_ids: Sequence[str]) -> dict[str, str]:
    """The Contact each converted Lead became (Lead Id -> ConvertedContactId), asked
    ``LOOKUP_SIZE`` Ids a query so any number of Leads fits the URL limit."""
    found: dict[str, str] = {}
    for chunk in chunks(sorted(set(lead_ids)), LOOKUP_SIZE):
        quoted = ", ".join(f"'{check_record_id(i)}'" for i in chunk)
        soql = f"SELECT Id, ConvertedContactId FROM Lead WHERE Id IN ({quoted})"
        for page in client.query_pages(soql):
            found |= {
                r["Id"]: r["ConvertedContactId"]
                for r in page.records
                if r.get("ConvertedContactId")
            }
    return found


def _record_fields(writes: list[PlannedWrite]) -> dict[tuple[str, str], dict[str, Any]]:
    fields: dict[tuple[str, str], dict[str, Any]] = {}
    for write in writes:
        fields.setdefault((write.object, write.record_id), {})[write.field] = write.new_value
    return fields


def send_batch(client: CrmClient, batch: UpdateBatch) -> list[WriteOutcome]:
    """Send one batch (``allOrNone: false``: one record's failure never blocks another); the
    outcomes parallel to ``batch.writes``.

    A call that fails as a whole (after the client's retries) fails each of its writes, with
    the reason; the next push plans them again. Never sends a DELETE.
    """
    try:
        errors = _send_bulk(client, batch) if batch.bulk else _send_collection(client, batch)
    except (SalesforceError, CrmUnavailable) as error:
        reason = _failure_text(error)
        return [WriteOutcome(w, False, reason) for w in batch.writes]
    outcomes = []
    for write in batch.writes:
        error_text = errors.get((write.object, write.record_id))
        outcomes.append(WriteOutcome(write, error_text is None, error_text))
    return outcomes


def _send_collection(client: CrmClient, batch: UpdateBatch) -> dict[tuple[str, str], str]:
    """One Collections update; the error of each record that failed."""
    records = _record_fields(batch.writes)
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": obj}, "id": record_id} | fields
            for (obj, record_id), fields in records.items()
        ],
    }
    results = client.call(
        lambda sf: sf.restful("composite/sobjects", method="PATCH", json=body), idempotent=True
    )
    return {
        key: _error_text(result.get("errors", []))
        for key, result in zip(records, results, strict=True)
        if not result.get("success")
    }


def _bulk_cell(value: Any) -> str:
    # In Bulk CSV an empty cell leaves a field unchanged; #N/A clears it.
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _send_bulk(client: CrmClient, batch: UpdateBatch) -> dict[tuple[str, str], str]:
    """One Bulk API 2.0 update job (one object); failed rows come back from ``failedResults``."""
    records = _record_fields(batch.writes)
    (obj,) = {obj for obj, _ in records}
    rows = [
        {"Id": rid} | {f: _bulk_cell(v) for f, v in fields.items()}
        for (_, rid), fields in records.items()
    ]
    columns = sorted({c for row in rows for c in row} - {"Id"})
    rows = [{"Id": row["Id"]} | {c: row.get(c, "") for c in columns} for row in rows]
    jobs = client.call(
        lambda sf: getattr(sf.bulk2, obj).update(records=rows, wait=BULK_POLL_SECONDS)
    )
    failed: dict[tuple[str, str], str] = {}
    for job in jobs:
        text = client.call(
            lambda sf, job=job: getattr(sf.bulk2, obj).get_failed_records(job["job_id"])
        )
        for row in csv.DictReader(io.StringIO(text)):
            failed[(obj, row["sf__Id"])] = row.get("sf__Error") or "failed"
    return failed


def check_external_id_field(name: str) -> str:
    """An external-ID field name safe to place in a URL path, or ``ValueError``."""
    if "." in name:
        raise ValueError(f"'{name}' is not a field of the Lead (no relationship hop allowed)")
    return check_identifier(name)


def upsert_leads(
    client: CrmClient, leads: Sequence[tuple[str, dict[str, Any]]], id_field: str
) -> list[CreateOutcome]:
    """Create Leads as one Collections upsert on ``id_field`` (``allOrNone: false``): each
    ``(key, fields)`` is the Lead whose ``id_field`` is ``key``. Upserting is idempotent, so
    the client may repeat a call whose answer was lost: the CRM then finds the Lead the first
    call made. The outcomes parallel ``leads``."""
    path = f"composite/sobjects/{LEAD.name}/{check_external_id_field(id_field)}"
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": LEAD.name}} | fields | {id_field: key} for key, fields in leads
        ],
    }
    try:
        results = client.call(
            lambda sf: sf.restful(path, method="PATCH", json=body), idempotent=True
        )
    except (SalesforceError, CrmUnavailable) as error:
        refused = isinstance(error, SalesforceError)
        return [CreateOutcome(None, error=_failure_text(error), refused=refused) for _ in leads]
    return [
        CreateOutcome(result["id"], created=bool(result.get("created")))
        if result.get("success")
        else CreateOutcome(None, error=_error_text(result.get("errors", [])), refused=True)
        for result in results
    ]
