"""Bulk API 2.0 ingest jobs (``jobs/ingest``): large inserts and updates from CSV.

Lifecycle as in Salesforce: a job is created ``Open``, takes its CSV in one ``PUT .../batches``,
and is processed once the client sets ``UploadComplete``. The sandbox processes right then, in
the request (one SQLite transaction, each record on its own), so the job is ``JobComplete``
(or ``Failed``, when the CSV itself is unusable) by the client's first poll. Clients still poll
as they would against an org.

Jobs live in memory only: they are request bookkeeping, not CRM data, and a restarted server
need not remember them. Only ``insert`` and ``update`` are offered; delete operations are
refused by the app (the integration must never delete CRM records), upserts are not emulated.

``GET jobs/ingest`` lists the jobs ("Get All Jobs"), oldest first, ``JOBS_PER_LIST_PAGE`` a page
with a ``nextRecordsUrl`` carrying the next page's ``queryLocator``: a client whose create
answer was lost finds its job there. The paging (and the locator it shares with query results)
lives here because :mod:`crm_sandbox.bulk_query` builds on this module; ``GET jobs/query`` pages
through the same function.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from crm_sandbox import ingest_csv, records, store, values
from crm_sandbox.batch_writes import WriteOperation, write_records
from crm_sandbox.errors import SalesforceApiError, not_found
from crm_sandbox.ids import make_id
from crm_sandbox.ingest_csv import CsvFormat, IngestData, InvalidBatch
from crm_sandbox.objects import ObjectDef, get_object

JOB_KEY_PREFIX = "750"
DELETE_OPERATIONS = frozenset({"delete", "hardDelete"})
# Ingest jobs offer no upsert (sObject Collections do): it would need externalIdFieldName.
_JOB_OPERATIONS = frozenset({WriteOperation.INSERT.value, WriteOperation.UPDATE.value})
# Get All Jobs answers at most this many jobs, then a nextRecordsUrl.
JOBS_PER_LIST_PAGE = 1000
INGEST_JOB_TYPE = "V2Ingest"

T = TypeVar("T")


class JobState(StrEnum):
    """Bulk API 2.0 job states."""

    OPEN = "Open"
    UPLOAD_COMPLETE = "UploadComplete"
    IN_PROGRESS = "InProgress"
    JOB_COMPLETE = "JobComplete"
    FAILED = "Failed"
    ABORTED = "Aborted"


FINISHED_STATES = frozenset({JobState.JOB_COMPLETE, JobState.FAILED, JobState.ABORTED})
# Salesforce deletes a job only once it no longer takes data or runs.
DELETABLE_STATES = FINISHED_STATES | {JobState.UPLOAD_COMPLETE}


class ResultKind(StrEnum):
    """The result files of a job, by their URL segment."""

    SUCCESSFUL = "successfulResults"
    FAILED = "failedResults"
    UNPROCESSED = "unprocessedrecords"


def _job_state_error(message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "INVALIDJOBSTATE", message)


def _invalid_job(message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "INVALIDJOB", message)


def encode_locator(position: int) -> str:
    """The locator of the page starting after ``position`` rows (base64, unpadded)."""
    return base64.b64encode(str(position).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int:
    """The row position a locator names; 400 INVALID_QUERY_LOCATOR if it names none."""
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit():
        raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", f"Invalid locator: {locator}")
    return int(text)


def job_list_page(
    jobs: Sequence[T],
    describe: Callable[[T], dict[str, Any]],
    job_type: str,
    params: Mapping[str, str],
    list_url: str,
) -> dict[str, Any]:
    """One page of a Get All Jobs answer (``GET jobs/ingest`` or ``GET jobs/query``): the
    ``JOBS_PER_LIST_PAGE`` jobs from the ``queryLocator`` on (from the first without one), each
    as ``describe`` gives it, and ``list_url`` with the next page's locator while more remain.

    The sandbox's jobs are all of ``job_type``, run in parallel and are never PK-chunked (a
    Bulk API 1.0 feature), so a filter on another type, on serial jobs or on PK chunking
    leaves none. A locator is a position in the list: a job deleted between two pages shifts
    the later ones by one, as deleting a record shifts an OFFSET query.
    """
    if params.get("jobType", job_type) != job_type:
        jobs = []
    if params.get("isPkChunkingEnabled", "").lower() == "true":
        jobs = []
    if params.get("concurrencyMode", "parallel").lower() != "parallel":
        jobs = []
    start = decode_locator(params["queryLocator"]) if params.get("queryLocator") else 0
    page = jobs[start : start + JOBS_PER_LIST_PAGE]
    end = start + len(page)
    done = end >= len(jobs)
    return {
        "done": done,
        "records": [describe(job) for job in page],
        "nextRecordsUrl": None if done else f"{list_url}?queryLocator={encode_locator(end)}",
    }


@dataclass
class IngestJob:
    """One ingest job: its definition, state, uploaded CSV and (once processed) result rows."""

    id: str
    obj: ObjectDef
    operation: WriteOperation
    fmt: CsvFormat
    api_version: str
    created_by_id: str | None
    created_date: str
    system_modstamp: str
    state: JobState = JobState.OPEN
    upload: str | None = None
    error_message: str | None = None
    processing_ms: int = 0
    header: list[str] = field(default_factory=list)
    successful: list[list[str]] = field(default_factory=list)
    failed: list[list[str]] = field(default_factory=list)
    unprocessed: list[list[str]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """The job info answered on create and on a state change."""
        return {
            "id": self.id,
            "operation": self.operation.value,
            "object": self.obj.name,
            "createdById": self.created_by_id,
            "createdDate": self.created_date,
            "systemModstamp": self.system_modstamp,
            "state": self.state.value,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "contentUrl": f"services/data/v{self.api_version}/jobs/ingest/{self.id}/batches",
            "lineEnding": self.fmt.line_ending,
            "columnDelimiter": self.fmt.column_delimiter,
        }

    def status(self) -> dict[str, Any]:
        """The job info ``GET jobs/ingest/<id>`` answers, with progress counters."""
        answer = {
            **self.info(),
            "jobType": INGEST_JOB_TYPE,
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "apiActiveProcessingTime": self.processing_ms,
            "apexProcessingTime": 0,
            # As in Salesforce, "processed" counts failed records too.
            "numberRecordsProcessed": len(self.successful) + len(self.failed),
            "numberRecordsFailed": len(self.failed),
        }
        if self.error_message is not None:
            answer["errorMessage"] = self.error_message
        return answer

    def list_info(self) -> dict[str, Any]:
        """The job as Get All Jobs lists it: its info with its type, without the upload URL
        (Salesforce's list leaves ``contentUrl`` out)."""
        info = self.info()
        del info["contentUrl"]
        return {**info, "jobType": INGEST_JOB_TYPE}

    def result_csv(self, kind: ResultKind) -> str:
        """One of the job's result files (header only when it has no rows)."""
        if self.state not in FINISHED_STATES:
            raise SalesforceApiError(
                412, "JOB_NOT_COMPLETE", f"Job {self.id} has not finished: it is {self.state}"
            )
        if kind is ResultKind.SUCCESSFUL:
            header, rows = [*ingest_csv.SUCCESS_COLUMNS, *self.header], self.successful
        elif kind is ResultKind.FAILED:
            header, rows = [*ingest_csv.FAILURE_COLUMNS, *self.header], self.failed
        else:
            header, rows = self.header, self.unprocessed
        return ingest_csv.write_csv(header, rows, self.fmt)


class IngestJobs:
    """The ingest jobs of one server.

    Requests are served one at a time on the server's event loop; the lock only matters to
    code reading jobs from another thread (tests, the server's owner).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, IngestJob] = {}
        self._serials = itertools.count(1)
        self._lock = threading.Lock()

    def create(
        self, conn: sqlite3.Connection, body: Mapping[str, Any], version: str, now: datetime
    ) -> IngestJob:
        """Create an ``Open`` job from a ``POST jobs/ingest`` body (delete operations excluded)."""
        obj = get_object(str(body.get("object") or ""))
        if obj is None:
            raise _invalid_job(f"Unable to find object: {body.get('object')}")
        operation = body.get("operation")
        if operation not in _JOB_OPERATIONS:
            raise _invalid_job(
                f"The sandbox CRM does not support the {operation!r} ingest operation: "
                "use insert or update"
            )
        if body.get("contentType", "CSV") != "CSV":
            raise _invalid_job("contentType must be CSV")
        column_delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if column_delimiter not in ingest_csv.COLUMN_DELIMITERS:
            raise _invalid_job(f"Invalid columnDelimiter: {column_delimiter}")
        if line_ending not in ingest_csv.LINE_ENDINGS:
            raise _invalid_job(f"Invalid lineEnding: {line_ending}")
        stamp = values.to_api_datetime(store.to_storage_datetime(now))
        with self._lock:
            job = IngestJob(
                id=make_id(JOB_KEY_PREFIX, next(self._serials)),
                obj=obj,
                operation=WriteOperation(operation),
                fmt=CsvFormat(column_delimiter, line_ending),
                api_version=version.removeprefix("v"),
                created_by_id=records.api_user_id(conn),
                created_date=stamp,
                system_modstamp=stamp,
            )
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> IngestJob:
        """The job ``job_id``; 404 NOT_FOUND if there is none (or it was deleted)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found()
        return job

    def upload(self, job_id: str, data: bytes) -> None:
        """Take the job's CSV (``PUT .../batches``); a job takes exactly one upload."""
        job = self.get(job_id)
        if job.state is not JobState.OPEN:
            raise _job_state_error(f"Job {job_id} is {job.state}: it no longer takes data")
        if job.upload is not None:
            raise SalesforceApiError(
                400,
                "BULK_API_ERROR",
                f"Found multiple contents for job: {job_id}, please 'Close' / 'Abort' / "
                "'Delete' the current Job then create a new Job and make sure you only do 'PUT' "
                "once on a given Job.",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SalesforceApiError(400, "BULK_API_ERROR", f"Data is not UTF-8: {exc}") from exc
        if not text.strip():
            raise SalesforceApiError(400, "BULK_API_ERROR", "No content uploaded")
        job.upload = text

    def change_state(
        self, conn: sqlite3.Connection, job_id: str, body: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """``PATCH jobs/ingest/<id>``: close (and process) or abort; the job info as changed."""
        job = self.get(job_id)
        wanted = body.get("state")
        if wanted == JobState.UPLOAD_COMPLETE and job.state is JobState.OPEN:
            _set_state(job, JobState.UPLOAD_COMPLETE, now)
            # Salesforce answers with the state asked for; processing shows on the next poll.
            answer = job.info()
            _process(conn, job, now)
            return answer
        if wanted == JobState.ABORTED and job.state not in FINISHED_STATES:
            _set_state(job, JobState.ABORTED, now)
            if job.upload is not None:
                job.header, job.unprocessed = _readable_rows(job)
            return job.info()
        raise _job_state_error(f"Job {job_id} is {job.state}: it cannot move to {wanted!r}")

    def listing(self, version: str, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET jobs/ingest``: the jobs in any state (oldest first), ``JOBS_PER_LIST_PAGE`` at a
        time; query parameters ``jobType``, ``isPkChunkingEnabled``, ``concurrencyMode`` and
        ``queryLocator``."""
        with self._lock:
            jobs = list(self._jobs.values())
        return job_list_page(
            jobs,
            IngestJob.list_info,
            INGEST_JOB_TYPE,
            params,
            f"/services/data/{version}/jobs/ingest",
        )

    def delete(self, job_id: str) -> None:
        """Forget a job that no longer runs (its records stay as they are)."""
        job = self.get(job_id)
        if job.state not in DELETABLE_STATES:
            raise _job_state_error(f"Job {job_id} is {job.state}: close or abort it first")
        with self._lock:
            del self._jobs[job_id]


def _set_state(job: IngestJob, state: JobState, now: datetime) -> None:
    job.state = state
    job.system_modstamp = values.to_api_datetime(store.to_storage_datetime(now))


def _readable_rows(job: IngestJob) -> tuple[list[str], list[list[str]]]:
    """The uploaded header and rows, or nothing when the CSV does not even parse."""
    try:
        data = ingest_csv.parse_upload(job.upload or "", job.fmt)
    except InvalidBatch:
        return [], []
    return data.header, data.rows


def _process(conn: sqlite3.Connection, job: IngestJob, now: datetime) -> None:
    """Write every row of the job's CSV and file each under successful or failed results."""
    started = time.monotonic()
    _set_state(job, JobState.IN_PROGRESS, now)
    try:
        if job.upload is None:
            raise InvalidBatch("No data was uploaded to this job")
        data: IngestData = ingest_csv.parse_upload(job.upload, job.fmt)
        job.header = data.header
        ingest_csv.check_header(job.obj, data.header)
    except InvalidBatch as exc:
        job.header, job.unprocessed = _readable_rows(job)
        job.error_message = str(exc)
        _set_state(job, JobState.FAILED, now)
        return
    writes = [ingest_csv.row_write(job.obj, data.header, row) for row in data.rows]
    try:
        results = write_records(conn, job.operation, writes, now=now)
        # Committed here, not when the request ends: results must only report durable writes.
        conn.commit()
    except sqlite3.Error as exc:
        job.unprocessed = data.rows
        job.error_message = f"InternalServerError : {exc}"
        _set_state(job, JobState.FAILED, now)
        raise
    for result, row in zip(results, data.rows, strict=True):
        if result.success:
            job.successful.append(ingest_csv.success_row(result, row))
        else:
            job.failed.append(ingest_csv.failure_row(result, row))
    job.processing_ms = int((time.monotonic() - started) * 1000)
    _set_state(job, JobState.JOB_COMPLETE, now)
