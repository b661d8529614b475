"""The sandbox CRM as an ASGI app: Salesforce's REST API as simple-salesforce 1.12 uses it.

Request handling happens in two layers. ``_ApiGate`` (plain ASGI middleware) does what every
Salesforce request goes through: trailing-slash normalisation, injected faults, refusal of
deletes, session check, API usage counting and the ``Sforce-Limit-Info`` header. The Starlette
routes below it only implement the resources.

A dropped connection (an injected ``drop`` fault) is served normally and then cut by
``_CutResponse``: it forwards the status line, the headers and half of the body, swallows the
rest, and the gate returns with the response unfinished. uvicorn then closes the connection,
which is what a client sees when a connection drops mid-body.

Deletes: every ``DELETE`` is refused (403 DELETE_REFUSED) and counted, before the session check,
because this integration must never delete CRM records -- with one exception: deleting a Bulk
API 2.0 *job* (``DELETE jobs/ingest/<id>`` or ``DELETE jobs/query/<id>``). That is bookkeeping
a well-behaved client does against a real org, it removes no record, and refusing it would make
such a client fail only against the sandbox; it goes through the session check and usage count
like any other request. Creating a bulk ``delete``/``hardDelete`` job is a record delete and is
refused and counted as one.

Handlers are ``async`` but use SQLite synchronously on purpose: requests are then served one
at a time on the event loop, which keeps the single-file database free of lock contention,
and the sandbox is never under production load.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_sandbox import describe, records, replication, store, values
from crm_sandbox.batch_writes import WriteOperation
from crm_sandbox.bulk_ingest import DELETE_OPERATIONS, IngestJobs, ResultKind
from crm_sandbox.bulk_query import FIRST_QUERY_JOB_VERSION, QueryJobs
from crm_sandbox.errors import SalesforceApiError, not_found, unknown_exception
from crm_sandbox.faults import FaultInjector, FaultKind
from crm_sandbox.objects import FieldDef, ObjectDef, get_object
from crm_sandbox.query import INVALID_LOCATOR_MESSAGE, QueryEngine, batch_size_from_header
from crm_sandbox.sessions import OAuthError, SessionRegistry
from crm_sandbox.soap_login import (
    SOAP_CONTENT_TYPE,
    SOAP_LOGIN_PATH,
    SOAP_LOGIN_PATH_RE,
    answer_login,
)
from crm_sandbox.sobject_collections import save_collection, upsert_collection

DEFAULT_API_LIMIT = 100_000
TOKEN_PATH = "/services/oauth2/token"
# Salesforce refuses request URIs over 16,384 bytes; long SOQL must be split by the caller.
MAX_URI_BYTES = 16_384
_LOCATOR_RE = re.compile(r"^(?P<locator>[A-Za-z0-9]{15,18})-(?P<offset>\d+)$")
# The one DELETE the gate lets through: a Bulk API 2.0 ingest or query job (never a record).
_BULK_JOB_PATH_RE = re.compile(r"^/services/data/v\d+\.\d/jobs/(ingest|query)/[A-Za-z0-9]{15,18}$")
DELETE_REFUSED_MESSAGE = (
    "The sandbox CRM refuses deletes: this integration must never delete CRM records."
)
logger = logging.getLogger(__name__)
# uvicorn's complaint about a response left unfinished; for an injected drop that is the point.
_UNFINISHED_RESPONSE_LOG = "ASGI callable returned without completing response."
# Set in the request's own task when a drop fault cut its response (tasks copy the context, so
# it never leaks into another request).
_CUT_ON_PURPOSE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "sandbox_cut_on_purpose", default=False
)
# The API versions served: 31.0 (Summer '14) to 64.0 (Summer '25), as an org serves them since
# 21.0-30.0 were retired in Summer '25. Any other ``vNN.N`` answers 404 NOT_FOUND, as Salesforce
# answers a version it does not know (for a retired one it answers 410 GONE; not emulated).
_OLDEST_VERSION, _NEWEST_VERSION = 31, 64
# Three releases a year from Summer '14; a Winter release carries the next year's name.
_SEASONS = ("Summer", "Winter", "Spring")


def _release(number: int) -> str:
    """The release that brought API version ``number`` (31: Summer '14, 32: Winter '15, ...)."""
    season = (number - _OLDEST_VERSION) % 3
    year = 14 + (number - _OLDEST_VERSION) // 3 + (season > 0)
    return f"{_SEASONS[season]} '{year:02d}"


_RELEASES = {n: _release(n) for n in range(_OLDEST_VERSION, _NEWEST_VERSION + 1)}
_SERVED_VERSIONS = frozenset(f"v{n}.0" for n in _RELEASES)


@dataclass
class SandboxState:
    """Everything the app needs besides the request: files, sessions, faults, counters."""

    db_path: Path
    sessions: SessionRegistry
    clock: Callable[[], datetime]
    api_limit: int = DEFAULT_API_LIMIT
    faults: FaultInjector = field(default_factory=FaultInjector)
    # How getDeleted answers a start older than its log (see ``replication``).
    deleted_before_log: replication.DeletedBeforeLog = replication.INVALID_REPLICATION_DATE
    queries: QueryEngine = field(default_factory=QueryEngine)
    ingest_jobs: IngestJobs = field(default_factory=IngestJobs)
    query_jobs: QueryJobs = field(default_factory=QueryJobs)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection to the current database file, committed on success, always closed.

        Opened per request because another process may reseed (replace) the file between runs.
        """
        conn = store.connect(self.db_path)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def count_refused_delete(self) -> None:
        """Count one refused delete attempt (in its own transaction, so it survives the error)."""
        with contextlib.suppress(FileNotFoundError), self.connection() as conn:
            store.increment_counter(conn, store.DELETES_REFUSED_KEY)


