"""Bulk API 2.0 query jobs (``jobs/query``): a SOQL result set read as CSV pages by locator.

Lifecycle as Salesforce documents it, made deterministic: the job is created
``UploadComplete`` (the SOQL is parsed, compiled and checked right then, so a bad query answers
400 with the errorCode the REST query gives); the first ``IN_PROGRESS_POLLS`` polls of the job
answer ``InProgress``; the next poll runs the query and answers ``JobComplete`` -- or ``Failed``
with an ``errorMessage`` when a failure was armed (``FaultInjector.fail_query_jobs``). Progress
is driven by the client's polls, not by time, so a client's polling loop is exercised and tests
never wait. Results are served only once the job is complete (412 JOB_NOT_COMPLETE before).

Result set: when the job completes, the Ids of the matching records are written in query order
to a table in a SQLite file of the job's own (in a temporary folder of the server), by one
``INSERT ... SELECT`` that never passes through Python; the CRM file is only read. Pages are cut
from that list by position, so later pages do not shift when records change or are deleted
while the client reads (as with REST query cursors); each record's values are read when its
page is served. A page is streamed: its rows are fetched from SQLite in batches of
``STREAM_BATCH_ROWS`` by position (keyset), each batch rendered to CSV lines by SQLite itself and
sent before the next is read, and no read transaction stays open between batches (other
requests, which write the usage counter, are served in between). A million-row page costs the
server the memory of one batch.

CSV as Salesforce writes Bulk API 2.0 query results: a header row on every page (the field
paths as describe spells them, ``Owner.Name`` for a parent field; in query order from API 50.0,
alphabetical before), every value double-quoted (quotes doubled), an unquoted empty cell for
null (a parent field of a record without that parent is null), datetimes
``2024-05-01T10:00:00.000Z``, booleans ``true``/``false``; the job's ``columnDelimiter`` and
``lineEnding``. ``Sforce-NumberOfRecords`` counts the page's rows and ``Sforce-Locator`` names
the next page (the text ``null`` after the last). A locator is the base64 of the next row's
position (``MTAwMDA`` is row 10,000, as Salesforce's own look), valid as long as the job exists,
and may be read again.

Jobs live in memory (request bookkeeping, not CRM data); their Id files are removed when the job
is deleted or aborted, when a finished job is older than Salesforce's seven-day lifespan (by
the server's clock), and with the server's folder when the registry is discarded.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from crm_sandbox import records, store, values

# The locator and Get All Jobs' paging are shared with ingest jobs (this module builds on that).
from crm_sandbox.bulk_ingest import (
    FINISHED_STATES,
    JOB_KEY_PREFIX,
    JobState,
    decode_locator,
    encode_locator,
    job_list_page,
)
from crm_sandbox.errors import SalesforceApiError, not_found
from crm_sandbox.faults import FaultInjector
from crm_sandbox.ids import make_id
from crm_sandbox.ingest_csv import COLUMN_DELIMITERS, LINE_ENDINGS, CsvFormat
from crm_sandbox.objects import FieldDef, FieldType, ObjectDef, get_object

# The private helper is shared on purpose: Bulk refuses a query too large for SQLite with the
# same 400 QUERY_TOO_COMPLICATED as REST.
from crm_sandbox.query import within_sqlite_limits
from crm_sandbox.soql import (
    CompiledQuery,
    Projection,
    SoqlQuery,
    compile_soql,
    install_sql_functions,
    parse_soql,
)

logger = logging.getLogger(__name__)

# Query jobs exist from API 47.0 (Winter '20); older versions answer 404 NOT_FOUND.
FIRST_QUERY_JOB_VERSION = 47
# From API 50.0 the columns come in the order the query names them; before, alphabetically.
QUERY_ORDER_COLUMNS_VERSION = 50
QUERY_OPERATIONS = frozenset({"query", "queryAll"})
# Polls answered InProgress before the poll that runs the query and completes the job.
IN_PROGRESS_POLLS = 1
# Salesforce documents no figure for a page without maxRecords ("a default value based on the
# service") and no cap beyond its size limits; the sandbox pages by simple-salesforce's default.
DEFAULT_MAX_RECORDS = 50_000
# Rows fetched from SQLite (and sent) at a time while a page streams.
STREAM_BATCH_ROWS = 1000
QUERY_JOB_TYPE = "V2Query"
# Finished jobs are deleted after seven days, with their results.
JOB_LIFESPAN = timedelta(days=7)
NULL_LOCATOR = "null"
# Query jobs share the 750 key prefix with ingest jobs; numbering them from 62**8 keeps the two
# registries from ever handing out the same Id (an org's job Ids are unique across job types).
_QUERY_JOB_SERIAL_BASE = 62**8
# Objects whose query jobs an org chunks by primary key (job info ``isPkChunkingSupported``).
_PK_CHUNKING_OBJECTS = frozenset({"Account", "Contact", "Lead", "Opportunity", "User"})
_IDS_SCHEMA = "bulk_ids"
_IDS_TABLE = f"{_IDS_SCHEMA}.ids"
# Delimiters are written into the SQL as string literals: none may be a quote.
assert all("'" not in d for d in COLUMN_DELIMITERS.values())
# Types whose stored text can never hold a double quote: nothing to escape.
_QUOTE_FREE_TYPES = frozenset(
    {FieldType.ID, FieldType.REFERENCE, FieldType.DATE, FieldType.DATETIME}
)


def _invalid_job(message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "INVALIDJOB", message)


def _job_state_error(message: str) -> SalesforceApiError:
    return SalesforceApiError(400, "INVALIDJOBSTATE", message)


def _api_error(message: str) -> SalesforceApiError:
    # The errorCode Salesforce's Bulk API 2.0 gives a request parameter it cannot use.
    return SalesforceApiError(400, "API_ERROR", message)


def _stamp(now: datetime) -> str:
    return values.to_api_datetime(store.to_storage_datetime(now))


def _max_records(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_MAX_RECORDS
    if not raw.isdigit() or int(raw) < 1:
        raise _api_error(f"maxRecords must be a positive integer, not {raw!r}")
    return int(raw)


@dataclass(frozen=True)
class _Column:
    """One CSV column: its header, the result column holding it, and its field."""

    header: str
    column: str
    field: FieldDef


def _columns(projections: list[Projection], prefix: tuple[str, ...] = ()) -> list[_Column]:
    """The leaf fields of a projection tree, with dotted headers (parents by relationship)."""
    out: list[_Column] = []
    for projection in projections:
        path = (*prefix, projection.key)
        if projection.column is not None:
            assert projection.field is not None
            out.append(_Column(".".join(path), projection.column, projection.field))
        else:
            out.extend(_columns(projection.children, path))
    return out


def _cell_sql(expr: str, f: FieldDef) -> str:
    """SQL rendering one value as a Bulk CSV cell (quoted; empty for null)."""
    if f.type is FieldType.BOOLEAN:
        return f"(CASE {expr} WHEN 1 THEN '\"true\"' WHEN 0 THEN '\"false\"' ELSE '' END)"
    if f.type is FieldType.INT:
        text = f"CAST({expr} AS INTEGER)"
    elif f.type in (FieldType.DOUBLE, FieldType.CURRENCY):
        # SQLite writes a REAL with up to 15 significant digits and always a decimal point.
        text = f"CAST({expr} AS REAL)"
    elif f.type in _QUOTE_FREE_TYPES:
        text = expr
    else:
        text = f"replace({expr}, '\"', '\"\"')"
    return f"(CASE WHEN {expr} IS NULL THEN '' ELSE '\"' || {text} || '\"' END)"


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@dataclass
class QueryJob:
    """One query job: its definition, state, and (once complete) its result set's Id file."""

    id: str
    operation: str
    soql: SoqlQuery
    obj: ObjectDef
    fmt: CsvFormat
    api_version: str
    created_by_id: str | None
    created_date: str
    system_modstamp: str
    state: JobState = JobState.UPLOAD_COMPLETE
    polls: int = 0
    compiled: CompiledQuery | None = None
    ids_file: Path | None = None
    number_records: int = 0
    processing_ms: int = 0
    error_message: str | None = None
    finished_at: datetime | None = None

    @property
    def include_deleted(self) -> bool:
        """Whether the job is a queryAll (deleted records in the Recycle Bin included)."""
        return self.operation == "queryAll"

    def info(self) -> dict[str, Any]:
        """The job info answered on create, abort and in the job list."""
        return {
            "id": self.id,
            "operation": self.operation,
            "object": self.obj.name,
            "createdById": self.created_by_id,
            "createdDate": self.created_date,
            "systemModstamp": self.system_modstamp,
            "state": self.state.value,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": self.fmt.line_ending,
            "columnDelimiter": self.fmt.column_delimiter,
        }

    def status(self) -> dict[str, Any]:
        """The job info ``GET jobs/query/<id>`` answers, with its progress."""
        answer = {
            **self.info(),
            "jobType": QUERY_JOB_TYPE,
            "numberRecordsProcessed": self.number_records,
            "retries": 0,
            "totalProcessingTime": self.processing_ms,
            "isPkChunkingSupported": self.obj.name in _PK_CHUNKING_OBJECTS,
        }
        if self.error_message is not None:
            answer["errorMessage"] = self.error_message
        return answer

    def set_state(self, state: JobState, now: datetime) -> None:
        """Move to ``state``, stamped; a finished job's lifespan counts from here."""
        self.state = state
        self.system_modstamp = _stamp(now)
        if state in FINISHED_STATES:
            self.finished_at = now

    def csv_columns(self) -> list[_Column]:
        """The result's columns, in the order the job's API version writes them."""
        assert self.compiled is not None
        columns = _columns(self.compiled.projections)
        if float(self.api_version) < QUERY_ORDER_COLUMNS_VERSION:
            return sorted(columns, key=lambda c: c.header.lower())
        # Result columns are numbered in the order the query names its fields.
        return sorted(columns, key=lambda c: int(c.column.removeprefix("c")))

    def header_line(self) -> str:
        """The CSV header row (without the line ending)."""
        return self.fmt.delimiter.join(_quoted(c.header) for c in self.csv_columns())

    def _rows_from(self) -> str:
        """FROM/WHERE SQL joining the Id list (by position range ``?``..``?``) to the records.

        The Id list drives the scan (CROSS JOIN keeps it the outer loop), each record found by
        its primary key; a record purged since the job ran is simply missing.
        """
        assert self.compiled is not None and self.compiled.from_sql.startswith("FROM ")
        tables = self.compiled.from_sql.removeprefix("FROM ")
        return (
            f"FROM {_IDS_TABLE} AS s CROSS JOIN {tables} "
            'WHERE t0."Id" = s.record_id AND s.seq > ? AND s.seq <= ?'
        )

    def lines_sql(self) -> str:
        """SQL answering the CSV line of each record at positions (``?``, ``?``], in order."""
        assert self.compiled is not None
        separator = f" || '{self.fmt.delimiter}' || "
        cells = separator.join(_cell_sql(f"q.{c.column}", c.field) for c in self.csv_columns())
        inner = f"SELECT s.seq AS seq, {self.compiled.select_sql} {self._rows_from()}"
        return f"SELECT {cells} FROM ({inner}) AS q ORDER BY q.seq"

    def count_sql(self) -> str:
        """SQL counting the records still there at positions (``?``, ``?``]."""
        return f"SELECT COUNT(*) {self._rows_from()}"


