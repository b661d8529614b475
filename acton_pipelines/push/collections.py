"""Sending planned writes to the CRM, one batch at a time: sObject Collections (200 records a
call), Bulk API 2.0 above a threshold (one job per object); per-record results either way.
New Leads are Collections upserts on an external-ID field, so a repeated create finds the Lead
it made instead of making another.

A Bulk update job is run step by step, each step retried on its own, so that no retry ever
creates a second job or writes a record twice:

- the job is created by a call that is never repeated once it may have reached the CRM. When
  its answer is lost, the job is looked for among the org's jobs (``GET jobs/ingest``: an
  ``Open`` update job of the object, created since the attempt, and only one) and used; when
  it cannot be found for sure, the batch goes through Collections instead (updates setting the
  same values are idempotent) and the empty job is left open, never given data;
- a job takes its CSV once: Salesforce refuses a second ``PUT`` (400 ``BULK_API_ERROR``, "Found
  multiple contents for job"), so the upload is retried, and that refusal after a lost answer
  means the first upload arrived;
- closing is retried too: a repeated close is refused once the job has moved on, and the job's
  state then says the first one went through; polling and reading results only read.

Every function here sends one batch and returns its answer; what is logged and recorded
around each batch is :mod:`acton_pipelines.push.build`'s to do (``on_job`` hears a job's Id
before its data goes up).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

from acton_pipelines.crm.client import (
    CrmApiReserveReached,
    CrmClient,
    CrmRequestLimitExceeded,
    CrmUnavailable,
    describe_error,
    salesforce_error_code,
)
from acton_pipelines.crm.extract import check_identifier, check_record_id
from acton_pipelines.crm.objects import LEAD
from acton_pipelines.push.plan import PlannedWrite

COLLECTION_SIZE = 200
# Above this many records a push uses Bulk API 2.0: one job per object instead of a call per
# 200 records (Salesforce's own advice; API calls are budgeted per org per day).
BULK_THRESHOLD = 2_000
# The first wait between two polls of a Bulk job; it doubles up to BULK_POLL_MAX_SECONDS.
BULK_POLL_SECONDS = 2
BULK_POLL_MAX_SECONDS = 30
# How far the CRM's clock may be behind ours when a job whose creation answer was lost is
# looked for by its createdDate.
CLOCK_SKEW = timedelta(minutes=5)
# Pages of the org's job list (1,000 jobs each) read while looking for such a job.
JOB_LIST_PAGES = 20
FINISHED_JOB_STATES = frozenset({"JobComplete", "Failed", "Aborted"})
# The org's daily API budget is spent (or down to the reserve kept for its other
# integrations): no later call of the push can succeed, so the push stops there, its batch's
# rows left "sent" as by a push stopped between a call and its answer.
BUDGET_SPENT = (CrmRequestLimitExceeded, CrmApiReserveReached)
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
    """The calls that send ``writes`` (a chunk of the plan): several fields of one record go
    in one record update, 200 records a Collections call, or one Bulk job per object above
    ``BULK_THRESHOLD`` records. ``log_ids`` (parallel to ``writes``) follow their writes into
    the batches."""
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
    """Each record's fields to set (several writes on one record make one record update)."""
    fields: dict[tuple[str, str], dict[str, Any]] = {}
    for write in writes:
        fields.setdefault((write.object, write.record_id), {})[write.field] = write.new_value
    return fields


def send_batch(
    client: CrmClient, batch: UpdateBatch, on_job: Callable[[str], Any] | None = None
) -> list[WriteOutcome]:
    """Send one batch (``allOrNone: false``: one record's failure never blocks another); the
    outcomes parallel to ``batch.writes``. ``on_job`` hears the Id of a Bulk job before its
    data goes up (to record which job carries the batch).

    A call that fails as a whole (after the client's retries) fails each of its writes, with
    the reason; the next push plans them again. Never sends a DELETE.
    """
    records = _record_fields(batch.writes)
    try:
        if batch.bulk:
            errors = _send_bulk(client, records, on_job or (lambda _: None))
        else:
            errors = _send_collection(client, records)
    except BUDGET_SPENT:
        raise
    except (SalesforceError, SalesforceOperationError, CrmUnavailable) as error:
        reason = _failure_text(error)
        return [WriteOutcome(w, False, reason) for w in batch.writes]
    outcomes = []
    for write in batch.writes:
        error_text = errors.get((write.object, write.record_id))
        outcomes.append(WriteOutcome(write, error_text is None, error_text))
    return outcomes