def _delete_refused() -> SalesforceApiError:
    return SalesforceApiError(403, "DELETE_REFUSED", DELETE_REFUSED_MESSAGE)


def _error_response(error: SalesforceApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _raw_error(status: int, error_code: str, message: str) -> tuple[int, bytes]:
    body = [{"message": message, "errorCode": error_code, "fields": []}]
    return status, json.dumps(body).encode()


class _ApiGate:
    """Cross-cutting Salesforce behaviour applied to every request before routing."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        scope = {**scope, "path": path}
        method = scope["method"]
        state = self.state

        uri_bytes = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
        if uri_bytes > MAX_URI_BYTES:
            await _send_raw(send, *_raw_error(414, "URI_TOO_LONG", "Request URI too long"))
            return
        fault = state.faults.take(method, path)
        if fault is not None and fault.kind is FaultKind.ERROR:
            status, body = _raw_error(fault.status, fault.error_code, fault.message)
            await _send_raw(send, status, body, self._limit_header())
            return
        if fault is not None and fault.kind is FaultKind.DROP:
            # Everything below runs as usual; only what reaches the wire is cut.
            send = _CutResponse(send, state.faults, chunked=fault.chunked)
        if path == TOKEN_PATH or SOAP_LOGIN_PATH_RE.match(path):
            await self.app(scope, receive, send)
            return
        if (
            method == "DELETE"
            and path.startswith("/services/")
            and not _BULK_JOB_PATH_RE.match(path)
        ):
            # Counted before the session check: any delete attempt is a bug worth surfacing.
            state.count_refused_delete()
            status, body = _raw_error(403, "DELETE_REFUSED", DELETE_REFUSED_MESSAGE)
            await _send_raw(send, status, body, self._limit_header())
            return
        if not self._authorised(scope):
            status, body = _raw_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            await _send_raw(send, status, body, self._limit_header())
            return
        try:
            used, over_limit = self._count_request()
        except FileNotFoundError as exc:
            await _send_raw(send, *_raw_error(503, "SERVER_UNAVAILABLE", str(exc)))
            return
        header = ("sforce-limit-info", f"api-usage={used}/{state.api_limit}")
        if over_limit:
            status, body = _raw_error(
                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
            )
            await _send_raw(send, status, body, header)
            return

        async def send_with_limit(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((header[0].encode(), header[1].encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_limit)

    def _count_request(self) -> tuple[int, bool]:
        """Count one API request; (usage, over_limit). Refused requests are not counted."""
        with self.state.connection() as conn:
            used = store.read_counter(conn, store.API_USAGE_KEY)
            if used >= self.state.api_limit:
                return used, True
            return store.increment_counter(conn, store.API_USAGE_KEY), False

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() in ("bearer", "oauth") and self.state.sessions.is_valid(
                    token.strip()
                )
            if name == b"x-sfdc-session":
                return self.state.sessions.is_valid(value.decode("latin-1").strip())
        return False

    def _limit_header(self) -> tuple[str, str]:
        try:
            with self.state.connection() as conn:
                used = store.read_counter(conn, store.API_USAGE_KEY)
        except FileNotFoundError:
            used = 0
        return ("sforce-limit-info", f"api-usage={used}/{self.state.api_limit}")


class _CutResponse:
    """A ``send`` that lets the status line, the headers and half of the body out, then nothing.

    The headers keep the full ``Content-Length`` (or, with ``chunked``, lose it so that h11
    frames the body in chunks and never sends the final empty chunk): the client learns the
    body is incomplete when the connection closes, and ``requests`` raises
    ``ChunkedEncodingError``. A response without a body (204) cannot be cut and goes out whole.
    """

    def __init__(self, send: Send, faults: FaultInjector, *, chunked: bool) -> None:
        self._send = send
        self._faults = faults
        self._chunked = chunked
        self._start: Message | None = None
        self._cut = False

    async def __call__(self, message: Message) -> None:
        if self._cut:
            return
        if message["type"] == "http.response.start":
            # Held back until the body shows whether there is anything to cut.
            self._start = message
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        if not body and message.get("more_body", False):
            return
        start, self._start = self._start, None
        if not body:
            await self._send(start)
            await self._send(message)
            return
        if self._chunked:
            headers = start.get("headers", [])
            start = {**start, "headers": [h for h in headers if h[0].lower() != b"content-length"]}
        await self._send(start)
        kept = body[: len(body) // 2]
        if kept:
            await self._send({"type": "http.response.body", "body": kept, "more_body": True})
        self._cut = True
        _CUT_ON_PURPOSE.set(True)
        self._faults.count_drop()


def quiet_deliberate_cuts(record: logging.LogRecord) -> bool:
    """A filter for uvicorn's error log that drops its complaint about a deliberately cut
    response (the complaint stays for any other unfinished response: that would be a bug)."""
    return not (record.getMessage() == _UNFINISHED_RESPONSE_LOG and _CUT_ON_PURPOSE.get())


async def _send_raw(
    send: Send, status: int, body: bytes, header: tuple[str, str] | None = None
) -> None:
    headers = [
        (b"content-type", b"application/json;charset=UTF-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if header is not None:
        headers.append((header[0].encode(), header[1].encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- helpers shared by the handlers --------------------------------------------------------


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _version(request: Request) -> str:
    """The path's ``vNN.N``; 404 NOT_FOUND unless it is a version ``GET /services/data`` lists."""
    version = str(request.path_params["version"])
    if version not in _SERVED_VERSIONS:
        raise not_found()
    return version


def _sobject(request: Request) -> ObjectDef:
    obj = get_object(str(request.path_params["sobject"]))
    if obj is None:
        raise not_found()
    return obj


def _wanted_fields(request: Request) -> list[str] | None:
    """The ``fields`` parameter of a record GET (None: every field)."""
    wanted = request.query_params.get("fields")
    return [n.strip() for n in wanted.split(",") if n.strip()] if wanted else None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", f"Invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise SalesforceApiError(400, "JSON_PARSER_ERROR", "The request body must be an object")
    return body


# --- handlers --------------------------------------------------------------------------------


async def token(request: Request) -> Response:
    """``POST /services/oauth2/token``: password or client-credentials grant (the client's id
    and secret as form fields or an ``Authorization: Basic`` header)."""
    # Parsed by hand: Starlette's form parser needs python-multipart, and the token endpoint
    # only takes application/x-www-form-urlencoded (grant parameters may also be in the URL).
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = dict(request.query_params)
    fields.update({key: values[-1] for key, values in parse_qs(body).items()})
    instance_url = str(request.base_url).rstrip("/")
    try:
        answer = _state(request).sessions.oauth_token(
            fields, request.headers.get("authorization"), instance_url
        )
    except OAuthError as refused:
        return JSONResponse(refused.body(), status_code=400)
    return JSONResponse(answer)


async def soap_login(request: Request) -> Response:
    """``POST /services/Soap/u/{version}``: the partner SOAP API's ``login()`` (see soap_login)."""
    status, body = answer_login(
        await request.body(),
        str(request.path_params["version"]),
        str(request.base_url).rstrip("/"),
        _state(request).sessions,
        frozenset(version.removeprefix("v") for version in _SERVED_VERSIONS),
    )
    return Response(body, status_code=status, headers={"content-type": SOAP_CONTENT_TYPE})


async def versions(request: Request) -> Response:
    """``GET /services/data``: the API versions served (any other answers 404 NOT_FOUND)."""
    return JSONResponse(
        [
            {"label": label, "url": f"/services/data/v{number}.0", "version": f"{number}.0"}
            for number, label in _RELEASES.items()
        ]
    )


async def resources(request: Request) -> Response:
    """``GET /services/data/vXX.X``: the resources of a version."""
    version = _version(request)
    base = f"/services/data/{version}"
    names = ("composite", "jobs/ingest", "jobs/query", "limits", "query", "queryAll", "sobjects")
    return JSONResponse({name: f"{base}/{name}" for name in names})


async def limits(request: Request) -> Response:
    """``GET .../limits``: the daily API allocation and what remains of it."""
    _version(request)
    state = _state(request)
    with state.connection() as conn:
        used = store.read_counter(conn, store.API_USAGE_KEY)
    return JSONResponse(
        {
            "DailyApiRequests": {"Max": state.api_limit, "Remaining": state.api_limit - used},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
            "DataStorageMB": {"Max": 5, "Remaining": 5},
        }
    )


async def sobjects(request: Request) -> Response:
    """``GET .../sobjects``: global describe."""
    return JSONResponse(describe.global_describe(_version(request)))


async def sobject_root(request: Request) -> Response:
    """``GET .../sobjects/{Obj}`` (basic info) and ``POST`` (create a record)."""
    version, obj = _version(request), _sobject(request)
    if request.method == "GET":
        return JSONResponse(describe.basic_info(obj, version))
    body = await _json_body(request)
    state = _state(request)
    with state.connection() as conn:
        new_id = records.create_record(conn, obj, body, state.clock())
    return JSONResponse({"id": new_id, "success": True, "errors": []}, status_code=201)


async def sobject_describe(request: Request) -> Response:
    """``GET .../sobjects/{Obj}/describe``."""
    return JSONResponse(describe.describe_object(_sobject(request), _version(request)))


async def sobject_updated(request: Request) -> Response:
    """``GET .../sobjects/{Obj}/updated?start=&end=``: Ids changed in a window (getUpdated)."""
    _version(request)
    obj, state = _sobject(request), _state(request)
    params = request.query_params
    with state.connection() as conn:
        answer = replication.get_updated(
            conn, obj, params.get("start"), params.get("end"), state.clock()
        )
    return JSONResponse(answer)


async def sobject_deleted(request: Request) -> Response:
    """``GET .../sobjects/{Obj}/deleted?start=&end=``: deletions in a window (getDeleted)."""
    _version(request)
    obj, state = _sobject(request), _state(request)
    params = request.query_params
    with state.connection() as conn:
        answer = replication.get_deleted(
            conn,
            obj,
            params.get("start"),
            params.get("end"),
            state.clock(),
            before_log=state.deleted_before_log,
        )
    return JSONResponse(answer)


async def record(request: Request) -> Response:
    """``GET`` or ``PATCH .../sobjects/{Obj}/{Id}``."""
    version, obj = _version(request), _sobject(request)
    record_id = str(request.path_params["record_id"])
    state = _state(request)
    if request.method == "GET":
        names = _wanted_fields(request)
        with state.connection() as conn:
            return JSONResponse(records.get_record(conn, obj, record_id, version, names))
    body = await _json_body(request)
    with state.connection() as conn:
        records.update_record(conn, obj, record_id, body, state.clock())
    return Response(status_code=204)


# API 46.0 made an upsert's update answer 200 with a body (it was 204) and added ``created``.
_UPSERT_RESULT_VERSION = 46


async def record_by_external_id(request: Request) -> Response:
    """``GET`` or ``PATCH .../sobjects/{Obj}/{ExternalIdField}/{value}`` (PATCH upserts).

    The upsert creates (201) when no live record has the value, updates (200 with
    ``created: false``; 204 before API 46.0) when one has, and answers 300 with the matching
    records' URLs when several have. GET answers the one record, 404, or the same 300.
    """
    version, obj = _version(request), _sobject(request)
    key = records.upsert_key_field(obj, str(request.path_params["field"]))
    value = str(request.path_params["value"])
    state = _state(request)
    try:
        if request.method == "GET":
            return _get_by_external_id(request, state, obj, key, value, version)
        body = await _json_body(request)
        with state.connection() as conn:
            upserted = records.upsert_record(conn, obj, key, value, body, state.clock())
    except records.MultipleMatches as error:
        urls = [records.record_url(version, obj, record_id) for record_id in error.record_ids]
        return JSONResponse(urls, status_code=300)
    return _upsert_answer(version, upserted)


def _upsert_answer(version: str, upserted: records.Upserted) -> Response:
    answer: dict[str, Any] = {"id": upserted.record_id, "success": True, "errors": []}
    if float(version.removeprefix("v")) < _UPSERT_RESULT_VERSION:
        return JSONResponse(answer, status_code=201) if upserted.created else Response(None, 204)
    answer["created"] = upserted.created
    return JSONResponse(answer, status_code=201 if upserted.created else 200)


def _get_by_external_id(
    request: Request,
    state: SandboxState,
    obj: ObjectDef,
    key: FieldDef,
    value: str,
    version: str,
) -> Response:
    names = _wanted_fields(request)
    with state.connection() as conn:
        stored = values.from_api(key, value)
        matches = records.matching_ids(conn, obj, key, stored, limit=-1)
        if len(matches) > 1:
            raise records.MultipleMatches(key, matches)
        if not matches:
            raise not_found()
        return JSONResponse(records.get_record(conn, obj, matches[0], version, names))


async def query(request: Request) -> Response:
    """``GET .../query?q=``: the first page of a SOQL query (live records only)."""
    return _first_page(request, include_deleted=False)


async def query_all(request: Request) -> Response:
    """``GET .../queryAll?q=``: the first page of a SOQL query, soft-deleted records included."""
    return _first_page(request, include_deleted=True)


def _first_page(request: Request, *, include_deleted: bool) -> Response:
    version = _version(request)
    soql = request.query_params.get("q")
    if not soql:
        raise SalesforceApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    state = _state(request)
    batch_size = batch_size_from_header(request.headers.get("sforce-query-options"))
    with state.connection() as conn:
        page = state.queries.run(
            conn,
            soql,
            include_deleted=include_deleted,
            now=state.clock(),
            batch_size=batch_size,
            version=version,
        )
    return JSONResponse(page)


async def query_more(request: Request) -> Response:
    """``GET .../query/{locator}-{offset}``: a further page of a query."""
    version = _version(request)
    match = _LOCATOR_RE.match(str(request.path_params["locator"]))
    if match is None:
        raise SalesforceApiError(400, "INVALID_QUERY_LOCATOR", INVALID_LOCATOR_MESSAGE)
    state = _state(request)
    with state.connection() as conn:
        page = state.queries.more(conn, match["locator"], int(match["offset"]), version)
    return JSONResponse(page)


async def composite_sobjects(request: Request) -> Response:
    """``POST`` (create) or ``PATCH`` (update) ``.../composite/sobjects``: up to 200 records."""
    _version(request)
    operation = WriteOperation.INSERT if request.method == "POST" else WriteOperation.UPDATE
    body = await _json_body(request)
    state = _state(request)
    with state.connection() as conn:
        answer = save_collection(conn, operation, body, state.clock())
    return JSONResponse(answer)


async def composite_sobjects_upsert(request: Request) -> Response:
    """``PATCH .../composite/sobjects/{Obj}/{ExternalIdField}``: upsert up to 200 records."""
    _version(request)
    obj = _sobject(request)
    key = records.upsert_key_field(obj, str(request.path_params["field"]))
    body = await _json_body(request)
    state = _state(request)
    with state.connection() as conn:
        answer = upsert_collection(conn, obj, key, body, state.clock())
    return JSONResponse(answer)


async def ingest_jobs(request: Request) -> Response:
    """``POST .../jobs/ingest`` (create an ingest job: insert or update; deletes refused) or
    ``GET`` (list the jobs)."""
    version = _version(request)
    state = _state(request)
    if request.method == "GET":
        return JSONResponse(state.ingest_jobs.listing(version, request.query_params))
    body = await _json_body(request)
    if body.get("operation") in DELETE_OPERATIONS:
        state.count_refused_delete()
        raise _delete_refused()
    with state.connection() as conn:
        job = state.ingest_jobs.create(conn, body, version, state.clock())
    return JSONResponse(job.info())


async def ingest_job(request: Request) -> Response:
    """``GET`` (info), ``PATCH`` (close or abort) or ``DELETE`` ``.../jobs/ingest/{id}``."""
    _version(request)
    state = _state(request)
    job_id = str(request.path_params["job_id"])
    if request.method == "GET":
        return JSONResponse(state.ingest_jobs.get(job_id).status())
    if request.method == "DELETE":
        state.ingest_jobs.delete(job_id)
        return Response(status_code=204)
    body = await _json_body(request)
    with state.connection() as conn:
        answer = state.ingest_jobs.change_state(conn, job_id, body, state.clock())
    return JSONResponse(answer)


async def ingest_batches(request: Request) -> Response:
    """``PUT .../jobs/ingest/{id}/batches``: the job's CSV; 201 with no body, as Salesforce."""
    _version(request)
    _state(request).ingest_jobs.upload(str(request.path_params["job_id"]), await request.body())
    return Response(status_code=201)


async def ingest_results(request: Request) -> Response:
    """``GET .../jobs/ingest/{id}/successfulResults``, ``failedResults``, ``unprocessedrecords``."""
    _version(request)
    wanted = str(request.path_params["kind"]).lower()
    kind = next((k for k in ResultKind if k.value.lower() == wanted), None)
    if kind is None:
        raise not_found()
    job = _state(request).ingest_jobs.get(str(request.path_params["job_id"]))
    return Response(job.result_csv(kind), media_type="text/csv")


def _query_job_version(request: Request) -> str:
    """The path's version, which must be one serving query jobs (else 404 NOT_FOUND)."""
    version = _version(request)
    if float(version.removeprefix("v")) < FIRST_QUERY_JOB_VERSION:
        raise not_found()
    return version


async def query_jobs(request: Request) -> Response:
    """``POST .../jobs/query`` (create a query or queryAll job) or ``GET`` (list the jobs)."""
    version = _query_job_version(request)
    state = _state(request)
    if request.method == "GET":
        return JSONResponse(state.query_jobs.listing(version, request.query_params, state.clock()))
    body = await _json_body(request)
    with state.connection() as conn:
        job = state.query_jobs.create(conn, body, version, state.clock())
    return JSONResponse(job.info())


async def query_job(request: Request) -> Response:
    """``GET`` (poll), ``PATCH`` (abort) or ``DELETE`` ``.../jobs/query/{id}``."""
    _query_job_version(request)
    state = _state(request)
    job_id = str(request.path_params["job_id"])
    if request.method == "GET":
        with state.connection() as conn:
            answer = state.query_jobs.poll(conn, job_id, state.clock(), state.faults)
        return JSONResponse(answer)
    if request.method == "DELETE":
        state.query_jobs.delete(job_id)
        return Response(status_code=204)
    body = await _json_body(request)
    return JSONResponse(state.query_jobs.abort(job_id, body, state.clock()))


async def query_job_results(request: Request) -> Response:
    """``GET .../jobs/query/{id}/results?locator=&maxRecords=``: one CSV page, streamed."""
    _query_job_version(request)
    state = _state(request)
    params = request.query_params
    with state.connection() as conn:
        page = state.query_jobs.results(
            conn,
            state.db_path,
            str(request.path_params["job_id"]),
            params.get("locator"),
            params.get("maxRecords"),
        )
    return StreamingResponse(
        page.body,
        media_type="text/csv",
        headers={
            "Sforce-Locator": page.locator,
            "Sforce-NumberOfRecords": str(page.number_of_records),
        },
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SalesforceApiError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return _error_response(
            SalesforceApiError(
                405,
                "METHOD_NOT_ALLOWED",
                f"HTTP Method '{request.method}' not allowed. Allowed are "
                f"{(exc.headers or {}).get('Allow', 'GET')}",
            )
        )
    return _error_response(not_found())


async def _missing_database(request: Request, exc: Exception) -> Response:
    return _error_response(SalesforceApiError(503, "SERVER_UNAVAILABLE", str(exc)))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """Any other exception of a handler: 500 UNKNOWN_EXCEPTION JSON, as Salesforce answers an
    internal error (Starlette's default is a text/plain 500). Starlette raises the exception
    again once this is sent, so uvicorn logs its traceback; the ErrorId ties the two."""
    error = unknown_exception()
    logger.error("%s %s: %s", request.method, request.url.path, error.message)
    return _error_response(error)


class _JsonServerErrors:
    """The outermost layer: an exception raised before any answer started (in the gate, say a
    database error while counting usage) gets the same 500 UNKNOWN_EXCEPTION JSON instead of
    uvicorn's text/plain "Internal Server Error". Once an answer started, it is left to uvicorn
    (which logs it and closes the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            error = unknown_exception()
            logger.exception("%s %s: %s", scope["method"], scope["path"], error.message)
            await _send_raw(send, error.status, json.dumps(error.body()).encode())


def create_app(state: SandboxState) -> ASGIApp:
    """The sandbox ASGI app serving ``state``."""
    data = "/services/data/{version}"
    routes = [
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(SOAP_LOGIN_PATH, soap_login, methods=["POST"]),
        Route("/services/data", versions, methods=["GET"]),
        Route(data, resources, methods=["GET"]),
        Route(f"{data}/limits", limits, methods=["GET"]),
        Route(f"{data}/sobjects", sobjects, methods=["GET"]),
        Route(f"{data}/sobjects/{{sobject}}", sobject_root, methods=["GET", "POST"]),
        Route(f"{data}/sobjects/{{sobject}}/describe", sobject_describe, methods=["GET"]),
        # Before the record route, which would otherwise read "updated" as a record Id.
        Route(f"{data}/sobjects/{{sobject}}/updated", sobject_updated, methods=["GET"]),
        Route(f"{data}/sobjects/{{sobject}}/deleted", sobject_deleted, methods=["GET"]),
        Route(f"{data}/sobjects/{{sobject}}/{{record_id}}", record, methods=["GET", "PATCH"]),
        Route(
            f"{data}/sobjects/{{sobject}}/{{field}}/{{value}}",
            record_by_external_id,
            methods=["GET", "PATCH"],
        ),
        Route(f"{data}/query", query, methods=["GET"]),
        Route(f"{data}/queryAll", query_all, methods=["GET"]),
        Route(f"{data}/query/{{locator}}", query_more, methods=["GET"]),
        Route(f"{data}/queryAll/{{locator}}", query_more, methods=["GET"]),
        Route(f"{data}/composite/sobjects", composite_sobjects, methods=["POST", "PATCH"]),
        Route(
            f"{data}/composite/sobjects/{{sobject}}/{{field}}",
            composite_sobjects_upsert,
            methods=["PATCH"],
        ),
        # Starlette takes the first route that matches: the list stays ahead of the job routes
        # (``{job_id}`` needs a segment, and the gate strips a trailing slash, so none takes it).
        Route(f"{data}/jobs/ingest", ingest_jobs, methods=["GET", "POST"]),
        Route(f"{data}/jobs/ingest/{{job_id}}", ingest_job, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{data}/jobs/ingest/{{job_id}}/batches", ingest_batches, methods=["PUT"]),
        Route(f"{data}/jobs/ingest/{{job_id}}/{{kind}}", ingest_results, methods=["GET"]),
        Route(f"{data}/jobs/query", query_jobs, methods=["GET", "POST"]),
        Route(f"{data}/jobs/query/{{job_id}}", query_job, methods=["GET", "PATCH", "DELETE"]),
        Route(f"{data}/jobs/query/{{job_id}}/results", query_job_results, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            SalesforceApiError: _api_error,
            HTTPException: _http_error,
            FileNotFoundError: _missing_database,
            Exception: _unexpected_error,
        },
    )
    app.router.redirect_slashes = False
    app.state.sandbox = state
    return _JsonServerErrors(_ApiGate(app, state))