@dataclass(frozen=True)
class ResultsPage:
    """One page of a job's results: its headers' values and its streamed CSV body."""

    number_of_records: int
    locator: str
    body: AsyncIterator[bytes]


class QueryJobs:
    """The query jobs of one server, and the temporary folder holding their Id files.

    Requests are served one at a time on the server's event loop; the lock only matters to
    code reading jobs from another thread (tests, the server's owner).
    """

    def __init__(self, in_progress_polls: int = IN_PROGRESS_POLLS) -> None:
        self._jobs: dict[str, QueryJob] = {}
        self._serials = itertools.count(1)
        self._lock = threading.Lock()
        self._in_progress_polls = in_progress_polls
        self._folder: Path | None = None

    # --- the job lifecycle ------------------------------------------------------------------

    def create(
        self, conn: sqlite3.Connection, body: Mapping[str, Any], version: str, now: datetime
    ) -> QueryJob:
        """Create a job from a ``POST jobs/query`` body; its SOQL is checked right away."""
        self._expire(now)
        operation = body.get("operation")
        if operation not in QUERY_OPERATIONS:
            raise _invalid_job(
                f"Invalid operation {operation!r} for a query job: use query or queryAll"
            )
        soql_text = body.get("query")
        if not isinstance(soql_text, str) or not soql_text.strip():
            raise _invalid_job("A query job needs a query")
        if body.get("contentType", "CSV") != "CSV":
            raise _invalid_job("contentType must be CSV")
        column_delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if column_delimiter not in COLUMN_DELIMITERS:
            raise _invalid_job(f"Invalid columnDelimiter: {column_delimiter}")
        if line_ending not in LINE_ENDINGS:
            raise _invalid_job(f"Invalid lineEnding: {line_ending}")
        soql = parse_soql(soql_text)
        if soql.is_count:
            raise _invalid_job(
                "Aggregate functions such as COUNT() are not supported by Bulk API 2.0 query"
            )
        if soql.offset is not None:
            raise _invalid_job("OFFSET is not supported by Bulk API 2.0 query")
        compiled = compile_soql(soql, include_deleted=operation == "queryAll", now=now)
        _check_compiles(conn, compiled)
        obj = get_object(soql.sobject)
        assert obj is not None  # compile_soql refused unknown objects
        stamp = _stamp(now)
        with self._lock:
            job = QueryJob(
                id=make_id(JOB_KEY_PREFIX, _QUERY_JOB_SERIAL_BASE + next(self._serials)),
                operation=operation,
                soql=soql,
                obj=obj,
                fmt=CsvFormat(column_delimiter, line_ending),
                api_version=version.removeprefix("v"),
                created_by_id=records.api_user_id(conn),
                created_date=stamp,
                system_modstamp=stamp,
            )
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> QueryJob:
        """The job ``job_id``; 404 NOT_FOUND if there is none (or it was deleted)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise not_found()
        return job

    def poll(
        self, conn: sqlite3.Connection, job_id: str, now: datetime, faults: FaultInjector
    ) -> dict[str, Any]:
        """``GET jobs/query/<id>``: the job info, the job moving on by one step per poll."""
        self._expire(now)
        job = self.get(job_id)
        if job.state in (JobState.UPLOAD_COMPLETE, JobState.IN_PROGRESS):
            job.polls += 1
            if job.polls <= self._in_progress_polls:
                job.set_state(JobState.IN_PROGRESS, now)
            else:
                self._run(conn, job, now, faults)
        return job.status()

    def abort(self, job_id: str, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """``PATCH jobs/query/<id>`` with ``{"state": "Aborted"}``: stop a job still running."""
        job = self.get(job_id)
        wanted = body.get("state")
        if wanted != JobState.ABORTED:
            raise _job_state_error(
                f"Invalid state {wanted!r} for a query job: it can only be set to Aborted"
            )
        if job.state in FINISHED_STATES:
            raise _job_state_error(f"Job {job_id} is {job.state}: it can no longer be aborted")
        job.set_state(JobState.ABORTED, now)
        return job.info()

    def delete(self, job_id: str) -> None:
        """Forget a finished (complete, failed or aborted) job, and its results."""
        job = self.get(job_id)
        if job.state not in FINISHED_STATES:
            # Salesforce's own words for a query job still to run or running.
            raise _api_error(
                "Error encountered when deleting the job because the job is not terminated"
            )
        with self._lock:
            del self._jobs[job_id]
        _remove(job)

    def listing(self, version: str, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
        """``GET jobs/query``: the jobs (oldest first), a page at a time (``job_list_page``)."""
        self._expire(now)
        with self._lock:
            jobs = list(self._jobs.values())
        return job_list_page(
            jobs,
            lambda job: {**job.info(), "jobType": QUERY_JOB_TYPE},
            QUERY_JOB_TYPE,
            params,
            f"/services/data/{version}/jobs/query",
        )

    # --- results ----------------------------------------------------------------------------

    def results(
        self,
        conn: sqlite3.Connection,
        db_path: Path,
        job_id: str,
        locator: str | None,
        max_records: str | None,
    ) -> ResultsPage:
        """``GET jobs/query/<id>/results``: the page at ``locator`` of at most ``max_records``.

        ``conn`` counts the page's rows (for ``Sforce-NumberOfRecords``, sent before the body);
        the body streams over a connection of its own to ``db_path``.
        """
        job = self.get(job_id)
        if job.state is not JobState.JOB_COMPLETE or job.ids_file is None:
            raise SalesforceApiError(
                412,
                "JOB_NOT_COMPLETE",
                "can only download query results of successfully completed bulk job with "
                f"status: JOB_COMPLETE. Current status: {job.state}",
            )
        size = _max_records(max_records)
        start = 0 if locator in (None, "", NULL_LOCATOR) else decode_locator(locator)
        if start > job.number_records or (start == job.number_records and start > 0):
            raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", f"Invalid locator: {locator}")
        end = min(start + size, job.number_records)
        with _attached(conn, job.ids_file):
            (count,) = conn.execute(job.count_sql(), (start, end)).fetchone()
        return ResultsPage(
            number_of_records=int(count),
            locator=encode_locator(end) if end < job.number_records else NULL_LOCATOR,
            body=_stream(db_path, job, start, end),
        )

    # --- internals --------------------------------------------------------------------------

    def _run(
        self, conn: sqlite3.Connection, job: QueryJob, now: datetime, faults: FaultInjector
    ) -> None:
        """Run the job's query: list the matching Ids in its file, or fail it."""
        started = time.monotonic()
        failure = faults.take_query_job_failure(job.obj.name)
        if failure is not None:
            job.error_message = failure
            job.set_state(JobState.FAILED, now)
            return
        # Compiled again now: date literals and queryAll's Recycle Bin window mean "now".
        job.compiled = compile_soql(job.soql, include_deleted=job.include_deleted, now=now)
        ids_file = self._folder_path() / f"{job.id}.sqlite"
        try:
            job.number_records = _write_ids(conn, job.compiled, ids_file)
        except sqlite3.Error:
            # Reported as an org reports it: no internal detail in the job's errorMessage.
            logger.exception("query job %s failed", job.id)
            ids_file.unlink(missing_ok=True)
            job.error_message = "InternalServerError : Failed to process query"
            job.set_state(JobState.FAILED, now)
            return
        job.ids_file = ids_file
        job.processing_ms = int((time.monotonic() - started) * 1000)
        job.set_state(JobState.JOB_COMPLETE, now)

    def _folder_path(self) -> Path:
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="crm-sandbox-query-jobs-"))
                # The folder goes with the registry (or at interpreter exit), whatever the jobs.
                weakref.finalize(self, shutil.rmtree, self._folder, True)
            return self._folder

    def _expire(self, now: datetime) -> None:
        """Delete finished jobs older than ``JOB_LIFESPAN`` (by the server's clock)."""
        cutoff = now - JOB_LIFESPAN
        with self._lock:
            old = [
                job
                for job in self._jobs.values()
                if job.finished_at is not None and job.finished_at < cutoff
            ]
            for job in old:
                del self._jobs[job.id]
        for job in old:
            _remove(job)