RecordFields = dict[tuple[str, str], dict[str, Any]]


def _send_collection(client: CrmClient, records: RecordFields) -> dict[tuple[str, str], str]:
    """One Collections update (at most ``COLLECTION_SIZE`` records); the error of each record
    that failed."""
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


def _send_collections(client: CrmClient, records: RecordFields) -> dict[tuple[str, str], str]:
    """Records of any number as Collections calls of ``COLLECTION_SIZE``; a call the CRM
    refuses fails its own records only."""
    errors: dict[tuple[str, str], str] = {}
    for keys in chunks(list(records), COLLECTION_SIZE):
        part = {key: records[key] for key in keys}
        try:
            errors |= _send_collection(client, part)
        except SalesforceError as error:
            errors |= dict.fromkeys(keys, _failure_text(error))
    return errors


def _bulk_cell(value: Any) -> str:
    # In Bulk CSV an empty cell leaves a field unchanged; #N/A clears it.
    if value is None:
        return "#N/A"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def bulk_csv(records: RecordFields) -> str:
    """The CSV of an update job: ``Id`` and every field any record sets (empty: unchanged)."""
    columns = sorted({f for fields in records.values() for f in fields})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Id", *columns])
    for (_, record_id), fields in records.items():
        writer.writerow(
            [record_id, *(_bulk_cell(fields[c]) if c in fields else "" for c in columns)]
        )
    return out.getvalue()


def _ingest(sf: Salesforce, obj: str) -> Any:
    """simple-salesforce's Bulk 2.0 client for ``obj``. Its public ``update`` runs a job's
    steps (create, upload, close, poll) in one call, which a retry would repeat whole (a second
    job, every record written twice); its step-by-step client lets each step be retried alone."""
    return getattr(sf.bulk2, obj)._client


def _send_bulk(
    client: CrmClient, records: RecordFields, on_job: Callable[[str], Any]
) -> dict[tuple[str, str], str]:
    """One Bulk API 2.0 update job (one object), each step retried on its own; failed rows
    come back from ``failedResults``. A job whose creation answer was lost and that cannot be
    found goes through Collections instead."""
    (obj,) = {obj for obj, _ in records}
    data = bulk_csv(records)
    job_id = _create_job(client, obj)
    if job_id is None:
        return _send_collections(client, records)
    on_job(job_id)
    _upload(client, obj, job_id, data)
    _close(client, obj, job_id)
    job = _finished(client, obj, job_id)
    return _job_errors(client, obj, job, records)


def _create_job(client: CrmClient, obj: str) -> str | None:
    """A new update job's Id: created by a call that is not repeated once it may have reached
    the CRM; when its answer was lost, the job it made (if it can be told apart), else None."""
    attempted = datetime.now(UTC)
    try:
        job = client.call(
            lambda sf: _ingest(sf, obj).create_job(Operation.update), idempotent=False
        )
    except BUDGET_SPENT:
        raise  # refused before it was made
    except CrmUnavailable:
        # The job may exist: the CRM may have made it and lost the answer on the way back.
        return _lost_job(client, obj, attempted)
    return str(job["id"])


def _lost_job(client: CrmClient, obj: str, attempted: datetime) -> str | None:
    """The job a create whose answer was lost made, from the org's job list; None when the
    CRM cannot list its jobs or no single job fits."""
    try:
        jobs = list(_org_jobs(client))
    except SalesforceError:
        return None
    return lost_job(jobs, obj, attempted)


def _org_jobs(client: CrmClient) -> Iterator[dict[str, Any]]:
    """The org's Bulk 2.0 ingest jobs (``GET jobs/ingest``), up to ``JOB_LIST_PAGES`` pages."""
    params: dict[str, str] = {"jobType": "V2Ingest"}
    for _ in range(JOB_LIST_PAGES):
        page = client.call(lambda sf, p=dict(params): sf.restful("jobs/ingest", params=p)) or {}
        yield from page.get("records") or []
        locator = parse_qs(urlsplit(page.get("nextRecordsUrl") or "").query).get("queryLocator")
        if page.get("done", True) or not locator:
            return
        params = {"jobType": "V2Ingest", "queryLocator": locator[0]}


def _created(job: dict[str, Any]) -> datetime | None:
    try:
        return datetime.strptime(str(job.get("createdDate")), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        return None


def lost_job(jobs: Iterable[dict[str, Any]], obj: str, attempted: datetime) -> str | None:
    """Of the org's jobs, the Id of the one a lost create made: an ``Open`` update job of
    ``obj`` created since ``attempted`` (less ``CLOCK_SKEW``). None unless exactly one fits:
    another client's job must never be given our data."""
    since = attempted - CLOCK_SKEW
    fits = [
        job
        for job in jobs
        if job.get("object") == obj
        and job.get("operation") == Operation.update.value
        and job.get("state") == "Open"
        and (created := _created(job)) is not None
        and created >= since
    ]
    return str(fits[0]["id"]) if len(fits) == 1 else None


def _upload(client: CrmClient, obj: str, job_id: str, data: str) -> None:
    """The job's CSV, retried like any call: a job takes one upload, so a repeat after a lost
    answer is refused ("Found multiple contents for job") and nothing is written twice; that
    refusal, on a repeat, says the first upload arrived."""
    attempts = 0

    def upload(sf: Salesforce) -> None:
        nonlocal attempts
        attempts += 1
        _ingest(sf, obj).upload_job_data(job_id, data)

    try:
        client.call(upload)
    except SalesforceError as error:
        if attempts > 1 and is_repeated_upload(error):
            return
        raise


def is_repeated_upload(error: SalesforceError) -> bool:
    """Whether the CRM refused an upload because the job has its data already."""
    if salesforce_error_code(error) != "BULK_API_ERROR":
        return False
    return "multiple contents" in describe_error(error).lower()


def _job(client: CrmClient, obj: str, job_id: str) -> dict[str, Any]:
    return dict(client.call(lambda sf: _ingest(sf, obj).get_job(job_id, False)))


def _close(client: CrmClient, obj: str, job_id: str) -> None:
    """Mark the upload complete (processing starts), retried like any call: a repeat after a
    lost answer is refused once the job has moved on, and its state then says it did."""
    try:
        client.call(lambda sf: _ingest(sf, obj).close_job(job_id))
    except SalesforceError:
        if _job(client, obj, job_id).get("state") == "Open":
            raise


def _finished(client: CrmClient, obj: str, job_id: str) -> dict[str, Any]:
    """The job's info once it has finished (``JobComplete``, ``Failed`` or ``Aborted``)."""
    wait = BULK_POLL_SECONDS
    while True:
        job = _job(client, obj, job_id)
        if job.get("state") in FINISHED_JOB_STATES:
            return job
        time.sleep(wait)
        wait = min(max(wait * 2, BULK_POLL_SECONDS), BULK_POLL_MAX_SECONDS)


def _result_ids(client: CrmClient, obj: str, job_id: str, kind: str) -> dict[str, str]:
    """Record Id -> ``sf__Error`` (empty on successes) of one of the job's result files."""
    text = client.call(lambda sf: _ingest(sf, obj).get_ingest_results(job_id, kind))
    return {
        row.get("Id") or row.get("sf__Id") or "": row.get("sf__Error") or ""
        for row in csv.DictReader(io.StringIO(text))
    }


def _job_errors(
    client: CrmClient, obj: str, job: dict[str, Any], records: RecordFields
) -> dict[tuple[str, str], str]:
    """The error of each record the job did not write: its failed rows, and, when the job
    itself failed or was aborted, every record it did not report as written."""
    job_id = str(job["id"])
    failed = {
        (obj, record_id): error or "failed"
        for record_id, error in _result_ids(client, obj, job_id, "failedResults").items()
    }
    if job.get("state") == "JobComplete":
        return failed
    written = _result_ids(client, obj, job_id, "successfulResults")
    reason = f"Bulk job {job_id} {job.get('state')}: {job.get('errorMessage') or 'no reason'}"
    for key in records:
        if key[1] not in written:
            failed.setdefault(key, reason)
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
    except BUDGET_SPENT:
        raise
    except (SalesforceError, CrmUnavailable) as error:
        refused = isinstance(error, SalesforceError)
        return [CreateOutcome(None, error=_failure_text(error), refused=refused) for _ in leads]
    return [
        CreateOutcome(result["id"], created=bool(result.get("created")))
        if result.get("success")
        else CreateOutcome(None, error=_error_text(result.get("errors", [])), refused=True)
        for result in results
    ]