def _remove(job: QueryJob) -> None:
    if job.ids_file is not None:
        job.ids_file.unlink(missing_ok=True)
        job.ids_file = None


@contextmanager
def _attached(conn: sqlite3.Connection, ids_file: Path) -> Iterator[sqlite3.Connection]:
    """``conn`` with the Id file attached as ``bulk_ids`` (detached after)."""
    conn.execute(f"ATTACH DATABASE ? AS {_IDS_SCHEMA}", (str(ids_file),))
    try:
        yield conn
    finally:
        conn.execute(f"DETACH DATABASE {_IDS_SCHEMA}")


def _check_compiles(conn: sqlite3.Connection, compiled: CompiledQuery) -> None:
    """Have SQLite compile (not run) the job's query: one too large for it is refused now,
    with REST's 400 QUERY_TOO_COMPLICATED, rather than failing the job later."""
    install_sql_functions(conn)
    sql, params = compiled.ids_sql()
    with within_sqlite_limits():
        conn.execute(f"EXPLAIN {sql}", params).fetchall()


def _write_ids(conn: sqlite3.Connection, compiled: CompiledQuery, ids_file: Path) -> int:
    """List the Ids matching ``compiled`` in query order in a new ``ids_file``; their count.

    Positions are the rowids 1..N of a fresh table filled by one ordered INSERT ... SELECT.
    """
    install_sql_functions(conn)
    sql, params = compiled.ids_sql()
    with _attached(conn, ids_file):
        # A scratch file rebuilt by rerunning the job: no journal, no fsync.
        conn.execute(f"PRAGMA {_IDS_SCHEMA}.journal_mode = OFF")
        conn.execute(f"PRAGMA {_IDS_SCHEMA}.synchronous = OFF")
        conn.execute(
            f"CREATE TABLE {_IDS_TABLE} (seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL)"
        )
        # Committed (or rolled back) before detaching: SQLite cannot detach in a transaction.
        try:
            written = conn.execute(f"INSERT INTO {_IDS_TABLE} (record_id) {sql}", params).rowcount
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return int(written)


async def _stream(db_path: Path, job: QueryJob, start: int, end: int) -> AsyncIterator[bytes]:
    """The CSV of the records at positions (``start``, ``end``], header first, batch by batch.

    Each batch is one short statement, read to the end before its lines are sent, so no read
    lock is held while the client receives them (or while other requests are served).
    """
    ids_file = job.ids_file
    if ids_file is None or not ids_file.exists():
        # Deleted between the request and its body (attaching would create an empty file).
        raise not_found()
    terminator = job.fmt.terminator
    sql = job.lines_sql()
    conn = store.connect(db_path)
    try:
        conn.row_factory = None
        with _attached(conn, ids_file):
            yield (job.header_line() + terminator).encode()
            position = start
            while position < end:
                batch_end = min(position + STREAM_BATCH_ROWS, end)
                lines = [row[0] for row in conn.execute(sql, (position, batch_end))]
                position = batch_end
                if lines:
                    yield (terminator.join(lines) + terminator).encode()
    finally:
        conn.close()
